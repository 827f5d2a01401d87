"""Reading our topics: what is there now (then stop), or follow; no consumer group needed."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Generator, Sequence
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

# librdkafka errors after which waiting longer does not help
FATAL = {KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE, KafkaError._AUTHENTICATION,
         KafkaError._SSL, KafkaError._INVALID_ARG, KafkaError._FATAL}
_QUIET = logging.getLogger("feedhandler.consume.librdkafka")
_QUIET.propagate = False  # librdkafka's own log lines: reported once through ReadError instead
_QUIET.addHandler(logging.NullHandler())


class ReadError(RuntimeError):
    """The broker cannot be read: one line saying why."""


class SettingError(ReadError):
    """librdkafka refused a -X setting: a usage error."""


def read_messages(bootstrap: str, topics: Sequence[str] = (), *, pattern: str = "",
                  from_beginning: bool = True, tail: int = 0, from_time_ms: int | None = None,
                  follow: bool = False, idle_timeout: float = 10.0, timeout: float = 30.0,
                  settings: dict[str, Any] | None = None) -> Generator[Message]:
    """Messages of `topics` (and of every topic matching the regex `pattern`), in offset order
    per partition.

    Starts at the first message at or after `from_time_ms` (ms since the epoch), at the
    beginning (`from_beginning`), `tail` messages before the end, or at the end. Without
    `follow` it stops once every partition has reached the end offset it had at the start
    (messages written meanwhile may come too: a high watermark can lag what the producer had
    acknowledged, and stopping exactly there would drop those), or after `idle_timeout`
    seconds without a message; with `follow` it waits for new ones for ever (and reads topics
    of `pattern` created since).
    `settings`: librdkafka settings (SASL, TLS, ...). Raises ReadError when the broker cannot be
    reached within `timeout` seconds (sooner when librdkafka gives up on every broker).
    """
    errors: list[KafkaError] = []
    try:
        consumer = Consumer({
            "bootstrap.servers": bootstrap,
            "group.id": f"feedhandler-read-{uuid.uuid4()}",  # assigned, never committed
            "enable.auto.commit": False,
            "logger": _QUIET,
            "error_cb": errors.append,
            **(settings or {}),
        })
    except KafkaException as exc:
        raise SettingError(f"-X: bad librdkafka setting: {exc.args[0].str()}") from None
    try:
        metadata = _metadata(consumer, bootstrap, timeout, errors)
        matches = re.compile(pattern).search if pattern else None

        def wanted(names: dict[str, Any]) -> set[str]:
            return set(topics) | ({t for t in names if matches(t) and not t.startswith("__")}
                                  if matches else set())

        assignment, remaining = _assignment(consumer, metadata, sorted(wanted(metadata)),
                                            from_beginning, tail, from_time_ms, timeout)
        assigned = {(tp.topic, tp.partition) for tp in assignment}
        consumer.assign(assignment)
        idle_since = looked = time.monotonic()
        while follow or remaining:
            if follow and matches and time.monotonic() - looked > NEW_TOPICS_S:
                looked = time.monotonic()
                metadata = dict(consumer.list_topics(timeout=timeout).topics)
                assigned |= _assign_new(consumer, metadata, wanted(metadata), assigned, timeout)
            msg = consumer.poll(0.2)
            if msg is None:
                _raise_fatal(bootstrap, errors)
                if not follow and time.monotonic() - idle_since > idle_timeout:
                    return
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise ReadError(f"reading {msg.topic()} failed: {error.str()}")
            idle_since = time.monotonic()
            part = (msg.topic() or "", msg.partition() or 0)
            offset = msg.offset() or 0
            if part in remaining and offset + 1 >= remaining[part]:
                del remaining[part]
            yield msg
    finally:
        consumer.close()


# --follow with a pattern: how often topics created since the start are looked for (the
# handler creates one when a stream of a new kind or symbol is subscribed at runtime)
NEW_TOPICS_S = 5.0


def _assign_new(consumer: Consumer, metadata: dict[str, Any], names: set[str],
                assigned: set[tuple[str, int]], timeout: float) -> set[tuple[str, int]]:
    """Partitions of `names` (in `metadata`) not yet assigned, assigned from their beginning
    (all of it is new since the start); returns them."""
    new = [TopicPartition(topic, partition, consumer.get_watermark_offsets(
               TopicPartition(topic, partition), timeout=timeout)[0])
           for topic in sorted(names & set(metadata))
           for partition in sorted(metadata[topic].partitions)
           if (topic, partition) not in assigned]
    if new:
        consumer.incremental_assign(new)
    return {(tp.topic, tp.partition) for tp in new}


def _raise_fatal(bootstrap: str, errors: list[KafkaError]) -> None:
    if any(e.code() in FATAL or e.fatal() for e in errors):
        # the most telling: "Connection refused" rather than "1/1 brokers are down"
        cause = next((e for e in reversed(errors) if e.code() != KafkaError._ALL_BROKERS_DOWN),
                     errors[-1])
        raise ReadError(f"cannot read from Kafka at {bootstrap}: {cause.str()}")


def _metadata(consumer: Consumer, bootstrap: str, timeout: float,
              errors: list[KafkaError]) -> dict[str, Any]:
    """The cluster's topics, asked in short rounds so that librdkafka's errors (served by
    poll) end the wait early."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return dict(consumer.list_topics(timeout=min(1.0, timeout)).topics)
        except KafkaException:
            pass
        consumer.poll(0)
        _raise_fatal(bootstrap, errors)
        if time.monotonic() >= deadline:
            last = f": {errors[-1].str()}" if errors else ""
            raise ReadError(f"cannot read from Kafka at {bootstrap}: no answer within "
                            f"{timeout:g} s{last}")


def _assignment(consumer: Consumer, metadata: dict[str, Any], topics: list[str],
                from_beginning: bool, tail: int, from_time_ms: int | None, timeout: float,
                ) -> tuple[list[TopicPartition], dict[tuple[str, int], int]]:
    """Start offsets per partition, and the end offset of each partition not yet at its end."""
    assignment = []
    remaining = {}
    for topic in topics:
        if topic not in metadata:
            raise ReadError(f"no topic {topic!r}")
        partitions = sorted(metadata[topic].partitions)
        by_time = {}
        if from_time_ms is not None:  # the first offset at or after that time (-1: none)
            found = consumer.offsets_for_times(
                [TopicPartition(topic, p, from_time_ms) for p in partitions], timeout=timeout)
            by_time = {tp.partition: tp.offset for tp in found}
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=timeout)
            if from_time_ms is not None:
                start = by_time[partition] if by_time[partition] >= 0 else high
            elif from_beginning:
                start = low
            else:
                start = max(low, high - tail)
            assignment.append(TopicPartition(topic, partition, start))
            if start < high:
                remaining[(topic, partition)] = high
    return assignment, remaining
