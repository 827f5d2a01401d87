"""`Feed`: the frames one simulated Binance connection would receive, in exchange order.

A feed owns a simulated clock (its start derived from the seed), one engine per symbol it
has touched, and the publishers of its subscribed streams. A single heap orders every due
action by (time, tie-break): engine events of subscribed symbols (tie-break: universe index)
and timed pushes (after engine events; then by symbol, then by stream suffix). Nothing
depends on wall time, hash randomisation or the order of `subscribe` calls, so the same seed,
universe and call sequence give byte-identical frames.

Engines run only while one of their symbol's streams is subscribed, or an all-market
`!…@arr` stream is; an engine resumed later first replays the events it missed, silently, so
every symbol's history is the same whatever else was subscribed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from feedhandler.simulator.market import render
from feedhandler.simulator.market.engine import OrderBookEngine
from feedhandler.simulator.market.faults import FaultInjector
from feedhandler.simulator.market.intervals import DAY_US
from feedhandler.simulator.market.publishers import (
    PUBLISHERS,
    Frame,
    LivePublisher,
    MarketArrayPublisher,
    Publisher,
    Subscribed,
    SymbolState,
    cadence_of,
)
from feedhandler.simulator.market.seeding import derive_int
from feedhandler.simulator.market.streams import RANKS, StreamSpec, parse_stream
from feedhandler.simulator.market.universe import Universe

_EPOCH_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z; the seed adds up to 30 days
_NEVER = 1 << 62
_TIMER_ORDER = 1 << 40  # timed pushes sort after engine events at the same microsecond
_TIME_UNITS = {"ms": 1000, "us": 1}

_Entry = tuple[int, int, Callable[[int], int]]  # (due time µs, tie-break, action)


@dataclass(frozen=True, slots=True)
class _Subscription:
    spec: StreamSpec
    state: SymbolState | None  # None for all-market streams
    publisher: Publisher


def _served(name: str) -> StreamSpec | None:
    """The stream, if its name is valid and the simulator has a publisher for its kind."""
    spec = parse_stream(name)
    return spec if spec is not None and cadence_of(spec) is not None else None


def _valid_syntax(name: str) -> bool:
    return _served(name) is not None


class _StreamCheck:
    """`Feed.is_valid_stream(name)` checks the name's syntax only; on an instance,
    `feed.is_valid_stream(name)` also requires the symbol to be in the feed's universe."""

    def __get__(self, feed: Feed | None, owner: type | None = None) -> Callable[[str], bool]:
        return _valid_syntax if feed is None else feed._is_listed_stream


class Feed:
    """Deterministic market-data frames for a set of subscribed Binance stream names."""

    is_valid_stream = _StreamCheck()

    def __init__(self, seed: int, universe: Universe, *, time_unit: str = "ms") -> None:
        if time_unit not in _TIME_UNITS:
            raise ValueError(f"time_unit must be 'ms' or 'us', not {time_unit!r}")
        self._seed = seed
        self._universe = universe
        self._tdiv = _TIME_UNITS[time_unit]
        self._start_us = _EPOCH_US + derive_int(seed, "clock") % (30 * DAY_US)
        self._now_us = self._start_us
        self._states: dict[str, SymbolState] = {}
        self._heap: list[_Entry] = []
        self._subscriptions: dict[str, _Subscription] = {}
        self._market_streams = 0  # subscribed `!…@arr` streams: they keep every engine running
        self._frames: list[Frame] = []  # generated, not yet returned
        self._faults = FaultInjector()

    # -- clock and introspection ----------------------------------------------------------

    @property
    def universe(self) -> Universe:
        return self._universe

    @property
    def start_us(self) -> int:
        """Simulated start time, µs since the epoch."""
        return self._start_us

    @property
    def now_us(self) -> int:
        """Simulated time of the last generated event, µs since the epoch."""
        return self._now_us

    @property
    def subscriptions(self) -> tuple[str, ...]:
        """Subscribed stream names, in subscription order."""
        return tuple(self._subscriptions)

    # -- subscriptions ----------------------------------------------------------------------

    def subscribe(self, streams: Iterable[str]) -> None:
        """Start streams (Binance names); already subscribed ones are left as they are.
        Raises ValueError, subscribing none, if a name is invalid or its symbol not listed."""
        new = [name for name in dict.fromkeys(streams) if name not in self._subscriptions]
        for spec in [self._parse(name) for name in new]:
            name = spec.name
            if spec.symbol is None:
                self._subscriptions[name] = _Subscription(spec, None, self._subscribe_market(spec))
            else:
                symbol = self._universe.by_stream_symbol(spec.symbol)
                assert symbol is not None  # checked by _parse
                state = self._state(symbol.symbol)
                publisher = self._subscribe_symbol(spec, state)
                self._subscriptions[name] = _Subscription(spec, state, publisher)

    def unsubscribe(self, streams: Iterable[str]) -> None:
        """Stop streams; their frames not yet returned are dropped. Unknown names are ignored."""
        stopped: set[Callable[[int], int]] = set()  # unscheduled at once: one heap rebuild
        gone: set[str] = set()
        for name in streams:
            subscription = self._subscriptions.pop(name, None)
            if subscription is None:
                continue
            gone.add(name)
            if subscription.publisher.cadence_us:
                stopped.add(subscription.publisher.fire)
            if subscription.state is None:
                self._market_streams -= 1
                stopped |= self._release(self._states.values(), 0)
            else:
                stopped |= self._unsubscribe_symbol(subscription)
            self._faults.discard(name)
        if stopped:
            self._unschedule(stopped)
        if gone:
            self._frames[:] = [frame for frame in self._frames if frame[0] not in gone]

    def _is_listed_stream(self, name: str) -> bool:
        spec = _served(name)
        return spec is not None and (
            spec.symbol is None or self._universe.by_stream_symbol(spec.symbol) is not None
        )

    def _parse(self, name: str) -> StreamSpec:
        spec = _served(name)
        if spec is None:
            raise ValueError(f"invalid stream name: {name!r}")
        if spec.symbol is not None and self._universe.by_stream_symbol(spec.symbol) is None:
            raise ValueError(f"unknown symbol in stream name: {name!r}")
        return spec

    def _subscribe_symbol(self, spec: StreamSpec, state: SymbolState) -> Publisher:
        live = self._activate(state)
        state.refs += 1
        entry = PUBLISHERS[spec.kind]
        cadence_us = entry.cadence_ms(spec) * 1000
        emit, tdiv = self._frames.append, self._tdiv
        publisher = entry.publisher(Subscribed(spec, cadence_us, emit, tdiv, state, self._now_us))
        if publisher.follows_engine:
            live.follow(publisher)
        if publisher.cadence_us:
            self._schedule_timer(publisher, state.phase_us, state.index * RANKS + spec.rank)
        return publisher

    def _subscribe_market(self, spec: StreamSpec) -> Publisher:
        self._market_streams += 1
        states = [self._state(symbol.symbol) for symbol in self._universe]
        for state in states:
            self._activate(state)
        publisher = MarketArrayPublisher(spec, self._frames.append, self._tdiv, states)
        phase = derive_int(self._seed, "phase:!arr") % 1_000_000
        self._schedule_timer(publisher, phase, len(self._universe) * RANKS + spec.rank)
        return publisher

    def _unsubscribe_symbol(self, subscription: _Subscription) -> set[Callable[[int], int]]:
        state = subscription.state
        assert state is not None and state.live is not None  # subscribed: engine is running
        state.live.unfollow(subscription.publisher)
        return self._release([state], 1)

    # -- symbol engines -----------------------------------------------------------------------

    def _state(self, symbol: str) -> SymbolState:
        """The symbol's state, its engine brought up to the feed's clock."""
        state = self._states.get(symbol)
        if state is None:
            spec = self._universe[symbol]
            engine = OrderBookEngine(spec, self._seed, self._start_us)
            phase = derive_int(self._seed, "phase:" + symbol) % 1_000_000
            state = self._states[symbol] = SymbolState(engine, self._universe.index(symbol), phase)
        if state.live is None:
            state.engine.advance_to(self._now_us)
        return state

    def _activate(self, state: SymbolState) -> LivePublisher:
        """Schedule the symbol's engine events if they are not already."""
        if state.live is None:
            state.live = LivePublisher(state)
            entry = (state.engine.next_us, state.index, state.live.fire)
            heapq.heappush(self._heap, entry)
        return state.live

    def _release(self, states: Iterable[SymbolState], refs: int) -> set[Callable[[int], int]]:
        """Drop `refs` subscriptions of each symbol; returns the engine actions nothing needs
        any more (the caller unschedules them)."""
        stopped: set[Callable[[int], int]] = set()
        for state in states:
            state.refs -= refs
            if state.refs == 0 and self._market_streams == 0 and state.live is not None:
                stopped.add(state.live.fire)
                state.live = None
        return stopped

    def _schedule_timer(self, publisher: Publisher, phase_us: int, rank: int) -> None:
        """First push at the next instant ≡ phase (mod cadence) after now."""
        cadence = publisher.cadence_us
        now = self._now_us
        first = now - (now - phase_us) % cadence + cadence
        heapq.heappush(self._heap, (first, _TIMER_ORDER + rank, publisher.fire))

    def _unschedule(self, actions: Collection[Callable[[int], int]]) -> None:
        self._heap = [entry for entry in self._heap if entry[2] not in actions]
        heapq.heapify(self._heap)

    # -- generation ---------------------------------------------------------------------------

    def next_frames(self, max_frames: int, until_us: int | None = None) -> list[Frame]:
        """The next `max_frames` frames `(stream name, payload)`, in exchange order.

        Fewer only if nothing is subscribed or, with `until_us`, when the next event is due
        at or after that simulated time (for real-time pacing).
        """
        frames = self._frames
        until = _NEVER if until_us is None else until_us
        while len(frames) < max_frames and self._heap and self._heap[0][0] < until:
            self._run(max_frames, until)
            if self._faults.pending:
                self._faults.apply(frames)
        batch = frames[:max_frames]
        del frames[:max_frames]
        return batch

    def _run(self, max_frames: int, until: int) -> None:
        """Execute due actions until `max_frames` frames are buffered or `until` is reached."""
        heap, frames = self._heap, self._frames
        replace = heapq.heapreplace
        now = self._now_us
        while len(frames) < max_frames:
            due, order, action = heap[0]
            if due >= until:
                break
            now = due
            replace(heap, (action(due), order, action))
        self._now_us = now

    # -- model access ----------------------------------------------------------------------------

    def symbols_run(self) -> list[str]:
        """Symbols whose engine has run (subscribed now or before), in universe order."""
        return sorted(self._states, key=self._universe.index)

    def book_snapshot(
        self, symbol: str, limit: int = 100
    ) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """(lastUpdateId, bids, asks) of the symbol's book now, prices/quantities in 1e-8
        units. The model runs ahead of the frames not yet returned, like Binance's REST
        snapshot runs ahead of a client's buffered stream."""
        return self._state(symbol).engine.book_snapshot(limit)

    def depth_snapshot(self, symbol: str, limit: int = 100) -> bytes:
        """The REST `GET /api/v3/depth` / WS API `depth` result body for `symbol`."""
        state = self._state(symbol)
        return render.book_depth(state.fmt, *state.engine.book_snapshot(limit)).encode()

    # -- faults ---------------------------------------------------------------------------------

    def inject_gap(self, stream: str, n: int = 1) -> None:
        """Drop the next `n` frames of `stream`: missing trade/agg ids, or a depth `U` gap."""
        self._faults.gap(self._subscribed(stream), n)

    def inject_duplicate(self, stream: str) -> None:
        """Deliver the next frame of `stream` twice."""
        self._faults.duplicate(self._subscribed(stream))

    def inject_reorder(self, stream: str) -> None:
        """Deliver the next two frames of `stream` in swapped order."""
        self._faults.reorder(self._subscribed(stream))

    def _subscribed(self, stream: str) -> str:
        if stream not in self._subscriptions:
            raise ValueError(f"not subscribed: {stream!r}")
        return stream
