"""Staleness decisions, without a connection: ping, replace, warn."""

from __future__ import annotations

from feedhandler.supervisor.staleness import (
    EVENT_SILENCE_S,
    PERIODIC_SILENCE_S,
    StalenessPolicy,
    default_max_silence_s,
)

POLICY = StalenessPolicy(stale_after_s=30.0, ping_timeout_s=10.0, max_silence_s=120.0)
OPEN = 1000.0


def test_quiet_for_stale_after_gets_one_ping_then_waits_for_its_pong() -> None:
    data = OPEN + 5
    assert POLICY.check(data + 29, OPEN, data, 0, 0).action == "ok"
    ping = POLICY.check(data + 30, OPEN, data, 0, 0)
    assert ping.action == "ping" and ping.suspect
    waiting = POLICY.check(data + 35, OPEN, data, 0, data + 30)
    assert waiting.action == "ok" and waiting.suspect  # no second ping while one is out
    dead = POLICY.check(data + 40, OPEN, data, 0, data + 30)
    assert dead.action == "replace" and dead.reason.startswith("no pong within 10 s")


def test_answered_pings_repeat_at_most_every_stale_after_then_silence_replaces() -> None:
    data = OPEN + 5
    answered = POLICY.check(data + 45, OPEN, data, data + 31, data + 30)
    assert answered.action == "ok" and not answered.suspect
    assert POLICY.check(data + 60, OPEN, data, data + 31, data + 30).action == "ping"
    silent = POLICY.check(data + 120, OPEN, data, data + 91, data + 90)
    assert silent.action == "replace"
    assert silent.reason == "no data for 120.0 s (max_silence_s 120), pings answered"


def test_never_delivered_is_flagged_after_stale_after_and_replaced_at_max_silence() -> None:
    assert not POLICY.check(OPEN + 29, OPEN, 0, 0, 0).never_delivered
    flagged = POLICY.check(OPEN + 30, OPEN, 0, 0, 0)
    assert flagged.never_delivered and flagged.action == "ping"
    replaced = POLICY.check(OPEN + 120, OPEN, 0, OPEN + 100, OPEN + 95)
    assert replaced.action == "replace"
    assert replaced.reason.startswith("nothing delivered since the connection opened")


def test_per_kind_defaults_take_the_tightest_stream_of_a_connection() -> None:
    assert default_max_silence_s(["btcusdt@trade", "ethusdt@bookTicker"]) == EVENT_SILENCE_S
    assert default_max_silence_s(["btcusdt@trade", "btcusdt@kline_1m"]) == PERIODIC_SILENCE_S
    for periodic in ("btcusdt@depth20@100ms", "btcusdt@ticker_1h", "!miniTicker@arr",
                     "btcusdt@avgPrice", "btcusdt@kline_1h@+08:00"):
        assert default_max_silence_s([periodic]) == PERIODIC_SILENCE_S, periodic
    assert default_max_silence_s(["btcusdt@depth@100ms"]) == EVENT_SILENCE_S  # diff depth
    assert POLICY.tick_s() == 1.0
