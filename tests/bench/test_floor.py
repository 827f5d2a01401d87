"""The bare-producer floor: a full librdkafka queue makes it wait, never fail the run."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from feedhandler.bench.floor import Floor
from feedhandler.config import load_config
from feedhandler.sinks.topics import ensure_topics

pytestmark = [pytest.mark.integration]


def test_a_full_queue_waits_and_every_event_is_acked(kafka_bootstrap: str) -> None:
    topic = f"floor{uuid.uuid4().hex[:8]}"
    ensure_topics(load_config(None, {"kafka.bootstrap": kafka_bootstrap}, environ={}).kafka,
                  [topic])
    floor = Floor(kafka_bootstrap, [topic], [b"BTCUSDT"])
    floor.producer = Producer({"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True,
                               "acks": "all", "queue.buffering.max.messages": 50})
    sent = floor.run(rate=20_000, duration_s=0.5)
    assert sent > 50 and floor.queue_full > 0 and floor.failed == 0
    assert len(floor.acks) == sent
    latencies = floor.produce_to_ack()  # from each produce() call's return
    assert len(latencies) == sent and latencies.min() >= 0
