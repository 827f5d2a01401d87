"""A client following the documented local-order-book procedure ends with the model's book;
bookTicker and trades agree with that book."""

from __future__ import annotations

import json

import pytest

from feedhandler.simulator.market import Feed, Universe
from feedhandler.simulator.market.fixedpoint import to_units
from tests.simulator.market.marketcheck import GapError, LocalBook

UNIVERSE = Universe.generate(8, 100)
FULL = 100_000  # deeper than any simulated book: the snapshot holds every level


@pytest.mark.parametrize(
    ("symbol", "stream"), [("BTCUSDT", "btcusdt@depth@100ms"), ("SHIBUSDT", "shibusdt@depth")]
)
def test_local_book_from_snapshot_and_diffs(symbol: str, stream: str) -> None:
    feed = Feed(8, UNIVERSE)
    feed.subscribe([stream, "ethbtc@trade"])  # unrelated frames interleave
    buffered = [json.loads(p) for s, p in feed.next_frames(3000) if s == stream]
    # REST snapshot taken while events are buffered: it runs ahead of the stream
    book = LocalBook(json.loads(feed.depth_snapshot(symbol, FULL)))
    assert buffered and book.update_id >= buffered[-1]["u"]
    assert not any(book.apply(event) for event in buffered)  # all older: dropped
    compared = 0
    for _ in range(3000):
        frames = feed.next_frames(1)  # stops right after the event that produced the frame
        if frames[0][0] != stream:
            continue
        assert book.apply(json.loads(frames[0][1]))
        last_id, bids, asks = feed.book_snapshot(symbol, FULL)
        assert book.update_id == last_id
        assert book.sorted_levels() == (bids, asks)
        compared += 1
    assert compared > 30


def test_gap_is_detected_and_a_new_snapshot_recovers() -> None:
    feed = Feed(8, UNIVERSE)
    stream = "btcusdt@depth@100ms"
    feed.subscribe([stream])
    book = LocalBook(json.loads(feed.depth_snapshot("BTCUSDT", FULL)))
    for _, payload in feed.next_frames(20):
        book.apply(json.loads(payload))
    feed.inject_gap(stream)
    with pytest.raises(GapError):
        book.apply(json.loads(feed.next_frames(1)[0][1]))
    book = LocalBook(json.loads(feed.depth_snapshot("BTCUSDT", FULL)))  # re-sync
    for _, payload in feed.next_frames(20):
        book.apply(json.loads(payload))
    assert book.sorted_levels() == feed.book_snapshot("BTCUSDT", FULL)[1:]


def test_stale_snapshot_is_rejected() -> None:
    feed = Feed(8, UNIVERSE)
    stale = json.loads(feed.depth_snapshot("BTCUSDT", FULL))
    feed.subscribe(["btcusdt@depth@100ms"])
    events = [json.loads(payload) for _, payload in feed.next_frames(30)]
    book = LocalBook(stale)
    with pytest.raises(GapError):  # events since the snapshot were never delivered
        for event in events[5:]:
            book.apply(event)


def test_book_ticker_is_the_top_of_the_book() -> None:
    feed = Feed(8, UNIVERSE)
    feed.subscribe(["solusdt@bookTicker", "xrpusdt@bookTicker"])
    last_u = {}
    for _ in range(3000):
        stream, payload = feed.next_frames(1)[0]
        ticker = json.loads(payload)
        update_id, bids, asks = feed.book_snapshot(ticker["s"], 1)
        assert ticker["u"] == update_id > last_u.get(stream, 0)
        assert (to_units(ticker["b"]), to_units(ticker["B"])) == bids[0]
        assert (to_units(ticker["a"]), to_units(ticker["A"])) == asks[0]
        last_u[stream] = update_id


def test_trades_happen_at_the_touch() -> None:
    feed = Feed(8, UNIVERSE)
    feed.subscribe(["bnbusdt@bookTicker", "bnbusdt@trade"])
    top: dict[str, str] = {}
    taker_buys = taker_sells = 0
    for stream, payload in feed.next_frames(30_000):
        obj = json.loads(payload)
        if stream.endswith("bookTicker"):
            top = obj
            continue
        price = to_units(obj["p"])
        if obj["m"]:  # buyer is maker: a seller hit the bids at or below the best bid
            assert price <= to_units(top["b"])
            taker_sells += 1
        else:
            assert price >= to_units(top["a"])
            taker_buys += 1
    assert taker_buys > 500 and taker_sells > 500
