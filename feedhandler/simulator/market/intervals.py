"""Kline bar boundaries for every Binance interval, in UTC or the `@+08:00` variant.

Times are microseconds since the Unix epoch. Bars from 1s to 1d tile the time line from the
epoch; 3d bars do too (assumption: Binance does not document their anchor); 1w bars start on
Monday 00:00; 1M bars on the first of the calendar month. With `utc8` the boundaries are those
of the UTC+8 clock while the timestamps stay plain Unix time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from feedhandler.contract.kinds import KLINE_INTERVALS

SECOND_US = 1_000_000
MINUTE_US = 60 * SECOND_US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
UTC8_OFFSET_US = 8 * HOUR_US

_MONTH = 0  # marker: calendar month, no fixed span
_UNIT_US = {"s": SECOND_US, "m": MINUTE_US, "h": HOUR_US, "d": DAY_US, "w": 7 * DAY_US}


def span_us(interval: str) -> int:
    """The span an interval's name says ("15m", "4h", "1w"); `_MONTH` for "1M"."""
    return _MONTH if interval == "1M" else int(interval[:-1]) * _UNIT_US[interval[-1]]


# the declared kline intervals (the shared stream grammar's), with their spans
KLINE_SPANS_US: dict[str, int] = {interval: span_us(interval) for interval in KLINE_INTERVALS}
_WEEK_ANCHOR_US = 4 * DAY_US  # 1970-01-01 was a Thursday; the first Monday is 4 days later


def bar_bounds(interval: str, t_us: int, utc8: bool = False) -> tuple[int, int]:
    """[start, end) of the `interval` bar containing `t_us`."""
    offset = UTC8_OFFSET_US if utc8 else 0
    local = t_us + offset
    span = KLINE_SPANS_US[interval]
    if span == _MONTH:
        day = datetime.fromtimestamp(local // SECOND_US, UTC)
        year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
        first = datetime(day.year, day.month, 1, tzinfo=UTC)
        end = datetime(year, month, 1, tzinfo=UTC)
        return (
            int(first.timestamp()) * SECOND_US - offset,
            int(end.timestamp()) * SECOND_US - offset,
        )
    anchor = _WEEK_ANCHOR_US if interval == "1w" else 0
    start = (local - anchor) // span * span + anchor
    return start - offset, start + span - offset
