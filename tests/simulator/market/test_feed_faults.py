"""Model-level faults: real sequence gaps, duplicates and reordering on one stream."""

from __future__ import annotations

import itertools
import json

import pytest

from feedhandler.simulator.market import Feed, Universe

UNIVERSE = Universe.generate(41, 60)
STREAMS = ["btcusdt@trade", "btcusdt@depth@100ms", "ethusdt@aggTrade", "ethusdt@bookTicker"]
Frames = list[tuple[str, bytes]]


def _feed() -> Feed:
    feed = Feed(41, UNIVERSE)
    feed.subscribe(STREAMS)
    return feed


def _reference(count: int) -> Frames:
    return _feed().next_frames(count)


def _of(frames: Frames, stream: str) -> list[bytes]:
    return [payload for name, payload in frames if name == stream]


def test_gap_drops_trade_ids() -> None:
    reference = _reference(4000)
    feed = _feed()
    head = feed.next_frames(1000)
    feed.inject_gap("btcusdt@trade", n=3)
    frames = head + feed.next_frames(2997)
    expected = _of(reference, "btcusdt@trade")
    got = _of(frames, "btcusdt@trade")
    skip = len(_of(head, "btcusdt@trade"))
    assert got[:skip] == expected[:skip]
    assert got[skip:] == expected[skip + 3 : len(got) + 3]
    ids = [json.loads(payload)["t"] for payload in got[skip - 1 : skip + 1]]
    assert ids[1] == ids[0] + 4  # three trade ids never delivered
    # other streams untouched
    assert (
        _of(frames, "ethusdt@aggTrade")
        == _of(reference, "ethusdt@aggTrade")[: len(_of(frames, "ethusdt@aggTrade"))]
    )


def test_depth_gap_breaks_u_continuity() -> None:
    feed = _feed()
    before = [json.loads(p) for p in _of(feed.next_frames(1000), "btcusdt@depth@100ms")]
    feed.inject_gap("btcusdt@depth@100ms")
    after = [json.loads(p) for p in _of(feed.next_frames(1000), "btcusdt@depth@100ms")]
    assert after[0]["U"] > before[-1]["u"] + 1
    assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(after))


def test_duplicate_repeats_one_frame() -> None:
    reference = _of(_reference(3000), "ethusdt@aggTrade")
    feed = _feed()
    head = _of(feed.next_frames(500), "ethusdt@aggTrade")
    feed.inject_duplicate("ethusdt@aggTrade")
    got = head + _of(feed.next_frames(2501), "ethusdt@aggTrade")
    n = len(head)
    assert got[n] == got[n + 1] == reference[n]
    assert got[: n + 1] + got[n + 2 :] == reference[: len(got) - 1]


def test_reorder_swaps_the_next_two_frames() -> None:
    reference = _of(_reference(3000), "ethusdt@bookTicker")
    feed = _feed()
    head = _of(feed.next_frames(500), "ethusdt@bookTicker")
    feed.inject_reorder("ethusdt@bookTicker")
    got = head + _of(feed.next_frames(2500), "ethusdt@bookTicker")
    n = len(head)
    assert (got[n], got[n + 1]) == (reference[n + 1], reference[n])
    assert json.loads(got[n])["u"] > json.loads(got[n + 1])["u"]  # ids arrive out of order
    assert got[n + 2 :] == reference[n + 2 : len(got)]


def test_reorder_holds_across_batches() -> None:
    feed = _feed()
    feed.inject_reorder("btcusdt@depth@100ms")
    frames: Frames = []
    while len(_of(frames, "btcusdt@depth@100ms")) < 3:
        frames += feed.next_frames(1)
    first, second, third = (json.loads(p) for p in _of(frames, "btcusdt@depth@100ms")[:3])
    assert first["U"] == second["u"] + 1 and third["U"] == first["u"] + 1


def test_faults_need_a_subscribed_stream() -> None:
    feed = _feed()
    for inject in (feed.inject_gap, feed.inject_duplicate, feed.inject_reorder):
        with pytest.raises(ValueError, match="not subscribed"):
            inject("bnbusdt@trade")
    with pytest.raises(ValueError, match="at least 1"):
        feed.inject_gap("btcusdt@trade", n=0)
