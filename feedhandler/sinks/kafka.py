"""Kafka sink: one message per (kind, symbol) run of a batch (or of kafka.hold_ms), keyed by
symbol, never dropped.

A decoder batch holds one kind and many symbols in exchange order; each row is copied in C++
(with kafka.encoding compact, its bytes before the symbol, which one header then carries)
into its symbol's message (each symbol keeps its order), one per symbol and batch (several
when it exceeds kafka.max_message_bytes), or with kafka.hold_ms (the throughput profile's:
5) one per symbol over the batches of up to that many milliseconds, until the handler has
caught up with the exchange (caught_up()). Headers and librdkafka's produce run in one C
loop (feedhandler/_ext/publish.pyx, through librdkafka's C API: feedhandler/_ext/producer.pyx):
Python runs per batch, not per message.

librdkafka's queue absorbs bursts and broker outages (messages never time out); when it is full
(`BufferError`) messages wait in our own backlog, which `service()` drains in order, and
`backlog_bytes()` tells the handler to stop reading from the exchange until Kafka catches up.
Nothing here blocks the event loop. A message the broker rejects for good is counted, logged
and reported on the control topic with its record count.

Held records (kafka.hold_ms) count as produced once their message is handed to librdkafka,
until then as held (summary()'s records_held); close() sends them first.

Delivery reports are served in C: a failure calls back into Python (counted, logged,
reported). An acknowledgement (reported only with kafka.ack_latency) has its produce -> ack
latency kept and handed over per kind once per poll. Acknowledged = produced - failed - still
in librdkafka, exact once the producer is flushed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from typing import Any

import numpy as np
import orjson
from confluent_kafka import KafkaError, KafkaException

from feedhandler._ext.producer import Producer
from feedhandler._ext.publish import (
    Counts,
    MessageBatch,
    Outlet,
    RecordLayout,
    group_rows,
    produce_messages,
    produce_records,
)
from feedhandler.config import MESSAGE_OVERHEAD, KafkaConfig
from feedhandler.contract import (
    ALL_SYMBOLS,
    BINARY_ENCODINGS,
    H_EVENT,
    H_FIELD,
    H_INSTANCE,
    H_REASON,
    H_SHA256,
    H_SIZE,
    H_STREAM,
    SEQUENCE_FIELDS,
    Frames,
    data_topics,
    fixed_headers,
    padding,
    raw_headers,
    topic_for,
    wire_records,
)
from feedhandler.contract.json_lines import encode_json
from feedhandler.logs import Throttle
from feedhandler.records import SCHEMAS, Schema, compact_row
from feedhandler.sinks.topics import ensure_topics, kafka_client

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
# (layout, symbol -> topic, new_topic(symbol), fixed headers, most records per message)
RecordsPlan = tuple[RecordLayout, dict[bytes, str], Callable[[bytes], str],
                   tuple[tuple[str, bytes], ...], int]
STATISTICS_INTERVAL_MS = 5_000
# What a backlog entry holds besides its value (its tuple, key, headers list and tuples): ~1 KB
# with a data message's 8-9 headers (sys.getsizeof), counted against kafka.backlog_limit_mb so
# that small values (jsonrecord) cannot hold several times the limit.
BACKLOG_ENTRY_BYTES = 1024
# librdkafka's latency windows (µs), per broker: in its queue, in the socket buffer, to the ack.
LATENCIES = {"queue": "int_latency", "send": "outbuf_latency", "ack": "rtt"}
# librdkafka's broker thread polls without sleeping while a partition's next batch is ready and
# waits for the request in flight: its idempotent producer sends a partition's next request only
# once fewer than 5 of its messages are in flight (librdkafka pull request #4989), so a batch
# that reaches linger.ms, or fills batch.size, before the acknowledgement makes it spin (3-10x
# its usual CPU against a slow broker: bench/BENCHMARKS.md, Kafka path, ninth and twenty-fifth
# sessions). Its statistics show it: 3-4 poll-loop wake-ups per request sent while the thread
# sleeps between requests, tens to thousands while it spins. Said in the log at most every
# SPIN_WARNING_S.
SPIN_WAKEUPS_PER_REQUEST = 10
SPIN_WAKEUPS_PER_S = 1_000
SPIN_WARNING_S = 600.0


# librdkafka settings per `kafka.profile`; kafka.compression / kafka.linger_ms and
# kafka.producer, when set, win. The decoder already hands batches over at the end of each read
# burst (big under load, one frame when idle), so waiting again in librdkafka only adds latency:
# - latency: send at once (linger 0) without Nagle's delay or compression. Under load
#   messages still coalesce while the idempotent producer's 5 requests are in flight.
# - throughput: wait up to 5 ms to fill bigger, lz4-compressed requests: fewer requests, less
#   CPU per record for the handler and the broker, at milliseconds of latency.
PROFILES: dict[str, dict[str, Any]] = {
    "latency": {"linger.ms": 0, "compression.type": "none", "socket.nagle.disable": True},
    "throughput": {"linger.ms": 5, "compression.type": "lz4"},
}


# nice of librdkafka's threads per profile (kafka.thread_nice wins); why, and what it costs:
# the contract's Delivery section (feedhandler/contract/docs.py, README "Delivery").
THREAD_NICE = {"latency": 10, "throughput": 0}
# kafka.hold_ms per profile (kafka.hold_ms wins). Records are held only while the handler is
# behind the exchange (Handler._after_burst calls caught_up() once it is not), so holding costs
# latency only under load, where a third as many messages (8-9 headers each, librdkafka's
# bookkeeping and frees) lowered the handler's CPU per record (bench/BENCHMARKS.md, Kafka
# path, thirtieth session). Under load the latency profile still sends at once.
HOLD_MS = {"latency": 0.0, "throughput": 5.0}
PURGED = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)  # what close() ran out of time for


def producer_config(config: KafkaConfig, instance: str) -> dict[str, Any]:
    chosen = {"compression.type": config.compression or None,
              "linger.ms": None if config.linger_ms < 0 else config.linger_ms}
    return {
        **PROFILES[config.profile],
        **{key: value for key, value in chosen.items() if value is not None},
        "bootstrap.servers": config.bootstrap,
        "client.id": f"feedhandler-{instance}",
        "enable.idempotence": True,  # broker-side de-duplication: retries never duplicate/reorder
        "acks": "all",
        "batch.size": config.batch_bytes,
        "message.max.bytes": config.max_message_bytes + MESSAGE_OVERHEAD,
        # successes too (kafka.ack_latency): each ack feeds the produce -> ack histogram, a
        # Python call per Kafka message (a (kind, symbol)'s run of a batch), never per record
        "delivery.report.only.error": not config.ack_latency,
        "statistics.interval.ms": STATISTICS_INTERVAL_MS,
        "queue.buffering.max.kbytes": config.queue_mb << 10,
        "queue.buffering.max.messages": 10_000_000,  # the byte bound is the one that matters
        # An outage is backpressure, not loss: retry for as long as the broker is away.
        "message.timeout.ms": 0,
        **config.producer,
    }


def check_producer(config: KafkaConfig, instance: str) -> None:
    """What librdkafka says of the producer settings (an unknown name, a bad value: ConfigError
    with its words), with nothing connected: `config check` runs it."""
    settings = {**producer_config(config, instance), "bootstrap.servers": ""}
    kafka_client(Producer, settings, logger=logging.getLogger("feedhandler.config.check"))


def _threads() -> set[int]:
    """This process's thread ids (none where there is no /proc)."""
    try:
        return {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _lower_priority(threads: set[int], nice: int) -> None:
    """Each of `threads` at `nice` at least (raising a nice value needs no privilege)."""
    at = 0
    for tid in threads:
        with suppress(OSError):  # a thread that ended meanwhile; a sandbox that forbids it
            if os.getpriority(os.PRIO_PROCESS, tid) < nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
            at += os.getpriority(os.PRIO_PROCESS, tid) >= nice
    if at:
        log.info("kafka: librdkafka's %d threads at nice %d or above", at, nice)
    else:
        log.warning("kafka: librdkafka's threads could not be set to nice %d (kafka.thread_nice)",
                    nice)


@dataclass
class DeliveryStats:
    produced: int = 0  # messages handed to librdkafka (those it refused at once too)
    failed: int = 0  # rejected for good, or purged unsent at shutdown
    records_produced: int = 0
    records_failed: int = 0
    buffer_full: int = 0  # produce() found librdkafka's queue full (backpressure)
    backlog_peak_bytes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency_us: dict[str, dict[str, int]] = field(default_factory=dict)  # see LATENCIES
    wakeups_per_request: float = 0.0  # worst broker that sent, last statistics window (SPIN_*)

    def summary(self, in_flight: int) -> dict[str, Any]:
        """`in_flight`: messages librdkafka still holds; acknowledged counts exclude them
        (records: exact when in_flight is 0, i.e. after close())."""
        return {
            "produced": self.produced, "delivered": self.produced - self.failed - in_flight,
            "failed": self.failed, "in_flight": in_flight,
            "records_produced": self.records_produced,
            "records_delivered": self.records_produced - self.records_failed,
            "records_failed": self.records_failed,
            "buffer_full": self.buffer_full, "backlog_peak_bytes": self.backlog_peak_bytes,
            "errors": dict(self.errors), "latency_us": self.latency_us,
            "wakeups_per_request": self.wakeups_per_request,
        }


class KafkaSink:
    def __init__(self, config: KafkaConfig, instance: str, time_unit: str = "ms",
                 topics: Iterable[str] = (),
                 on_ack_latency: Callable[[str, np.ndarray], None] | None = None,
                 derived: Collection[str] = ()) -> None:
        """`topics`: the data topics to create or check on start (control and dead-letter
        topics are added); `derived`: the handler-made kinds whose topics streams added at
        runtime need too. `time_unit` is the connections' (raw messages carry it).
        `on_ack_latency(kind, seconds)`: produce -> ack of each acknowledged data message, per
        kind as an array, after each poll that served delivery reports."""
        self.config = config
        self.instance = instance
        self.time_unit = time_unit
        self.derived = derived
        self.stats = DeliveryStats()
        names = {"exchange": config.exchange, "market": config.market}
        self.control_topic = config.control_topic.format(**names)
        self.deadletter_topic = config.deadletter_topic.format(**names)
        ensure_topics(config, [*topics, self.control_topic, self.deadletter_topic],
                      wait_s=config.start_wait_s)
        # librdkafka's threads are the ones that came with the producer (sinks are made before
        # the handler starts threads of its own); those they start later inherit the priority
        nice = THREAD_NICE[config.profile] if config.thread_nice < 0 else config.thread_nice
        before = _threads() if nice else set()
        self._fatal: KafkaError | None = None
        settings = producer_config(config, instance)
        self._linger_ms = float(settings.get("linger.ms", 5))  # (librdkafka's default)
        self._batch_bytes = int(settings["batch.size"])
        self._polling: dict[str, tuple[int, int, int]] = {}  # broker -> (ts, wakeups, requests)
        self._spin_warnings = Throttle(SPIN_WARNING_S)
        self._producer = kafka_client(Producer, settings, logger=log, on_failure=self._failed,
                                      on_statistics=self._on_statistics, on_error=self._on_error)
        if nice:
            _lower_priority(_threads() - before, nice)
        self._backlog: deque[tuple[str, bytes, bytes, Headers, int]] = deque()
        self._outlet = Outlet(self._producer, self._to_backlog, self._refused)
        self._producer.acks = [] if on_ack_latency is not None else None
        self._backlog_bytes = 0
        self._topics: dict[str, dict[bytes, str]] = {}  # kind -> symbol -> topic
        self._plans: dict[str, RecordsPlan] = {}  # kind -> its produce_records arguments
        hold_ms = HOLD_MS[config.profile] if config.hold_ms < 0 else config.hold_ms
        self._hold_s = hold_ms / 1000 if config.encoding in BINARY_ENCODINGS else 0.0
        # kind -> time.monotonic() of its oldest held record (kafka.hold_ms)
        self._held: dict[str, float] = {}
        self._topic_kinds: dict[str, str] = {}  # delivery reports name only the topic
        self._on_ack_latency = on_ack_latency
        self._instance_header = (H_INSTANCE, instance.encode())
        self._closing = False
        self._failed_closing = 0  # messages failed while closing, not purged (see _undelivered)

    @property
    def on_acked(self) -> Callable[[str, int, int], None] | None:
        """Called with (topic, partition, offset) per acknowledged message (the latency
        benchmark stamps acks with it)."""
        return self._producer.on_acked

    @on_acked.setter
    def on_acked(self, callback: Callable[[str, int, int], None] | None) -> None:
        self._producer.on_acked = callback

    def add_streams(self, streams: Collection[str]) -> None:
        """The topics of streams added at runtime: created or checked as on start."""
        config = self.config
        ensure_topics(config, data_topics(streams, config.topic_template, config.exchange,
                                          config.market, self.derived))

    # --- Sink ------------------------------------------------------------------------------
    def publish_batch(self, kind: str, records: np.ndarray, epoch: int,
                      frames: Frames | None = None) -> None:
        if self.config.encoding == "raw" and frames is None:
            raise ValueError("the raw encoding needs the frames of each batch")
        if not len(records):
            return
        schema = SCHEMAS[kind]
        if self.config.encoding in BINARY_ENCODINGS:  # copied into messages and produced in C
            # (which zeroes the padding in the messages): the decoder's batches, which carry
            # the schema's own dtype object, go as they are
            if records.dtype is not schema.dtype or not records.flags.c_contiguous:
                records = wire_records(schema, records)
            if not self._hold_s:
                self._produce_records(schema, records, epoch)
                return
            # (a symbol's message of another epoch, another connection's, is sent first)
            if kind not in self._held:
                self._held[kind] = time.monotonic()
            layout = self._produce_records(schema, records, epoch, hold=True)
            if not layout.held:  # (all of them went in messages of max_message_bytes)
                del self._held[kind]
            elif layout.held * layout.row_bytes >= self.config.batch_bytes:
                self._release(kind)
            return
        records = wire_records(schema, records)
        if frames is not None and self.config.encoding == "raw":
            self._publish_frames(schema, records, epoch, frames)
            return
        order, bounds = group_rows(records["symbol"])
        records = records if order is None else np.take(records, order)  # runs contiguous
        if self.config.encoding == "json":
            starts, ends, values = self._json_values(schema, records, bounds)
        else:  # jsonrecord: one record per message (JSON strings escape newlines)
            starts = np.arange(len(records))
            ends, values = starts + 1, encode_json(schema, records).split(b"\n")[:-1]
        symbols = records["symbol"][bounds[:-1]].tolist()
        # the run (hence symbol) of each message
        runs = np.searchsorted(bounds, starts, side="right") - 1
        keys = [symbols[i] for i in runs.tolist()]
        self._produce_all(schema, records, None, epoch, keys, starts, ends, values)

    def publish_dead_letter(self, reason: str, field: str, stream: str, frame: bytes) -> None:
        headers = [(H_REASON, reason.encode()), (H_FIELD, field.encode()),
                   (H_STREAM, stream.encode()), self._instance_header]
        limit = self.config.max_message_bytes
        if len(frame) > limit:  # the broker would refuse it whole: keep its start, say what it was
            headers += [(H_SIZE, b"%d" % len(frame)),
                        (H_SHA256, hashlib.sha256(frame).hexdigest().encode())]
            frame = frame[:limit]
        self._produce(self.deadletter_topic, stream.encode(), frame, headers, 0)

    def publish_control(self, event: dict[str, Any]) -> None:
        self._produce(*self._control_message(event), 0)

    def _control_message(self, event: dict[str, Any]) -> tuple[str, bytes, bytes, Headers]:
        event = {"instance": self.instance, **event}
        headers = [(H_EVENT, str(event.get("type", "")).encode()), self._instance_header]
        # Keyed by instance: one instance's events stay in order in one partition.
        return self.control_topic, self.instance.encode(), orjson.dumps(event), headers

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def caught_up(self) -> None:
        for kind in list(self._held):
            self._release(kind)

    def service(self) -> None:
        if self._held:
            now = time.monotonic()
            for kind in [k for k, since in self._held.items() if now - since >= self._hold_s]:
                self._release(kind)
        self._producer.poll(0)
        if self._fatal is not None and not self._closing:  # the handler stops, exit 1
            raise KafkaException(self._fatal)
        self._report_acks()
        while self._backlog:
            topic, key, value, headers, count = self._backlog[0]
            if not self._try_produce(topic, key, value, headers, count):
                return
            self._backlog.popleft()
            self._backlog_bytes -= len(value) + BACKLOG_ENTRY_BYTES

    def backlog_bytes(self) -> int:
        return self._backlog_bytes

    def queued(self) -> int:
        """Messages not yet acknowledged: in librdkafka plus in our backlog."""
        return len(self._producer) + len(self._backlog)

    def summary(self) -> dict[str, Any]:
        self._producer.poll(0)  # (as in close())
        return {**self.stats.summary(len(self._producer)), "undelivered": self._undelivered(),
                "records_unsent": sum(item[4] for item in self._backlog),
                "records_held": sum(self._plans[kind][0].held for kind in self._held)}

    def _undelivered(self) -> int:
        """Messages queued, plus those purged at close (out of time: failed as well) and
        those that failed otherwise while closing (their events can no longer be published)."""
        return self.queued() + self.stats.errors["_PURGE_QUEUE"] + \
            self.stats.errors["_PURGE_INFLIGHT"] + self._failed_closing

    def close(self, timeout: float) -> int:
        for kind in list(self._held):
            try:
                self._release(kind)
            except Exception:  # (the other kinds', and the flush, still go)
                log.exception("kafka: the held %s records could not be sent", kind)
        self._closing = True
        deadline = time.monotonic() + timeout
        while self._backlog and time.monotonic() < deadline:
            self.service()
            self._producer.poll(0.05)
        if self._producer.flush(max(0.0, deadline - time.monotonic())):
            # Out of time: what librdkafka still holds is reported failed, record by record
            # (messages in flight may yet have been written; consumers can tell by sequence id).
            self._producer.purge()
            self._producer.flush(1.0)
        # librdkafka's queue length counts its events waiting for a poll too (errors, logs,
        # statistics): served first, it counts messages
        self._producer.poll(0)
        self._report_acks()
        remaining = self._undelivered()
        if remaining:
            log.error("kafka: %d messages undelivered at shutdown", remaining)
        return remaining

    # --- values ----------------------------------------------------------------------------
    def _new_topic(self, kind: str, symbol: bytes) -> str:
        topic = topic_for(kind, symbol.decode(), self.config.topic_template,
                          self.config.exchange, self.config.market)
        self._topics[kind][symbol] = topic
        # a template without {kind} shares a topic among kinds: then no kind is named
        self._topic_kinds[topic] = kind if self._topic_kinds.get(topic, kind) == kind else ""
        return topic

    def _json_values(self, schema: Schema, rows: np.ndarray,
                     bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
        """JSON lines per symbol run (bounds), halved until each is within max_message_bytes:
        (first rows, end rows, values) of the messages."""
        limit = self.config.max_message_bytes
        starts, ends, values = [], [], []
        pending = [(int(a), int(b)) for a, b in pairwise(bounds)][::-1]
        while pending:
            start, end = pending.pop()
            value = encode_json(schema, rows[start:end])
            if len(value) <= limit or end - start == 1:
                starts.append(start)
                ends.append(end)
                values.append(value)
            else:
                middle = (start + end) // 2
                pending += [(middle, end), (start, middle)]
        return np.array(starts, np.int64), np.array(ends, np.int64), values

    def _publish_frames(self, schema: Schema, records: np.ndarray, epoch: int,
                        frames: Frames) -> None:
        """Raw encoding: each frame goes to the message of its symbol; a frame that carries
        several symbols (all-market `!…@arr`) to an ALL_SYMBOLS message."""
        first_rows = frames.rows[:-1]
        owner = np.repeat(np.arange(len(first_rows)), np.diff(frames.rows))
        symbols = records["symbol"]
        frame_symbols = symbols[first_rows]
        spanning = np.zeros(len(first_rows), bool)
        spanning[owner[symbols != frame_symbols[owner]]] = True
        frame_symbols[spanning] = b""  # no symbol is empty: "" is the ALL_SYMBOLS key
        order, bounds = group_rows(frame_symbols)
        picks = np.arange(len(first_rows)) if order is None else order
        for start, end in pairwise(bounds):
            run = picks[start:end]
            first = run[0]
            symbol = (ALL_SYMBOLS.encode() if spanning[first]
                      else bytes(records["symbol"][first_rows[first]]))
            self._publish_raw_run(schema, records, frames, run, symbol, epoch)

    def _publish_raw_run(self, schema: Schema, records: np.ndarray, frames: Frames,
                         picks: np.ndarray, symbol: bytes, epoch: int) -> None:
        rows = _ranges(frames.rows, picks)  # the records of these frames
        payload = np.frombuffer(frames.payload, np.uint8)[_ranges(frames.offsets, picks)]
        ends = np.cumsum(frames.offsets[picks + 1] - frames.offsets[picks])
        value = np.insert(payload, ends, ord("\n")).tobytes()  # one frame per line
        extra = raw_headers(records["ts_recv"][frames.rows[picks]], self.time_unit)
        size = len(value) + sum(len(k) + len(v) for k, v in extra)
        if size > self.config.max_message_bytes and len(picks) > 1:
            half = len(picks) // 2
            self._publish_raw_run(schema, records, frames, picks[:half], symbol, epoch)
            self._publish_raw_run(schema, records, frames, picks[half:], symbol, epoch)
            return
        self._produce_all(schema, records, rows, epoch, [symbol], np.zeros(1, np.int64),
                          np.array([len(rows)], np.int64), [value], [extra])

    # --- producing -------------------------------------------------------------------------
    def _produce_all(self, schema: Schema, rows: np.ndarray, order: np.ndarray | None,
                     epoch: int, keys: list[bytes], starts: np.ndarray, ends: np.ndarray,
                     values: list[bytes], extra_headers: list[Headers] | None = None) -> None:
        """Message i: values[i], the records at positions starts[i]:ends[i] of rows (taken in
        `order` when given), keyed keys[i]."""
        seq = SEQUENCE_FIELDS.get(schema.kind)
        firsts = lasts = None
        if seq is not None:
            firsts = rows[seq[0]][_rows(order, starts)]
            lasts = rows[seq[1]][_rows(order, ends - 1)]
        cache = self._topics.setdefault(schema.kind, {})
        topics = [cache.get(key) or self._new_topic(schema.kind, key) for key in keys]
        fixed = fixed_headers(schema.name, schema.version, self.config.encoding, self.instance)
        batch = MessageBatch(topics, keys, values, ends - starts, fixed, epoch, firsts, lasts,
                             extra_headers)
        try:  # behind a backlog, new messages queue too: per-key order is kept
            produce_messages(self._outlet, batch, bool(self._backlog))
        finally:
            self._count(batch)

    def _produce_records(self, schema: Schema, records: np.ndarray | None, epoch: int,
                         hold: bool = False) -> RecordLayout:
        """`records` (a binary encoding) into their symbols' messages, then sent: those full,
        and unless `hold` every one (see produce_records); returns the kind's layout."""
        layout, topics, new_topic, fixed, most = \
            self._plans.get(schema.kind) or self._records_plan(schema)
        counts = Counts()
        try:  # behind a backlog, new messages queue too: per-key order is kept
            produce_records(self._outlet, layout, records, most, topics, new_topic, fixed,
                            epoch, bool(self._backlog), counts, hold)
        finally:
            self._count(counts)
        return layout

    def _release(self, kind: str) -> None:
        """Every held message of `kind` (kafka.hold_ms), sent now."""
        try:
            self._produce_records(SCHEMAS[kind], None, 0)
        finally:  # (what a raise left held stays held)
            if not self._plans[kind][0].held:
                del self._held[kind]

    def _count(self, counts: Counts) -> None:
        self.stats.produced += counts.produced
        self.stats.records_produced += counts.records
        self.stats.buffer_full += counts.buffer_full

    def _records_plan(self, schema: Schema) -> RecordsPlan:
        """What produce_records needs for `schema`'s kind, made once."""
        kind = schema.kind
        row_bytes = compact_row(schema).itemsize if self.config.encoding == "compact" else -1
        layout = RecordLayout(schema.dtype, SEQUENCE_FIELDS.get(kind), padding(schema),
                              row_bytes)
        plan = (layout, self._topics.setdefault(kind, {}), partial(self._new_topic, kind),
                fixed_headers(schema.name, schema.version, self.config.encoding, self.instance),
                max(1, self.config.max_message_bytes // layout.row_bytes))
        self._plans[kind] = plan
        return plan

    def _produce(self, topic: str, key: bytes, value: bytes, headers: Headers, count: int) -> None:
        if not self._backlog:
            if self._try_produce(topic, key, value, headers, count):
                return
            self.stats.buffer_full += 1  # (service()'s retries of the backlog's head are not)
        self._to_backlog(topic, key, value, headers, count)

    def _to_backlog(self, topic: str, key: bytes, value: bytes, headers: Headers,
                    count: int) -> None:
        self._backlog.append((topic, key, value, headers, count))
        self._backlog_bytes += len(value) + BACKLOG_ENTRY_BYTES
        self.stats.backlog_peak_bytes = max(self.stats.backlog_peak_bytes, self._backlog_bytes)

    def _try_produce(self, topic: str, key: bytes, value: bytes, headers: Headers,
                     count: int) -> bool:
        """False when librdkafka's queue is full (the message is still ours to retry)."""
        try:
            self._producer.produce(topic, value, key, headers, count)
        except BufferError:  # service() polls (delivery reports free queue space), then retries
            return False
        except KafkaException as exc:  # refused up front, e.g. too large: retrying cannot help
            self._refused(topic, key, count, exc.args[0])
            return True
        self.stats.produced += 1
        self.stats.records_produced += count
        return True

    def _report_acks(self) -> None:
        """The produce -> ack latencies the last poll served, per kind in one call."""
        acks = self._producer.acks
        if not acks or self._on_ack_latency is None:
            return
        self._producer.acks = []
        by_kind: dict[str, list[float]] = {}
        for topic, latency in acks:
            kind = self._topic_kinds.get(topic)
            if kind and latency is not None:  # (data topics only)
                by_kind.setdefault(kind, []).append(latency)
        for kind, latencies in by_kind.items():
            self._on_ack_latency(kind, np.array(latencies))

    def serve_deliveries(self, timeout: float) -> None:
        """Wait up to `timeout` s for delivery reports and serve them: librdkafka allows this
        from another thread, which the latency benchmark uses to stamp acks as they come. Their
        latencies are reported by service() alone (one reader of the list)."""
        self._producer.poll(timeout)

    def _on_error(self, err: KafkaError) -> None:
        """librdkafka's error events. A fatal one (the idempotent producer cannot go on, e.g.
        its sequence broke) refuses every later message: service() then stops the handler so
        that its orchestrator restarts it with a new producer. The others are retried by
        librdkafka (a broker away, a timeout)."""
        if err.fatal():
            if self._fatal is None:
                self._fatal = err
                log.error("kafka: fatal producer error %s: %s; stopping", err.name(), err.str())
        else:
            log.warning("kafka: %s", err.str())

    def _on_statistics(self, text: str) -> None:
        statistics = orjson.loads(text)
        brokers = [b for b in statistics.get("brokers", {}).values() if b["nodeid"] >= 0]
        self.stats.latency_us = {
            name: {p: max(int(b[window][p]) for b in brokers) for p in ("p50", "p99")}
            for name, window in LATENCIES.items()
        } if brokers else {}
        self._check_polling(int(statistics.get("ts", 0)), brokers)

    def _check_polling(self, ts_us: int, brokers: list[dict[str, Any]]) -> None:
        """Wake-ups of each broker thread per request it sent since the last statistics
        (`ts_us`: librdkafka's clock), of those that sent any; a thread that spins is said in
        the log."""
        worst, spinning, polling = 0.0, None, {}
        for broker in brokers:
            now = polling[broker["name"]] = (ts_us, int(broker.get("wakeups", 0)),
                                             int(broker.get("tx", 0)))
            before = self._polling.get(broker["name"])
            if before is None or now[0] <= before[0]:
                continue
            wakeups, sent = now[1] - before[1], now[2] - before[2]
            if sent <= 0 or wakeups < 0:  # idle (it wakes once a second), or counted anew
                continue
            per_request, per_s = wakeups / sent, wakeups * 1e6 / (now[0] - before[0])
            worst = max(worst, per_request)
            if per_request >= SPIN_WAKEUPS_PER_REQUEST and per_s >= SPIN_WAKEUPS_PER_S:
                spinning = (broker["name"], per_s, per_request, broker["rtt"]["p50"] / 1000)
        self._polling = polling  # (a broker gone from the statistics is forgotten)
        self.stats.wakeups_per_request = worst
        if spinning is not None and self._spin_warnings.due("spin") is not None:
            # (with linger 0, e.g. the latency profile, it is that setting's known price)
            log.log(logging.WARNING if self._linger_ms > 0 else logging.INFO,
                    "kafka: librdkafka's broker thread for %s polls without sleeping (%.0f "
                    "wake-ups a second, %.0f per request sent): with idempotence it sends a "
                    "partition's next request only once fewer than 5 of its messages are in "
                    "flight, and polls while a ready batch waits for an acknowledgement "
                    "(%.1f ms p50). A kafka.linger_ms above that time, with a "
                    "kafka.batch_bytes that holds a linger's messages, avoids it at that "
                    "much latency (now linger.ms %g, batch.size %d)",
                    *spinning, self._linger_ms, self._batch_bytes)

    def _refused(self, topic: str, key: bytes, count: int, err: KafkaError) -> None:
        """produce() refused the message: produced and failed at once, so that delivered
        (produced - failed - in flight) stays right."""
        self.stats.produced += 1
        self.stats.records_produced += count
        self._failed(topic, key, count, err)

    def _failed(self, topic: str, key: bytes, count: int, err: KafkaError) -> None:
        self.stats.failed += 1
        self.stats.records_failed += count
        self.stats.errors[err.name()] += 1
        if self._closing and err.code() not in PURGED:
            self._failed_closing += 1
        if self.stats.errors[err.name()] == 1:
            log.error("kafka: message to %s (key %r, %d records) lost: %s; further %s failures "
                      "are counted and reported on %s", topic, key, count, err.str(), err.name(),
                      self.control_topic)
        # The loss must not go unnoticed downstream (at shutdown: in the summary and the log).
        # Queued for service(), not produced here: this runs inside poll()'s delivery reports,
        # where a full queue's poll() would be poll() within poll().
        if topic != self.control_topic and not self._closing:
            self._to_backlog(*self._control_message({
                "type": "delivery_failed", "topic": topic, "key": key.decode(errors="replace"),
                "records": count, "error": err.name()}), 0)


def _rows(order: np.ndarray | None, positions: np.ndarray) -> np.ndarray:
    """The rows at `positions` of a batch taken in `order` (None: as it is)."""
    return positions if order is None else order[positions]


def _within(counts: np.ndarray) -> np.ndarray:
    """0..counts[i]-1 for each i, concatenated."""
    within: np.ndarray = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return within


def _ranges(offsets: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Indices offsets[p]..offsets[p + 1] for each p in picks, concatenated."""
    starts = offsets[picks]
    lengths = offsets[picks + 1] - starts
    indices: np.ndarray = np.repeat(starts, lengths) + _within(lengths)
    return indices
