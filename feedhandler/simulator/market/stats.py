"""Trade statistics behind klines, rolling tickers and avgPrice.

`TradeStats` keeps one exact OHLCV aggregate (`Agg`) per minute with trades (and the current
and previous second, for 1s klines), fed by the engine on every fill. Klines and rolling
windows are folds of those buckets, built incrementally (`BarBuilder`, `RollingWindow`) so a
stream subscribed late still sees every trade of its bar or window. Windows are minute-aligned
(`O` = start of the minute `C - window` falls in), as Binance documents for `ticker_<w>`.

Prices and volumes are 1e-8 units; quote volumes (price * qty) are exact, in 1e-16 units.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

from feedhandler.simulator.market.intervals import MINUTE_US, SECOND_US

# minute buckets older than this are dropped: enough for a whole 1M kline bar
_KEEP_MINUTES = 32 * 24 * 60


class Agg:
    """OHLCV of a run of consecutive trades. Trade ids are contiguous, so the trade count
    is `last_id - first_id + 1`; `prev_close` is the price of the trade before `first_id`."""

    __slots__ = (
        "buy_quote",
        "buy_volume",
        "close",
        "first_id",
        "high",
        "last_id",
        "last_us",
        "low",
        "open",
        "prev_close",
        "quote",
        "volume",
    )

    def __init__(
        self,
        first_id: int,
        last_id: int,
        open_: int,
        high: int,
        low: int,
        close: int,
        volume: int,
        quote: int,
        buy_volume: int,
        buy_quote: int,
        last_us: int,
        prev_close: int,
    ) -> None:
        self.first_id = first_id
        self.last_id = last_id
        self.open = open_
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume
        self.quote = quote
        self.buy_volume = buy_volume
        self.buy_quote = buy_quote
        self.last_us = last_us
        self.prev_close = prev_close

    @property
    def count(self) -> int:
        return self.last_id - self.first_id + 1

    def copy(self) -> Agg:
        return Agg(
            self.first_id,
            self.last_id,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.quote,
            self.buy_volume,
            self.buy_quote,
            self.last_us,
            self.prev_close,
        )

    def add_fill(self, last_id: int, price: int, qty: int, buyer_taker: bool, t_us: int) -> None:
        """Append trades `..last_id`, all at `price`, `qty` in total."""
        self.last_id = last_id
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        self.close = price
        self.volume += qty
        self.quote += price * qty
        if buyer_taker:
            self.buy_volume += qty
            self.buy_quote += price * qty
        self.last_us = t_us

    def merge(self, later: Agg) -> None:
        """Extend with the trades of `later`, which directly follow this run's trades."""
        self.last_id = later.last_id
        self.high = max(self.high, later.high)
        self.low = min(self.low, later.low)
        self.close = later.close
        self.volume += later.volume
        self.quote += later.quote
        self.buy_volume += later.buy_volume
        self.buy_quote += later.buy_quote
        self.last_us = later.last_us


def _fill_agg(
    first_id: int, last_id: int, price: int, qty: int, buyer_taker: bool, t_us: int, prev: int
) -> Agg:
    buy = qty if buyer_taker else 0
    return Agg(
        first_id,
        last_id,
        price,
        price,
        price,
        price,
        qty,
        price * qty,
        buy,
        price * buy,
        t_us,
        prev,
    )


class TradeStats:
    """Per-symbol trade buckets, always maintained so every statistic is subscription-free."""

    def __init__(self, origin_us: int, initial_price: int) -> None:
        self.last_price = initial_price
        self.last_qty = 0
        self.last_us = -1  # no trade yet
        self.last_id = -1
        self._base_minute = origin_us // MINUTE_US
        self._minutes: list[Agg | None] = []
        self._minute_agg: Agg | None = None  # the last bucket, where new trades go
        self._second = -1
        self._second_agg: Agg | None = None
        self._prev_second = -1
        self._prev_second_agg: Agg | None = None

    def record(
        self, first_id: int, last_id: int, price: int, qty: int, buyer_taker: bool, t_us: int
    ) -> None:
        """Account trades `first_id..last_id` at one price (one aggTrade), `qty` in total."""
        minutes = self._minutes
        index = t_us // MINUTE_US - self._base_minute
        minute_agg = self._minute_agg
        if index == len(minutes) - 1 and minute_agg is not None:
            minute_agg.add_fill(last_id, price, qty, buyer_taker, t_us)
        else:
            if index > len(minutes):
                minutes.extend([None] * (index - len(minutes)))
            minute_agg = _fill_agg(
                first_id, last_id, price, qty, buyer_taker, t_us, self.last_price
            )
            minutes.append(minute_agg)
            self._minute_agg = minute_agg
            if len(minutes) > _KEEP_MINUTES + 1440:
                del minutes[:1440]
                self._base_minute += 1440
        second = t_us // SECOND_US
        second_agg = self._second_agg
        if second == self._second and second_agg is not None:
            second_agg.add_fill(last_id, price, qty, buyer_taker, t_us)
        else:
            self._prev_second, self._prev_second_agg = self._second, second_agg
            self._second = second
            self._second_agg = _fill_agg(
                first_id, last_id, price, qty, buyer_taker, t_us, self.last_price
            )
        self.last_price = price
        self.last_qty = qty
        self.last_us = t_us
        self.last_id = last_id

    def minute(self, minute: int) -> Agg | None:
        """The bucket of absolute minute `minute` (t_us // MINUTE_US), if it had trades."""
        index = minute - self._base_minute
        return self._minutes[index] if 0 <= index < len(self._minutes) else None

    def minutes(self, start: int, stop: int) -> Iterator[tuple[int, Agg]]:
        """Non-empty buckets of absolute minutes in [start, stop), oldest first."""
        base = self._base_minute
        for index in range(max(start - base, 0), min(stop - base, len(self._minutes))):
            agg = self._minutes[index]
            if agg is not None:
                yield base + index, agg

    def second(self, second: int) -> Agg | None:
        """The bucket of absolute second `second`; only the last two seconds with trades
        are kept, enough for 1s klines pushed every second."""
        if second == self._second:
            return self._second_agg
        return self._prev_second_agg if second == self._prev_second else None

    def close_before(self, t_us: int) -> int:
        """Price of the last trade before `t_us`, which is a second boundary no more than two
        trade-seconds back, or a minute boundary."""
        if self.last_us < t_us:
            return self.last_price
        if t_us % MINUTE_US:
            # the first bucket at/after t_us: seconds are only two deep, hence the precondition
            first = self._second_agg
            if self._prev_second >= t_us // SECOND_US and self._prev_second_agg is not None:
                first = self._prev_second_agg
        else:
            start = t_us // MINUTE_US
            first = next(self.minutes(start, self._base_minute + len(self._minutes)))[1]
        assert first is not None, "last_us >= t_us implies a bucket at or after t_us"
        return first.prev_close


class BarBuilder:
    """The aggregate of one kline stream's current bar, folded minute by minute."""

    def __init__(self, stats: TradeStats) -> None:
        self._stats = stats
        self._start = -1
        self._done: Agg | None = None  # complete minutes of the bar folded so far
        self._next_minute = 0

    def bar(self, start_us: int, end_us: int, now_us: int) -> Agg | None:
        """Trades in [start_us, min(end_us, now_us)]; None if there were none."""
        stats = self._stats
        if end_us - start_us == SECOND_US:
            agg = stats.second(start_us // SECOND_US)
            return agg.copy() if agg is not None else None
        if start_us != self._start:
            self._start, self._done, self._next_minute = start_us, None, start_us // MINUTE_US
        stop = min(end_us, now_us) // MINUTE_US
        for _, agg in stats.minutes(self._next_minute, stop):
            if self._done is None:
                self._done = agg.copy()
            else:
                self._done.merge(agg)
        self._next_minute = max(self._next_minute, stop)
        result = self._done.copy() if self._done is not None else None
        if now_us < end_us:
            current = stats.minute(now_us // MINUTE_US)
            if current is not None:
                if result is None:
                    result = current.copy()
                else:
                    result.merge(current)
        return result


class RollingWindow:
    """Trades in [start of the minute containing now - window, now], updated in O(1)
    amortized per call: sums are added/subtracted, high/low kept in monotonic deques."""

    def __init__(self, stats: TradeStats, window_us: int) -> None:
        self._stats = stats
        self._window = window_us
        self._next_minute = -1  # first complete minute not yet taken in
        self._buckets: deque[tuple[int, Agg]] = deque()
        self._highs: deque[tuple[int, int]] = deque()
        self._lows: deque[tuple[int, int]] = deque()
        self._volume = self._quote = self._buy_volume = self._buy_quote = 0

    def open_time(self, now_us: int) -> int:
        return (now_us - self._window) // MINUTE_US * MINUTE_US

    def at(self, now_us: int) -> Agg | None:
        """The window's aggregate at `now_us`; None if it holds no trade."""
        stats = self._stats
        current_minute = now_us // MINUTE_US
        start = (now_us - self._window) // MINUTE_US
        for minute, agg in stats.minutes(max(self._next_minute, start), current_minute):
            self._take(minute, agg)
        self._next_minute = max(self._next_minute, current_minute)
        self._evict(start)
        current = stats.minute(current_minute)
        buckets = self._buckets
        if not buckets:
            return current.copy() if current is not None else None
        first, last = buckets[0][1], buckets[-1][1]
        result = Agg(
            first.first_id,
            last.last_id,
            first.open,
            self._highs[0][1],
            self._lows[0][1],
            last.close,
            self._volume,
            self._quote,
            self._buy_volume,
            self._buy_quote,
            last.last_us,
            first.prev_close,
        )
        if current is not None:
            result.merge(current)
        return result

    def _take(self, minute: int, agg: Agg) -> None:
        self._buckets.append((minute, agg))
        self._volume += agg.volume
        self._quote += agg.quote
        self._buy_volume += agg.buy_volume
        self._buy_quote += agg.buy_quote
        highs, lows = self._highs, self._lows
        while highs and highs[-1][1] <= agg.high:
            highs.pop()
        highs.append((minute, agg.high))
        while lows and lows[-1][1] >= agg.low:
            lows.pop()
        lows.append((minute, agg.low))

    def _evict(self, start: int) -> None:
        buckets = self._buckets
        while buckets and buckets[0][0] < start:
            _, agg = buckets.popleft()
            self._volume -= agg.volume
            self._quote -= agg.quote
            self._buy_volume -= agg.buy_volume
            self._buy_quote -= agg.buy_quote
        while self._highs and self._highs[0][0] < start:
            self._highs.popleft()
        while self._lows and self._lows[0][0] < start:
            self._lows.popleft()
