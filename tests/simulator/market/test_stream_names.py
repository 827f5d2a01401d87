"""Stream-name parsing: every Binance spot stream and nothing else."""

from __future__ import annotations

import pytest

from feedhandler.simulator.market import Feed, Universe
from feedhandler.simulator.market.streams import Kind, parse_stream


@pytest.mark.parametrize(
    ("name", "kind", "cadence_ms", "detail"),
    [
        ("btcusdt@trade", Kind.TRADE, 0, ""),
        ("btcusdt@aggTrade", Kind.AGG_TRADE, 0, ""),
        ("btcusdt@bookTicker", Kind.BOOK_TICKER, 0, ""),
        ("btcusdt@depth", Kind.DEPTH, 1000, ""),
        ("btcusdt@depth@100ms", Kind.DEPTH, 100, ""),
        ("btcusdt@depth5", Kind.PARTIAL_DEPTH, 1000, "5"),
        ("btcusdt@depth20@100ms", Kind.PARTIAL_DEPTH, 100, "20"),
        ("btcusdt@kline_1s", Kind.KLINE, 1000, "1s"),
        ("btcusdt@kline_1M", Kind.KLINE, 2000, "1M"),
        ("btcusdt@kline_1h@+08:00", Kind.KLINE, 2000, "1h+8"),
        ("btcusdt@miniTicker", Kind.MINI_TICKER, 1000, ""),
        ("btcusdt@ticker", Kind.TICKER, 1000, ""),
        ("btcusdt@ticker_4h", Kind.WINDOW_TICKER, 1000, "4h"),
        ("btcusdt@avgPrice", Kind.AVG_PRICE, 1000, ""),
        ("!miniTicker@arr", Kind.MINI_TICKER, 1000, ""),
        ("!ticker_1d@arr", Kind.WINDOW_TICKER, 1000, "1d"),
    ],
)
def test_valid_names(name: str, kind: Kind, cadence_ms: int, detail: str) -> None:
    spec = parse_stream(name)
    assert spec is not None
    assert (spec.name, spec.kind, spec.cadence_ms) == (name, kind, cadence_ms)
    assert spec.symbol == (None if name.startswith("!") else "btcusdt")
    shown = str(spec.levels) if spec.levels else spec.interval + ("+8" if spec.utc8 else "")
    assert shown == detail


@pytest.mark.parametrize(
    "name",
    [
        "BTCUSDT@trade",  # symbols are lowercase in stream names
        "btcusdt@aggtrade",  # the suffix is case-sensitive
        "btcusdt@depth7",
        "btcusdt@depth5@250ms",
        "btcusdt@kline_2m",
        "btcusdt@kline_1h@+09:00",
        "btcusdt@trade@100ms",
        "!ticker@arr",  # retired 2026-03-26
        "!bookTicker",  # removed 2022
        "btcusdt@ticker_2h",
        "btc-usdt@trade",
        "@trade",
        "btcusdt",
        "",
    ],
)
def test_invalid_names(name: str) -> None:
    assert parse_stream(name) is None
    assert not Feed.is_valid_stream(name)


def test_ranks_are_unique_per_suffix() -> None:
    names = ["x@trade", "x@depth", "x@depth@100ms", "x@kline_1m", "x@kline_1m@+08:00"]
    ranks = [parse_stream(name).rank for name in names]  # type: ignore[union-attr]
    assert len(set(ranks)) == len(ranks)


def test_instance_check_knows_the_universe() -> None:
    universe = Universe.generate(3, 30, utf8_symbols=True)
    feed = Feed(3, universe)
    assert Feed.is_valid_stream("zzzzusdt@trade")  # syntax only
    assert not feed.is_valid_stream("zzzzusdt@trade")
    assert feed.is_valid_stream("ethbtc@depth5@100ms")
    assert feed.is_valid_stream("币安人生usdt@trade")
    assert feed.is_valid_stream("!miniTicker@arr")
    with pytest.raises(ValueError, match="unknown symbol"):
        feed.subscribe(["zzzzusdt@trade"])
    with pytest.raises(ValueError, match="invalid stream"):
        feed.subscribe(["btcusdt@trade", "btcusdt@depth7"])
    assert feed.subscriptions == ()  # all or nothing
    feed.subscribe(["btcusdt@trade", "btcusdt@trade", "ethbtc@trade"])
    assert feed.subscriptions == ("btcusdt@trade", "ethbtc@trade")
