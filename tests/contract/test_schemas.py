"""The JSON Schemas and Arrow schemas agree with the dtypes and the encodings: a json record
validates against its kind's JSON Schema, and a decoded batch becomes an Arrow table of its
kind's Arrow schema with every value exact."""

from __future__ import annotations

import re
import uuid
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest

from feedhandler import decode
from feedhandler.config import KafkaConfig
from feedhandler.consume.reader import read_messages
from feedhandler.contract import arrow_schema, arrow_table, header_dict, json_schema
from feedhandler.contract.json_lines import encode_json
from feedhandler.contract.kinds import market_kinds
from feedhandler.contract.schemas import data_kinds, main
from feedhandler.parsing import parse
from feedhandler.records import SCHEMAS, to_decimal, wide_to_int
from feedhandler.sinks.kafka import KafkaSink
from tests.contract.test_contract import random_records

KINDS = [k.name for k in market_kinds()]


def validate(schema: dict[str, Any], value: Any, where: str = "") -> None:
    """The subset of JSON Schema our schemas use, checked strictly."""
    kind = schema["type"]
    if kind == "object":
        assert isinstance(value, dict), where
        assert list(value) == list(schema["properties"]) == schema["required"], where
        for key, item in value.items():
            validate(schema["properties"][key], item, f"{where}.{key}")
    elif kind == "array":
        assert isinstance(value, list) and schema["minItems"] <= len(value) <= schema["maxItems"]
        for item in value:
            validate(schema["items"], item, where)
    elif kind == "integer":
        assert type(value) is int and schema["minimum"] <= value <= schema["maximum"], where
    else:
        assert isinstance(value, str), where
        assert re.search(schema.get("pattern", ""), value), (where, value)
        assert len(value) <= schema.get("maxLength", len(value)), where


def example_batches() -> dict[str, np.ndarray]:
    """Each kind's declared example payload, decoded by the live decoder."""
    frames = [b'{"stream":"bnbbtc@%s","data":%s}' % (k.streams[0].text.encode(),
                                                     k.example.encode()) for k in market_kinds()]
    parsed = parse(frames)
    assert not parsed.errors
    return {k: parsed[k] for k in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_json_records_validate_against_their_schema(kind: str) -> None:
    schema = json_schema(kind)
    assert list(schema["properties"]) == list(SCHEMAS[kind].dtype.names or ())
    records = random_records(SCHEMAS[kind], 50, seed=3)
    records[SCHEMAS[kind].fields[-1].name] = b"BTCUSDT"  # (a valid symbol/text)
    for f in SCHEMAS[kind].fields:
        if f.type == "bytes":
            records[f.name] = b"1m"
    for line in encode_json(SCHEMAS[kind], records).splitlines():
        validate(schema, orjson.loads(line), kind)


@pytest.mark.parametrize("kind", KINDS)
def test_arrow_schema_follows_the_dtype(kind: str) -> None:
    schema, dtype = arrow_schema(kind), SCHEMAS[kind].dtype
    assert schema.names == list(dtype.names or ())
    for f in SCHEMAS[kind].fields:
        arrow = schema.field(f.name).type
        if f.count > 1 and f.type != "bytes":
            assert arrow.list_size == f.count
            arrow = arrow.value_type
        if f.is_decimal:
            assert arrow.scale == 8
        elif f.type == "bytes":
            assert arrow == pa.string()
        else:
            assert arrow.bit_width == dtype[f.name].base.itemsize * 8


def exact(values: np.ndarray, type_: str) -> list[Any]:
    if type_ == "int128":
        return [[to_decimal(wide_to_int(x)) for x in v] if v.shape else to_decimal(wide_to_int(v))
                for v in values]
    if type_ == "fixed8":
        return [[to_decimal(int(x)) for x in v] if np.ndim(v) else to_decimal(int(v))
                for v in values]
    if type_ == "bytes":
        return [bytes(v).decode() for v in values]
    return values.tolist()


@pytest.mark.parametrize("kind", KINDS)
def test_a_decoded_batch_becomes_an_exact_arrow_table(kind: str) -> None:
    batches = example_batches()
    records = np.concatenate([batches[kind], random_records(SCHEMAS[kind], 30, seed=5)])
    for f in SCHEMAS[kind].fields:
        if f.type == "bytes":
            records[f.name] = records[f.name][0]  # (random text may not be valid UTF-8)
    table = arrow_table(kind, records)
    assert table.schema.equals(arrow_schema(kind), check_metadata=True)
    assert table.num_rows == len(records)
    for f in SCHEMAS[kind].fields:
        column = table.column(f.name)
        if f.name.startswith("ts_"):
            got = column.cast(pa.int64()).to_pylist()
        else:
            got = column.to_pylist()
        assert got == exact(records[f.name], f.type), f.name


def test_extremes_are_exact_in_arrow() -> None:
    records = np.zeros(3, SCHEMAS["kline"].dtype)
    records["open"] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1]
    records["volume"]["hi"] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max, -1]
    records["volume"]["lo"] = [0, 2**64 - 1, 2**64 - 1]
    table = arrow_table("kline", records)
    assert table.column("open").to_pylist() == [to_decimal(-(2**63)), to_decimal(2**63 - 1),
                                                to_decimal(-1)]
    assert table.column("volume").to_pylist() == [to_decimal(-(2**127)),
                                                  to_decimal(2**127 - 1), to_decimal(-1)]


def test_module_entry_dumps_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["json"]) == 0
    dumped = orjson.loads(capsys.readouterr().out)
    assert dumped == {SCHEMAS[k].name: json_schema(k) for k in data_kinds()}
    assert main(["arrow", "trade"]) == 0
    assert "price: decimal128(19, 8) not null" in capsys.readouterr().out


@pytest.mark.integration
def test_jsonrecord_is_one_valid_record_per_message(kafka_bootstrap: str) -> None:
    config = KafkaConfig(bootstrap=kafka_bootstrap, market=f"t{uuid.uuid4().hex[:10]}",
                         encoding="jsonrecord")
    topic = f"binance.{config.market}.trade"
    sink = KafkaSink(config, "inst", topics=[topic])
    batch = random_records(SCHEMAS["trade"], 40, seed=9)
    batch["symbol"] = [b"BTCUSDT", b"ETHUSDT"] * 20
    sink.publish_batch("trade", batch, epoch=1)
    assert sink.close(30) == 0
    messages = list(read_messages(kafka_bootstrap, [topic]))
    assert len(messages) == 40
    schema = json_schema("trade")
    for message in messages:
        headers = header_dict(message.headers())
        assert (headers["fh.encoding"], headers["fh.count"]) == ("jsonrecord", "1")
        value = message.value() or b""
        assert b"\n" not in value
        record = orjson.loads(value)
        validate(schema, record)
        assert message.key() == record["symbol"].encode()
        assert headers["fh.seq.first"] == headers["fh.seq.last"] == str(record["trade_id"])
    got = np.concatenate([decode(m) for m in messages])
    want = np.concatenate([batch[batch["symbol"] == s] for s in (b"BTCUSDT", b"ETHUSDT")])
    assert sorted(got.tolist()) == sorted(want.tolist())
