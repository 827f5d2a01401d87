"""Stream-name parsing: every Binance spot stream and nothing else."""

from __future__ import annotations

import pytest

from feedhandler.contract.kinds import KINDS, Role
from feedhandler.simulator.market import Feed, Universe
from feedhandler.simulator.market.publishers import (
    PUBLISHERS,
    SymbolPublisher,
    cadence_of,
    publishes,
)
from feedhandler.simulator.market.streams import parse_stream


@pytest.mark.parametrize(
    ("name", "kind", "cadence_ms", "detail"),
    [
        ("btcusdt@trade", "trade", 0, ""),
        ("btcusdt@aggTrade", "aggTrade", 0, ""),
        ("btcusdt@bookTicker", "bookTicker", 0, ""),
        ("btcusdt@depth", "depth", 1000, ""),
        ("btcusdt@depth@100ms", "depth", 100, ""),
        ("btcusdt@depth@1000ms", "depth", 1000, ""),
        ("btcusdt@depth5", "depthPartial", 1000, "5"),
        ("btcusdt@depth20@100ms", "depthPartial", 100, "20"),
        ("btcusdt@kline_1s", "kline", 1000, "1s"),
        ("btcusdt@kline_1M", "kline", 2000, "1M"),
        ("btcusdt@kline_1h@+08:00", "kline", 2000, "1h+8"),
        ("btcusdt@miniTicker", "miniTicker", 1000, ""),
        ("btcusdt@ticker", "ticker", 1000, ""),
        ("btcusdt@ticker_4h", "windowTicker", 1000, "4h"),
        ("btcusdt@avgPrice", "avgPrice", 1000, ""),
        ("btcusdt@blockTrade", "blockTrade", 1000, ""),
        ("btcusdt@referencePrice", "referencePrice", 1000, ""),
        ("!miniTicker@arr", "miniTicker", 1000, ""),
        ("!ticker_1d@arr", "windowTicker", 1000, "1d"),
    ],
)
def test_valid_names(name: str, kind: str, cadence_ms: int, detail: str) -> None:
    spec = parse_stream(name)
    assert spec is not None
    assert (spec.name, spec.kind, cadence_of(spec)) == (name, kind, cadence_ms)
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
    assert not Feed.is_valid_stream(name)


def test_every_declared_per_symbol_kind_is_served() -> None:
    """A kind declared with per-symbol streams needs a simulator publisher
    (`@publishes` in feedhandler/simulator/market/publishers.py)."""
    declared = [k for k in KINDS if k.role is Role.MARKET and any(not s.market for s in k.streams)]
    unserved = [k.name for k in declared if k.name not in PUBLISHERS]
    assert unserved == [], f"declared kinds without a simulator publisher: {unserved}"
    for kind in declared:
        for suffix in kind.streams:
            if not suffix.market:
                assert Feed.is_valid_stream(f"btcusdt@{suffix.text}"), suffix.text


def test_publishers_name_declared_kinds_once() -> None:
    with pytest.raises(ValueError, match="'noSuchKind' is not declared"):
        publishes("noSuchKind", cadence_ms=1000)(SymbolPublisher)
    with pytest.raises(ValueError, match="'trade' is not declared or already published"):
        publishes("trade", cadence_ms=0)(SymbolPublisher)


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
