"""Reading our topics: what is there now (then stop), or follow; no consumer group needed."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Generator, Sequence
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaError, Message, TopicPartition


def read_messages(bootstrap: str, topics: Sequence[str] = (), *, pattern: str = "",
                  from_beginning: bool = True, tail: int = 0, follow: bool = False,
                  idle_timeout: float = 10.0, timeout: float = 30.0,
                  settings: dict[str, Any] | None = None) -> Generator[Message]:
    """Messages of `topics` (and of every topic matching the regex `pattern`), in offset order
    per partition.

    Starts at the beginning (`from_beginning`), `tail` messages before the end, or at the end.
    Without `follow` it stops once it reaches the end offsets seen at the start, or after
    `idle_timeout` seconds without a message; with `follow` it waits for new ones for ever.
    """
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"feedhandler-read-{uuid.uuid4()}",  # offsets are assigned, never committed
        "enable.auto.commit": False,
        **(settings or {}),
    })
    try:
        names = set(topics)
        if pattern:
            matches = re.compile(pattern).search
            listed = consumer.list_topics(timeout=timeout).topics
            names |= {t for t in listed if matches(t) and not t.startswith("__")}
        assignment, remaining = _assignment(consumer, sorted(names), from_beginning, tail,
                                            timeout)
        consumer.assign(assignment)
        idle_since = time.monotonic()
        while follow or remaining:
            msg = consumer.poll(0.2)
            if msg is None:
                if not follow and time.monotonic() - idle_since > idle_timeout:
                    return
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"reading {msg.topic()} failed: {error}")
            idle_since = time.monotonic()
            part = (msg.topic() or "", msg.partition() or 0)
            offset = msg.offset() or 0
            if part in remaining and offset + 1 >= remaining[part]:
                del remaining[part]
            yield msg
    finally:
        consumer.close()


def _assignment(consumer: Consumer, topics: list[str], from_beginning: bool, tail: int,
                timeout: float) -> tuple[list[TopicPartition], dict[tuple[str, int], int]]:
    """Start offsets per partition, and the end offset of each partition not yet at its end."""
    metadata = consumer.list_topics(timeout=timeout).topics
    assignment = []
    remaining = {}
    for topic in topics:
        if topic not in metadata:
            raise RuntimeError(f"no topic {topic!r}")
        for partition in sorted(metadata[topic].partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=timeout)
            start = low if from_beginning else max(low, high - tail) if tail else OFFSET_END
            assignment.append(TopicPartition(topic, partition, start))
            if start != OFFSET_END and start < high:
                remaining[(topic, partition)] = high
    return assignment, remaining
