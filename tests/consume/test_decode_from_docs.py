"""A consumer in another language has only the README: decode real Kafka messages with Python's
`struct` from the generated record tables alone, and check against `feedhandler.decode`."""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from feedhandler import decode
from feedhandler._ext.book import Books
from feedhandler.book import snapshot_records
from feedhandler.config import KafkaConfig
from feedhandler.consume.reader import read_messages
from feedhandler.contract import decode_value, header_dict, wire_records
from feedhandler.contract.docs import section
from feedhandler.parsing import parse
from feedhandler.records import SCHEMAS, wide_to_int
from feedhandler.records.schema import HISTORY
from feedhandler.simulator.market import Feed, Universe
from feedhandler.sinks.kafka import KafkaSink

pytestmark = pytest.mark.integration

HEADING = re.compile(r"^#### `([\w.]+)` v(\d+) — kind `(\w+)`, (\d+) bytes per record$")
ROW = re.compile(r"^\| (\d+) \| (\d+) \| `(\w+)` \| ([\w\[\]]+) \|")
COMPACT = re.compile(r" In `compact` messages a record is its first (\d+) bytes\.$")
SCALARS = {"int64": ("q", 8), "int16": ("h", 2), "uint8": ("B", 1), "decimal64": ("q", 8),
           "decimal128": ("Qq", 16)}


Table = tuple[int, list[tuple[int, int, str, str]]]


def tables(markdown: str) -> dict[tuple[str, str, int], Table]:
    """(encoding, schema name, version) -> (record size, [(offset, size, field, type)]) from
    the README section: each table's `records` layout, and its `compact` one (the fields
    before the size its padding line gives)."""
    out: dict[tuple[str, str, int], Table] = {}
    current: tuple[str, int] | None = None
    for line in markdown.splitlines():
        if m := HEADING.match(line):
            current = m[1], int(m[2])
            out["records", *current] = (int(m[4]), [])
        elif current and (m := ROW.match(line)):
            out["records", *current][1].append((int(m[1]), int(m[2]), m[3], m[4]))
        elif current and (m := COMPACT.search(line)):
            size = int(m[1])
            out["compact", *current] = (size, [r for r in out["records", *current][1]
                                               if r[0] + r[1] <= size])
    return out


def layout(size: int, rows: list[tuple[int, int, str, str]]) -> tuple[str, list[tuple[str, str]]]:
    """A struct format and, per struct item group, (field or "pad", type)."""
    fmt, items, at = "<", [], 0
    for offset, width, name, type_ in rows:
        if offset > at:
            fmt += f"{offset - at}s"
            items.append(("pad", "pad"))
        base, _, count = type_.partition("[")
        if base == "char":
            fmt += f"{width}s"
            items.append((name, "char"))
        else:
            code, unit = SCALARS[base]
            n = int(count.rstrip("]")) if count else 1
            assert unit * n == width
            fmt += code * n
            items.append((name, f"{base}[{n}]" if count else base))
        at = offset + width
    if size > at:
        fmt += f"{size - at}s"
        items.append(("pad", "pad"))
    assert struct.calcsize(fmt) == size
    return fmt, items


def unpack(fmt: str, items: list[tuple[str, str]], value: bytes) -> Iterator[dict[str, Any]]:
    for flat in struct.iter_unpack(fmt, value):
        values = iter(flat)
        row: dict[str, Any] = {}
        for name, type_ in items:
            if type_ == "pad":
                assert next(values).strip(b"\0") == b"", "padding is zero"
            elif type_ == "char":
                row[name] = next(values).rstrip(b"\0").decode("utf-8")
            elif type_.startswith("decimal128"):
                n = int(type_.split("[")[1][:-1]) if "[" in type_ else 1
                wide = [next(values) + next(values) * 2**64 for _ in range(n)]  # lo, then hi
                row[name] = wide if "[" in type_ else wide[0]
            elif "[" in type_:
                row[name] = [next(values) for _ in range(int(type_.split("[")[1][:-1]))]
            else:
                row[name] = next(values)
        yield row


def as_python(records: np.ndarray, i: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in records.dtype.names or ():
        value = records[name][i]
        if records.dtype[name].kind == "S":
            row[name] = bytes(value).decode()
        elif records.dtype[name].names:
            row[name] = wide_to_int(value)
        elif records.dtype[name].base.names:  # decimal128[N]
            row[name] = [wide_to_int(v) for v in value]
        elif np.ndim(value):
            row[name] = [int(v) for v in value]
        else:
            row[name] = int(value)
    return row


@pytest.mark.parametrize("encoding", ["records", "compact"])
def test_struct_decoding_from_the_readme_tables(kafka_bootstrap: str, encoding: str) -> None:
    universe = Universe.generate(3, 10)
    streams = [f"{s.symbol.lower()}@{k}" for s in universe.symbols[:2]
               for k in ("trade", "aggTrade", "bookTicker", "depth@100ms", "depth10@100ms",
                         "kline_1m", "miniTicker", "ticker", "ticker_1h", "avgPrice",
                         "blockTrade", "referencePrice")]
    feed = Feed(3, universe)
    feed.subscribe(streams)
    frames = [b'{"stream":"%s","data":%s}' % (s.encode(), p) for s, p in feed.next_frames(4000)]
    parsed = parse(frames)
    # Volumes past int64: the two-word layout must carry the high word.
    kline = wire_records(SCHEMAS["kline"], parsed["kline"])
    kline["quote_volume"]["hi"][0] = 5
    kline["volume"]["hi"][0] = -1

    # The handler's `book` kind: the top of a book whose best ask quantity is past int64.
    books = Books()
    books.apply(snapshot_records(universe.symbols[0].symbol, {
        "lastUpdateId": 7, "bids": [["1.50000000", "2.00000000"], ["1.25000000", "1"]],
        "asks": [["2.00000000", "200000000000.00000001"]]}))
    derived = {"kline": kline, "book": books.take_tops(20, 1)}

    market = f"t{uuid.uuid4().hex[:10]}"
    kinds = [k for k in SCHEMAS if k not in ("control", "gap")]
    sink = KafkaSink(KafkaConfig(bootstrap=kafka_bootstrap, market=market, encoding=encoding),
                     "docs", topics=[f"binance.{market}.{kind}" for kind in kinds])
    for kind in kinds:
        records = derived.get(kind, parsed[kind])
        assert len(records), kind
        sink.publish_batch(kind, records, 1)
    assert sink.close(30) == 0

    docs = tables(section())
    current = {(SCHEMAS[k].name, SCHEMAS[k].version) for k in kinds}
    assert set(docs) == {("records", *name) for name in current | set(HISTORY)} | {
        ("compact", *name) for name in current}  # (no compact message of an earlier layout)
    unpacked: dict[str, list[dict[str, Any]]] = {}
    for kind in kinds:
        for msg in read_messages(kafka_bootstrap, [f"binance.{market}.{kind}"]):
            headers = header_dict(msg.headers())
            assert headers["fh.encoding"] == encoding
            size, rows = docs[encoding, headers["fh.schema"], int(headers["fh.version"])]
            value = msg.value() or b""
            assert len(value) == size * int(headers["fh.count"])
            fmt, items = layout(size, rows)
            expected = decode(msg)
            got = list(unpack(fmt, items, value))
            if encoding == "compact":  # (the symbol is the header's)
                got = [{**row, "symbol": headers["fh.symbol"]} for row in got]
            assert got == [as_python(expected, i) for i in range(len(expected))]
            unpacked.setdefault(kind, []).extend(got)
    assert {k: len(v) for k, v in unpacked.items()} == {
        k: len(derived.get(k, parsed[k])) for k in kinds}
    (book,) = unpacked["book"]
    assert (book["update_id"], book["bid_count"], book["ask_count"]) == (7, 2, 1)
    assert book["bid_price"][:3] == [150000000, 125000000, 0]
    assert book["ask_qty"][0] == 20000000000000000001  # past int64: the high word carried
    assert [r for r in unpacked["kline"] if r["quote_volume"] >= 5 * 2**64 and r["volume"] < 0]
    assert {r["symbol"] for r in unpacked["trade"]} == {s.symbol for s in universe.symbols[:2]}


def test_an_earlier_layout_decodes_from_its_table() -> None:
    """A v1 message (int64 quantities) read with its README table gives what
    feedhandler.decode makes of it."""
    docs = tables(section())
    assert HISTORY, "no earlier layout to check"
    for (name, version), schema in HISTORY.items():
        size, rows = docs["records", name, version]
        assert size == schema.itemsize
        records = np.zeros(3, schema.dtype)
        for i, field in enumerate(schema.dtype.names or ()):
            if records.dtype[field].kind == "S":
                records[field] = b"PEPEUSDT"
            elif records.dtype[field].kind in "iu":  # -1 on signed fields: the sign carries
                signed = records.dtype[field].base.kind == "i"
                records[field] = (-1 if signed else 1) * (i + 1) + np.arange(3).reshape(
                    (3,) + (1,) * (records.dtype[field].ndim))
        value = records.tobytes()
        fmt, items = layout(size, rows)
        got = list(unpack(fmt, items, value))
        expected = decode_value({"fh.schema": name, "fh.version": str(version),
                                 "fh.encoding": "records", "fh.count": "3"}, value)
        assert got == [as_python(expected, i) for i in range(3)], name
