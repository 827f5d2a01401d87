"""Request-target parsing: raw/combined paths, percent-encoding, timeUnit."""

from __future__ import annotations

import pytest

from feedhandler.simulator.server.urls import StreamRequest, UrlError, parse_target


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/ws", StreamRequest((), False, "ms")),
        (b"/ws/", StreamRequest((), False, "ms")),
        (b"/ws/btcusdt@trade", StreamRequest(("btcusdt@trade",), False, "ms")),
        (
            b"/ws/btcusdt@trade/ethusdt@depth@100ms",
            StreamRequest(("btcusdt@trade", "ethusdt@depth@100ms"), False, "ms"),
        ),
        (b"/stream", StreamRequest((), True, "ms")),
        (
            b"/stream?streams=btcusdt@trade/bnbbtc@depth",
            StreamRequest(("btcusdt@trade", "bnbbtc@depth"), True, "ms"),
        ),
        # percent-encoded '@' and '/', the latter as encoders emit it inside a query value
        (
            b"/stream?streams=btcusdt%40trade%2Fbnbbtc%40depth",
            StreamRequest(("btcusdt@trade", "bnbbtc@depth"), True, "ms"),
        ),
        (b"/ws/btcusdt%40aggTrade", StreamRequest(("btcusdt@aggTrade",), False, "ms")),
        # '+' is part of the name, never a space: literal and encoded forms agree
        (
            b"/stream?streams=btcusdt@kline_1h@+08:00",
            StreamRequest(("btcusdt@kline_1h@+08:00",), True, "ms"),
        ),
        (
            b"/stream?streams=btcusdt%40kline_1h%40%2B08%3A00",
            StreamRequest(("btcusdt@kline_1h@+08:00",), True, "ms"),
        ),
        (b"/ws/btcusdt@kline_1h@+08:00", StreamRequest(("btcusdt@kline_1h@+08:00",), False, "ms")),
        (
            b"/stream?timeUnit=MICROSECOND&streams=btcusdt@trade",
            StreamRequest(("btcusdt@trade",), True, "us"),
        ),
        (b"/ws/btcusdt@trade?timeUnit=microsecond", StreamRequest(("btcusdt@trade",), False, "us")),
        (b"/ws/btcusdt@trade?timeUnit=MILLISECOND", StreamRequest(("btcusdt@trade",), False, "ms")),
        (b"/ws/btcusdt@trade?timeUnit=millisecond", StreamRequest(("btcusdt@trade",), False, "ms")),
        (b"/stream?streams=a@trade//b@trade/", StreamRequest(("a@trade", "b@trade"), True, "ms")),
    ],
)
def test_parse_target(target: bytes, expected: StreamRequest) -> None:
    assert parse_target(target) == expected


@pytest.mark.parametrize(
    ("target", "status", "fragment"),
    [
        (b"/", 404, "unknown path"),
        (b"/api/v3/depth", 404, "unknown path"),
        (b"/wsx/btcusdt@trade", 404, "unknown path"),
        (b"/ws/btcusdt@trade?timeUnit=SECOND", 400, "invalid timeUnit 'SECOND'"),
        (b"/ws/btcusdt@trade?timeUnit=Microsecond", 400, "invalid timeUnit"),
        (b"/ws/btc%ffusdt@trade", 400, "percent-encoding"),
        ("/ws/bätusdt@trade".encode(), 400, "ASCII"),
    ],
)
def test_parse_target_rejects(target: bytes, status: int, fragment: str) -> None:
    with pytest.raises(UrlError, match=fragment) as caught:
        parse_target(target)
    assert caught.value.status == status


def test_utf8_symbols_arrive_percent_encoded() -> None:
    request = parse_target(b"/ws/%E5%B8%81%E5%AE%89usdt@trade")
    assert request.streams == ("币安usdt@trade",)
