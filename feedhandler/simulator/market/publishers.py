"""Stream publishers: turn engine events and simulated-time ticks into frames.

One class per declared kind (or family of kinds), registered with
`@publishes(kind, cadence_ms=…)`: the feed looks publishers up here, so a kind the simulator
serves is added in this module (and its hand-written renderer in render.py) only. A publisher
with a cadence is driven by the feed's scheduler through `fire(t_us) -> next_t_us`; one that
`follows_engine` sees each of its symbol's engine events (`on_event`, from the symbol's
`LivePublisher`): the real-time streams (cadence 0) only that, diff depth both. All append
`(stream name, payload bytes)` to the feed's output list.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from feedhandler.contract.kinds import KIND_BY_NAME
from feedhandler.simulator.market import render
from feedhandler.simulator.market.engine import TOP, TRADED, OrderBookEngine
from feedhandler.simulator.market.intervals import DAY_US, MINUTE_US, bar_bounds, span_us
from feedhandler.simulator.market.render import SymbolFormat
from feedhandler.simulator.market.stats import Agg, BarBuilder, RollingWindow
from feedhandler.simulator.market.streams import StreamSpec

Frame = tuple[str, bytes]
Emit = Callable[[Frame], None]
Cadence = Callable[[StreamSpec], int]  # ms between pushes; 0 = as engine events happen

_AVG_PRICE_SPAN_US = 5 * MINUTE_US


class SymbolState:
    """What a feed keeps per symbol: the engine, its formatter and shared rolling windows."""

    __slots__ = ("_windows", "engine", "fmt", "index", "live", "phase_us", "refs")

    def __init__(self, engine: OrderBookEngine, index: int, phase_us: int) -> None:
        self.engine = engine
        self.fmt = SymbolFormat(engine.spec)
        self.index = index  # position in the universe: tie-breaker for simultaneous events
        self.phase_us = phase_us  # offset of this symbol's timed pushes within a second
        self.refs = 0  # subscribed streams of this symbol
        self.live: LivePublisher | None = None  # set while the engine is scheduled
        self._windows: dict[int, RollingWindow] = {}

    def window(self, span_us: int) -> RollingWindow:
        """The rolling window of `span_us`, shared by every ticker stream that needs it."""
        window = self._windows.get(span_us)
        if window is None:
            window = self._windows[span_us] = RollingWindow(self.engine.stats, span_us)
        return window


class Publisher:
    """A subscribed stream: pushes every `cadence_us` of simulated time (`push`), or, with
    `follows_engine`, sees each of its symbol's engine events (`on_event`); depth does both."""

    follows_engine: ClassVar[bool] = False

    def __init__(self, name: str, cadence_us: int, emit: Emit, tdiv: int) -> None:
        self.name = name
        self.cadence_us = cadence_us
        self._emit = emit
        self._tdiv = tdiv

    def fire(self, t_us: int) -> int:
        self.push(t_us)
        return t_us + self.cadence_us

    def push(self, t_us: int) -> None:
        """Emit this stream's frame for the tick at `t_us`, if it has one."""

    def on_event(self, flags: int) -> None:
        """React to the engine event just executed (`flags`: TOP, TRADED)."""


@dataclass(frozen=True, slots=True)
class Subscribed:
    """What a per-symbol publisher is built from."""

    spec: StreamSpec
    cadence_us: int
    emit: Emit
    tdiv: int
    state: SymbolState
    now_us: int  # the feed's clock at subscription


class SymbolPublisher(Publisher):
    """A per-symbol stream; registered classes are built from a `Subscribed`."""

    def __init__(self, sub: Subscribed) -> None:
        super().__init__(sub.spec.name, sub.cadence_us, sub.emit, sub.tdiv)
        self.rank = sub.spec.rank
        self._state = sub.state
        self._engine = sub.state.engine
        self._fmt = sub.state.fmt

    def _trade_stamps(self) -> tuple[int, int, bool]:
        """(trade time, event time, buyer is maker) of the engine's current fills."""
        engine, tdiv = self._engine, self._tdiv
        return (engine.now_us // tdiv, (engine.now_us + engine.latency_us) // tdiv,
                not engine.buyer_taker)


@dataclass(frozen=True, slots=True)
class Publishes:
    """A kind's publisher class and push cadence."""

    publisher: type[SymbolPublisher]
    cadence_ms: Cadence


PUBLISHERS: dict[str, Publishes] = {}  # declared kind -> its per-symbol publisher
_P = TypeVar("_P", bound=SymbolPublisher)


def publishes(*kinds: str, cadence_ms: int | Cadence) -> Callable[[type[_P]], type[_P]]:
    """Class decorator: the class publishes these declared kinds' per-symbol streams, every
    `cadence_ms` of simulated time (0: as engine events happen), a number or a function of
    the stream."""
    cadence = _every(cadence_ms) if isinstance(cadence_ms, int) else cadence_ms

    def register(cls: type[_P]) -> type[_P]:
        for kind in kinds:
            if kind not in KIND_BY_NAME or kind in PUBLISHERS:
                raise ValueError(f"{cls.__name__}: {kind!r} is not declared or already published")
            PUBLISHERS[kind] = Publishes(cls, cadence)
        return cls

    return register


def _every(ms: int) -> Cadence:
    return lambda _spec: ms


def cadence_of(spec: StreamSpec) -> int | None:
    """How often the simulator pushes the stream (0: as engine events happen); None if it does
    not serve it."""
    if spec.symbol is None:
        return MarketArrayPublisher.CADENCE_MS if spec.kind in MarketArrayPublisher.KINDS else None
    entry = PUBLISHERS.get(spec.kind)
    return None if entry is None else entry.cadence_ms(spec)


def _speed_ms(spec: StreamSpec) -> int:
    """The update speed the depth stream's name asks for: `@100ms`, else 1000 ms."""
    return 100 if spec.name.endswith("@100ms") else 1000


class LivePublisher:
    """Runs the symbol's engine one event per `fire`; the publishers that follow engine events
    see each one in rank order, so one event's frames come out in a fixed order (trade,
    aggTrade, bookTicker) whatever the subscription order."""

    __slots__ = ("_engine", "_followers")

    def __init__(self, state: SymbolState) -> None:
        self._engine = state.engine
        self._followers: list[SymbolPublisher] = []

    def follow(self, publisher: SymbolPublisher) -> None:
        insort(self._followers, publisher, key=_rank)

    def unfollow(self, publisher: Publisher) -> None:
        self._followers = [p for p in self._followers if p is not publisher]

    def fire(self, t_us: int) -> int:
        engine = self._engine
        flags = engine.step()
        for publisher in self._followers:
            publisher.on_event(flags)
        return engine.next_us


def _rank(publisher: SymbolPublisher) -> int:
    return publisher.rank


@publishes("trade", cadence_ms=0)
class TradePublisher(SymbolPublisher):
    """`<symbol>@trade`: one event per fill, as it happens."""

    follows_engine = True

    def on_event(self, flags: int) -> None:
        if not flags & TRADED:
            return
        fmt, emit, name = self._fmt, self._emit, self.name
        t, e, maker_buy = self._trade_stamps()
        for trade_id, price, qty in self._engine.fills:
            emit((name, render.trade(fmt, e, trade_id, price, qty, t, maker_buy).encode()))


@publishes("aggTrade", cadence_ms=0)
class AggTradePublisher(SymbolPublisher):
    """`<symbol>@aggTrade`: one event per taker order's fills at one price, as it happens."""

    follows_engine = True

    def on_event(self, flags: int) -> None:
        if not flags & TRADED:
            return
        fmt, emit, name = self._fmt, self._emit, self.name
        t, e, maker_buy = self._trade_stamps()
        for agg_id, first_id, last_id, price, qty in self._engine.aggs:
            payload = render.agg_trade(fmt, e, agg_id, price, qty, first_id, last_id, t, maker_buy)
            emit((name, payload.encode()))


@publishes("bookTicker", cadence_ms=0)
class BookTickerPublisher(SymbolPublisher):
    """`<symbol>@bookTicker`: the best bid and ask whenever either changes."""

    follows_engine = True

    def __init__(self, sub: Subscribed) -> None:
        super().__init__(sub)
        self._tick_size = self._engine.spec.tick_size
        self._book_ticker = render.BookTicker(self._fmt)

    def on_event(self, flags: int) -> None:
        if not flags & TOP:
            return
        engine, tick = self._engine, self._tick_size
        levels, bid, ask = engine.levels, engine.bid_keys[0], engine.ask_keys[0]
        payload = self._book_ticker.render(
            engine.update_id, -bid * tick, levels[bid], ask * tick, levels[ask]
        )
        self._emit((self.name, payload.encode()))


@publishes("depth", cadence_ms=_speed_ms)
class DepthDiffPublisher(SymbolPublisher):
    """`<symbol>@depth[@100ms]`: absolute quantities of every level changed since the last
    push, covering update ids `U..u`; nothing is pushed when the book did not change."""

    follows_engine = True

    def __init__(self, sub: Subscribed) -> None:
        super().__init__(sub)
        self._changed: dict[int, int] = {}  # signed price key in ticks -> qty (see engine)
        self._first_id = self._engine.update_id + 1

    def on_event(self, flags: int) -> None:
        self._changed.update(self._engine.changes)

    def push(self, t_us: int) -> None:
        last_id = self._engine.update_id
        if last_id < self._first_id:
            return
        changed, tick = self._changed, self._engine.spec.tick_size
        keys = sorted(changed)  # bids (negative keys) best first, then asks best first
        bids = [(-key * tick, changed[key]) for key in keys if key < 0]
        asks = [(key * tick, changed[key]) for key in keys if key > 0]
        payload = render.depth_update(
            self._fmt, t_us // self._tdiv, self._first_id, last_id, bids, asks
        )
        self._emit((self.name, payload.encode()))
        self._changed = {}
        self._first_id = last_id + 1


@publishes("depthPartial", cadence_ms=_speed_ms)
class PartialDepthPublisher(SymbolPublisher):
    """`<symbol>@depth<N>[@100ms]`: the top N levels, pushed every tick."""

    def __init__(self, sub: Subscribed) -> None:
        super().__init__(sub)
        self._levels = sub.spec.levels

    def push(self, t_us: int) -> None:
        last_id, bids, asks = self._engine.book_snapshot(self._levels)
        self._emit((self.name, render.book_depth(self._fmt, last_id, bids, asks).encode()))


# Binance pushes kline updates every 2 s, 1 s bars every second
@publishes("kline", cadence_ms=lambda spec: 1000 if spec.interval == "1s" else 2000)
class KlinePublisher(SymbolPublisher):
    """`<symbol>@kline_<interval>[@+08:00]`: the open bar every tick (`x` false); the first
    tick after a bar ends pushes that bar once more, final (`x` true)."""

    def __init__(self, sub: Subscribed) -> None:
        super().__init__(sub)
        spec = sub.spec
        self._stats = self._engine.stats
        self._interval = spec.interval
        self._utc8 = spec.utc8
        self._bars = BarBuilder(self._stats)
        self._start, self._end = bar_bounds(spec.interval, sub.now_us, spec.utc8)

    def push(self, t_us: int) -> None:
        start, end = self._start, self._end
        bar = self._bars.bar(start, end, t_us)
        closed = t_us >= end
        idle_price = self._stats.close_before(start) if bar is None else 0
        tdiv = self._tdiv
        payload = render.kline(
            self._fmt,
            t_us // tdiv,
            self._interval,
            start // tdiv,
            end // tdiv - 1,
            bar,
            closed,
            idle_price,
        )
        self._emit((self.name, payload.encode()))
        if closed:
            self._start, self._end = bar_bounds(self._interval, t_us, self._utc8)


@publishes("miniTicker", "ticker", "windowTicker", "avgPrice", cadence_ms=1000)
class TickerPublisher(SymbolPublisher):
    """Per-symbol rolling statistics: `miniTicker`, `ticker` (24 h), `ticker_<w>`, and
    `avgPrice` (5 min). Pushed every tick once the window has seen a trade."""

    def __init__(self, sub: Subscribed) -> None:
        super().__init__(sub)
        # "miniTicker", "ticker", "avgPrice" or a window: "1h", "4h", "1d"
        kind = self._kind = sub.spec.interval or sub.spec.kind
        span = {"miniTicker": DAY_US, "ticker": DAY_US, "avgPrice": _AVG_PRICE_SPAN_US}
        self._window = sub.state.window(span.get(kind) or span_us(kind))

    def push(self, t_us: int) -> None:
        window = self._window.at(t_us)
        state, tdiv = self._state, self._tdiv
        engine = state.engine
        if self._kind == "avgPrice":
            stats = engine.stats
            if stats.last_us < 0:
                return
            # no trade in the last 5 minutes: the average stays at the last price
            price = window.quote // window.volume if window is not None else stats.last_price
            payload = render.avg_price(state.fmt, t_us // tdiv, price, stats.last_us // tdiv)
        elif window is None:
            return
        elif self._kind == "ticker":
            payload = render.ticker_24h(
                state.fmt,
                t_us // tdiv,
                window,
                self._window.open_time(t_us) // tdiv,
                t_us // tdiv,
                engine.fills[-1][2],
                engine.top(),
            )
        else:
            payload = market_item(state, self._kind, window, self._window, t_us, tdiv)
        self._emit((self.name, payload.encode()))


def market_item(
    state: SymbolState, kind: str, window: Agg, rolling: RollingWindow, t_us: int, tdiv: int
) -> str:
    """One element of `!miniTicker@arr` / `!ticker_<w>@arr`, same as the per-symbol event."""
    if kind == "miniTicker":
        return render.mini_ticker(state.fmt, t_us // tdiv, window)
    return render.window_ticker(
        state.fmt, t_us // tdiv, kind, window, rolling.open_time(t_us) // tdiv, t_us // tdiv
    )


# real-time on Binance; simulated as at most one block per second
@publishes("blockTrade", cadence_ms=1000)
class BlockTradePublisher(SymbolPublisher):
    """`<symbol>@blockTrade`: once the symbol has traded, one block per tick at the last trade
    price, 50 typical orders in size, numbered by its own id sequence from 1."""

    def __init__(self, sub: Subscribed) -> None:
        super().__init__(sub)
        spec = self._engine.spec
        self._qty = spec.step_size * max(1, 50 * spec.mean_qty // spec.step_size)
        self._next_id = 1

    def push(self, t_us: int) -> None:
        stats = self._state.engine.stats
        if stats.last_us < 0:
            return
        t = t_us // self._tdiv
        payload = render.block_trade(self._state.fmt, t, self._next_id, stats.last_price,
                                     self._qty, t, self._next_id % 2 == 0)
        self._next_id += 1
        self._emit((self.name, payload.encode()))


@publishes("referencePrice", cadence_ms=1000)
class ReferencePricePublisher(SymbolPublisher):
    """`<symbol>@referencePrice`: the last trade price every tick; `r` null before the first
    trade (no reference price yet)."""

    def push(self, t_us: int) -> None:
        stats = self._state.engine.stats
        price = stats.last_price if stats.last_us >= 0 else None
        payload = render.reference_price(self._state.fmt, price, t_us // self._tdiv)
        self._emit((self.name, payload.encode()))


class MarketArrayPublisher(Publisher):
    """`!miniTicker@arr` / `!ticker_<w>@arr`: one JSON array per tick holding the symbols
    that traded since the previous push, in universe order."""

    # the declared kinds whose all-market arrays the simulator serves (not the retired
    # `!ticker@arr` and `!bookTicker`)
    KINDS: ClassVar[frozenset[str]] = frozenset({"miniTicker", "windowTicker"})
    CADENCE_MS: ClassVar[int] = 1000

    def __init__(
        self, spec: StreamSpec, emit: Emit, tdiv: int, states: Sequence[SymbolState]
    ) -> None:
        super().__init__(spec.name, self.CADENCE_MS * 1000, emit, tdiv)
        self._states = states
        kind = self._kind = spec.interval or spec.kind
        self._span = DAY_US if kind == "miniTicker" else span_us(kind)
        self._seen = [state.engine.stats.last_id for state in states]

    def push(self, t_us: int) -> None:
        items = []
        seen = self._seen
        for i, state in enumerate(self._states):
            last_id = state.engine.stats.last_id
            if last_id == seen[i]:
                continue
            seen[i] = last_id
            rolling = state.window(self._span)
            window = rolling.at(t_us)
            if window is not None:
                items.append(market_item(state, self._kind, window, rolling, t_us, self._tdiv))
        if items:
            self._emit((self.name, f"[{','.join(items)}]".encode()))
