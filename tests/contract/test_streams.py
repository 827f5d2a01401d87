"""The stream grammar: one declaration, run by Python (config validation) and by the decoder
extension, which must agree; bad stream lists fail at start with one line naming the stream."""

from __future__ import annotations

import subprocess
import sys

import pytest

from feedhandler._ext.decoder import classify_stream
from feedhandler.contract.kinds import MAX_STREAMS_PER_CONNECTION
from feedhandler.contract.streams import (
    GRAMMAR,
    apart,
    clash,
    normalize_streams,
    parse_stream,
    url_streams,
)

VALID = [text if sfx.market else f"bnbbtc@{text}" for text, (_, sfx) in GRAMMAR.items()]
INVALID = ["btcusdt@trades", "btcusdt@depth7", "btcusdt@depth@250ms", "btcusdt@kline_2m",
           "btcusdt@kline_1m@+09:00", "btcusdt@ticker_2h", "@trade", "trade", "!ticker_1w@arr",
           "!miniTicker", "btcusdt@blocktrade", "btcusdt@!miniTicker@arr", "x" * 33 + "@trade"]


@pytest.mark.parametrize("name", VALID + INVALID)
def test_python_and_extension_grammars_agree(name: str) -> None:
    stream = parse_stream(name)
    native = classify_stream(name)
    if stream is None:
        assert native is None
    else:
        assert native == (stream.kind, stream.symbol, stream.levels, stream.utc_offset_min,
                          stream.array)


def test_grammar_covers_the_documented_streams() -> None:
    assert parse_stream("btcusdt@kline_1M@+08:00").utc_offset_min == 480  # type: ignore[union-attr]
    assert parse_stream("btcusdt@depth20@100ms").levels == 20  # type: ignore[union-attr]
    assert parse_stream("btcusdt@blockTrade").kind == "blockTrade"  # type: ignore[union-attr]
    assert parse_stream("btcusdt@referencePrice") is not None
    assert parse_stream("!ticker_4h@arr").array  # type: ignore[union-attr]


def test_normalize_lower_cases_symbols_only() -> None:
    assert normalize_streams(["BTCUSDT@trade", "EthUsdt@kline_1M", "!miniTicker@arr"]) == [
        "btcusdt@trade", "ethusdt@kline_1M", "!miniTicker@arr"]


@pytest.mark.parametrize(
    ("names", "message"),
    [(["btcusdt@trade", "btcusdt@trades"], r"^unknown stream 'btcusdt@trades' \("),
     (["btcusdt@trade", "BTCUSDT@trade"], r"^duplicate stream 'BTCUSDT@trade'$"),
     ([f"s{i}@trade" for i in range(1025)], r"^1025 streams on one connection, more than 1024: "
                                            r"'s1024@trade' is the first beyond the limit$")],
)  # fmt: skip
def test_normalize_rejects_with_one_line(names: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        normalize_streams(names)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("names", "clashing"),
    [(["btcusdt@depth", "ethusdt@depth@100ms", "btcusdt@depth@100ms"],
      "btcusdt@depth and btcusdt@depth@100ms both carry depth ids of BTCUSDT"),
     (["btcusdt@depth", "btcusdt@depth@1000ms"], "btcusdt@depth and btcusdt@depth@1000ms"),
     (["btcusdt@depth5", "btcusdt@depth20@100ms"], "both carry depthPartial ids of BTCUSDT"),
     (["!bookTicker", "ethusdt@bookTicker"], "!bookTicker and ethusdt@bookTicker both carry"),
     (["ethusdt@bookTicker", "!bookTicker"], "bookTicker ids of the same symbols"),
     (["btcusdt@trade", "btcusdt@aggTrade", "btcusdt@depth", "btcusdt@depth5",
       "btcusdt@bookTicker", "ethusdt@bookTicker", "btcusdt@kline_1m", "btcusdt@kline_5m",
       "btcusdt@ticker_1h", "btcusdt@ticker_4h", "!miniTicker@arr", "!ticker_1h@arr"], None)],
)  # fmt: skip
def test_streams_that_would_interleave_one_symbols_ids_clash(names: list[str],
                                                             clashing: str | None) -> None:
    problem = clash(names)
    assert problem == clashing if clashing is None else clashing in (problem or "")


def test_apart_keeps_the_first_of_streams_that_clash() -> None:
    names = ["!bookTicker", "btcusdt@bookTicker", "btcusdt@depth", "btcusdt@depth@100ms",
             "btcusdt@trade", "ethusdt@depth@100ms"]
    assert apart(names) == ["!bookTicker", "btcusdt@depth", "btcusdt@trade",
                            "ethusdt@depth@100ms"]
    assert clash(apart(names)) is None


def test_the_per_connection_limit_is_binances() -> None:
    assert MAX_STREAMS_PER_CONNECTION == 1024
    assert len(normalize_streams([f"s{i}@trade" for i in range(1024)])) == 1024
    assert len(normalize_streams([f"s{i}@trade" for i in range(3000)], per_connection=None)) == 3000


def test_url_streams() -> None:
    assert url_streams("wss://stream.binance.com:9443") is None
    assert url_streams("wss://h/") is None
    assert url_streams("wss://h/ws/btcusdt@trade") == ["btcusdt@trade"]
    assert url_streams("wss://h/stream?streams=a@trade/b@kline_1h@+08:00&timeUnit=MICROSECOND") \
        == ["a@trade", "b@kline_1h@+08:00"]
    for url in ("wss://h/ws", "wss://h/ws/", "wss://h/stream", "wss://h/other"):
        with pytest.raises(ValueError, match="has a path but names no stream"):
            url_streams(url)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feedhandler", "run", "--sink", "null", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--streams", "btcusdt@trades"], "streams: unknown stream 'btcusdt@trades'"),
     (["--streams", "btcusdt@trade,BTCUSDT@trade"], "streams: duplicate stream 'BTCUSDT@trade'"),
     (["--url", "wss://127.0.0.1:1/ws"], "url: url 'wss://127.0.0.1:1/ws' has a path"),
     (["--url", "wss://127.0.0.1:1/ws/btcusdt@nope"], "url: unknown stream 'btcusdt@nope'"),
     (["--streams", "btcusdt@depth,btcusdt@depth@100ms"],
      "streams: btcusdt@depth and btcusdt@depth@100ms both carry depth ids of BTCUSDT"),
     (["--url", "wss://127.0.0.1:1/stream?streams=btcusdt@bookTicker/!bookTicker"],
      "url: btcusdt@bookTicker and !bookTicker both carry bookTicker ids")],
)  # fmt: skip
def test_cli_refuses_bad_streams_before_connecting(args: list[str], message: str) -> None:
    result = _run(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_cli_accepts_upper_case_symbols() -> None:
    # A port nothing listens on: the handler gets past validation and runs until its duration.
    result = _run("--streams", "BTCUSDT@trade", "--url", "ws://127.0.0.1:9", "--duration", "0.5")
    assert result.returncode != 2, result.stderr
    assert "configuration error" not in result.stderr
