"""Every stream's payloads: valid JSON, the protocol's exact fields and decimals, and values
derived from the same trades the trade stream shows."""

from __future__ import annotations

import json
from typing import Any

import pytest

from feedhandler.simulator.market import Feed, Universe
from feedhandler.simulator.market.fixedpoint import SCALE, to_units
from feedhandler.simulator.market.intervals import KLINE_SPANS_US
from tests.parsing.helpers import require_corpus
from tests.simulator.market.marketcheck import check_payload

UNIVERSE = Universe.generate(21, 300, utf8_symbols=True)
BIDR = next(spec.symbol.lower() for spec in UNIVERSE if spec.price_decimals == 2)
SYMBOLS = ["btcusdt", "shibusdt", "ethbtc", BIDR, "币安人生usdt"]
SUFFIXES = [
    "trade", "aggTrade", "bookTicker", "depth", "depth@100ms", "depth5", "depth10@100ms",
    "depth20", "kline_1s", "kline_1m", "kline_1h@+08:00", "kline_1M", "miniTicker", "ticker",
    "ticker_1h", "ticker_4h", "ticker_1d", "avgPrice",
]  # fmt: skip
MARKET = ["!miniTicker@arr", "!ticker_1h@arr", "!ticker_4h@arr", "!ticker_1d@arr"]


def _frames(time_unit: str, count: int, streams: list[str]) -> list[tuple[str, Any]]:
    feed = Feed(21, UNIVERSE, time_unit=time_unit)
    feed.subscribe(streams)
    return [(stream, json.loads(payload)) for stream, payload in feed.next_frames(count)]


@pytest.fixture(scope="module")
def every_stream() -> list[tuple[str, Any]]:
    streams = [f"{symbol}@{suffix}" for symbol in SYMBOLS for suffix in SUFFIXES] + MARKET
    frames = _frames("ms", 60_000, streams)
    assert {stream for stream, _ in frames} == set(streams)  # every stream delivered
    return frames


def test_fields_and_decimals(every_stream: list[tuple[str, Any]]) -> None:
    for stream, obj in every_stream:
        symbol = UNIVERSE.by_stream_symbol(stream.partition("@")[0])
        check_payload(obj, UNIVERSE, symbol.symbol if symbol else None)
        if isinstance(obj, dict) and "s" in obj:
            assert obj["s"].lower() == stream.partition("@")[0]


def test_corpus_shapes() -> None:
    """A frame of each kind has the same field order as a captured real Binance frame."""
    corpus = require_corpus()  # ../shared beside the repository
    streams = [f"btcusdt@{s}" for s in ("kline_1m", "ticker", "miniTicker", *SUFFIXES[:6])]
    frames = dict(_frames("ms", 5000, streams))
    real = {}
    for name in ("trade", "aggTrade", "bookTicker", "depthUpdate", "depth_partial", "kline"):
        with open(corpus / f"{name}.jsonl") as lines:
            real[name] = json.loads(lines.readline())
    real["trade"] = {k: v for k, v in real["trade"].items() if k not in ("b", "a")}  # 2024-06
    assert list(frames["btcusdt@trade"]) == list(real["trade"])
    assert list(frames["btcusdt@aggTrade"]) == list(real["aggTrade"])
    assert list(frames["btcusdt@bookTicker"]) == list(real["bookTicker"])
    assert list(frames["btcusdt@depth@100ms"]) == list(real["depthUpdate"])
    assert list(frames["btcusdt@depth5"]) == list(real["depth_partial"])
    assert list(frames["btcusdt@kline_1m"]["k"]) == list(real["kline"]["k"])
    with open(corpus / "ticker.jsonl") as lines:
        assert list(frames["btcusdt@ticker"]) == list(json.loads(lines.readline()))


def test_microsecond_time_unit() -> None:
    streams = ["btcusdt@trade", "btcusdt@kline_1m", "btcusdt@depth@100ms", "btcusdt@avgPrice"]
    in_ms, in_us = _frames("ms", 3000, streams), _frames("us", 3000, streams)
    assert [stream for stream, _ in in_ms] == [stream for stream, _ in in_us]
    for (stream, ms), (_, us) in zip(in_ms, in_us, strict=True):
        assert us["E"] // 1000 == ms["E"] and us["E"] > 10**15
        if stream.endswith("@trade"):
            assert (us["T"] // 1000, us["t"], us["p"]) == (ms["T"], ms["t"], ms["p"])
        elif "kline" in stream:
            assert us["k"]["t"] == ms["k"]["t"] * 1000
            assert us["k"]["T"] == us["k"]["t"] + KLINE_SPANS_US["1m"] - 1
            assert ms["k"]["T"] == ms["k"]["t"] + 60_000 - 1
        elif "avgPrice" in stream:
            assert us["T"] // 1000 == ms["T"] and us["w"] == ms["w"]


def _units(text: str) -> int:
    return to_units(text)


def _expected_bar(trades: list[dict[str, Any]]) -> dict[str, Any]:
    prices = [_units(t["p"]) for t in trades]
    qtys = [_units(t["q"]) for t in trades]
    buys = [(p, q) for p, q, t in zip(prices, qtys, trades, strict=True) if not t["m"]]
    return {
        "f": trades[0]["t"], "L": trades[-1]["t"], "n": len(trades),
        "o": prices[0], "c": prices[-1], "h": max(prices), "l": min(prices),
        "v": sum(qtys), "q": sum(p * q for p, q in zip(prices, qtys, strict=True)) // SCALE,
        "V": sum(q for _, q in buys), "Q": sum(p * q for p, q in buys) // SCALE,
    }  # fmt: skip


def _bar_of(k: dict[str, Any]) -> dict[str, Any]:
    values = {key: _units(k[key]) for key in ("o", "c", "h", "l", "v", "q", "V", "Q")}
    return {"f": k["f"], "L": k["L"], "n": k["n"], **values}


@pytest.mark.parametrize("symbol", ["btcusdt", "shibusdt"])
def test_klines_and_tickers_equal_the_trades(symbol: str) -> None:
    suffixes = ["trade", "bookTicker", "kline_1s", "kline_1m", "kline_5m@+08:00"]
    suffixes += ["ticker", "ticker_1h", "miniTicker", "avgPrice"]
    streams = [f"{symbol}@{suffix}" for suffix in suffixes]
    trades: list[dict[str, Any]] = []
    book: dict[str, Any] = {}
    closed = 0
    for stream, obj in _frames("ms", 40_000, streams):
        kind = stream.partition("@")[2]
        if kind == "trade":
            trades.append(obj)
        elif kind == "bookTicker":
            book = obj
        elif kind.startswith("kline"):
            k = obj["k"]
            in_bar = [t for t in trades if k["t"] <= t["T"] <= k["T"]]
            if in_bar:
                assert _bar_of(k) == _expected_bar(in_bar), stream
            else:
                assert (k["f"], k["L"], k["n"], k["v"]) == (-1, -1, 0, "0" + k["v"][1:])
            closed += k["x"]
            assert k["x"] == (obj["E"] > k["T"])
        elif kind == "avgPrice":
            window = [t for t in trades if t["T"] >= obj["E"] // 60_000 * 60_000 - 300_000]
            expected = _expected_bar(window)
            assert _units(obj["w"]) == expected["q"] * SCALE // expected["v"]
            assert obj["T"] == trades[-1]["T"]
        else:
            window = [t for t in trades if t["T"] >= obj.get("O", 0)]
            expected = _expected_bar(window)
            for key in ("o", "c", "h", "l", "v", "q"):
                assert _units(obj[key]) == expected[key], (stream, key)
            if kind == "miniTicker":
                continue
            assert (obj["F"], obj["L"], obj["n"]) == (expected["f"], expected["L"], expected["n"])
            assert obj["C"] == obj["E"] and obj["O"] % 60_000 == 0
            change = expected["c"] - expected["o"]
            assert _units(obj["p"].lstrip("-")) == abs(change)
            assert _units(obj["w"]) == expected["q"] * SCALE // expected["v"]
            assert abs(float(obj["P"]) - change * 100 / expected["o"]) < 0.001
            if kind == "ticker":
                assert [obj[key] for key in "bBaA"] == [book[key] for key in "bBaA"]
                assert obj["Q"] == trades[-1]["q"]
    assert closed > 10


def test_market_arrays_hold_changed_symbols_in_universe_order() -> None:
    universe = Universe.generate(21, 80)
    feed = Feed(21, universe)
    feed.subscribe(["!miniTicker@arr", "!ticker_4h@arr", "ethusdt@trade", "ethusdt@ticker_4h"])
    order = {spec.symbol: i for i, spec in enumerate(universe)}
    trades: list[dict[str, Any]] = []
    arrays = with_eth = 0
    for stream, payload in feed.next_frames(8000):
        obj = json.loads(payload)
        if stream == "ethusdt@trade":
            trades.append(obj)
        if not stream.startswith("!"):
            continue
        arrays += 1
        symbols = [item["s"] for item in obj]
        assert symbols == sorted(symbols, key=order.__getitem__) and len(set(symbols)) > 5
        check_payload(obj, universe)
        eth = next((item for item in obj if item["s"] == "ETHUSDT"), None)
        if eth is not None:  # the whole run is inside both windows: every trade counts
            with_eth += 1
            expected = _expected_bar(trades)
            assert [_units(eth[key]) for key in "ohlcvq"] == [expected[key] for key in "ohlcvq"]
    assert arrays > 20 and with_eth > 20
    feed.unsubscribe(["!miniTicker@arr", "!ticker_4h@arr", "ethusdt@trade"])
    assert {stream for stream, _ in feed.next_frames(50)} == {"ethusdt@ticker_4h"}
