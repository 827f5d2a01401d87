"""One market per process: every paced connection sees the same events, as on Binance.

`SharedMarket` owns one event source (the synthetic market, rendered in µs) subscribed to the
union of its connections' streams, and releases its events at `rate` events/s on the wall
clock, every millisecond on the loop's timers or every `tick_us` on a `Ticker` (finer ticks,
smaller bursts). Each event goes to every connection subscribed to its stream, so two
connections with the same stream get the same ids and event times; a connection that joins
later joins the sequence where it is (as a 24 h rollover does on Binance), it does not
restart it.

Each connection reads through its own `ConnectionView` (its `FrameSource`): a queue of the events
of its streams, its own sequence faults (a gap on one connection is not a gap on the others),
and the time-unit conversion. Millisecond connections get the µs payload with every 16-digit
integer cut to its first 13 digits: those are exactly the time fields, because the market's
ids stay far below 10^15.

A view's queue only grows while its connection cannot write (flow control, a stall fault);
past `MAX_BACKLOG` events the connection is closed (1008 `Slow consumer`) rather than fed
without bound, the way an exchange drops a client that does not read.

Fast mode and replay keep a source per connection (see `Simulator._accept`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import orjson

from feedhandler.simulator.market import Feed, Universe
from feedhandler.simulator.market.faults import FaultInjector
from feedhandler.simulator.server.pacing import RatePacer
from feedhandler.simulator.server.source import Event, FrameSource
from feedhandler.simulator.server.ticker import Ticker
from feedhandler.simulator.server.urls import TimeUnit

_LOG = logging.getLogger(__name__)
MAX_BACKLOG = 1_000_000  # events queued for one connection that cannot write
_ALL_LEVELS = 1 << 30

Level = tuple[int, int]  # (price, quantity) in 1e-8 units
BookSnapshot = tuple[int, list[Level], list[Level]]  # (last update id, bids, asks), best first

# The last 3 digits of a 16-digit integer: deleted by a literal (empty) replacement, which re
# does in C; a group reference (\1) would call back into Python for every match.
_MICRO_DIGITS = re.compile(rb"(?<=[:,\[]\d{13})\d{3}(?=[,}\]])")


def to_millis(payload: bytes) -> bytes:
    """A µs-stamped payload in ms (every 16-digit integer truncated to 13 digits)."""
    return _MICRO_DIGITS.sub(b"", payload)


class MarketBusy(RuntimeError):
    """A snapshot asked for while a worker thread pre-generates the market's events (the books
    move under it): the exchange's "overloaded, try again"."""

    status, code = 503, -1008
    msg = "Server is currently overloaded with other requests. Please try again in a few minutes."

    def __init__(self) -> None:
        super().__init__(self.msg)


class Reader(Protocol):
    """The connection behind a view (implemented by `Connection`)."""

    def source_ready(self) -> None: ...
    def close(self, code: int, reason: str) -> None: ...


class ConnectionView:
    """One connection's window on the shared market; a `FrameSource`."""

    def __init__(self, market: SharedMarket, time_unit: TimeUnit, limit: int | None) -> None:
        self._market = market
        self.millis = time_unit == "ms"
        self._left = limit  # events this connection may still get (None: unlimited)
        self._queue: deque[Event] = deque()
        self._faults = FaultInjector()
        self.reader: Reader | None = None

    @property
    def wants(self) -> bool:
        return self._left is None or self._left > 0

    # FrameSource
    def subscribe(self, streams: Sequence[str]) -> None:
        self._market.subscribe(self, streams)

    def unsubscribe(self, streams: Sequence[str]) -> None:
        self._market.unsubscribe(self, streams)
        gone = set(streams)
        for stream in gone:
            self._faults.discard(stream)
        self._queue = deque(event for event in self._queue if event[0] not in gone)

    def next_frames(self, max_frames: int) -> list[Event]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(max_frames, len(queue)))]

    def inject_gap(self, stream: str, n: int = 1) -> None:
        self._faults.gap(stream, n)

    def inject_duplicate(self, stream: str) -> None:
        self._faults.duplicate(stream)

    def inject_reorder(self, stream: str) -> None:
        self._faults.reorder(stream)

    # from the market
    def push(self, events: list[Event]) -> None:
        if self._faults.pending:
            self._faults.apply(events)
        if self._left is not None:
            del events[self._left :]
            self._left -= len(events)
        was_empty = not self._queue
        self._queue.extend(events)
        if self.reader is None:
            return
        if len(self._queue) > MAX_BACKLOG:
            self._queue.clear()
            self.reader.close(1008, "Slow consumer")
        elif was_empty and self._queue:
            self.reader.source_ready()


class SharedMarket:
    """The process's market for paced connections; see the module docs."""

    def __init__(self, source: FrameSource, rate: float, batch: int, pregenerate: int = 0,
                 tick_us: int = 1_000) -> None:
        self._source = source  # opened in µs
        self._loop = asyncio.get_running_loop()
        # below 1 ms the loop's timers and clock (ms in uvloop) are too coarse
        self._ticker = Ticker(self._loop, tick_us, self._tick) if tick_us < 1_000 else None
        self._clock = self._loop.time if self._ticker is None else time.monotonic
        self._pacer = RatePacer(rate, batch, self._clock())
        self._viewers: dict[str, list[ConnectionView]] = {}  # stream -> subscribed views
        self._handle: asyncio.Handle | None = None  # the next tick (loop timers)
        self._pregenerate = pregenerate
        self._ready: deque[Event] = deque()  # pre-generated, not yet released
        self._deferred: list[Callable[[], None]] | None = None  # source ops while generating
        self._generation: asyncio.Task[None] | None = None
        self._stopped = False
        self._records: list[list[Event]] = []
        self.events = 0  # events released so far

    def view(self, time_unit: TimeUnit, limit: int | None) -> ConnectionView:
        return ConnectionView(self, time_unit, limit)

    def subscribe(self, view: ConnectionView, streams: Sequence[str]) -> None:
        new = []
        for stream in streams:
            viewers = self._viewers.setdefault(stream, [])
            if not viewers:
                new.append(stream)
            if view not in viewers:
                viewers.append(view)
        if new:
            self._on_source(lambda: self._source.subscribe(new))
        if self._pregenerate and self._deferred is None and self._viewers:  # (not for "/ws")
            count, self._pregenerate = self._pregenerate, 0
            self._deferred = []
            self._generation = self._loop.create_task(self._generate(count))
        self._start()

    def unsubscribe(self, view: ConnectionView, streams: Sequence[str]) -> None:
        gone = []
        for stream in streams:
            viewers = self._viewers.get(stream)
            if viewers is None or view not in viewers:
                continue
            viewers.remove(view)
            if not viewers:
                del self._viewers[stream]
                gone.append(stream)
        if gone:
            self._on_source(lambda: self._source.unsubscribe(gone))

    def stop(self) -> None:
        self._stopped = True
        if self._generation is not None:
            self._generation.cancel()
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._ticker is not None:
            self._ticker.close()

    # -- the true market ---------------------------------------------------------------------

    def _feed(self) -> Feed:
        if not isinstance(self._source, Feed):
            raise TypeError("order books exist only in the synthetic market")
        return self._source

    @property
    def universe(self) -> Universe:
        return self._feed().universe

    def snapshot(self, symbol: str, limit: int) -> BookSnapshot:
        """(last update id, bids, asks) of `symbol`'s true book now, `limit` levels a side,
        prices and quantities in 1e-8 units: what REST / WS API `depth` answer. The model may
        be a few events ahead of what the connections got, as Binance's snapshot runs ahead
        of a client's stream. `symbol` is upper case; KeyError if it is not listed;
        MarketBusy while pre-generating."""
        return self._books().book_snapshot(symbol, limit)

    def depth_json(self, symbol: str, limit: int) -> bytes:
        """`snapshot` rendered as Binance does: the REST / WS API `depth` result object
        `{"lastUpdateId":…,"bids":[["price","qty"],…],"asks":[…]}`."""
        return self._books().depth_snapshot(symbol, limit)

    def _books(self) -> Feed:
        """The market, to read its books from: MarketBusy while a worker thread pre-generates
        (it moves them)."""
        if self._deferred is not None:
            raise MarketBusy()
        return self._feed()

    def true_books(self, symbols: Sequence[str] | None = None) -> dict[str, BookSnapshot]:
        """Every level of every book: of `symbols`, or of each symbol the market has run."""
        feed = self._books()
        names = feed.symbols_run() if symbols is None else symbols
        return {symbol: feed.book_snapshot(symbol, _ALL_LEVELS) for symbol in names}

    def true_books_json(self, symbols: Sequence[str] | None = None) -> bytes:
        """`true_books` as JSON: `{"BTCUSDT":<depth_json with every level>,…}`."""
        feed = self._books()
        names = feed.symbols_run() if symbols is None else symbols
        items = [
            orjson.dumps(symbol) + b":" + feed.depth_snapshot(symbol, _ALL_LEVELS)
            for symbol in names
        ]
        return b"{" + b",".join(items) + b"}"

    def record(self) -> list[Event]:
        """A list that gets every event released from now on, in order, as the market
        renders it (µs): what any connection should have got, for tests to compare with."""
        events: list[Event] = []
        self._records.append(events)
        return events

    # -- pre-generation ----------------------------------------------------------------------

    def _on_source(self, op: Callable[[], None]) -> None:
        if self._deferred is None:
            op()
        else:
            self._deferred.append(op)

    async def _generate(self, count: int) -> None:
        """Generate `count` events in a worker thread before the first is released, so the
        pace is not bounded by the market model (about 10 k trade events/s live). They are
        events of the streams subscribed now; changes made meanwhile apply after them."""
        source, batch = self._source, self._pacer.batch

        def generate() -> list[Event]:
            events: list[Event] = []
            while len(events) < count and not self._stopped:  # a thread: stop() ends it
                more = source.next_frames(min(batch, count - len(events)))
                if not more:
                    break
                events += more
            return events

        try:
            self._ready.extend(await self._loop.run_in_executor(None, generate))
        finally:
            deferred, self._deferred = self._deferred or [], None
            for op in deferred:
                op()
            self._start()

    # -- pacing ------------------------------------------------------------------------------

    def _start(self) -> None:
        ticking = self._handle is not None or (self._ticker is not None and self._ticker.started)
        if ticking or not self._viewers or self._deferred is not None or self._stopped:
            return
        self._pacer.restart(self._clock())
        if self._ticker is not None:
            self._ticker.start()
        else:
            self._handle = self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._handle = None
        now = self._release()
        if now is None:  # idle until a connection comes or subscribes (_start)
            if self._ticker is not None:
                self._ticker.stop()
        elif self._ticker is None:
            wakeup = self._pacer.next_wakeup(now)
            assert wakeup is not None  # a rate pacer always has a next tick
            self._handle = self._loop.call_at(wakeup, self._tick)

    def _release(self) -> float | None:
        """Hand the events due to their connections; the time, or None when idle."""
        if not any(view.wants for viewers in self._viewers.values() for view in viewers):
            return None  # every connection has its --max-messages
        now = self._clock()
        allowed = self._pacer.allowance(now)
        if allowed > 0:
            events = self._take(allowed)
            if not events:
                return None  # nothing subscribed any more
            self._pacer.consumed(len(events))
            self.events += len(events)
            for record in self._records:
                record += events
            self._dispatch(events)
        return now

    def _take(self, count: int) -> list[Event]:
        ready = self._ready
        if not ready:
            return self._source.next_frames(count)
        events = [ready.popleft() for _ in range(min(count, len(ready)))]
        if not ready:  # (a latency run that outlasts them measures the live model's CPU too)
            _LOG.info("pre-generated events used up after %d; continuing live", self.events)
        return events

    def _dispatch(self, events: list[Event]) -> None:
        out: dict[ConnectionView, list[Event]] = {}
        viewers_of = self._viewers.get
        for event in events:
            stream, payload = event
            millis: Event | None = None
            for view in viewers_of(stream, ()):
                if view.millis:
                    if millis is None:
                        millis = (stream, to_millis(payload))
                    out.setdefault(view, []).append(millis)
                else:
                    out.setdefault(view, []).append(event)
        for view, mine in out.items():
            view.push(mine)
