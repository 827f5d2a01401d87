"""Same seed, universe and calls: byte-identical frames; a symbol's events never depend on
what else is subscribed, or when it was."""

from __future__ import annotations

import json

import pytest

from feedhandler.simulator.market import Feed, Universe

UNIVERSE = Universe.generate(31, 200)
MIXED = [
    "btcusdt@trade", "btcusdt@depth@100ms", "ethusdt@aggTrade", "ethusdt@depth5@100ms",
    "solusdt@bookTicker", "bnbusdt@kline_1s", "xrpusdt@ticker", "dogeusdt@avgPrice",
    "!miniTicker@arr",
]  # fmt: skip
Frames = list[tuple[str, bytes]]


def _run(seed: int, streams: list[str], count: int, batch: int = 997) -> Frames:
    feed = Feed(seed, UNIVERSE)
    feed.subscribe(streams)
    frames: Frames = []
    while len(frames) < count:
        frames += feed.next_frames(min(batch, count - len(frames)))
    return frames


def test_same_seed_same_bytes() -> None:
    first = _run(31, MIXED, 20_000)
    assert len(first) == 20_000
    assert first == _run(31, MIXED, 20_000, batch=4096)  # batching does not matter
    assert first == _run(31, list(reversed(MIXED)), 20_000)  # nor subscription order


def test_different_seed_different_frames() -> None:
    first, other = _run(31, MIXED, 2000), _run(32, MIXED, 2000)
    assert [payload for _, payload in first] != [payload for _, payload in other]
    assert Feed(31, UNIVERSE).start_us != Feed(32, UNIVERSE).start_us


def test_symbol_independent_of_other_subscriptions() -> None:
    alone = _run(31, ["btcusdt@trade"], 3000)
    crowded = _run(31, ["btcusdt@trade", "ethusdt@trade", "shibusdt@bookTicker"], 15_000)
    assert [f for f in crowded if f[0] == "btcusdt@trade"][:3000] == alone


def test_late_subscription_sees_the_same_market() -> None:
    reference = [json.loads(p) for _, p in _run(31, ["ethusdt@trade"], 6000)]
    feed = Feed(31, UNIVERSE)
    feed.subscribe(["btcusdt@bookTicker"])
    feed.next_frames(20_000)  # ETH's engine is not running meanwhile
    feed.subscribe(["ethusdt@trade"])
    late = [json.loads(p) for s, p in feed.next_frames(20_000) if s == "ethusdt@trade"]
    assert late
    first = next(i for i, trade in enumerate(reference) if trade["t"] == late[0]["t"])
    assert first > 0  # trades before the subscription were not sent
    assert late[:100] == reference[first : first + 100]


def test_unsubscribe_stops_stream_and_drops_pending() -> None:
    feed = Feed(31, UNIVERSE)
    feed.subscribe(["btcusdt@trade", "btcusdt@bookTicker", "ethusdt@bookTicker"])
    feed.next_frames(500)
    feed.unsubscribe(["btcusdt@trade", "nosuch@trade"])
    assert feed.subscriptions == ("btcusdt@bookTicker", "ethusdt@bookTicker")
    assert "btcusdt@trade" not in {stream for stream, _ in feed.next_frames(5000)}
    feed.unsubscribe(["btcusdt@bookTicker", "ethusdt@bookTicker"])
    now = feed.now_us
    assert feed.next_frames(10) == []
    assert feed.now_us == now  # nothing scheduled: no engine keeps running


def test_frame_count_and_until() -> None:
    feed = Feed(31, UNIVERSE)
    assert feed.next_frames(10) == []  # nothing subscribed
    feed.subscribe(["btcusdt@depth@100ms", "btcusdt@trade"])
    assert len(feed.next_frames(1234)) == 1234
    until = feed.now_us + 2_000_000
    frames = feed.next_frames(1_000_000, until_us=until)
    assert 0 < len(frames) < 1_000_000
    assert feed.now_us < until
    depth_times = [json.loads(p)["E"] for s, p in frames if "depth" in s]
    assert max(depth_times) * 1000 < until
    assert len(feed.next_frames(1, until_us=until)) == 0


@pytest.mark.parametrize("time_unit", ["s", "ns", "MICROSECOND"])
def test_rejects_unknown_time_unit(time_unit: str) -> None:
    with pytest.raises(ValueError, match="time_unit"):
        Feed(1, UNIVERSE, time_unit=time_unit)
