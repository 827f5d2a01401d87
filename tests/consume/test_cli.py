"""`feedhandler consume` against topics filled by the Kafka sink."""

from __future__ import annotations

import argparse
import subprocess
import sys
import uuid
from collections.abc import Iterator

import numpy as np
import orjson
import pytest

from feedhandler.cli import main
from feedhandler.config import KafkaConfig
from feedhandler.consume.cli import from_time_ms
from feedhandler.contract.json_lines import encode_json
from feedhandler.records import SCHEMAS
from feedhandler.sinks.kafka import KafkaSink
from feedhandler.testing.kafka import LocalKafka

pytestmark = pytest.mark.integration


def trades(symbol: bytes, ids: list[int]) -> np.ndarray:
    records = np.zeros(len(ids), SCHEMAS["trade"].dtype)
    records["symbol"] = symbol
    records["trade_id"] = ids
    records["price"] = [10**8 * i + 5 for i in ids]  # i.00000005
    records["qty"] = 1
    return records


def depth(symbol: bytes, events: list[tuple[int, int, int]], continued: bool = False) -> np.ndarray:
    """(U, u, levels) per event -> one row per level, flagged FIRST..LAST; `continued`: the
    first event began in an earlier message."""
    rows = [(first, last, i == 0, i == levels - 1)
            for first, last, levels in events for i in range(levels)]
    records = np.zeros(len(rows), SCHEMAS["depth"].dtype)
    records["symbol"] = symbol
    records["first_update_id"] = [r[0] for r in rows]
    records["last_update_id"] = [r[1] for r in rows]
    records["flags"] = [r[2] * 1 + r[3] * 2 for r in rows]
    if continued:
        records["flags"][0] &= ~np.uint8(1)
    return records


@pytest.fixture(scope="module")
def market(kafka_broker: LocalKafka) -> Iterator[tuple[str, str, dict[str, np.ndarray]]]:
    bootstrap = kafka_broker.bootstrap
    name = f"t{uuid.uuid4().hex[:10]}"
    # (hold_ms 0: each batch's messages leave with it, as the cases below are cut)
    sink = KafkaSink(KafkaConfig(bootstrap=bootstrap, market=name, hold_ms=0), "cli",
                     topics=[f"binance.{name}.{kind}" for kind in ("trade", "depth")])
    data = {
        "btc": trades(b"BTCUSDT", [1, 2, 3, 4]),
        # ETHUSDT: 7 is missing (a gap), 9 comes twice (a repeat)
        "eth": trades(b"ETHUSDT", [5, 6, 8, 9, 9]),
        # an event split across two messages is one event, not a repeat
        "depth": depth(b"BTCUSDT", [(10, 12, 3), (13, 13, 2)]),
        "depth2": depth(b"BTCUSDT", [(13, 13, 1), (14, 20, 2), (22, 22, 1)], continued=True),
    }
    sink.publish_batch("trade", np.concatenate([data["btc"][:2], data["eth"]]), 1)
    sink.publish_batch("trade", data["btc"][2:], 1)
    sink.publish_batch("depth", data["depth"], 1)
    sink.publish_batch("depth", data["depth2"], 1)
    sink.publish_control({"type": "gap", "reason": "reconnect"})
    sink.publish_dead_letter("malformed_json", "", "btcusdt@trade", b'{"e":')
    sink.publish_dead_letter("binary_frame", "", "", b"\xc3(\xff")
    assert sink.close(30) == 0
    yield bootstrap, name, data


def consume(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> list[str]:
    assert main(["consume", *args]) == 0
    return capsysbinary.readouterr().out.decode().splitlines()


def test_summary_counts_and_checks_sequences(market: tuple[str, str, dict[str, np.ndarray]],
                                             capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    bootstrap, name, _ = market
    lines = consume(capsysbinary, "--kafka-bootstrap", bootstrap, "--market", name,
                    "--format", "summary")
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in lines[1:] if ":" not in line}
    # messages, records, first seq, last seq, gaps, repeats
    assert rows[("binance.spot.trade", "BTCUSDT")] == ["2", "4", "1", "4", "0", "0"]
    assert rows[("binance.spot.trade", "ETHUSDT")] == ["1", "5", "5", "9", "1", "1"]
    assert rows[("binance.spot.depth", "BTCUSDT")] == ["2", "9", "10", "22", "1", "0"]
    assert f"binance.{name}.control gap: 1" in lines
    assert f"binance.{name}.deadletter dead_letter: 2" in lines


def test_jsonl_for_one_symbol(market: tuple[str, str, dict[str, np.ndarray]],
                              capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    bootstrap, name, data = market
    lines = consume(capsysbinary, "--kafka-bootstrap", bootstrap, "--market", name,
                    "--kind", "trade", "--symbol", "btcusdt", "--format", "jsonl")
    # BTCUSDT's first message (offset 0) holds trades 1, 2; ETHUSDT's is at 1; then 3, 4 at 2
    position = [b'"topic":"binance.%s.trade","partition":0,"offset":%d,' % (name.encode(), i)
                for i in (0, 0, 2, 2)]
    expected = [encode_json(SCHEMAS["trade"], data["btc"][i:i + 1],
                            position[i] + b'"schema":"binance.spot.trade",').decode().rstrip()
                for i in range(4)]
    assert lines == expected
    assert orjson.loads(lines[0])["price"] == "1.00000005"


def test_tail_and_max_records(market: tuple[str, str, dict[str, np.ndarray]],
                              capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    bootstrap, name, _ = market
    tail = consume(capsysbinary, "--kafka-bootstrap", bootstrap, "--topic",
                   f"binance.{name}.trade", "--tail", "1", "--format", "jsonl")
    assert [orjson.loads(line)["trade_id"] for line in tail] == [3, 4]  # the last message
    first = consume(capsysbinary, "--kafka-bootstrap", bootstrap, "--topic",
                    f"binance.{name}.trade", "--symbol", "BTCUSDT", "--max-records", "1",
                    "--format", "jsonl")
    assert [orjson.loads(line)["trade_id"] for line in first] == [1, 2]  # whole messages


def test_table_and_events(market: tuple[str, str, dict[str, np.ndarray]],
                          capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    bootstrap, name, _ = market
    lines = consume(capsysbinary, "--kafka-bootstrap", bootstrap, "--market", name)
    assert ["kind", *SCHEMAS["trade"].dtype.names] in [line.split() for line in lines]
    eth = [line.split() for line in lines if line.endswith(" ETHUSDT")]
    assert [row[4] for row in eth] == ["5", "6", "8", "9", "9"]
    assert eth[0][5] == "5.00000005"
    events = [orjson.loads(line) for line in lines if line.startswith("{")]
    assert {"topic": f"binance.{name}.control", "partition": 0, "offset": 0,
            "event": {"instance": "cli", "type": "gap", "reason": "reconnect"}} in events
    assert {"topic": f"binance.{name}.deadletter", "partition": 0, "offset": 0,
            "reason": "malformed_json", "field": "", "stream": "btcusdt@trade",
            "frame": '{"e":'} in events
    assert {"topic": f"binance.{name}.deadletter", "partition": 0, "offset": 1,
            "reason": "binary_frame", "field": "", "stream": "",
            "frame_base64": "wyj/"} in events  # b"\xc3(\xff" exactly


def test_unknown_kind_is_a_usage_error(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    assert main(["consume", "--kind", "trades"]) == 2
    assert "unknown kind 'trades'" in capsysbinary.readouterr().err.decode()


@pytest.mark.parametrize(("flags", "says"), [
    (["--kind", "trade", "--topic-template", "{bogus}"], "--topic-template: bad topic template"),
    (["--book", "BTCUSDT", "--topic-template", "{exchange"], "--topic-template: bad topic"),
    (["--timeout", "-1"], "--timeout: expected a number above 0"),
    (["--idle-timeout", "0"], "--idle-timeout: expected a number above 0"),
])
def test_usage_errors_are_one_line_and_exit_2(flags: list[str], says: str,
                                              capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    try:  # (argparse's own checks exit; ours return)
        code = main(["consume", "--kafka-bootstrap", "127.0.0.1:1", *flags])
    except SystemExit as stopped:
        code = int(stopped.code or 0)
    err = capsysbinary.readouterr().err.decode()
    assert code == 2 and says in err and err.count("\n") == 1, err


def test_from_time_and_librdkafka_settings(market: tuple[str, str, dict[str, np.ndarray]],
                                           capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    bootstrap, name, _ = market
    topic = f"binance.{name}.trade"
    args = ["--kafka-bootstrap", bootstrap, "--topic", topic, "--format", "jsonl",
            "-X", "client.id=consume-test", "-X", "fetch.wait.max.ms=50"]
    everything = consume(capsysbinary, *args, "--from-time", "1d")
    assert len(everything) == 9  # all written just now
    later = consume(capsysbinary, *args, "--from-time", "2999-01-01T00:00:00Z",
                    "--idle-timeout", "1")
    assert later == []


def test_from_time_accepts_iso_and_durations() -> None:
    assert from_time_ms("2026-12-03T08:00:00Z") == 1796284800000
    assert from_time_ms("2026-12-03T09:00:00+01:00") == 1796284800000
    assert from_time_ms("2026-12-03T08:00:00") == 1796284800000  # UTC unless it says
    assert from_time_ms("15m", now_s=1000.0) == 100_000
    assert from_time_ms("1.5h", now_s=6000.0) == 600_000
    with pytest.raises(argparse.ArgumentTypeError, match="expected an ISO 8601 time"):
        from_time_ms("yesterday")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--kafka-bootstrap", "127.0.0.1:9"], 1,
         "feedhandler consume: cannot read from Kafka at 127.0.0.1:9: "),
        (["--kafka-bootstrap", "127.0.0.1:9", "-X", "no.such.setting=1"], 2,
         'feedhandler consume: -X: bad librdkafka setting: No such configuration property: '
         '"no.such.setting"'),
    ],
)
def test_unreachable_broker_is_one_line(args: list[str], code: int, message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "feedhandler", "consume", *args],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == code
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), result.stderr


def test_a_message_it_cannot_decode_is_named_and_skipped(
        kafka_broker: LocalKafka, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """A newer schema version (a handler upgraded while this consumer reads), a header that is
    not UTF-8 or an event that is not JSON costs that message, not the read: one line each,
    and exit 3 at the end."""
    from confluent_kafka import Producer

    from feedhandler.contract import H_COUNT, H_ENCODING, H_SCHEMA, H_VERSION

    bootstrap, name = kafka_broker.bootstrap, f"t{uuid.uuid4().hex[:10]}"
    topic = f"binance.{name}.trade"
    sink = KafkaSink(KafkaConfig(bootstrap=bootstrap, market=name), "cli", topics=[topic])
    sink.publish_batch("trade", trades(b"BTCUSDT", [1]), 1)
    assert sink.close(30) == 0
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, b"\0" * 200, b"BTCUSDT", headers=[
        (H_SCHEMA, b"binance.spot.trade"), (H_VERSION, b"99"), (H_ENCODING, b"records"),
        (H_COUNT, b"1")])
    producer.produce(topic, b"\0" * 200, b"BTCUSDT", headers=[
        (H_SCHEMA, b"binance.spot.\xfftrade"), (H_VERSION, b"2"), (H_ENCODING, b"records")])
    producer.produce(topic, b"not json", b"x")  # no fh.schema: taken for an event
    assert producer.flush(30) == 0
    sink = KafkaSink(KafkaConfig(bootstrap=bootstrap, market=name), "cli", topics=[topic])
    sink.publish_batch("trade", trades(b"BTCUSDT", [2]), 1)
    assert sink.close(30) == 0

    assert main(["consume", "--kafka-bootstrap", bootstrap, "--market", name, "--kind", "trade",
                 "--format", "jsonl"]) == 3
    captured = capsysbinary.readouterr()
    assert [orjson.loads(line)["trade_id"] for line in captured.out.splitlines()] == [1, 2]
    lines = captured.err.decode().splitlines()
    assert lines[0] == f"feedhandler consume: skipped {topic} partition 0 offset 1: unknown " \
        "schema binance.spot.trade v99"
    assert lines[1] == f"feedhandler consume: skipped {topic} partition 0 offset 2: header " \
        "fh.schema is not UTF-8"
    assert lines[2].startswith(f"feedhandler consume: skipped {topic} partition 0 offset 3: ")
    assert lines[3:5] == ["consumed 2 records",
                          "feedhandler consume: 3 messages could not be decoded"]


def test_a_book_restated_at_the_same_update_id_is_no_repeat() -> None:
    from feedhandler.consume.cli import StreamSummary

    books = np.zeros(4, SCHEMAS["book"].dtype)
    books["update_id"] = [10, 10, 12, 11]  # 10 again: rebuilt (a snapshot); 11: backwards
    summary = StreamSummary()
    summary.add("book", books)
    trades_again = StreamSummary()
    trades_again.add("trade", trades(b"BTCUSDT", [10, 10]))
    assert (summary.repeats, summary.gaps, trades_again.repeats) == (1, 0, 1)
