"""Kline bars and rolling windows against a brute-force fold of the same trades."""

from __future__ import annotations

import itertools
import random

from feedhandler.simulator.market.intervals import MINUTE_US, SECOND_US, bar_bounds
from feedhandler.simulator.market.stats import Agg, BarBuilder, RollingWindow, TradeStats

START_US = 1_767_225_600_000_000 + 17 * SECOND_US
Trade = tuple[int, int, int, int, bool, int]  # first id, last id, price, qty, buyer taker, t


def _trades(seed: int, count: int, mean_gap_us: int) -> list[Trade]:
    rng = random.Random(seed)
    trades, t, trade_id = [], START_US, 1000
    for _ in range(count):
        t += 1 + int(rng.expovariate(1 / mean_gap_us))
        n = 1 + int(rng.random() * 3)
        price, qty = 10_000 + int(rng.random() * 500), 1 + int(rng.random() * 900)
        trades.append((trade_id, trade_id + n - 1, price, qty, rng.random() < 0.5, t))
        trade_id += n
    return trades


def _fold(trades: list[Trade], prev_close: int) -> Agg | None:
    if not trades:
        return None
    buys = [trade for trade in trades if trade[4]]
    return Agg(
        trades[0][0], trades[-1][1], trades[0][2], max(t[2] for t in trades),
        min(t[2] for t in trades), trades[-1][2], sum(t[3] for t in trades),
        sum(t[2] * t[3] for t in trades), sum(t[3] for t in buys),
        sum(t[2] * t[3] for t in buys), trades[-1][5], prev_close,
    )  # fmt: skip


def _fields(agg: Agg | None) -> tuple[int, ...] | None:
    if agg is None:
        return None
    return tuple(getattr(agg, name) for name in Agg.__slots__)


def _prev_close(trades: list[Trade], t_us: int, initial: int) -> int:
    before = [trade for trade in trades if trade[5] < t_us]
    return before[-1][2] if before else initial


def test_bars_and_windows_match_brute_force() -> None:
    trades = _trades(1, 6000, 400_000)  # ~40 minutes of trades, gaps of several seconds
    stats = TradeStats(START_US, 9_999)
    builders = {interval: BarBuilder(stats) for interval in ("1s", "1m", "5m", "1h")}
    windows = {span: RollingWindow(stats, span) for span in (5 * MINUTE_US, 15 * MINUTE_US)}
    seen: list[Trade] = []
    rng = random.Random(2)
    for trade, following in itertools.pairwise(trades):
        stats.record(*trade)
        seen.append(trade)
        if rng.random() > 0.05:
            continue
        # like the feed's ticks: after every recorded trade, before the next one
        now = trade[5] + int(rng.random() * (following[5] - trade[5]))
        for interval, builder in builders.items():
            start, end = bar_bounds(interval, now)
            in_bar = [t for t in seen if start <= t[5] < end]
            expected = _fold(in_bar, _prev_close(seen, start, 9_999))
            assert _fields(builder.bar(start, end, now)) == _fields(expected), interval
            if not in_bar:
                assert stats.close_before(start) == _prev_close(seen, start, 9_999)
        for span, window in windows.items():
            opened = window.open_time(now)
            assert opened % MINUTE_US == 0 and now - span - MINUTE_US < opened <= now - span
            in_window = [t for t in seen if t[5] >= opened]
            expected = _fold(in_window, _prev_close(seen, opened, 9_999))
            assert _fields(window.at(now)) == _fields(expected), span


def test_closed_bar_after_its_end() -> None:
    trades = _trades(3, 400, 50_000)
    stats = TradeStats(START_US, 5_000)
    builder = BarBuilder(stats)
    start, end = bar_bounds("1m", trades[0][5])
    builder.bar(start, end, trades[0][5])  # open bar seen once, then trades continue past it
    for trade in trades:
        stats.record(*trade)
    expected = _fold([t for t in trades if start <= t[5] < end], 5_000)
    assert _fields(builder.bar(start, end, trades[-1][5])) == _fields(expected)
    assert stats.second(trades[-1][5] // SECOND_US) is not None
    assert stats.second(trades[0][5] // SECOND_US - 10) is None
