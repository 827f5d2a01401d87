"""The goal: books rebuilt from Kafka alone equal the simulator's true books. Simulator ->
handler (snapshots on) -> the real broker -> BookBuilder, and `feedhandler consume --book`."""

from __future__ import annotations

import argparse
import asyncio
import io
import uuid

import orjson
import pytest

from feedhandler.app.handler import Handler
from feedhandler.book import BookBuilder
from feedhandler.book import view as book_view
from feedhandler.config import load_config
from feedhandler.consume.reader import read_messages
from feedhandler.simulator.testing import SimulatorServer
from tests.book.test_builder import pairs

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def test_books_from_kafka_alone_equal_the_true_books(kafka_bootstrap: str) -> None:
    exchange = f"books{uuid.uuid4().hex[:8]}"
    stream = "btcusdt@depth@100ms"  # one symbol: see test_sync for why
    async with SimulatorServer(rate=200.0) as sim:
        config = load_config(None, {
            "url": sim.url, "streams": stream, "sink": "kafka",
            "kafka.bootstrap": kafka_bootstrap, "kafka.exchange": exchange,
            "batch.linger_ms": 1.0, "book.snapshots": True, "book.snapshot_limit": 1000,
            "wsapi.url": sim.url + "/ws-api/v3",
        }, environ={})
        handler = Handler(config)
        sync = handler.book_sync
        assert sync is not None
        task = asyncio.create_task(handler.run())
        async with asyncio.timeout(30):
            while sync.snapshots < 1:
                await asyncio.sleep(0.01)
            sim.faults.gap(stream=stream, n=2)
            sim.faults.malformed()
            while sync.snapshots < 2 or sync.pending():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            sim.market.stop()
            frames = -1
            while frames != sum(s.frames for s in handler.shards):
                frames = sum(s.frames for s in handler.shards)
                await asyncio.sleep(0.2)
        handler.stop()
        await task
        last, bids, asks = sim.market.true_books(["BTCUSDT"])["BTCUSDT"]

    topic = f"{exchange}.spot.depth"
    builder = BookBuilder()
    for message in read_messages(kafka_bootstrap, [topic], idle_timeout=5.0):
        builder.apply_message(message)  # the depth topic: data messages only
    assert builder.valid("BTCUSDT"), builder.why_not("BTCUSDT")
    assert builder.status("BTCUSDT")["update_id"] == last
    got_bids, got_asks = builder.levels("BTCUSDT")
    assert pairs(got_bids) == bids and pairs(got_asks) == asks
    assert builder.status("BTCUSDT")["gaps"] == 1

    events = [orjson.loads(m.value() or b"") for m in read_messages(
        kafka_bootstrap, [f"{exchange}.spot.control"], idle_timeout=5.0)]
    marks = [(e["type"], e.get("reason")) for e in events if e["type"].startswith("book_")]
    assert marks == [("book_resync", "start"), ("book_snapshot", None),
                     ("book_resync", "gap"), ("book_snapshot", None)]

    out = io.StringIO()
    args = argparse.Namespace(book="btcusdt", depth=3, kafka_bootstrap=kafka_bootstrap,
                              topic_template="{exchange}.{market}.{kind}", exchange=exchange,
                              market="spot", follow=False, idle_timeout=5.0, format="jsonl",
                              timeout=10.0, settings=[])
    assert book_view.run(args, out) == 0
    shown = orjson.loads(out.getvalue())
    assert shown["valid"] and shown["update_id"] == last and len(shown["bids"]) == 3
    assert shown["bids"][0][0] == str(builder.top("BTCUSDT", 1).bids[0][0])
