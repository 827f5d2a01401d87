"""`universe:` into real Kafka: the plan starts empty, so every data topic (one per stream
here) is created as exchangeInfo adds streams, including a symbol listed at runtime; the
`universe` and `subscribed` events are on the control topic."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from feedhandler import decode
from feedhandler.app.handler import Handler
from feedhandler.config import load_config
from feedhandler.consume.reader import read_messages
from feedhandler.simulator.testing import SimulatorServer
from tests.app.test_health import free_port, running, until
from tests.app.uvloop_run import sync

pytestmark = pytest.mark.integration

LISTED = "LINKUSDT"


def test_universe_streams_get_their_topics_and_events_reach_kafka(kafka_bootstrap: str) -> None:
    market = f"univ{uuid.uuid4().hex[:8]}"

    @sync
    async def run() -> None:
        async with SimulatorServer(symbols=30, rate=2000.0) as sim:
            assert sim.api is not None
            sim.api.set_status(LISTED, "BREAK")  # announced, not trading yet
            handler = Handler(load_config(None, {
                "url": sim.url, "kafka.bootstrap": kafka_bootstrap, "kafka.market": market,
                "kafka.partitions": 1, "kafka.replication_factor": 1,
                "kafka.topic_template": "{exchange}.{market}.{kind}.{symbol}",
                "wsapi.url": sim.url + "/ws-api/v3", "universe.kinds": "trade",
                "universe.symbols": "BTCUSDT,ETHUSDT,LINKUSDT", "universe.refresh_s": 0.3,
                "health_port": free_port(), "health_host": "127.0.0.1"}, environ={}))
            async with running(handler):
                tracker = handler.universe
                assert tracker is not None
                await until(lambda: tracker.symbols == ["BTCUSDT", "ETHUSDT"])
                sim.api.set_status(LISTED, "TRADING")
                await until(lambda: LISTED in tracker.symbols)
                await asyncio.sleep(2.0)  # its trades flow (LINKUSDT: ~300 events/s)

    run()
    topic = f"binance.{market}.trade.linkusdt"  # created when the listing added the stream
    tables = [decode(m) for m in read_messages(kafka_bootstrap, [topic], idle_timeout=5.0)]
    assert tables and all((t["symbol"] == LISTED.encode()).all() for t in tables)
    events = [orjson.loads(m.value()) for m in read_messages(
        kafka_bootstrap, [f"binance.{market}.control"], idle_timeout=5.0)]
    assert [(e["listed"], e["delisted"]) for e in events if e["type"] == "universe"] == \
        [(["BTCUSDT", "ETHUSDT"], []), ([LISTED], [])]
    assert sorted(s for e in events if e["type"] == "subscribed" for s in e["streams"]) == \
        ["btcusdt@trade", "ethusdt@trade", "linkusdt@trade"]
