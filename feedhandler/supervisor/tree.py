"""The supervision tree: one child per exchange connection, one attempt limiter per process.

The supervisor starts the children, adds and retires them at runtime (a live subscription
change that needs a new connection, or leaves one without streams), stops them (connected ones
close gracefully; pending connects and handshakes are cancelled), reports a permanent refusal
at start, and exposes the status snapshot. It never touches a message.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

from feedhandler._ext.listener import FeedListener
from feedhandler.config import ConnectionConfig
from feedhandler.supervisor.clock import SYSTEM_CLOCK, Clock
from feedhandler.supervisor.connection import Connection, Connector
from feedhandler.supervisor.failures import Failure
from feedhandler.supervisor.feed import ShardFeed
from feedhandler.supervisor.legs import LegPair
from feedhandler.supervisor.limiter import AttemptLimiter
from feedhandler.supervisor.staleness import Verdict
from feedhandler.supervisor.status import ConnectionStatus, LegStatus, SupervisorStatus
from feedhandler.supervisor.transport import open_link, tls_context

log = logging.getLogger(__name__)


class Child(Protocol):
    """What the supervisor runs and reports of a shard's frame source: a Connection, or
    (replay) a recording's reader."""

    @property
    def feed(self) -> ShardFeed: ...
    @property
    def index(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def listener(self) -> FeedListener | None: ...
    @property
    def failed_attempts(self) -> int: ...
    @property
    def last_error(self) -> str: ...
    @property
    def start_refusal(self) -> Failure | None: ...
    @property
    def replaced(self) -> Counter[str]: ...
    @property
    def violations(self) -> int: ...
    @property
    def rollovers(self) -> Counter[str]: ...
    @property
    def verdict(self) -> Verdict: ...
    @property
    def opened_at(self) -> float: ...
    @property
    def max_silence_s(self) -> float: ...
    async def run(self, stop: asyncio.Event) -> None: ...


ChildFactory = Callable[[ShardFeed], Child]


class Supervisor:
    def __init__(self, feeds: Sequence[ShardFeed], config: ConnectionConfig, *,
                 limiter: AttemptLimiter | None = None, clock: Clock = SYSTEM_CLOCK,
                 connect: Connector = open_link, make_child: ChildFactory | None = None) -> None:
        self.config = config
        self.clock = clock
        self.limiter = limiter or AttemptLimiter(config.attempt_limit, config.attempt_window_s,
                                                 clock)
        context = tls_context(config.ca_file) \
            if any(f.shard.url.startswith("wss://") for f in feeds) or \
            config.url_b.startswith("wss://") else None
        if make_child is None:
            def make_child(feed: ShardFeed) -> Child:
                def make_leg(leg: int | None) -> Connection:
                    return Connection(feed, config, self.limiter, clock=clock,
                                      connect=connect, ssl_context=context, leg=leg)

                return LegPair(feed, make_leg) if config.redundancy == 2 else make_leg(None)
        self._make_child = make_child
        self.children = [make_child(feed) for feed in feeds]
        self._stopping = False
        # Per child (by shard index): retiring one child stops it alone.
        self._stops: dict[int, asyncio.Event] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._on_done: Callable[[asyncio.Task[None]], None] | None = None
        self.on_start_refusal: Callable[[], None] | None = None

    def start(self, on_done: Callable[[asyncio.Task[None]], None]) -> None:
        self._on_done = on_done
        for child in self.children:
            self._start(child)

    def _start(self, child: Child) -> None:
        stop = self._stops[child.index] = asyncio.Event()
        task = asyncio.create_task(self._run_child(child, stop), name=f"shard {child.index}")
        assert self._on_done is not None
        task.add_done_callback(self._on_done)
        self._tasks[child.index] = task

    async def _run_child(self, child: Child, stop: asyncio.Event) -> None:
        try:
            await child.run(stop)
        except asyncio.CancelledError:
            if not stop.is_set():
                raise
            return  # stop() cancelled a waiting child: that is how it stops
        if child.start_refusal is not None and self.on_start_refusal is not None:
            self.on_start_refusal()

    def add(self, feed: ShardFeed) -> Child:
        """A new child for `feed`, started at once if the supervisor runs."""
        child = self._make_child(feed)
        self.children.append(child)
        if self._on_done is not None and not self._stopping:
            self._start(child)
        return child

    def revive(self, child: Connection) -> bool:
        """A quarantined connection runs again (its streams changed); False when it is not
        quarantined or the supervisor does not run (stopping)."""
        if self._on_done is None or self._stopping or not child.revive():
            return False
        task = self._tasks.get(child.index)
        assert task is None or task.done()  # (quarantine ended its run)
        self._start(child)
        return True

    def retire(self, child: Child, on_stopped: Callable[[], None] | None = None) -> None:
        """Stop one child (gracefully, as at stop) and drop it from the status;
        `on_stopped()` once it has closed (its last frames decoded)."""
        self.children.remove(child)
        if isinstance(child, Connection):
            child.retired = True
        self._stop_child(child)
        task = self._tasks.get(child.index)
        if on_stopped is not None:
            if task is None:
                on_stopped()
            else:
                task.add_done_callback(lambda _: on_stopped())

    def _stop_child(self, child: Child) -> None:
        stop, task = self._stops.get(child.index), self._tasks.get(child.index)
        if stop is None or task is None:
            return  # never started
        stop.set()
        if child.state != "open":
            task.cancel()

    def stop(self) -> None:
        """Open connections close gracefully; a child waiting (in the limiter, a backoff, a
        connect or a handshake) is cancelled at once."""
        self._stopping = True
        for child in self.children:
            self._stop_child(child)

    async def wait_stopped(self) -> None:
        """After stop(): every child closed or cancelled (retired ones too)."""
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    @property
    def start_refusal(self) -> str:
        for child in self.children:
            if child.start_refusal is not None:
                return f"shard {child.index}: {child.feed.shard.url} refused: " \
                       f"{child.start_refusal.reason}"
        return ""

    def status(self) -> SupervisorStatus:
        now = self.clock.now()
        connections = []
        for child in self.children:
            feed, listener = child.feed, child.listener
            is_open = child.state == "open" and listener is not None
            connections.append(ConnectionStatus(
                shard=child.index, url=feed.shard.url, streams=len(feed.shard.streams),
                state=child.state, epoch=feed.epoch, frames=feed.frames,
                last_frame_ns=feed.last_frame_ns, max_silence_s=child.max_silence_s,
                failed_attempts=child.failed_attempts,
                last_error=child.last_error,
                open_for_s=now - child.opened_at if is_open else 0.0,
                # (a shard that delivered before, e.g. a quiet one's replacement, may be quiet)
                never_delivered=is_open and child.verdict.never_delivered and not feed.frames,
                suspect=is_open and child.verdict.suspect,
                replaced=dict(child.replaced), violations=child.violations,
                oversized=listener.oversized if listener is not None else 0,
                rollovers=dict(child.rollovers), duplicates=feed.decoder.duplicates,
                rejected_copies=feed.decoder.rejected_copies,
                legs=tuple(_leg_status(leg, now) for leg in getattr(child, "legs", ()))))
        return SupervisorStatus(
            connections=tuple(connections), attempts=self.limiter.attempts,
            attempt_waits=self.limiter.waits, blocked_for_s=self.limiter.blocked_for,
            quarantined=sum(bool(c.quarantined) for c in connections),
            start_refusal=self.start_refusal)


def _leg_status(leg: Connection, now: float) -> LegStatus:
    assert leg.leg is not None
    won, lead_count, lead_sum_ns, lead_buckets, _ = leg.feed.decoder.leg_counts(leg.leg)
    return LegStatus(leg=leg.leg, url=leg.url, state=leg.state,
                     trusted=leg.leg in leg.feed.trusted,
                     failed_attempts=leg.failed_attempts, last_error=leg.last_error,
                     open_for_s=now - leg.opened_at if leg.state == "open" else 0.0,
                     won=won, lead_count=lead_count, lead_sum_s=lead_sum_ns / 1e9,
                     lead_buckets=lead_buckets)
