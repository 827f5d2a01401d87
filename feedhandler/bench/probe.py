"""The latency benchmark's consumer, in its own process: stamps when each message arrives.

    python -m feedhandler.bench.probe --bootstrap HOST:PORT --topics T1,T2 --out FILE.npz
                                      [--stamped]

Reads every partition of the topics from the beginning (assigned, no consumer group, so no
rebalance delays the first message), prints `ready` once assigned, and stamps each message
with the wall clock when `poll()` or `consume()` returns it. On SIGTERM it decodes what it
received and writes, per event (frame): the message it came in, `ts_event` (-1: the kind has
none) and `ts_recv`; per message: topic, partition, offset, receive time and its records
(a run checks that every acknowledged one arrived). Events are the frames a message's
records came from (a depth event's levels count once). `--stamped`: the
values are the floor's, whose first 8 bytes are the send time in ns (no records inside).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from feedhandler.consume.decode import decode

Received = list[tuple[int, Any]]  # (receive ns, message)


def consume(bootstrap: str, topics: list[str], stop: list[bool]) -> Received:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "feedhandler-bench-probe",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100})
    metadata = consumer.list_topics(timeout=30)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING)
                     for topic in topics for p in metadata.topics[topic].partitions])
    print("ready", flush=True)
    received: Received = []
    while not stop[0]:
        # poll() returns at the first message; consume() with a timeout would wait for a
        # full batch. Then take, without waiting, what arrived with it.
        first = consumer.poll(0.05)
        if first is None:
            continue
        now = time.time_ns()
        if first.error() is None:
            received.append((now, first))
        # Stamped once consume() returned: a message it drained may have arrived while this
        # process was descheduled after the first's stamp; late by at most the call, never
        # early (an early stamp made some of the floor's end to end negative).
        more = consumer.consume(10_000, 0)
        now = time.time_ns()
        received += [(now, m) for m in more if m.error() is None]
    consumer.close()
    return received


def tabulate(received: Received, stamped: bool) -> dict[str, np.ndarray]:
    """The arrays described in the module docstring."""
    topics: dict[str, int] = {}
    messages: list[tuple[int, int, int, int, int]] = []
    events: list[np.ndarray] = []
    for i, (now, message) in enumerate(received):
        topic = topics.setdefault(message.topic(), len(topics))
        if stamped:
            messages.append((topic, message.partition(), message.offset(), now, 1))
            sent = np.frombuffer(message.value(), np.int64, 1)
            events.append(np.stack([[i], sent, [-1]], axis=1))
            continue
        records = decode(message)
        messages.append((topic, message.partition(), message.offset(), now, len(records)))
        ts_recv, first = np.unique(records["ts_recv"], return_index=True)
        ts_event = (records["ts_event"][first] if "ts_event" in (records.dtype.names or ())
                    else np.full(len(first), -1))
        events.append(np.stack([np.full(len(first), i), ts_event, ts_recv], axis=1))
    table = np.concatenate(events) if events else np.zeros((0, 3), np.int64)
    return {"topics": np.array(list(topics), dtype=str),
            "messages": np.array(messages, np.int64).reshape(-1, 5),
            "events": table.astype(np.int64)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topics", required=True, help="comma-separated")
    parser.add_argument("--out", required=True, help=".npz file to write at SIGTERM")
    parser.add_argument("--stamped", action="store_true", help="floor values: send ns first")
    args = parser.parse_args(argv)
    stop = [False]

    def on_term(_sig: int, _frame: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_term)
    received = consume(args.bootstrap, args.topics.split(","), stop)
    np.savez(args.out, **tabulate(received, args.stamped))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
