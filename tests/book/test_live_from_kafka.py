"""The handler's own books (`book.publish`) end to end: simulator -> handler -> the real broker.
Every `book` record on Kafka equals the true top-N at its update id (a Python book from the
simulator's depth stream and snapshot, as published), the last one the simulator's true book;
bookTickers agree with the books on a clean run, and an injected disagreement is counted and
evented."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import orjson
import pytest

from feedhandler.app.handler import Handler
from feedhandler.app.metrics import exposition
from feedhandler.config import load_config
from feedhandler.consume.decode import decode
from feedhandler.consume.reader import read_messages
from feedhandler.records import SCHEMAS, wide_to_int
from feedhandler.simulator.testing import SimulatorServer
from tests.book.test_live import ReferenceBook, record_levels

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOP_N = 10
SNAPSHOT_FLAG, FIRST, LAST = 4, 1, 2


def true_tops(depth_rows: np.ndarray) -> dict[int, tuple[list[tuple[int, int]], ...]]:
    """update id -> (bids, asks) top-N after each event, from the depth topic's records of one
    clean run (one snapshot; the diffs it covers dropped, §5)."""
    snapshot = depth_rows[(depth_rows["flags"] & SNAPSHOT_FLAG) != 0]
    last = int(snapshot["last_update_id"][0])
    sides = [{int(r["price"]): wide_to_int(r["qty"]) for r in snapshot[snapshot["side"] == s]}
             for s in (0, 1)]
    book = ReferenceBook(*sides)
    tops = {last: (book.top(0, TOP_N), book.top(1, TOP_N))}
    diffs = depth_rows[(depth_rows["flags"] & SNAPSHOT_FLAG) == 0]
    for row in diffs[diffs["last_update_id"] > last]:
        if row["side"] < 2:
            book.apply(int(row["side"]), int(row["price"]), wide_to_int(row["qty"]))
        if row["flags"] & LAST:
            tops[int(row["last_update_id"])] = (book.top(0, TOP_N), book.top(1, TOP_N))
    return tops


async def test_book_records_on_kafka_are_the_true_top_n(kafka_bootstrap: str) -> None:
    exchange = f"live{uuid.uuid4().hex[:8]}"
    async with SimulatorServer(rate=200.0) as sim:
        config = load_config(None, {
            "url": sim.url, "streams": "btcusdt@depth@100ms,btcusdt@bookTicker",
            "sink": "kafka", "kafka.bootstrap": kafka_bootstrap, "kafka.exchange": exchange,
            "batch.linger_ms": 1.0, "book.snapshots": True, "book.snapshot_limit": 1000,
            "book.publish": True, "book.top_n": TOP_N, "book.interval_ms": 50,
            "book.alert_interval_s": 0.1, "wsapi.url": sim.url + "/ws-api/v3",
        }, environ={})
        handler = Handler(config)
        books = handler.books
        assert books is not None
        task = asyncio.create_task(handler.run())
        async with asyncio.timeout(30):
            while books.records < 20 or books.summary()["tickers_compared"] < 10:
                await asyncio.sleep(0.05)
            clean = books.summary()
            assert clean["ticker_mismatches"] == 0 and clean["crossed"] == 0
            # a bookTicker at the book's update id with one lot more at the best bid
            status = books.books.status("BTCUSDT")
            bid = books.books.levels("BTCUSDT", 0, 1)[0]
            ask = books.books.levels("BTCUSDT", 1, 1)[0]
            injected = np.zeros(1, SCHEMAS["bookTicker"].dtype)
            injected["symbol"], injected["update_id"] = b"BTCUSDT", status["update_id"]
            injected["bid_price"], injected["ask_price"] = bid["price"], ask["price"]
            injected["bid_qty"] = (int(bid["qty"]["lo"]) + 1, bid["qty"]["hi"])
            injected["ask_qty"] = ask["qty"]
            books.on_book_ticker(injected)
            await asyncio.sleep(0.3)
            sim.market.stop()
            frames = -1
            while frames != sum(s.frames for s in handler.shards):
                frames = sum(s.frames for s in handler.shards)
                await asyncio.sleep(0.2)
        metrics = exposition(handler)
        handler.stop()
        await task
        last, true_bids, true_asks = sim.market.true_books(["BTCUSDT"])["BTCUSDT"]

    assert books.summary()["ticker_mismatches"] == 1
    assert 'feedhandler_book_tickers_total{result="mismatch"} 1.0' in metrics
    assert "feedhandler_books_valid 1.0" in metrics

    def topic_records(kind: str) -> np.ndarray:
        parts = [decode(m) for m in read_messages(
            kafka_bootstrap, [f"{exchange}.spot.{kind}"], idle_timeout=5.0)]
        return np.concatenate(parts)

    depth, book = topic_records("depth"), topic_records("book")
    tops = true_tops(depth)
    assert len(book) >= 20
    assert (np.diff(book["update_id"]) > 0).all()  # one record per change, in order
    for row in book:
        bids, asks = tops[int(row["update_id"])]  # at a depth event's end, or the snapshot
        assert record_levels(row, "bid") == bids and record_levels(row, "ask") == asks
    # the last record: the book after the last depth event; the simulator's true book, when
    # no engine event came after its last depth push (the pushes stop with the market)
    final = book[-1]
    assert final["update_id"] == depth["last_update_id"].max()
    if final["update_id"] == last:
        assert record_levels(final, "bid") == true_bids[:TOP_N]
        assert record_levels(final, "ask") == true_asks[:TOP_N]

    events = [orjson.loads(m.value() or b"") for m in read_messages(
        kafka_bootstrap, [f"{exchange}.spot.control"], idle_timeout=5.0)]
    (mismatch,) = [e for e in events if e["type"] == "book_ticker_mismatch"]
    assert mismatch["symbol"] == "BTCUSDT" and mismatch["count"] == 1
    assert mismatch["update_id"] == status["update_id"]
    assert mismatch["ticker"][1] != mismatch["book"][1]  # the bid quantity
    assert not [e for e in events if e["type"] == "book_crossed"]
