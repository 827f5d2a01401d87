"""Stream publishers: turn engine events and simulated-time ticks into frames.

Every publisher is driven by the feed's scheduler through `fire(t_us) -> next_t_us` and
appends `(stream name, payload bytes)` to the feed's output list. `LivePublisher` executes
its symbol's engine events and pushes the real-time streams (trade, aggTrade, bookTicker) as
they happen; the others push on their stream's simulated-time cadence.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from feedhandler.simulator.market import render
from feedhandler.simulator.market.engine import TOP, TRADED, OrderBookEngine
from feedhandler.simulator.market.intervals import DAY_US, HOUR_US, MINUTE_US, bar_bounds
from feedhandler.simulator.market.render import SymbolFormat
from feedhandler.simulator.market.stats import Agg, BarBuilder, RollingWindow

Frame = tuple[str, bytes]
Emit = Callable[[Frame], None]

WINDOW_SPANS_US = {"1h": HOUR_US, "4h": 4 * HOUR_US, "1d": DAY_US}
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


class LivePublisher:
    """Runs the symbol's engine one event per `fire` and pushes its real-time streams."""

    __slots__ = (
        "_book_ticker",
        "_emit",
        "_engine",
        "_fmt",
        "_tdiv",
        "_tick_size",
        "agg_trade",
        "book_ticker",
        "depth",
        "trade",
    )

    def __init__(self, state: SymbolState, emit: Emit, tdiv: int) -> None:
        self._engine = state.engine
        self._tick_size = state.engine.spec.tick_size
        self._fmt = state.fmt
        self._book_ticker = render.BookTicker(state.fmt)
        self._emit = emit
        self._tdiv = tdiv
        self.trade: str | None = None  # subscribed stream names, None = not subscribed
        self.agg_trade: str | None = None
        self.book_ticker: str | None = None
        self.depth: list[DepthDiffPublisher] = []

    def fire(self, t_us: int) -> int:
        engine = self._engine
        flags = engine.step()
        if flags & TRADED and (self.trade is not None or self.agg_trade is not None):
            self._push_trades()
        if flags & TOP and self.book_ticker is not None:
            levels, tick = engine.levels, self._tick_size
            bid, ask = engine.bid_keys[0], engine.ask_keys[0]
            payload = self._book_ticker.render(
                engine.update_id, -bid * tick, levels[bid], ask * tick, levels[ask]
            )
            self._emit((self.book_ticker, payload.encode()))
        for depth in self.depth:
            depth.absorb(engine.changes)
        return engine.next_us

    def _push_trades(self) -> None:
        engine, fmt, emit, tdiv = self._engine, self._fmt, self._emit, self._tdiv
        t = engine.now_us // tdiv
        e = (engine.now_us + engine.latency_us) // tdiv
        maker_buy = not engine.buyer_taker
        if self.trade is not None:
            name = self.trade
            for trade_id, price, qty in engine.fills:
                payload = render.trade(fmt, e, trade_id, price, qty, t, maker_buy)
                emit((name, payload.encode()))
        if self.agg_trade is not None:
            name = self.agg_trade
            for agg_id, first_id, last_id, price, qty in engine.aggs:
                payload = render.agg_trade(
                    fmt, e, agg_id, price, qty, first_id, last_id, t, maker_buy
                )
                emit((name, payload.encode()))


class TimedPublisher(ABC):
    """A stream pushed every `cadence_us` of simulated time."""

    def __init__(self, name: str, cadence_us: int, emit: Emit, tdiv: int) -> None:
        self.name = name
        self.cadence_us = cadence_us
        self._emit = emit
        self._tdiv = tdiv

    def fire(self, t_us: int) -> int:
        self.push(t_us)
        return t_us + self.cadence_us

    @abstractmethod
    def push(self, t_us: int) -> None:
        """Emit this stream's frame for the tick at `t_us`, if it has one."""


class DepthDiffPublisher(TimedPublisher):
    """`<symbol>@depth[@100ms]`: absolute quantities of every level changed since the last
    push, covering update ids `U..u`; nothing is pushed when the book did not change."""

    def __init__(self, name: str, cadence_us: int, emit: Emit, tdiv: int, state: SymbolState):
        super().__init__(name, cadence_us, emit, tdiv)
        self._engine = state.engine
        self._fmt = state.fmt
        self._changed: dict[int, int] = {}  # signed price key in ticks -> qty (see engine)
        self._first_id = state.engine.update_id + 1

    def absorb(self, changes: list[tuple[int, int]]) -> None:
        self._changed.update(changes)

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


class PartialDepthPublisher(TimedPublisher):
    """`<symbol>@depth<N>[@100ms]`: the top N levels, pushed every tick."""

    def __init__(
        self, name: str, cadence_us: int, emit: Emit, tdiv: int, state: SymbolState, levels: int
    ):
        super().__init__(name, cadence_us, emit, tdiv)
        self._engine = state.engine
        self._fmt = state.fmt
        self._levels = levels

    def push(self, t_us: int) -> None:
        last_id, bids, asks = self._engine.book_snapshot(self._levels)
        self._emit((self.name, render.book_depth(self._fmt, last_id, bids, asks).encode()))


class KlinePublisher(TimedPublisher):
    """`<symbol>@kline_<interval>[@+08:00]`: the open bar every tick (`x` false); the first
    tick after a bar ends pushes that bar once more, final (`x` true)."""

    def __init__(
        self,
        name: str,
        cadence_us: int,
        emit: Emit,
        tdiv: int,
        state: SymbolState,
        interval: str,
        utc8: bool,
        now_us: int,
    ):
        super().__init__(name, cadence_us, emit, tdiv)
        self._stats = state.engine.stats
        self._fmt = state.fmt
        self._interval = interval
        self._utc8 = utc8
        self._bars = BarBuilder(state.engine.stats)
        self._start, self._end = bar_bounds(interval, now_us, utc8)

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


class TickerPublisher(TimedPublisher):
    """Per-symbol rolling statistics: `miniTicker`, `ticker` (24 h), `ticker_<w>`, and
    `avgPrice` (5 min). Pushed every tick once the window has seen a trade."""

    def __init__(
        self, name: str, cadence_us: int, emit: Emit, tdiv: int, state: SymbolState, kind: str
    ):
        super().__init__(name, cadence_us, emit, tdiv)
        self._state = state
        self._kind = kind  # "miniTicker", "ticker", "avgPrice" or a window: "1h", "4h", "1d"
        span = {"miniTicker": DAY_US, "ticker": DAY_US, "avgPrice": _AVG_PRICE_SPAN_US}
        self._window = state.window(span.get(kind) or WINDOW_SPANS_US[kind])

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


class BlockTradePublisher(TimedPublisher):
    """`<symbol>@blockTrade`: once the symbol has traded, one block per tick at the last trade
    price, 50 typical orders in size, numbered by its own id sequence from 1."""

    def __init__(self, name: str, cadence_us: int, emit: Emit, tdiv: int, state: SymbolState):
        super().__init__(name, cadence_us, emit, tdiv)
        self._state = state
        spec = state.engine.spec
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


class ReferencePricePublisher(TimedPublisher):
    """`<symbol>@referencePrice`: the last trade price every tick; `r` null before the first
    trade (no reference price yet)."""

    def __init__(self, name: str, cadence_us: int, emit: Emit, tdiv: int, state: SymbolState):
        super().__init__(name, cadence_us, emit, tdiv)
        self._state = state

    def push(self, t_us: int) -> None:
        stats = self._state.engine.stats
        price = stats.last_price if stats.last_us >= 0 else None
        payload = render.reference_price(self._state.fmt, price, t_us // self._tdiv)
        self._emit((self.name, payload.encode()))


class MarketArrayPublisher(TimedPublisher):
    """`!miniTicker@arr` / `!ticker_<w>@arr`: one JSON array per tick holding the symbols
    that traded since the previous push, in universe order."""

    def __init__(
        self,
        name: str,
        cadence_us: int,
        emit: Emit,
        tdiv: int,
        states: Sequence[SymbolState],
        kind: str,
    ):
        super().__init__(name, cadence_us, emit, tdiv)
        self._states = states
        self._kind = kind
        self._span = DAY_US if kind == "miniTicker" else WINDOW_SPANS_US[kind]
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
