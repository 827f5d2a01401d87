"""Matching-engine-like model of one symbol: a price-level order book driven by random flow.

Each `step()` is one engine event at the symbol's own simulated clock: a limit order joining
or improving the top, a cancel near the top, a market order sweeping levels, or book upkeep
further out. Every event changes the book and takes the next id of the symbol's single
update-id sequence (diff depth `U`/`u`, partial depth `lastUpdateId`, bookTicker `u`). Market
orders produce trades (continuous ids; a level's fill is split over 1-3 maker orders) and one
aggregate trade per taker order and price level, as Binance aggregates.

The random stream is derived from (seed, symbol) only, so a symbol's events never depend on
which other symbols or streams are subscribed. Prices and quantities are 1e-8 units.

Book layout: one dict `levels` from a signed price key to quantity, where an ask's key is its
price in ticks and a bid's key is minus its price in ticks; `bid_keys`/`ask_keys` are sorted
ascending, so index 0 is the best level on both sides and one code path serves both. (Ticks
keep the hot arithmetic on small integers; everything leaving the engine is in 1e-8 units
except `levels`, `*_keys` and `changes`.)
"""

from __future__ import annotations

import math
from bisect import insort

from feedhandler.simulator.market.seeding import derive_rng
from feedhandler.simulator.market.stats import TradeStats
from feedhandler.simulator.market.universe import SymbolSpec

_log = math.log

TOP = 1  # best bid or ask price/qty changed
TRADED = 2  # a market order traded: see `fills` and `aggs`

_MIN_LEVELS = 8  # market orders and cancels never thin a side below this
_DAILY_VOLATILITY = 0.03
_MARKET_SHARE = 0.10

# cumulative probabilities of the event types
_P_TOP_ADD = 0.42
_P_TOP_CANCEL = 0.78
_P_MARKET = _P_TOP_CANCEL + _MARKET_SHARE
_P_DEEP_ADD = 0.94


class OrderBookEngine:
    """Book, ids, clock and trade statistics of one symbol."""

    def __init__(self, spec: SymbolSpec, seed: int, start_us: int) -> None:
        self.spec = spec
        rng = derive_rng(seed, "engine:" + spec.symbol)
        self._rand = rand = rng.random
        self._tick_size = spec.tick_size
        self._step = spec.step_size
        self._maker_steps = max(1.0, spec.mean_qty / spec.step_size)
        # takers trade half a typical maker order: sweeps stay shallow and the spread tight
        self._taker_steps = self._maker_steps / 2
        self._mean_dt_us = 1e6 / spec.events_per_s  # events arrive as a Poisson process
        # liquid symbols get deeper books
        target = int(20 + 25 * math.log10(1.0 + spec.events_per_s))
        self._max_levels = 2 * target
        self._span_ticks = 2 * target
        # slow random walk of the fair price, mean-reverted to by the market-order side
        events_per_day = spec.events_per_s * 86_400 * _MARKET_SHARE
        self._walk = _DAILY_VOLATILITY / math.sqrt(events_per_day) / 0.2887  # sd of U(-1/2, 1/2)
        self._fair = float(spec.ref_price // spec.tick_size)  # in ticks

        self.update_id = 1_000_000_000 + int(rand() * 9_000_000_000)
        self.trade_id = 100_000_000 + int(rand() * 900_000_000)
        self.agg_id = self.trade_id // 2 + int(rand() * 1_000_000)
        self.latency_us = 200 + int(rand() * 1500)  # event time E = engine time + latency
        self.now_us = start_us
        self.next_us = start_us + 1 + int(rand() * self._mean_dt_us)

        self.levels: dict[int, int] = {}
        self.bid_keys: list[int] = []
        self.ask_keys: list[int] = []
        ask = max(spec.ref_price // spec.tick_size, 2)
        for is_bid, best in ((True, ask - 1), (False, ask)):
            price = best
            keys = self.bid_keys if is_bid else self.ask_keys
            for _ in range(target):
                if price < 1:
                    break
                key = -price if is_bid else price
                keys.append(key)
                self.levels[key] = self._order_qty(self._maker_steps)
                gap = 1 + (rand() < 0.25)  # some empty ticks, as in real books
                price = price - gap if is_bid else price + gap
            keys.sort()

        self.changes: list[tuple[int, int]] = []  # last step: (signed price key, qty; 0 = gone)
        # last market order: trades (id, price, qty), aggregates (id, first, last, price, qty)
        self.fills: list[tuple[int, int, int]] = []
        self.aggs: list[tuple[int, int, int, int, int]] = []
        self.buyer_taker = False
        self.stats = TradeStats(start_us, ask * spec.tick_size)

    # -- public -------------------------------------------------------------------------

    def top(self) -> tuple[int, int, int, int]:
        """(best bid price, its qty, best ask price, its qty)."""
        bid, ask = self.bid_keys[0], self.ask_keys[0]
        tick = self._tick_size
        return -bid * tick, self.levels[bid], ask * tick, self.levels[ask]

    def book_snapshot(self, limit: int) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """(last update id, bids best first, asks best first) as (price, qty) pairs."""
        levels, tick = self.levels, self._tick_size
        bids = [(-key * tick, levels[key]) for key in self.bid_keys[:limit]]
        asks = [(key * tick, levels[key]) for key in self.ask_keys[:limit]]
        return self.update_id, bids, asks

    def advance_to(self, t_us: int) -> None:
        """Run every event before `t_us` (used when a symbol is subscribed late)."""
        while self.next_us < t_us:
            self.step()

    def step(self) -> int:
        """Execute the event due at `next_us`; return TOP/TRADED flags."""
        rand = self._rand
        self.now_us = now = self.next_us
        # exponential inter-arrival time, at least 1 µs so the clock strictly advances
        self.next_us = now + 1 + int(-self._mean_dt_us * _log(1.0 - rand()))
        self.update_id += 1
        is_bid = rand() < 0.5
        r = rand()
        if r < _P_TOP_ADD:
            return self._add_near_top(is_bid)
        if r < _P_TOP_CANCEL:
            keys = self.bid_keys if is_bid else self.ask_keys
            return self._cancel(keys, min(int(rand() ** 6 * 10), len(keys) - 1))
        if r < _P_MARKET:
            return self._market()
        keys = self.bid_keys if is_bid else self.ask_keys
        if r < _P_DEEP_ADD:
            if len(keys) >= self._max_levels:
                return self._cancel(keys, len(keys) - 1)
            key = keys[0] + 1 + int(rand() * self._span_ticks)
            return self._add(keys, -1 if is_bid and key > -1 else key)
        if len(keys) > _MIN_LEVELS:
            return self._cancel(keys, 1 + int(rand() * (len(keys) - 1)))
        return self._add_near_top(is_bid)

    # -- events -------------------------------------------------------------------------

    def _order_qty(self, mean_steps: float) -> int:
        """Exponentially distributed order size, at least one step."""
        return (1 + int(-mean_steps * _log(1.0 - self._rand()))) * self._step

    def _add(self, keys: list[int], key: int) -> int:
        levels = self.levels
        old = levels.get(key, 0)
        if not old:
            insort(keys, key)
        qty = levels[key] = old + self._order_qty(self._maker_steps)
        self.changes = [(key, qty)]
        return TOP if key == keys[0] else 0

    def _add_near_top(self, is_bid: bool) -> int:
        rand = self._rand
        if is_bid:
            keys, opposite = self.bid_keys, self.ask_keys
        else:
            keys, opposite = self.ask_keys, self.bid_keys
        best = keys[0]
        spread = best + opposite[0]  # ticks
        if spread > 1 and rand() < 0.85:  # liquidity providers close a wide spread
            key = best - 1 - int(rand() * (spread - 1))
        else:  # join the best level or one just behind it
            key = best + int(rand() ** 6 * 10)
            if is_bid and key > -1:  # bids stay at or above one tick
                key = -1
        return self._add(keys, key)

    def _cancel(self, keys: list[int], index: int) -> int:
        levels, step = self.levels, self._step
        key = keys[index]
        qty = levels[key]
        steps = qty // step
        if len(keys) > _MIN_LEVELS and (steps == 1 or self._rand() < 0.3):
            del levels[key]
            del keys[index]
            self.changes = [(key, 0)]
        else:
            if steps > 1:
                qty -= step * (1 + int(self._rand() * (steps - 1)))
            else:  # a thin side's last unit stays: top it up instead
                qty += self._order_qty(self._maker_steps)
            levels[key] = qty
            self.changes = [(key, qty)]
        return TOP if index == 0 else 0

    def _market(self) -> int:
        rand, levels, step = self._rand, self.levels, self._step
        self._fair = max(self._fair * (1.0 + self._walk * (rand() - 0.5)), 5.0)
        mid2 = self.ask_keys[0] - self.bid_keys[0]
        deviation = (mid2 - 2.0 * self._fair) / (2.0 * self._fair)
        buy = rand() < 0.5 - max(-0.3, min(0.3, deviation * 15.0))
        keys = self.ask_keys if buy else self.bid_keys
        remaining = self._order_qty(self._taker_steps)
        removable = len(keys) - _MIN_LEVELS
        changes: list[tuple[int, int]] = []
        fills: list[tuple[int, int, int]] = []
        aggs: list[tuple[int, int, int, int, int]] = []
        while remaining:
            key = keys[0]
            available = levels[key]
            if remaining >= available and removable > 0:
                take = available
                del levels[key]
                del keys[0]
                removable -= 1
                changes.append((key, 0))
            else:
                take = min(remaining, available - step)  # keep protected levels alive
                if take <= 0:
                    break
                levels[key] = available - take
                changes.append((key, available - take))
            remaining -= take
            price = (key if buy else -key) * self._tick_size
            first = self.trade_id + 1
            self._fill(fills, price, take)
            self.agg_id += 1
            aggs.append((self.agg_id, first, self.trade_id, price, take))
            self.stats.record(first, self.trade_id, price, take, buy, self.now_us)
            if take < available:
                break
        if not aggs:  # nothing could trade: the event becomes a limit order
            return self._add_near_top(not buy)
        self.changes, self.fills, self.aggs, self.buyer_taker = changes, fills, aggs, buy
        return TOP | TRADED

    def _fill(self, fills: list[tuple[int, int, int]], price: int, qty: int) -> None:
        """Split one level's fill over 1-3 resting maker orders, one trade each."""
        rand, step = self._rand, self._step
        left = qty // step
        r = rand()
        makers = min(left, 1 + (r < 0.3) + (r < 0.1))
        for still_to_come in range(makers - 1, 0, -1):
            steps = 1 + int(rand() * (left - still_to_come))
            self.trade_id += 1
            fills.append((self.trade_id, price, steps * step))
            left -= steps
        self.trade_id += 1
        fills.append((self.trade_id, price, left * step))
