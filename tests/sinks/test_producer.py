"""The producer on librdkafka's C API, without a broker: settings, refusals, a full queue,
failure reports with their record counts, callbacks, log lines. Against the real broker it is
tested through the Kafka sink (test_kafka_sink.py)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from typing import Any

import confluent_kafka
import pytest
from confluent_kafka import KafkaError, KafkaException

from feedhandler._ext import producer as producer_module
from feedhandler._ext.producer import Producer
from feedhandler._ext.publish import Counts, Outlet, RecordLayout, produce_records
from feedhandler.config import ConfigError, KafkaConfig
from feedhandler.contract import SEQUENCE_FIELDS, padding
from feedhandler.records import SCHEMAS
from feedhandler.sinks.kafka import check_producer
from tests.sinks.test_publish import trades

NOWHERE = {"bootstrap.servers": "", "log_level": 0}  # no broker: nothing is sent, no errors come


def test_a_librdkafka_older_than_the_header_is_refused_when_a_producer_is_made(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert confluent_kafka.libversion()[1] == producer_module.LIBRARY_VERSION
    mismatch = producer_module.version_mismatch
    assert mismatch(0x02100000, 0x020002FF) is None  # newer
    assert mismatch(0x02000201, 0x020002FF) is None  # a release candidate of the same
    assert mismatch(0x010902FF, 0x020002FF) == (
        "confluent-kafka's librdkafka 1.9.2 is older than the header the Kafka producer was "
        "built with (2.0.2): upgrade confluent-kafka, or build against an older librdkafka-dev")
    monkeypatch.setattr(producer_module, "LIBRARY_VERSION", 0x010902FF)
    monkeypatch.setattr(producer_module, "HEADER_VERSION", 0x020002FF)
    Producer.capturing()  # no librdkafka: nothing to check
    with pytest.raises(KafkaException) as caught:
        Producer(NOWHERE)
    assert caught.value.args[0].code() == KafkaError._INVALID_ARG
    # at start (and in `config check`): one line, exit 2
    with pytest.raises(ConfigError, match=r"^kafka\.producer: Failed to create producer: "
                                          r"confluent-kafka's librdkafka 1\.9\.2 is older"):
        check_producer(KafkaConfig(), "test")


def test_a_setting_librdkafka_refuses_is_an_invalid_argument_in_its_words() -> None:
    with pytest.raises(KafkaException) as caught:
        Producer({**NOWHERE, "sasl.pasword": "x"})
    error = caught.value.args[0]
    assert error.code() == KafkaError._INVALID_ARG
    assert error.str() == 'No such configuration property: "sasl.pasword"'
    with pytest.raises(KafkaException, match="Failed to create producer: Unsupported SASL"):
        Producer({**NOWHERE, "security.protocol": "sasl_plaintext", "sasl.mechanism": "BOGUS"})


def test_settings_are_written_as_librdkafka_reads_them() -> None:
    producer = Producer({**NOWHERE, "client.id": "fh-test", "enable.idempotence": True,
                         "linger.ms": 2.5, "batch.size": 1 << 20})
    assert producer.name.startswith("fh-test#producer-")


def test_failures_come_back_with_topic_key_and_record_count() -> None:
    failures: list[tuple[Any, ...]] = []
    producer = Producer(NOWHERE, on_failure=lambda *f: failures.append(f))
    producer.produce("t.a", b"value", b"BTCUSDT", [("fh.count", b"3")], 3)
    producer.produce("t.b", b"value", b"", [], 0)
    assert len(producer) == 2
    producer.purge()
    producer.poll(0.5)
    assert [(topic, key, count, error.code()) for topic, key, count, error in failures] == [
        ("t.a", b"BTCUSDT", 3, KafkaError._PURGE_QUEUE), ("t.b", b"", 0, KafkaError._PURGE_QUEUE)]
    assert producer.flush(1) == 0


def test_a_message_over_the_limit_is_refused_and_a_full_queue_is_a_buffer_error() -> None:
    producer = Producer({**NOWHERE, "message.max.bytes": 1000,
                         "queue.buffering.max.messages": 1})
    with pytest.raises(KafkaException) as caught:
        producer.produce("t", b"x" * 2000, b"k", [], 1)
    assert caught.value.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
    producer.produce("t", b"x", b"k", [], 1)
    with pytest.raises(BufferError):
        producer.produce("t", b"x", b"k", [], 1)
    with pytest.raises(ValueError, match="at most 24"):
        producer.produce("t", b"x", b"k", [("h", b"v")] * 25, 1)


def test_an_exception_in_a_callback_comes_out_of_the_poll() -> None:
    def broken(*failure: Any) -> None:
        raise RuntimeError("callback broke")

    producer = Producer(NOWHERE, on_failure=broken)
    producer.produce("t", b"x", b"k", [], 1)
    producer.produce("t", b"y", b"k", [], 1)
    producer.purge()
    with pytest.raises(RuntimeError, match="callback broke"):
        producer.poll(0.5)
    assert producer.poll(0) == 0  # raised once; the second report was served too


@pytest.mark.parametrize(("second", "out", "logged"), [
    (RuntimeError("second"), "first", "second"),
    (KeyboardInterrupt("second"), "second", "first"),  # an interrupt is never only logged
])
def test_a_second_exception_in_the_same_poll_is_logged(
        second: BaseException, out: str, logged: str, caplog: pytest.LogCaptureFixture) -> None:
    raised = iter((RuntimeError("first"), second))

    def broken(*failure: Any) -> None:
        raise next(raised)

    producer = Producer(NOWHERE, on_failure=broken)
    producer.produce("t", b"x", b"k", [], 1)
    producer.produce("t", b"y", b"k", [], 1)
    producer.purge()
    # (both purged messages' reports are served by the one poll)
    with caplog.at_level(logging.ERROR, logger="feedhandler._ext.producer"), \
            pytest.raises(type(second) if out == "second" else RuntimeError, match=out):
        producer.poll(0.5)
    (record,) = caplog.records
    assert "another exception in a Kafka producer callback" in record.getMessage()
    assert record.exc_info is not None and str(record.exc_info[1]) == logged


def test_errors_statistics_and_log_lines_reach_python() -> None:
    errors: list[KafkaError] = []
    statistics: list[dict[str, Any]] = []
    records: list[logging.LogRecord] = []
    logger = logging.getLogger("test.producer")
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        producer = Producer({"bootstrap.servers": "127.0.0.1:1", "client.id": "fh-log",
                             "statistics.interval.ms": 100}, logger=logger,
                            on_error=errors.append,
                            on_statistics=lambda text: statistics.append(json.loads(text)))
        deadline = time.monotonic() + 10
        while not (errors and statistics and records) and time.monotonic() < deadline:
            producer.poll(0.1)
    finally:
        logger.removeHandler(handler)
    assert errors[0].code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)
    assert not errors[0].fatal()
    assert statistics[0]["client_id"] == "fh-log" and statistics[0]["type"] == "producer"
    assert "127.0.0.1:1" in records[0].getMessage() and records[0].levelno >= logging.WARNING


def test_a_capturing_producer_keeps_messages_and_plays_librdkafka_s_refusals() -> None:
    producer = Producer.capturing(room=2, max_bytes=4)
    producer.produce("t", b"abcd", b"k", [("fh.count", b"1")], 1)
    with pytest.raises(KafkaException):
        producer.produce("t", b"abcde", b"k", [], 1)
    producer.produce("u", b"", b"", [], 0)
    with pytest.raises(BufferError):
        producer.produce("t", b"a", b"k", [], 1)
    assert producer.captured == [("t", b"k", b"abcd", [("fh.count", b"1")]), ("u", b"", b"", [])]
    assert (len(producer), producer.poll(1), producer.flush(1)) == (0, 0, 0)


def test_records_handed_to_librdkafka_come_back_counted_when_they_fail() -> None:
    # the path the sink takes: values malloc'd for librdkafka to free, counts as opaques
    failures: list[tuple[Any, ...]] = []
    producer = Producer(NOWHERE, on_failure=lambda *f: failures.append(f))
    records = trades([b"BTCUSDT", b"ETHUSDT", b"BTCUSDT"])
    counts = Counts()
    produce_records(Outlet(producer, print, print), RecordLayout(
        SCHEMAS["trade"].dtype, SEQUENCE_FIELDS["trade"], padding(SCHEMAS["trade"])), records,
        1000, {}, lambda symbol: f"t.{symbol.decode()}", (), 1, False, counts)
    assert (counts.produced, counts.records, len(producer)) == (2, 3, 2)
    producer.purge()
    producer.poll(0.5)
    assert sorted((topic, key, count) for topic, key, count, _ in failures) == [
        ("t.BTCUSDT", b"BTCUSDT", 2), ("t.ETHUSDT", b"ETHUSDT", 1)]


def test_records_librdkafka_refuses_are_failed_not_leaked() -> None:
    refused: list[tuple[Any, ...]] = []
    producer = Producer({**NOWHERE, "message.max.bytes": 1000})
    records = trades([b"BTCUSDT"] * 20)  # one message of 20 records, over 1,000 bytes
    counts = Counts()
    produce_records(Outlet(producer, print, lambda *r: refused.append(r)), RecordLayout(
        SCHEMAS["trade"].dtype), records, 1000, {b"BTCUSDT": "t"}, str, (), 1, False, counts)
    ((topic, key, count, error),) = refused
    assert (topic, key, count, error.code()) == ("t", b"BTCUSDT", 20,
                                                 KafkaError.MSG_SIZE_TOO_LARGE)
    assert counts.produced == 0 and len(producer) == 0
    with pytest.raises(TypeError):  # a topic that is not a str: refused before any value
        produce_records(Outlet(producer, print, print), RecordLayout(SCHEMAS["trade"].dtype),
                        records, 1000, {}, lambda symbol: symbol, (), 1, False, Counts())
    with pytest.raises(ValueError, match="fixed headers"):
        produce_records(Outlet(producer, print, print), RecordLayout(SCHEMAS["trade"].dtype),
                        records, 1000, {}, str, (("h", b"v"),) * 21, 1, False, Counts())


def test_without_proc_only_the_kafka_extensions_lack_librdkafka() -> None:
    # the loaded librdkafka is found in /proc/self/maps; where there is none, the decoding
    # extensions still import (the Kafka ones, producer and publish, do not)
    code = ("import builtins; real = builtins.open\n"
            "def fake(path, *a, **k):\n"
            "    if path == '/proc/self/maps': raise FileNotFoundError(path)\n"
            "    return real(path, *a, **k)\n"
            "builtins.open = fake\n"
            "import feedhandler._ext.decoder, feedhandler._ext.listener\n"
            "print('imported')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "imported", done.stderr
