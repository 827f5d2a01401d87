"""The floor: a bare confluent-kafka producer, one message per event, at the offered rate.

What any Kafka pipeline costs on this broker and host: idempotent, acks=all, linger 0, each
event produced alone (one message) at the tick it falls due, the paced simulator's tick, its
value stamped with the send time (ns, first 8 bytes; padded to a trade record's size). The
probe's receive time minus that stamp is the floor's end to end; its delivery reports give
produce -> ack, from when `produce()` returned (the handler's starts when its batch's
`produce()` calls returned). With several topics the events go round-robin over them, as a
mix goes over one topic per kind: librdkafka sends one partition per produce request and the
idempotent producer keeps at most 5 in flight, so the same rate over more partitions waits
longer.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from confluent_kafka import KafkaError, Message, Producer

from feedhandler.records import SCHEMAS

TICK_S = 0.0005  # events due are produced on this tick (a per-event sleep is not possible)
PAD = bytes(SCHEMAS["trade"].itemsize - 8)


class Floor:
    def __init__(self, bootstrap: str, topics: list[str], keys: list[bytes]) -> None:
        self.topics = topics
        self.keys = keys
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 0, "socket.nagle.disable": True, "compression.type": "none",
        })
        self.acks: list[tuple[int, int]] = []  # (send ns, ack ns)
        self.produced: dict[int, int] = {}  # send ns -> when produce() returned
        self.failed = 0
        self.queue_full = 0  # produce() calls refused for a full queue, then retried

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            return
        self.acks.append((int.from_bytes((msg.value() or b"")[:8], "little", signed=True),
                          time.time_ns()))

    def run(self, rate: float, duration_s: float, tick_s: float = TICK_S) -> int:
        """Produce `rate` events/s for `duration_s`, the events due every `tick_s` (the paced
        simulator's tick, so that both send bursts of the same size), then flush; returns the
        events sent. Delivery reports are served by a thread as they come, so acks are stamped
        on time."""
        done = threading.Event()

        def serve() -> None:
            while not done.is_set():
                self.producer.poll(0.01)

        server = threading.Thread(target=serve, name="floor-deliveries")
        server.start()
        sent, start = 0, time.perf_counter()
        try:
            while (elapsed := time.perf_counter() - start) < duration_s:
                for _ in range(int(elapsed * rate) - sent):
                    stamp = time.time_ns()
                    value = stamp.to_bytes(8, "little") + PAD
                    while True:  # librdkafka's queue full (the broker lags): wait, as a
                        try:     # producer must; the event keeps its send time
                            self.producer.produce(self.topics[sent % len(self.topics)], value,
                                                  self.keys[sent % len(self.keys)],
                                                  on_delivery=self._on_delivery)
                            break
                        except BufferError:
                            self.queue_full += 1
                            time.sleep(TICK_S)
                    self.produced[stamp] = time.time_ns()
                    sent += 1
                time.sleep(tick_s)
            self.producer.flush(30)
        finally:
            done.set()
            server.join()
        return sent

    def produce_to_ack(self, since_ns: int = 0) -> np.ndarray:
        """Of the events sent at or after `since_ns`: ack ns - produce() return ns."""
        return np.array([ack - self.produced[sent] for sent, ack in self.acks
                         if sent >= since_ns], np.int64)
