"""The handler's side of the book procedure (protocol doc §5): per symbol, a depth snapshot
that covers the diffs it has published, fetched again whenever that symbol's diffs break.

`on_depth(records)` runs per decoded batch of the `depth` kind (numpy, no Python per row or
event): per symbol it checks that each event continues the last (`U <= u_prev + 1`). The first
diff of a symbol, and the first after a break (a missed frame, a rejected frame, a
reconnect), start a resync of that symbol alone: a `depth` request through the WebSocket API
(queued on the shared weight budget: `SNAPSHOT` priority at start, `RESYNC` after a gap, so
1,000 symbols resyncing at once wait their turn instead of drawing 429s). A snapshot whose
`lastUpdateId` the first diff since the break does not follow on from (`U > lastUpdateId +
1`, §5) is fetched again;
otherwise it is published as snapshot rows on the depth topic (`snapshot.snapshot_records`),
where `BookBuilder` starts a valid book from it.

With `refresh_s` > 0 every synced symbol gets a fresh snapshot that often (lowest priority),
so a consumer that starts reading mid-topic, or after retention dropped the first snapshot,
finds a starting point within `refresh_s`; none while `paused()` (the sink is backed up and
the handler has stopped reading: refreshes would only grow its backlog).

`want(symbol, first_update_id, why)` fetches a snapshot for a symbol whose handler book
(`HandlerBooks`) went short, found its snapshot too old, or wants a refresh.

`lost(symbols)`: the connection that streamed those symbols' diffs is gone (no other leg
feeds them). A valid book is no longer kept current from that moment, so it is invalid from
then on (`book_resync`, reason `disconnected`, at once, not at the next diff), and the first
diff after the reconnect fetches a snapshot, whether or not it follows on; meanwhile nothing
is fetched for it, so that no `book_snapshot` says valid while its stream is down.

Control events: `book_resync` (symbol, reason `start`, `gap`, `short`, `stale` or
`disconnected`, expected / received U) when a symbol's book stops being rebuildable,
`book_snapshot` (symbol, last_update_id, levels) when it is again: the interval between the
two is the one in which that book was not valid.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from feedhandler.book.snapshot import SnapshotError, snapshot_records
from feedhandler.contract import DEPTH_FIRST
from feedhandler.wsapi import errors
from feedhandler.wsapi.budget import REFRESH, RESYNC, SNAPSHOT

log = logging.getLogger(__name__)

EventSink = Callable[[dict[str, Any]], None]
STALE_WARNING_EVERY = 60  # a snapshot fetched again as too old: logged the 1st, 60th, ... time
SHORT_RESYNC_S = 1.0  # a book short of levels (refresh or short): a snapshot at most this often
RETRY_MAX_S = 60.0  # a failing snapshot is asked again after 1, 2, 4 ... s, at most this


class DepthSource(Protocol):
    """Where snapshots come from (`WsApiClient` fits)."""

    async def depth(self, symbol: str, limit: int = 100, *, priority: int = ...) -> Any: ...


@dataclass
class SymbolSync:
    first_update_id: int = 0  # U of the first diff since the last break
    last_update_id: int = 0  # u of the newest diff seen
    snapshot_id: int = 0  # lastUpdateId of the last published snapshot (0: none yet)
    snapshot_at: float = 0.0  # when it was published (monotonic)
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    priority: int = 0  # the budget priority of `task`'s request
    waiting: bool = False  # `task` waits out SHORT_RESYNC_S before it asks
    resyncs: int = 0
    stale: int = 0  # snapshots fetched again because they were older than the diffs
    refreshes: int = 0  # snapshots the handler's valid book asked for (a side ran short)
    lost: bool = False  # its stream stopped (lost connection): a snapshot at its next diff
    lost_at_ns: int = 0  # when (monotonic: a wall clock stepped since cannot move it)


class SnapshotSync:
    def __init__(
        self,
        source: DepthSource,
        publish: Callable[[np.ndarray], None],
        *,
        limit: int = 5000,
        on_event: EventSink | None = None,
        retry_delay_s: float = 1.0,
        refresh_s: float = 0.0,
        paused: Callable[[], bool] = lambda: False,
        streamed: Callable[[], Collection[str] | None] = lambda: None,
    ) -> None:
        self.source = source
        self.limit = limit
        self.symbols: dict[str, SymbolSync] = {}
        self.snapshots = 0  # published
        self.failures = 0  # requests that failed (retried)
        self._publish = publish
        self._on_event = on_event or (lambda event: None)
        self._retry_delay_s = retry_delay_s
        self._refresh_s = refresh_s
        self._paused = paused  # the sink is backed up: no refresh adds to it
        self._streamed = streamed  # the symbols whose depth is streamed now (None: all)
        self._refresher: asyncio.Task[None] | None = None
        # books invalid since their stream was lost, until a snapshot after it (the handler's
        # books, which see only diffs, publish none of these meanwhile)
        self.disconnected: set[str] = set()

    def on_depth(self, records: np.ndarray) -> None:
        """A batch of depth diffs, as the decoder hands it over (before the sink owns it)."""
        events = records[(records["flags"] & DEPTH_FIRST) != 0]
        if not len(events):
            return
        names, inverse = np.unique(events["symbol"], return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(names)))
        firsts, lasts = events["first_update_id"][order], events["last_update_id"][order]
        received = events["ts_recv"][order]
        start = 0
        for name, end in zip(names, bounds, strict=True):
            self._check(name.decode(), firsts[start:end], lasts[start:end],
                        received[start:end])
            start = end

    def _check(self, symbol: str, firsts: np.ndarray, lasts: np.ndarray,
               received: np.ndarray) -> None:
        state = self.symbols.get(symbol)
        if state is None:
            state = self.symbols[symbol] = SymbolSync()
        # u of the newest event before each one (duplicates and stale events do not lower it)
        before = np.maximum.accumulate(np.concatenate(([state.last_update_id], lasts)))[:-1]
        breaks = np.flatnonzero(firsts > before + 1)
        # The book is invalid from the first break on (a symbol's first diff, or a gap): the
        # event says where; the snapshot must cover the last break of the batch.
        if len(breaks):
            state.first_update_id = max(state.first_update_id, int(firsts[breaks[-1]]))
        if state.lost:  # (invalid since the loss, evented then)
            # the first diff received after it (a batch that lingered may bring older ones),
            # by records' ts_recv (CLOCK_REALTIME): the loss on that clock as it reads now
            lost_ns = time.time_ns() - (time.monotonic_ns() - state.lost_at_ns)
            after = np.flatnonzero(received > lost_ns)
            if len(after):
                state.lost = False
                self._resync(symbol, state, None, int(firsts[after[0]]), RESYNC)
        elif state.last_update_id == 0:
            self._resync(symbol, state, "start", int(firsts[0]), SNAPSHOT, expected=0)
        elif len(breaks):
            at = int(breaks[0])
            self._resync(symbol, state, "gap", int(firsts[at]), RESYNC,
                         expected=int(before[at]) + 1)
        state.last_update_id = int(before[-1] if before[-1] > lasts[-1] else lasts[-1])

    def want(self, symbol: str, first_update_id: int, why: str) -> None:
        """The handler's book of `symbol` (HandlerBooks) needs a snapshot its diffs follow on
        from (lastUpdateId + 1 >= first_update_id), `why`:
        - `stale`: the one just published was too old for the diffs it buffered (its buffer
          overflowed, `book.max_buffer`, and kept the newest): invalid past that
          book_snapshot, so evented as `book_resync` again, and fetched again at once;
        - `refresh`: a side fell below top_n levels above its horizon (the book stays valid);
        - `short`: a side has none left (invalid: evented as `book_resync`).
        A refresh or short waits out SHORT_RESYNC_S after the symbol's last snapshot and queues
        behind gap resyncs, so that a market that keeps eating into the top of a book cannot
        spend the weight budget: a refresh with the periodic ones (REFRESH priority), a short,
        whose book is invalid meanwhile, ahead of them with the start snapshots (SNAPSHOT)."""
        state = self.symbols.get(symbol)
        if state is None:
            state = self.symbols[symbol] = SymbolSync(last_update_id=first_update_id - 1)
        if state.lost:  # (its next diff fetches one)
            return
        if why == "stale":
            state.stale += 1
            self._resync(symbol, state, "stale", first_update_id, RESYNC,
                         expected=state.snapshot_id + 1)
            return
        if why == "refresh":
            state.refreshes += 1
        since = time.monotonic() - state.snapshot_at if state.snapshot_at else SHORT_RESYNC_S
        short = why == "short"
        self._resync(symbol, state, "short" if short else None, first_update_id,
                     SNAPSHOT if short else REFRESH, max(0.0, SHORT_RESYNC_S - since))

    def lost(self, symbols: Collection[str]) -> None:
        """The diffs of `symbols` stopped coming (their connection was lost): each book valid
        until now is not from now on, evented at once; a fetch under way is dropped (its
        snapshot would say valid while the stream is down)."""
        for symbol in symbols:
            state = self.symbols.get(symbol)
            if state is None or state.lost:
                continue
            state.lost, state.lost_at_ns = True, time.monotonic_ns()
            self.disconnected.add(symbol)
            valid = state.snapshot_id and (state.task is None or state.priority == REFRESH)
            if state.task is not None:
                state.task.cancel()
                state.task = None
            if valid:
                state.resyncs += 1
                self._event("book_resync", symbol=symbol, reason="disconnected",
                            expected=state.last_update_id + 1, received=0)

    def _resync(self, symbol: str, state: SymbolSync, reason: str | None, received: int,
                priority: int, wait: float = 0.0, expected: int | None = None) -> None:
        """A snapshot its diffs from `received` on follow on from; `reason`: evented as
        book_resync (the start of an interval in which the book is not valid)."""
        # (a break the fetch must still cover may be later than this one)
        state.first_update_id = max(state.first_update_id, received)
        if reason is not None:
            state.resyncs += 1
            self._event("book_resync", symbol=symbol, reason=reason,
                        expected=received if expected is None else expected, received=received)
        self._schedule(symbol, state, priority, wait)

    def _schedule(self, symbol: str, state: SymbolSync, priority: int,
                  wait: float = 0.0) -> None:
        loop = asyncio.get_running_loop()
        if state.task is not None and priority < state.priority and (
                state.priority == REFRESH or state.waiting):
            # a refresh waits behind every other request, a short its second: the resync goes
            # instead (a fetch at start or for an earlier gap is awaited: its answer is checked
            # when it comes)
            state.task.cancel()
            state.task = None
        if state.task is None:  # a fetch in flight re-checks first_update_id when it returns
            state.priority = priority
            state.task = loop.create_task(
                self._fetch(symbol, state, priority, wait), name=f"snapshot {symbol}"
            )
        if self._refresh_s > 0 and self._refresher is None:
            self._refresher = loop.create_task(self._refresh(), name="snapshot refresh")
            self._refresher.add_done_callback(_log_failure)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            if self._paused():
                continue
            streamed = self._streamed()  # (a symbol unsubscribed since: not refreshed)
            for symbol, state in self.symbols.items():
                if state.snapshot_id and not state.lost and (
                        streamed is None or symbol in streamed):
                    self._schedule(symbol, state, REFRESH)

    async def _fetch(self, symbol: str, state: SymbolSync, priority: int,
                     wait: float = 0.0) -> None:
        try:
            if wait:
                state.waiting = True
                try:
                    await asyncio.sleep(wait)
                finally:
                    state.waiting = False
            stale = failed = 0
            told = False  # book_snapshot_failed: once a streak
            while True:
                try:
                    result = await self.source.depth(symbol, self.limit, priority=priority)
                    last = int(result["lastUpdateId"])
                    # §5: too old, again, unless the first diff since the break follows on
                    if last + 1 < state.first_update_id:
                        state.stale += 1  # (the source lags the stream: give it a moment)
                        stale += 1
                        if stale == 1 or not stale % STALE_WARNING_EVERY:
                            log.warning("snapshot of %s is older than its diffs (lastUpdateId "
                                        "%d, diffs from %d): asked again every %.1f s (%d so "
                                        "far)", symbol, last, state.first_update_id,
                                        self._retry_delay_s, stale)
                        await asyncio.sleep(self._retry_delay_s)
                        continue
                    self._publish(snapshot_records(symbol, result, limit=self.limit))
                except Exception as exc:  # whatever the source, the reply or the sink: retried
                    self.failures += 1
                    if isinstance(exc, errors.BadSymbol):  # delisted, or not served yet
                        if not told:
                            told = True
                            self._event("book_snapshot_failed", symbol=symbol, error=str(exc))
                        streamed = self._streamed()
                        if priority == REFRESH or (streamed is not None
                                                   and symbol not in streamed):
                            state.snapshot_id = 0  # (not refreshed any more)
                            return
                    # backing off: a refusal that lasts (a WAF, a parameter the exchange
                    # refuses) is not asked again every second for ever
                    delay = min(self._retry_delay_s * 2 ** failed, RETRY_MAX_S)
                    failed += 1
                    expected = (errors.WsApiError, SnapshotError, KeyError, TypeError, ValueError)
                    log.warning("snapshot of %s failed (%s); again in %.1f s", symbol, exc,
                                delay, exc_info=not isinstance(exc, expected))
                    await asyncio.sleep(delay)
                    continue
                state.snapshot_id, state.snapshot_at = last, time.monotonic()
                self.disconnected.discard(symbol)
                self.snapshots += 1
                self._event("book_snapshot", symbol=symbol, last_update_id=last,
                            levels=len(result["bids"]) + len(result["asks"]))
                return
        finally:
            if state.task is asyncio.current_task():  # (not when a resync replaced it)
                state.task = None

    def summary(self) -> dict[str, int]:
        """Snapshots published, fetches failed, fetched again as too old, resyncs evented."""
        states = self.symbols.values()
        return {"snapshots": self.snapshots, "failures": self.failures,
                "stale": sum(s.stale for s in states), "resyncs": sum(s.resyncs for s in states)}

    async def close(self) -> None:
        tasks = [s.task for s in self.symbols.values() if s.task is not None]
        if self._refresher is not None:
            tasks.append(self._refresher)
        for task in tasks:
            task.cancel()
        # (a refresher that failed was logged: the handler's shutdown goes on)
        await asyncio.gather(*tasks, return_exceptions=True)

    def pending(self) -> int:
        """Symbols waiting for a snapshot."""
        return sum(1 for s in self.symbols.values() if s.task is not None)

    def _event(self, kind: str, **fields: Any) -> None:
        self._on_event({"type": kind, "ts_ns": time.time_ns(), **fields})


def _log_failure(task: asyncio.Task[None]) -> None:
    """A task that must not end quietly: it is not awaited until close()."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed; no more of them", task.get_name(), exc_info=task.exception())
