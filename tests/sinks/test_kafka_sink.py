"""KafkaSink against the real local broker: split per symbol, headers, encodings, topics,
backpressure and failures."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka.admin import AdminClient

from feedhandler import decode
from feedhandler.config import KafkaConfig
from feedhandler.consume.reader import read_messages
from feedhandler.contract import Frames, header_dict, wire_records
from feedhandler.parsing import parse
from feedhandler.records import SCHEMAS, compact_row
from feedhandler.simulator.market import Feed, Universe
from feedhandler.sinks.kafka import KafkaSink
from feedhandler.sinks.topics import TopicError, ensure_topics

pytestmark = pytest.mark.integration


def kafka_config(bootstrap: str, **overrides: Any) -> KafkaConfig:
    """A config whose topics (binance.<unique>.*) no other test touches."""
    return KafkaConfig(bootstrap=bootstrap, market=f"t{uuid.uuid4().hex[:10]}", **overrides)


def new_sink(config: KafkaConfig, instance: str = "inst", kinds: tuple[str, ...] = ("trade",),
             **kwargs: Any) -> KafkaSink:
    """A sink whose topics exist before the first message, as the handler makes them: relying
    on the broker's auto-creation would race the first produce (and a close(0) creates none)."""
    return KafkaSink(config, instance, topics=[topic(config, kind) for kind in kinds], **kwargs)


def topic(config: KafkaConfig, kind: str) -> str:
    return f"{config.exchange}.{config.market}.{kind}"


def read(config: KafkaConfig, kind: str) -> list[Message]:
    return list(read_messages(config.bootstrap, [topic(config, kind)]))


def trades(symbols: list[bytes], seed: int = 1) -> np.ndarray:
    """Trade records for `symbols` interleaved at random; per symbol, ids count up from 1."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(symbols), 3000)
    records = np.zeros(len(picks), SCHEMAS["trade"].dtype)
    records["symbol"] = np.array(symbols)[picks]
    for i in range(len(symbols)):
        mine = picks == i
        records["trade_id"][mine] = np.arange(1, mine.sum() + 1)
    records["ts_recv"] = np.arange(len(records))
    records["price"] = rng.integers(1, 10**13, len(records))
    records["qty"] = rng.integers(1, 10**9, len(records))
    return records


def by_symbol(records: np.ndarray) -> dict[bytes, np.ndarray]:
    # np.take copies whole records; boolean indexing would copy field by field and leave the
    # padding bytes uninitialised.
    return {bytes(s): np.take(records, np.flatnonzero(records["symbol"] == s))
            for s in np.unique(records["symbol"])}


def joined(parts: list[np.ndarray], kind: str = "trade") -> np.ndarray:
    """Concatenated records in the wire layout (np.concatenate alone drops the padding)."""
    return wire_records(SCHEMAS[kind], np.concatenate(parts))


def drain(sink: KafkaSink, timeout: float = 30) -> None:
    assert sink.close(timeout) == 0


def test_one_message_per_symbol_run_in_exchange_order(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap)
    sink = new_sink(config, "inst-1")
    batch = trades([b"BTCUSDT", b"ETHUSDT", b"SOLUSDT"])
    sink.publish_batch("trade", batch[:2000], epoch=3)
    sink.publish_batch("trade", batch[2000:], epoch=4)
    drain(sink)

    messages = read(config, "trade")
    assert len(messages) == 6  # 2 batches x 3 symbols
    got: dict[bytes, list[np.ndarray]] = {}
    for msg in messages:
        headers = header_dict(msg.headers())
        records = decode(msg)
        assert set(records["symbol"].tolist()) == {msg.key()}
        assert headers == {
            "fh.schema": "binance.spot.trade", "fh.version": "1", "fh.encoding": "records",
            "fh.count": str(len(records)), "fh.instance": "inst-1",
            "fh.epoch": headers["fh.epoch"],
            "fh.seq.first": str(records["trade_id"][0]),
            "fh.seq.last": str(records["trade_id"][-1]),
        }
        assert headers["fh.epoch"] in ("3", "4")
        got.setdefault(msg.key(), []).append(records)
    expected = by_symbol(batch)
    assert set(got) == set(expected)
    for symbol, parts in got.items():
        assert joined(parts).tobytes() == expected[symbol].tobytes()
    summary = sink.summary()
    assert summary["delivered"] == summary["produced"] == 6
    assert summary["in_flight"] == summary["undelivered"] == summary["failed"] == 0
    assert summary["records_delivered"] == summary["records_produced"] == len(batch)


def test_json_encoding_round_trips(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap, encoding="json")
    sink = new_sink(config)
    batch = trades([b"BTCUSDT", b"ETHUSDT"])
    sink.publish_batch("trade", batch, epoch=1)
    drain(sink)
    messages = read(config, "trade")
    assert {header_dict(m.headers())["fh.encoding"] for m in messages} == {"json"}
    first = orjson.loads((messages[0].value() or b"").splitlines()[0])
    assert isinstance(first["price"], str) and isinstance(first["trade_id"], int)
    got = {m.key(): decode(m) for m in messages}
    for symbol, records in by_symbol(batch).items():
        assert got[symbol].tobytes() == records.tobytes()


def test_compact_encoding_leaves_the_symbol_to_a_header(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap, encoding="compact", max_message_bytes=20_000)
    sink = new_sink(config)
    batch = trades([b"BTCUSDT", b"ETHUSDT"])
    sink.publish_batch("trade", batch[:1000], epoch=1)
    sink.publish_batch("trade", batch[1000:], epoch=1)
    drain(sink)
    row = SCHEMAS["trade"].dtype.fields["symbol"][1]  # 49 of a record's 88 bytes
    got: dict[bytes, list[np.ndarray]] = {}
    messages = read(config, "trade")
    # messages are cut at what max_message_bytes holds of compact rows, not of whole records
    assert max(int(header_dict(m.headers())["fh.count"]) for m in messages) == 20_000 // row
    for msg in messages:
        headers = header_dict(msg.headers())
        assert (headers["fh.encoding"], headers["fh.symbol"]) == ("compact", msg.key().decode())
        assert len(msg.value() or b"") == int(headers["fh.count"]) * row <= 20_000
        records = decode(msg)
        assert (headers["fh.seq.first"], headers["fh.seq.last"]) == (
            str(records["trade_id"][0]), str(records["trade_id"][-1]))
        got.setdefault(msg.key(), []).append(records)
    expected = by_symbol(batch)
    assert set(got) == set(expected)
    for symbol, parts in got.items():
        assert joined(parts).tobytes() == expected[symbol].tobytes()
    assert sink.summary()["records_delivered"] == len(batch)


@pytest.mark.parametrize("encoding", ["records", "json"])
def test_runs_larger_than_max_message_bytes_are_split(kafka_bootstrap: str,
                                                      encoding: str) -> None:
    config = kafka_config(kafka_bootstrap, encoding=encoding, max_message_bytes=20_000)
    sink = new_sink(config)
    batch = trades([b"BTCUSDT"])
    sink.publish_batch("trade", batch, epoch=1)
    drain(sink)
    messages = read(config, "trade")
    assert len(messages) >= len(batch) * 88 // 20_000
    assert max(len(m.value() or b"") for m in messages) <= 20_000
    assert joined([decode(m) for m in messages]).tobytes() == batch.tobytes()


def test_concatenated_batches_keep_the_wire_layout(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap)
    sink = new_sink(config)
    batch = trades([b"BTCUSDT"])
    packed = np.concatenate([batch[:10], batch[10:20]])  # numpy drops the padding here
    assert packed.dtype.itemsize < SCHEMAS["trade"].itemsize
    sink.publish_batch("trade", packed, epoch=1)
    drain(sink)
    (msg,) = read(config, "trade")
    assert msg.value() == batch[:20].tobytes()


def capture(frames: list[bytes], recv_ns: list[int]) -> dict[str, tuple[np.ndarray, Frames]]:
    """What a frame-capturing decoder hands over: per kind, the records and their frames."""
    rows: dict[str, list[np.ndarray]] = {}
    payloads: dict[str, list[bytes]] = {}
    for frame, ts in zip(frames, recv_ns, strict=True):
        for kind, table in parse([frame], ts_recv=ts).items():
            if len(table):
                rows.setdefault(kind, []).append(table)
                payloads.setdefault(kind, []).append(frame)
    out = {}
    for kind, parts in rows.items():
        offsets = np.cumsum([0, *map(len, payloads[kind])])
        counts = np.cumsum([0, *map(len, parts)])
        out[kind] = (wire_records(SCHEMAS[kind], np.concatenate(parts)),
                     Frames(b"".join(payloads[kind]), offsets, counts))
    return out


def test_raw_encoding_archives_the_frames(kafka_bootstrap: str) -> None:
    universe = Universe.generate(1, 12)
    symbols = [s.symbol.lower() for s in universe.symbols[:3]]
    feed = Feed(1, universe)
    feed.subscribe([f"{s}@{k}" for s in symbols for k in ("trade", "depth@100ms")]
                   + ["!miniTicker@arr"])
    frames = [b'{"stream":"%s","data":%s}' % (s.encode(), p) for s, p in feed.next_frames(3000)]
    recv_ns = [1_800_000_000_000_000_000 + i for i in range(len(frames))]
    captured = capture(frames, recv_ns)

    config = kafka_config(kafka_bootstrap, encoding="raw")
    sink = new_sink(config, kinds=("trade", "depth", "miniTicker"), time_unit="ms")
    for kind in ("trade", "depth", "miniTicker"):
        records, kind_frames = captured[kind]
        sink.publish_batch(kind, records, 1, kind_frames)
    drain(sink)

    for kind in ("trade", "depth", "miniTicker"):
        records, kind_frames = captured[kind]
        messages = read(config, kind)
        for msg in messages:
            headers = header_dict(msg.headers())
            assert headers["fh.encoding"] == "raw" and headers["fh.time_unit"] == "ms"
            lines = (msg.value() or b"").split(b"\n")
            assert lines[-1] == b"" and all(line in frames for line in lines[:-1])
            assert int(headers["fh.frames"]) == len(lines) - 1
        decoded = {m.key(): decode(m) for m in messages}
        if kind == "miniTicker":  # all-market frames: one message keyed "" with every symbol
            assert list(decoded) == [b""]
            assert decoded[b""].tobytes() == records.tobytes()
            assert len(np.unique(records["symbol"])) == 12
            continue
        assert set(decoded) == {s.upper().encode() for s in symbols}
        for symbol, expected in by_symbol(records).items():
            assert decoded[symbol].tobytes() == expected.tobytes()


def test_raw_encoding_needs_frames(kafka_bootstrap: str) -> None:
    sink = KafkaSink(kafka_config(kafka_bootstrap, encoding="raw"), "inst")
    with pytest.raises(ValueError, match="needs the frames"):
        sink.publish_batch("trade", trades([b"BTCUSDT"]), 1)
    drain(sink)


def test_topics_are_created_with_the_configured_partitions(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap, partitions=3, topic_config={"retention.ms": 3600000})
    topics = [f"binance.{config.market}.trade", f"binance.{config.market}.depth"]
    assert sorted(ensure_topics(config, topics)) == sorted(topics)
    assert ensure_topics(config, topics) == []  # existing topics are left alone
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert {len(metadata.topics[t].partitions) for t in topics} == {3}


def test_check_mode_names_missing_topics(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap, create_topics=False)
    missing = f"binance.{config.market}.trade"
    with pytest.raises(TopicError, match=f"missing topics .*{missing}.*kafka.create_topics"):
        KafkaSink(config, "inst", topics=[missing])
    ensure_topics(KafkaConfig(bootstrap=kafka_bootstrap, market=config.market),
                  [missing, f"binance.{config.market}.control",
                   f"binance.{config.market}.deadletter"])
    sink = KafkaSink(config, "inst", topics=[missing])  # all there now
    drain(sink)


def test_streams_added_at_runtime_get_their_topics(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap, topic_template="{exchange}.{market}.{kind}.{symbol}")
    sink = KafkaSink(config, "inst")
    sink.add_streams(["solusdt@trade", "solusdt@kline_1m"])
    metadata = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10)
    assert {f"binance.{config.market}.trade.solusdt",
            f"binance.{config.market}.kline.solusdt"} <= set(metadata.topics)
    checking = KafkaSink(config.model_copy(update={"create_topics": False}), "inst")
    with pytest.raises(TopicError, match="missing topics"):  # as at start: checked only
        checking.add_streams(["ethusdt@trade"])
    for each in (sink, checking):
        drain(each)


def test_unreachable_broker_is_a_clear_error() -> None:
    config = KafkaConfig(bootstrap="127.0.0.1:9")
    with pytest.raises(TopicError, match=r"cannot list topics on 127\.0\.0\.1:9"):
        ensure_topics(config, ["x"], timeout=1)


def test_full_queue_is_backpressure_not_loss(kafka_bootstrap: str) -> None:
    # librdkafka's queue holds 32 KiB: most of this batch has to wait in the sink's backlog.
    config = kafka_config(kafka_bootstrap, producer={"queue.buffering.max.kbytes": 32},
                          max_message_bytes=4096, hold_ms=0)  # (each batch's leave with it)
    sink = new_sink(config)
    batch = trades([b"BTCUSDT", b"ETHUSDT"])
    sink.publish_batch("trade", batch[:1500], epoch=1)
    sink.publish_batch("trade", batch[1500:], epoch=1)
    assert sink.backlog_bytes() > 100_000
    assert sink.stats.buffer_full > 0
    peak = sink.backlog_bytes()
    deadline = time.monotonic() + 30
    while sink.backlog_bytes() and time.monotonic() < deadline:
        sink.service()
        time.sleep(0.005)
    assert sink.backlog_bytes() == 0
    drain(sink)
    assert sink.stats.backlog_peak_bytes == peak
    got: dict[bytes, list[np.ndarray]] = {}
    for msg in read(config, "trade"):
        got.setdefault(msg.key(), []).append(decode(msg))
    for symbol, expected in by_symbol(batch).items():  # each record once, in order
        assert joined(got[symbol]).tobytes() == expected.tobytes()
    summary = sink.summary()
    assert summary["records_delivered"] == len(batch) and summary["failed"] == 0


def test_rejected_message_is_counted_and_reported(kafka_bootstrap: str) -> None:
    # The broker takes at most 4000 bytes per batch on these topics; 100 trades are 8800.
    config = kafka_config(kafka_bootstrap, compression="none", hold_ms=0,
                          topic_config={"max.message.bytes": "4000"})
    sink = new_sink(config)
    batch = trades([b"BTCUSDT"])
    sink.publish_batch("trade", batch[:100], epoch=1)
    deadline = time.monotonic() + 30
    while not sink.stats.failed and time.monotonic() < deadline:  # alone in its request
        sink.summary()  # polls, as service() does, without serving the backlog
        time.sleep(0.01)
    # the failure's event waits for service(): produced within the poll that reported the
    # failure, a full queue would have had it poll within that poll
    assert sink.backlog_bytes() > 0 and not read(config, "control")
    sink.publish_batch("trade", batch[100:110], epoch=1)
    drain(sink)
    assert sink.stats.failed == 1 and sink.stats.records_failed == 100
    assert sink.summary()["records_delivered"] == 10
    assert sink.stats.errors == {"MSG_SIZE_TOO_LARGE": 1}
    events = [orjson.loads(m.value() or b"") for m in read(config, "control")]
    assert events == [{"instance": "inst", "type": "delivery_failed",
                       "topic": f"binance.{config.market}.trade", "key": "BTCUSDT",
                       "records": 100, "error": "MSG_SIZE_TOO_LARGE"}]
    assert [decode(m)["trade_id"].tolist() for m in read(config, "trade")] == \
        [list(range(101, 111))]


def test_dead_letters_and_control_events(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap)
    sink = new_sink(config, "inst-9", kinds=())
    frame = b'{"e":"trade","s":"BTCUSDT","p":"0.0'
    sink.publish_dead_letter("malformed_json", "", "btcusdt@trade", frame)
    sink.publish_control({"type": "gap", "reason": "reconnect", "from_ns": 1, "to_ns": 2})
    drain(sink)
    (dead,) = read(config, "deadletter")
    assert dead.value() == frame and dead.key() == b"btcusdt@trade"
    assert header_dict(dead.headers()) == {"fh.reason": "malformed_json", "fh.field": "",
                                           "fh.stream": "btcusdt@trade", "fh.instance": "inst-9"}
    (event,) = read(config, "control")
    assert event.key() == b"inst-9"
    assert header_dict(event.headers()) == {"fh.event": "gap", "fh.instance": "inst-9"}
    assert orjson.loads(event.value() or b"") == {"instance": "inst-9", "type": "gap",
                                                  "reason": "reconnect", "from_ns": 1, "to_ns": 2}


def test_a_dead_letter_over_the_message_limit_arrives_truncated_with_size_and_digest(
        kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap)  # broker and sink defaults: about 1 MB a message
    sink = new_sink(config, "inst", kinds=())
    frame = b'{"e":"oversized","pad":"' + b"x" * (3 << 20) + b'"}'
    sink.publish_dead_letter("oversized", "", "btcusdt@trade", frame)
    drain(sink)
    (dead,) = read(config, "deadletter")
    assert dead.value() == frame[:config.max_message_bytes]
    headers = header_dict(dead.headers())
    assert headers["fh.reason"] == "oversized" and headers["fh.size"] == str(len(frame))
    assert headers["fh.sha256"] == hashlib.sha256(frame).hexdigest()
    assert sink.summary()["failed"] == 0


def test_latency_comes_from_librdkafka_statistics(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap, producer={"statistics.interval.ms": 100})
    sink = new_sink(config)
    sink.publish_batch("trade", trades([b"BTCUSDT"]), 1)
    deadline = time.monotonic() + 30
    while not sink.stats.latency_us.get("ack", {}).get("p99") and time.monotonic() < deadline:
        sink.service()
        time.sleep(0.05)
    latency = sink.stats.latency_us
    assert set(latency) == {"queue", "send", "ack"}
    assert 0 < latency["ack"]["p50"] <= latency["ack"]["p99"] < 30_000_000
    # Windows with requests after the first (which has no window before): a small one every
    # 50 ms, for a second past the first reading (the windows right after the big first
    # request can read a spin while its acknowledgement is outstanding)
    settled = deadline
    while time.monotonic() < min(deadline, settled):
        sink.publish_batch("trade", trades([b"BTCUSDT"])[:1], 1)
        sink.service()
        if sink.stats.wakeups_per_request and settled == deadline:
            settled = time.monotonic() + 1.0
        time.sleep(0.05)
    assert 0 < sink.stats.wakeups_per_request < 1_000  # librdkafka reports what is compared
    drain(sink)


def statistics(seconds: float, wakeups: int, requests: int) -> str:
    """librdkafka's statistics as far as the sink reads them: a broker and the bootstrap."""
    windows = {name: {"p50": 7_250, "p99": 9_000, "cnt": 10}
               for name in ("int_latency", "outbuf_latency", "rtt")}
    counts = {"wakeups": wakeups, "tx": requests}
    return orjson.dumps({"ts": int(seconds * 1e6), "brokers": {
        "b1": {"name": "127.0.0.1:9092/1", "nodeid": 1, **windows, **counts},
        "bootstrap": {"name": "bootstrap", "nodeid": -1, **windows, **counts}}}).decode()


def test_a_spinning_broker_thread_is_measured_and_said_in_the_log_at_most_every_10_min(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    sink = new_sink(kafka_config(kafka_bootstrap, linger_ms=2))

    def said() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "feedhandler.sinks.kafka"]

    with caplog.at_level("INFO", logger="feedhandler.sinks.kafka"):
        sink._on_statistics(statistics(100, 1_000, 900))  # the first: nothing to compare with
        sink._on_statistics(statistics(105, 2_200, 1_900))  # 1.2 a request: sleeping
        assert sink.summary()["wakeups_per_request"] == 1.2
        sink._on_statistics(statistics(110, 3_000, 1_900))  # 800 wake-ups, no request: idle
        assert sink.summary()["wakeups_per_request"] == 0
        sink._on_statistics(statistics(111, 0, 0))  # counted anew (a new broker of that name)
        assert sink.summary()["wakeups_per_request"] == 0
        sink._on_statistics(statistics(112, 3_000, 1_000))  # 3 a request, 3,000 a second
        assert not said()
        sink._on_statistics(statistics(117, 153_000, 3_000))  # 75 a request, 30,000 a second
        assert sink.summary()["wakeups_per_request"] == 75
        sink._on_statistics(statistics(122, 303_000, 5_000))  # said once
    (record,) = said()
    assert record.levelname == "WARNING"
    assert record.getMessage().startswith(
        "kafka: librdkafka's broker thread for 127.0.0.1:9092/1 polls without sleeping (30000 "
        "wake-ups a second, 75 per request sent)")
    assert "(7.2 ms p50)" in record.getMessage()
    assert "(now linger.ms 2, batch.size 1048576)" in record.getMessage()
    drain(sink)


def test_with_linger_0_a_spinning_broker_thread_is_information(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    sink = new_sink(kafka_config(kafka_bootstrap, profile="latency"))
    with caplog.at_level("INFO", logger="feedhandler.sinks.kafka"):
        sink._on_statistics(statistics(100, 1_000, 900))
        sink._on_statistics(statistics(105, 150_000, 2_900))
    (record,) = [r for r in caplog.records if "polls without sleeping" in r.getMessage()]
    assert record.levelname == "INFO" and "linger.ms 0," in record.getMessage()
    drain(sink)


def test_every_acknowledged_data_message_reports_its_produce_to_ack_latency(
        kafka_bootstrap: str) -> None:
    acks: list[tuple[str, float]] = []
    config = kafka_config(kafka_bootstrap)
    sink = new_sink(config, on_ack_latency=lambda kind, s: acks.extend((kind, x) for x in s))
    sink.publish_batch("trade", trades([b"BTCUSDT", b"ETHUSDT"]), 1)
    sink.publish_control({"type": "paused", "backlog_bytes": 0})  # not a data message
    drain(sink)
    assert sink.summary()["delivered"] == 3
    assert [kind for kind, _ in acks] == ["trade", "trade"]
    assert all(0 < seconds < 30 for _, seconds in acks)


def test_out_of_time_at_close_counts_every_record(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap)
    sink = new_sink(config)
    batch = trades([b"BTCUSDT", b"ETHUSDT", b"SOLUSDT"])
    for _ in range(30):
        sink.publish_batch("trade", batch, 1)
    undelivered = sink.close(0)  # no time at all: most messages are still queued
    summary = sink.summary()
    assert undelivered == summary["failed"] == summary["undelivered"] > 0
    assert summary["in_flight"] == 0
    assert set(summary["errors"]) <= {"_PURGE_QUEUE", "_PURGE_INFLIGHT"}
    assert summary["records_delivered"] + summary["records_failed"] == 30 * len(batch)
    written = sum(len(decode(m)) for m in read(config, "trade"))
    # purged in flight may still have been written: at least what was acknowledged, no more
    # than what was produced
    assert summary["records_delivered"] <= written <= 30 * len(batch)
    assert not read(config, "control")  # no delivery_failed events once closing


def test_a_message_the_broker_refuses_while_closing_is_undelivered(kafka_bootstrap: str
                                                                    ) -> None:
    """Its delivery_failed event can no longer be published: the summary's `undelivered` (and
    so the exit code) has it."""
    # over the broker's limit, uncompressed
    config = kafka_config(kafka_bootstrap, max_message_bytes=2_000_000, compression="none")
    sink = new_sink(config)
    records = np.zeros(15_000, SCHEMAS["trade"].dtype)  # 1.3 MB of one symbol: one message
    records["symbol"], records["trade_id"] = b"BTCUSDT", np.arange(1, len(records) + 1)
    sink.publish_batch("trade", records, 1)
    assert sink.close(30) == 1
    summary = sink.summary()
    assert (summary["undelivered"], summary["failed"]) == (1, 1)
    assert set(summary["errors"]) == {"MSG_SIZE_TOO_LARGE"}


def librdkafka_nice() -> dict[int, tuple[str, int]]:
    """Thread id -> (name, nice) of this process's librdkafka threads."""
    threads = {}
    for tid in map(int, os.listdir("/proc/self/task")):
        with contextlib.suppress(OSError):
            name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            if name.startswith("rdk:"):
                threads[tid] = (name, os.getpriority(os.PRIO_PROCESS, tid))
    return threads


@pytest.mark.parametrize(("profile", "thread_nice", "expected"),
                         [("latency", -1, 10), ("throughput", -1, 0), ("throughput", 5, 5)])
def test_librdkafka_threads_yield_the_core_in_the_latency_profile(
        kafka_bootstrap: str, profile: str, thread_nice: int, expected: int) -> None:
    before = set(librdkafka_nice())  # (other tests' producers may still be closing)
    base = os.getpriority(os.PRIO_PROCESS, 0)  # (the suite may run niced)
    sink = new_sink(kafka_config(kafka_bootstrap, profile=profile, thread_nice=thread_nice))
    try:
        sink.publish_batch("trade", trades([b"BTCUSDT"]), 1)
        drain(sink)  # (flushes; the producer and its threads stay)
        ours = {tid: info for tid, info in librdkafka_nice().items() if tid not in before}
        assert {nice for _, nice in ours.values()} == {max(base, expected)}
        # the broker's own thread, started by librdkafka's once metadata named the broker
        assert any(re.fullmatch(r"rdk:broker\d+", name) for name, _ in ours.values()), ours
        assert os.getpriority(os.PRIO_PROCESS, 0) == base  # the decoding thread keeps its own
    finally:
        sink.close(10)


def test_a_message_refused_at_produce_is_produced_and_failed(kafka_bootstrap: str) -> None:
    sink = new_sink(kafka_config(kafka_bootstrap, max_message_bytes=1024))
    sink.publish_control({"type": "note", "text": "x" * 200_000})  # past message.max.bytes
    sink.publish_batch("trade", trades([b"BTCUSDT"])[:5], epoch=1)
    assert sink.close(30) == 0
    summary = sink.summary()
    assert (summary["produced"], summary["failed"], summary["delivered"]) == (2, 1, 1)
    assert summary["errors"] == {"MSG_SIZE_TOO_LARGE": 1} and summary["records_delivered"] == 5


def test_a_fatal_producer_error_stops_the_handler_and_close_still_counts(
        kafka_bootstrap: str) -> None:
    sink = new_sink(kafka_config(kafka_bootstrap))
    sink._on_error(KafkaError(KafkaError._FATAL, "sequence broke", fatal=True))
    with pytest.raises(KafkaException):
        sink.service()  # (raised in the handler's service task: it stops, exit 1)
    assert sink.close(5) == 0


def test_held_records_go_as_one_message_per_symbol(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap, hold_ms=60_000)
    sink = new_sink(config, "inst-1")
    batch = trades([b"BTCUSDT", b"ETHUSDT", b"SOLUSDT"])
    for start in range(0, 3000, 500):
        sink.publish_batch("trade", batch[start:start + 500], epoch=3)
    sink.service()
    assert sink.summary()["produced"] == 0  # held: not yet 60 s old, nor batch_bytes
    drain(sink)  # close sends them

    messages = read(config, "trade")
    assert len(messages) == 3
    expected = by_symbol(batch)
    for msg in messages:
        records = decode(msg)
        assert records.tobytes() == expected[msg.key()].tobytes()
        headers = header_dict(msg.headers())
        assert (headers["fh.count"], headers["fh.epoch"]) == (str(len(records)), "3")
        assert headers["fh.seq.first"] == "1"
        assert headers["fh.seq.last"] == str(records["trade_id"][-1])
    assert sink.summary()["records_delivered"] == len(batch)


@pytest.mark.parametrize(("profile", "messages"), [("throughput", 2), ("latency", 4)])
def test_the_throughput_profile_holds_records_5_ms(kafka_bootstrap: str, profile: str,
                                                   messages: int) -> None:
    config = kafka_config(kafka_bootstrap, profile=profile)
    sink = new_sink(config)
    batch = trades([b"BTCUSDT", b"ETHUSDT"])
    sink.publish_batch("trade", batch[:100], epoch=1)
    sink.publish_batch("trade", batch[100:200], epoch=1)
    held = 200 if profile == "throughput" else 0
    assert sink.summary()["records_produced"] == 200 - held
    assert sink.summary()["records_held"] == held and sink.holding == bool(held)
    time.sleep(0.006)
    sink.service()  # 5 ms old
    assert sink.summary()["records_produced"] == 200
    assert sink.summary()["records_held"] == 0 and not sink.holding
    drain(sink)
    assert len(read(config, "trade")) == messages


def test_held_records_leave_at_once_when_the_handler_has_caught_up(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap, hold_ms=60_000)
    sink = new_sink(config, kinds=("trade", "aggTrade"))
    sink.publish_batch("trade", trades([b"BTCUSDT"])[:10], epoch=1)
    aggregated = np.zeros(5, SCHEMAS["aggTrade"].dtype)
    aggregated["symbol"] = b"ETHUSDT"
    sink.publish_batch("aggTrade", aggregated, epoch=1)
    assert sink.holding and sink.summary()["records_held"] == 15
    sink.caught_up()  # every kind's
    assert not sink.holding and sink.summary()["records_produced"] == 15
    drain(sink)
    assert [len(read(config, kind)) for kind in ("trade", "aggTrade")] == [1, 1]


@pytest.mark.parametrize("encoding", ["records", "compact"])
def test_held_records_leave_when_old_full_or_of_another_epoch(kafka_bootstrap: str,
                                                              encoding: str) -> None:
    schema = SCHEMAS["trade"]  # batch_bytes counts the bytes a message carries of each row
    row = compact_row(schema).itemsize if encoding == "compact" else schema.itemsize
    config = kafka_config(kafka_bootstrap, hold_ms=50, batch_bytes=1000 * row,
                          encoding=encoding)
    sink = new_sink(config)
    batch = trades([b"BTCUSDT", b"ETHUSDT"])

    def produced() -> int:
        return int(sink.summary()["records_produced"])

    sink.publish_batch("trade", batch[:600], epoch=1)
    sink.publish_batch("trade", batch[600:900], epoch=1)
    assert produced() == 0
    sink.publish_batch("trade", batch[900:1200], epoch=1)  # 1,200 rows: batch_bytes reached
    assert produced() == 1200
    sink.publish_batch("trade", batch[1200:1300], epoch=2)
    sink.publish_batch("trade", batch[1300:1500], epoch=3)  # another epoch: epoch 2's leave
    assert produced() == 1300
    sink.service()
    assert produced() == 1300
    time.sleep(0.06)
    sink.service()  # 50 ms old
    assert produced() == 1500
    drain(sink)

    got: dict[bytes, list[np.ndarray]] = {}
    epochs = []
    for msg in read(config, "trade"):
        got.setdefault(msg.key(), []).append(decode(msg))
        epochs.append(header_dict(msg.headers())["fh.epoch"])
    assert sorted(epochs) == ["1", "1", "2", "2", "3", "3"]
    for symbol, records in by_symbol(batch[:1500]).items():
        assert joined(got[symbol]).tobytes() == records.tobytes()


def test_a_held_message_goes_once_it_reaches_max_message_bytes(kafka_bootstrap: str) -> None:
    config = kafka_config(kafka_bootstrap, hold_ms=60_000, max_message_bytes=20_000)
    sink = new_sink(config)
    batch = trades([b"BTCUSDT"])
    most = 20_000 // SCHEMAS["trade"].itemsize
    for start in range(0, 3000, 700):
        sink.publish_batch("trade", batch[start:start + 700], epoch=1)
    assert sink.summary()["records_produced"] == 3000 - 3000 % most
    drain(sink)
    messages = read(config, "trade")
    assert [int(header_dict(m.headers())["fh.count"]) for m in messages] == \
        [most] * (3000 // most) + [3000 % most]
    assert joined([decode(m) for m in messages]).tobytes() == batch.tobytes()
