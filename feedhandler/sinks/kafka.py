"""Kafka sink: one message per (kind, symbol) batch, keyed by symbol, never dropped.

librdkafka's queue absorbs bursts; when it is full (`BufferError`) messages wait in a bounded
backlog that `service()` drains, and `backlog_bytes()` tells the handler to stop reading from
the exchange until Kafka catches up. Nothing here blocks the event loop.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from confluent_kafka import KafkaError, Message, Producer

from feedhandler.contract import (
    DEFAULT_TOPIC_TEMPLATE,
    H_FIELD,
    H_INSTANCE,
    H_REASON,
    H_STREAM,
    batch_headers,
    encode_json,
    topic_for,
)
from feedhandler.records import SCHEMAS

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]


@dataclass
class KafkaSinkConfig:
    bootstrap: str
    topic_template: str = DEFAULT_TOPIC_TEMPLATE
    exchange: str = "binance"
    market: str = "spot"
    encoding: str = "records"  # records | json
    instance: str = field(default_factory=socket.gethostname)
    dead_letter_topic: str = "{exchange}.{market}.deadletter"
    control_topic: str = "{exchange}.{market}.control"
    backlog_limit_bytes: int = 256 << 20
    producer: dict[str, Any] = field(default_factory=dict)  # librdkafka overrides

    def producer_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 5,
            "batch.size": 1 << 20,
            "message.max.bytes": 8 << 20,
            "queue.buffering.max.kbytes": 256 << 10,
            "client.id": f"feedhandler-{self.instance}",
            **self.producer,
        }


@dataclass
class DeliveryStats:
    produced: int = 0  # messages handed to librdkafka
    delivered: int = 0  # acknowledged by the broker
    failed: int = 0
    records_delivered: int = 0
    backlog_peak_bytes: int = 0


class KafkaSink:
    def __init__(self, config: KafkaSinkConfig) -> None:
        self.config = config
        self.stats = DeliveryStats()
        self._producer = Producer(config.producer_config(), logger=log)
        self._backlog: deque[tuple[str, bytes, bytes, Headers, int]] = deque()
        self._backlog_bytes = 0
        fmt = {"exchange": config.exchange, "market": config.market}
        self._dead_letter_topic = config.dead_letter_topic.format(**fmt)
        self._control_topic = config.control_topic.format(**fmt)

    # --- Sink -------------------------------------------------------------------------------
    def publish_batch(self, kind: str, records: np.ndarray, epoch: int) -> None:
        schema = SCHEMAS[kind]
        symbols = records["symbol"]
        # Stable grouping keeps each symbol's records in exchange order.
        order = np.argsort(symbols, kind="stable")
        grouped = records[order]
        keys, starts = np.unique(symbols[order], return_index=True)
        bounds = [*starts.tolist(), len(grouped)]
        for i, key in enumerate(keys):
            part = grouped[bounds[i] : bounds[i + 1]]
            symbol = bytes(key).decode()
            value = part.tobytes() if self.config.encoding == "records" else encode_json(schema, part)
            headers = batch_headers(schema, part, self.config.encoding, self.config.instance, epoch)
            topic = topic_for(kind, symbol, self.config.topic_template, self.config.exchange,
                              self.config.market)
            self._produce(topic, bytes(key), value, headers, len(part))

    def publish_dead_letter(self, reason: str, field: str, stream: str, frame: bytes) -> None:
        headers = [(H_REASON, reason.encode()), (H_FIELD, field.encode()),
                   (H_STREAM, stream.encode()), (H_INSTANCE, self.config.instance.encode())]
        self._produce(self._dead_letter_topic, stream.encode(), frame, headers, 0)

    def publish_control(self, event: dict[str, Any]) -> None:
        event = {"instance": self.config.instance, **event}
        self._produce(self._control_topic, str(event.get("type", "")).encode(),
                      orjson.dumps(event), [(H_INSTANCE, self.config.instance.encode())], 0)

    def service(self) -> None:
        self._producer.poll(0)
        while self._backlog:
            topic, key, value, headers, count = self._backlog[0]
            if not self._try_produce(topic, key, value, headers, count):
                return
            self._backlog.popleft()
            self._backlog_bytes -= len(value)

    def backlog_bytes(self) -> int:
        return self._backlog_bytes

    def queued(self) -> int:
        """Messages not yet acknowledged: in librdkafka plus in our backlog."""
        return len(self._producer) + len(self._backlog)

    def close(self, timeout: float) -> int:
        import time

        deadline = time.monotonic() + timeout
        while self._backlog and time.monotonic() < deadline:
            self.service()
            self._producer.poll(0.05)
        self._producer.flush(max(0.0, deadline - time.monotonic()))
        remaining = self.queued()
        if remaining:
            log.error("kafka: %d messages undelivered at shutdown", remaining)
        return remaining

    # --- internals ---------------------------------------------------------------------------
    def _produce(self, topic: str, key: bytes, value: bytes, headers: Headers, count: int) -> None:
        if self._backlog or not self._try_produce(topic, key, value, headers, count):
            self._backlog.append((topic, key, value, headers, count))
            self._backlog_bytes += len(value)
            self.stats.backlog_peak_bytes = max(self.stats.backlog_peak_bytes, self._backlog_bytes)

    def _try_produce(self, topic: str, key: bytes, value: bytes, headers: Headers,
                     count: int) -> bool:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is None:
                self.stats.delivered += 1
                self.stats.records_delivered += count
            else:
                self.stats.failed += 1
                log.error("kafka: delivery to %s failed: %s", topic, err)

        try:
            self._producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
        except BufferError:
            self._producer.poll(0)
            return False
        self.stats.produced += 1
        return True
