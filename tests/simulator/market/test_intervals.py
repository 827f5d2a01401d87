"""Kline bar boundaries, UTC and UTC+8."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from feedhandler.simulator.market.intervals import KLINE_SPANS_US, bar_bounds


def _us(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * 1_000_000


T = _us("2026-01-15T13:47:21") + 123_456  # a Thursday


@pytest.mark.parametrize(
    ("interval", "utc8", "start", "end"),
    [
        ("1s", False, "2026-01-15T13:47:21", "2026-01-15T13:47:22"),
        ("1m", False, "2026-01-15T13:47:00", "2026-01-15T13:48:00"),
        ("15m", False, "2026-01-15T13:45:00", "2026-01-15T14:00:00"),
        ("4h", False, "2026-01-15T12:00:00", "2026-01-15T16:00:00"),
        ("4h", True, "2026-01-15T12:00:00", "2026-01-15T16:00:00"),  # 8h offset: same tiling
        ("12h", True, "2026-01-15T04:00:00", "2026-01-15T16:00:00"),
        ("1d", False, "2026-01-15T00:00:00", "2026-01-16T00:00:00"),
        ("1d", True, "2026-01-14T16:00:00", "2026-01-15T16:00:00"),
        ("3d", False, "2026-01-13T00:00:00", "2026-01-16T00:00:00"),  # epoch-aligned
        ("1w", False, "2026-01-12T00:00:00", "2026-01-19T00:00:00"),  # Monday
        ("1w", True, "2026-01-11T16:00:00", "2026-01-18T16:00:00"),
        ("1M", False, "2026-01-01T00:00:00", "2026-02-01T00:00:00"),
        ("1M", True, "2025-12-31T16:00:00", "2026-01-31T16:00:00"),
    ],
)
def test_bar_bounds(interval: str, utc8: bool, start: str, end: str) -> None:
    assert bar_bounds(interval, T, utc8) == (_us(start), _us(end))


def test_month_rollover_and_utc8_edge() -> None:
    december = _us("2025-12-31T20:00:00")  # already January in UTC+8
    assert bar_bounds("1M", december) == (_us("2025-12-01T00:00:00"), _us("2026-01-01T00:00:00"))
    assert bar_bounds("1M", december, True)[0] == _us("2025-12-31T16:00:00")


@pytest.mark.parametrize("interval", [i for i in KLINE_SPANS_US if i != "1M"])
def test_bars_tile_time(interval: str) -> None:
    start, end = bar_bounds(interval, T, utc8=True)
    assert start <= T < end
    assert bar_bounds(interval, end, utc8=True)[0] == end
    assert bar_bounds(interval, start - 1, utc8=True)[1] == start
    assert end - start == KLINE_SPANS_US[interval]
