"""The data contract without a broker: topic names, headers, the three encodings."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from feedhandler.contract import (
    H_COUNT,
    H_ENCODING,
    H_RECV_NS,
    H_SCHEMA,
    H_SYMBOL,
    H_TIME_UNIT,
    H_VERSION,
    DecodeError,
    data_topics,
    decode_value,
    header_dict,
    raw_headers,
    stream_kind,
    topic_for,
    wire_records,
)
from feedhandler.contract.json_lines import decode_json, encode_json
from feedhandler.parsing import parse
from feedhandler.records import SCHEMAS, Schema, to_str, wide_to_int
from feedhandler.simulator.market import Feed, Universe

MARKET_KINDS = [k for k in SCHEMAS if k not in ("control", "gap")]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        ("btcusdt@trade", ("trade", "BTCUSDT")),
        ("btcusdt@aggTrade", ("aggTrade", "BTCUSDT")),
        ("ethusdt@bookTicker", ("bookTicker", "ETHUSDT")),
        ("btcusdt@depth", ("depth", "BTCUSDT")),
        ("btcusdt@depth@100ms", ("depth", "BTCUSDT")),
        ("btcusdt@depth20@100ms", ("depthPartial", "BTCUSDT")),
        ("btcusdt@depth5", ("depthPartial", "BTCUSDT")),
        ("btcusdt@kline_1m", ("kline", "BTCUSDT")),
        ("btcusdt@kline_1h@+08:00", ("kline", "BTCUSDT")),
        ("btcusdt@miniTicker", ("miniTicker", "BTCUSDT")),
        ("!miniTicker@arr", ("miniTicker", "")),
        ("btcusdt@ticker", ("ticker", "BTCUSDT")),
        ("!ticker@arr", ("ticker", "")),
        ("btcusdt@ticker_4h", ("windowTicker", "BTCUSDT")),
        ("!ticker_1d@arr", ("windowTicker", "")),
        ("btcusdt@avgPrice", ("avgPrice", "BTCUSDT")),
    ],
)
def test_stream_kind(stream: str, expected: tuple[str, str]) -> None:
    assert stream_kind(stream) == expected


@pytest.mark.parametrize("stream", ["btcusdt@bogus", "btcusdt@gap", "btcusdt@control"])
def test_stream_kind_rejects_non_market_streams(stream: str) -> None:
    with pytest.raises(ValueError, match="not a market data stream"):
        stream_kind(stream)


def test_topics_from_templates() -> None:
    assert topic_for("trade", "BTCUSDT") == "binance.spot.trade"
    assert topic_for("trade", "BTCUSDT", "md.{exchange}.{kind}.{symbol}") == \
        "md.binance.trade.btcusdt"
    assert topic_for("miniTicker", "", "{kind}.{symbol}") == "miniTicker.all"
    streams = ["btcusdt@trade", "ethusdt@trade", "btcusdt@depth@100ms", "!miniTicker@arr"]
    assert data_topics(streams) == {"binance.spot.trade", "binance.spot.depth",
                                    "binance.spot.miniTicker"}
    assert data_topics(streams, "{market}.{kind}.{symbol}", market="m") == {
        "m.trade.btcusdt", "m.trade.ethusdt", "m.depth.btcusdt", "m.miniTicker.all"}
    # the handler's `book` records: one topic per depth stream's symbol
    assert data_topics(streams, "{market}.{kind}.{symbol}", market="m", derived=["book"]) - \
        data_topics(streams, "{market}.{kind}.{symbol}", market="m") == {"m.book.btcusdt"}


# --- json ------------------------------------------------------------------------------------

def reference_json(schema: Schema, records: np.ndarray) -> bytes:
    """The documented JSON form, one record at a time in plain Python."""
    lines = []
    for row in records:
        obj: dict[str, object] = {}
        for f in schema.fields:
            value = row[f.name]
            if f.type == "bytes":
                obj[f.name] = bytes(value).decode()
            elif f.type == "int128" and f.count > 1:
                obj[f.name] = [to_str(wide_to_int(v)) for v in value]
            elif f.type == "int128":
                obj[f.name] = to_str(wide_to_int(value))
            elif f.count > 1:
                obj[f.name] = [to_str(int(v)) for v in value]
            elif f.is_decimal:
                obj[f.name] = to_str(int(value))
            else:
                obj[f.name] = int(value)
        lines.append(orjson.dumps(obj) + b"\n")
    return b"".join(lines)


def random_records(schema: Schema, n: int, seed: int) -> np.ndarray:
    """Random bytes in every field, then the extremes of each numeric type in the first rows."""
    rng = np.random.default_rng(seed)
    records = np.zeros(n, schema.dtype)
    texts = np.array([b"BTCUSDT", b'QUO"TE', b"BACK\\SLASH", "ÄÖ€".encode(), b"TAB\tX", b""])
    for f in schema.fields:
        column = records[f.name]
        if f.type == "bytes":
            records[f.name] = [t[: f.count] for t in texts[rng.integers(0, len(texts), n)]]
        elif f.type == "int128":
            column["lo"] = rng.integers(0, 2**64, column.shape, dtype=np.uint64)
            column["hi"] = rng.integers(INT64_MIN, INT64_MAX, column.shape, endpoint=True)
            hi, lo = column["hi"].reshape(n, -1), column["lo"].reshape(n, -1)  # (arrays too)
            hi[:6, 0] = [INT64_MIN, -1, -1, 0, 0, INT64_MAX]
            lo[:6, 0] = [0, 0, 2**64 - 1, 0, 1, 2**64 - 1]
            hi[6:20, 0] = 0  # small values: leading-zero trimming across limbs
            lo[6:20, 0] = rng.integers(0, 10**10, 14)
        else:
            info = np.iinfo(column.dtype)
            values = rng.integers(info.min, info.max, column.shape, endpoint=True)
            values.reshape(n, -1)[:4, 0] = [info.min, info.max, 0, -1 if info.min else 1]
            small = (max(int(info.min), -(10**9)), min(int(info.max), 10**9))
            values.reshape(n, -1)[4:12, 0] = rng.integers(*small, 8)  # short digit strings
            records[f.name] = values
    return records


@pytest.mark.parametrize("kind", list(SCHEMAS))
@pytest.mark.parametrize("seed", [1, 2])
def test_json_matches_the_documented_form_and_round_trips(kind: str, seed: int) -> None:
    schema = SCHEMAS[kind]
    records = random_records(schema, 200, seed)
    value = encode_json(schema, records)
    assert value == reference_json(schema, records)
    back = decode_json(schema, value)
    assert back.dtype == schema.dtype
    assert back.tobytes() == records.tobytes()


def test_json_lead_and_empty_batch() -> None:
    schema = SCHEMAS["trade"]
    records = random_records(schema, 30, 5)[:3]
    lines = encode_json(schema, records, b'"schema":"binance.spot.trade",').splitlines()
    assert [orjson.loads(line)["schema"] for line in lines] == ["binance.spot.trade"] * 3
    assert encode_json(schema, records[:0]) == b""


def test_json_decimals_are_exact_strings() -> None:
    schema = SCHEMAS["trade"]
    records = np.zeros(3, schema.dtype)
    records["price"] = [9824971000000, -1, 1]
    records["qty"] = [100000000, INT64_MIN, 0]
    records["symbol"] = b"BTCUSDT"
    rows = [orjson.loads(line) for line in encode_json(schema, records).splitlines()]
    assert [r["price"] for r in rows] == ["98249.71000000", "-0.00000001", "0.00000001"]
    assert [r["qty"] for r in rows] == ["1.00000000", "-92233720368.54775808", "0.00000000"]
    assert rows[0]["symbol"] == "BTCUSDT"


# --- decode_value ----------------------------------------------------------------------------

def combined(stream: str, payload: bytes) -> bytes:
    return b'{"stream":"' + stream.encode() + b'","data":' + payload + b"}"


def market_frames(count: int) -> list[bytes]:
    universe = Universe.generate(1, 12)
    streams = [f"{s.symbol.lower()}@{k}" for s in universe.symbols[:3]
               for k in ("trade", "depth@100ms", "depth5@100ms", "kline_1m", "ticker_1h")]
    feed = Feed(1, universe)
    feed.subscribe([*streams, "!miniTicker@arr"])
    return [combined(s, p) for s, p in feed.next_frames(count)]


def test_decode_value_records_json_and_raw_agree() -> None:
    frames = market_frames(3000)
    recv = np.arange(len(frames), dtype=np.int64) * 1000 + 1_800_000_000_000_000_000
    tables: dict[str, list[np.ndarray]] = {}
    for frame, ts in zip(frames, recv.tolist(), strict=True):  # one receive time per frame
        for kind, rows in parse([frame], ts_recv=ts).items():
            tables.setdefault(kind, []).append(rows)
    for kind in ("depth", "depthPartial", "kline", "windowTicker", "miniTicker"):
        schema = SCHEMAS[kind]
        parts = tables[kind]
        records = wire_records(schema, np.concatenate(parts))
        assert len(records) > 0
        base = {H_SCHEMA: schema.name, H_VERSION: str(schema.version),
                H_COUNT: str(len(records))}
        as_records = decode_value({**base, H_ENCODING: "records"}, records.tobytes())
        as_json = decode_value({**base, H_ENCODING: "json"}, encode_json(schema, records))
        mine = [i for i, p in enumerate(parts) if len(p)]
        raw_value = b"".join(frames[i] + b"\n" for i in mine)
        raw = header_dict(raw_headers(recv[mine], "ms"))
        as_raw = decode_value({**base, H_ENCODING: "raw", **raw}, raw_value)
        for decoded in (as_records, as_json, as_raw):
            assert decoded.tobytes() == records.tobytes(), kind
        cut = schema.dtype.fields["symbol"][1]
        for symbol in dict.fromkeys(records["symbol"].tolist()):  # compact: one per symbol
            mine = wire_records(schema, records[records["symbol"] == symbol])
            value = mine.view(np.uint8).reshape(len(mine), -1)[:, :cut].tobytes()
            as_compact = decode_value({**base, H_ENCODING: "compact", H_COUNT: str(len(mine)),
                                       H_SYMBOL: symbol.decode()}, value)
            assert as_compact.tobytes() == mine.tobytes(), (kind, symbol)


@pytest.mark.parametrize("kind", list(SCHEMAS))
def test_an_empty_message_decodes_to_no_records_in_every_encoding(kind: str) -> None:
    schema = SCHEMAS[kind]
    base = {H_SCHEMA: schema.name, H_VERSION: str(schema.version), H_COUNT: "0"}
    raw = header_dict(raw_headers(np.array([], np.int64), "ms"))
    compact = [{H_ENCODING: "compact", H_SYMBOL: "BTCUSDT"}] if kind in MARKET_KINDS else []
    for headers in ({H_ENCODING: "records"}, *compact, {H_ENCODING: "json"},
                    {H_ENCODING: "raw", **raw}):
        decoded = decode_value({**base, **headers}, b"")
        assert decoded.dtype == schema.dtype and len(decoded) == 0, headers


def test_decode_value_rejects_what_it_cannot_vouch_for() -> None:
    schema = SCHEMAS["trade"]
    records = np.zeros(2, schema.dtype)
    base = {H_SCHEMA: schema.name, H_VERSION: str(schema.version), H_ENCODING: "records"}
    with pytest.raises(DecodeError, match="header says 3 records, value holds 2"):
        decode_value({**base, H_COUNT: "3"}, records.tobytes())
    with pytest.raises(ValueError, match="unknown encoding 'avro'"):
        decode_value({**base, H_ENCODING: "avro"}, b"")
    with pytest.raises(ValueError, match="not a data message"):
        decode_value({}, b'{"type":"gap"}')
    with pytest.raises(DecodeError, match=r"^unknown schema binance\.spot\.trade v9$"):
        decode_value({**base, H_VERSION: "9"}, b"")
    with pytest.raises(DecodeError, match="buffer size must be a multiple"):
        decode_value(base, records.tobytes()[:-1])  # a truncated value
    with pytest.raises(DecodeError, match=r"a compact message without its fh\.symbol header"):
        decode_value({**base, H_ENCODING: "compact"}, records.tobytes()[:49])
    with pytest.raises(DecodeError, match="buffer size must be a multiple"):
        decode_value({**base, H_ENCODING: "compact", H_SYMBOL: "A"}, records.tobytes()[:50])
    with pytest.raises(DecodeError, match="longer than a trade record's symbol"):
        decode_value({**base, H_ENCODING: "compact", H_SYMBOL: "A" * 33}, b"")
    with pytest.raises(ValueError, match="2 frames but 1 receive times"):
        decode_value({**base, H_ENCODING: "raw", H_RECV_NS: "1", H_TIME_UNIT: "ms"},
                     b"{}\n{}\n")


def test_wire_records_zero_the_padding() -> None:
    schema = SCHEMAS["trade"]  # 81 bytes of fields, 7 of padding
    records = random_records(schema, 50, 3)
    garbage = np.concatenate([records, records], dtype=schema.dtype)  # padding uninitialised
    garbage.view(np.uint8).reshape(100, -1)[:, 81:] = 0xAB
    wire = wire_records(schema, garbage)
    assert wire is garbage  # zeroed in place
    assert not wire.view(np.uint8).reshape(100, -1)[:, 81:].any()
    assert (wire == np.concatenate([records, records])).all()
    readonly = np.frombuffer(bytes(b"\xab" * 88 * 2), schema.dtype)
    copied = wire_records(schema, readonly)
    assert copied is not readonly and not copied.view(np.uint8).reshape(2, -1)[:, 81:].any()
    packed = np.concatenate([records[:2], records[2:4]])  # numpy drops the padding here
    assert packed.dtype.itemsize == 81
    assert wire_records(schema, packed).tobytes() == records[:4].tobytes()


def test_readme_carries_the_generated_contract_section() -> None:
    """The README's byte layouts are what other-language consumers read: they must not drift."""
    from pathlib import Path

    from feedhandler.contract.docs import readme_section
    from feedhandler.readme import splice

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert splice(readme, "feedhandler.contract.docs", readme_section()) == readme, \
        "README out of date: run `python -m feedhandler.contract.docs`"
