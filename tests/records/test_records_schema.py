"""Record schemas: the numpy dtypes are exactly the C++ layouts, and a layout never changes
without its schema version."""

from __future__ import annotations

import hashlib
from decimal import Context, Decimal

import numpy as np
import pytest

import feedhandler
from feedhandler._ext.decoder import DTYPES, KIND_NAMES, layouts
from feedhandler.records import (
    SCALE,
    SCHEMAS,
    Schema,
    compact_row,
    schema_by_name,
    to_decimal,
    wide_to_int,
)
from feedhandler.records.schema import HISTORY

# (version, itemsize, fingerprint of name:offset:type:count per field). A layout change must
# come with a version bump in feedhandler/contract/kinds.py; then update the row here.
PINNED = {
    "trade": (1, 88, "99bc9d5dda4f7497"),
    "aggTrade": (1, 104, "f25c05f09fbeb528"),
    "bookTicker": (2, 96, "6dcefcd4a818f715"),
    "depth": (2, 96, "fdc0301bd9ef267b"),
    "depthPartial": (2, 1016, "ecc7f6b02b09be76"),
    "kline": (1, 192, "40827c42940139a5"),
    "miniTicker": (1, 112, "b06ac1f53c68806d"),
    "ticker": (2, 240, "97e723064f14c4fe"),
    "windowTicker": (1, 184, "ea92726f27a4717b"),
    "avgPrice": (1, 72, "12cbdf227258f44c"),
    "control": (1, 40, "75d6f3e0368fdc73"),
    "gap": (1, 64, "05ae791ad2790162"),
    "blockTrade": (1, 96, "27b9038a0636e382"),
    "referencePrice": (1, 64, "6d947dfd3d70be32"),
    "book": (1, 1032, "5d22c7ce01abb23f"),
}
# v1 layouts (int64 quantities), still decoded: exactly what the v1 decoder wrote.
PINNED_V1 = {
    "bookTicker": (80, "e642a2ca655e6829"),
    "depth": (88, "3342dbe37830b5fa"),
    "depthPartial": (696, "cc213aac336e20be"),
    "ticker": (224, "23dd7a00af59a6d3"),
}


def fingerprint(layout: dict) -> str:
    text = ";".join(f"{n}:{o}:{t}:{c}" for n, o, t, c in layout["fields"])
    return hashlib.sha256(f"{text}|{layout['itemsize']}".encode()).hexdigest()[:16]


def _schema_layout(schema: Schema) -> dict:
    return {"itemsize": schema.itemsize, "fields": [
        (f.name, f.offset, FIELD_TYPE_CODES[f.type], f.count) for f in schema.fields]}


def test_v1_layouts_are_kept_for_decoding() -> None:
    v1 = {kind: schema for (_, version), schema in HISTORY.items() if version == 1
          for kind in [schema.kind]}
    assert {k: (s.itemsize, fingerprint(_schema_layout(s))) for k, s in v1.items()} == PINNED_V1
    for kind, schema in v1.items():
        assert schema_by_name(schema.name, 1) is schema
        assert schema_by_name(schema.name, 2) is SCHEMAS[kind]


def test_one_schema_per_kind_in_enum_order() -> None:
    assert list(SCHEMAS) == list(KIND_NAMES) == list(PINNED)
    assert len(DTYPES) == len(KIND_NAMES)


FIELD_TYPE_CODES = {"int64": 0, "int16": 1, "uint8": 2, "int128": 3, "bytes": 4, "fixed8": 5}


@pytest.mark.parametrize("layout", layouts(), ids=lambda layout: layout["kind"])
def test_declared_schema_is_the_extension_layout(layout: dict) -> None:
    """SCHEMAS come from the declaration alone; the compiled structs must agree exactly."""
    schema = SCHEMAS[layout["kind"]]
    assert (schema.name, schema.version, schema.itemsize) == (
        layout["schema"], layout["version"], layout["itemsize"])
    assert [(f.name, f.offset, FIELD_TYPE_CODES[f.type], f.count) for f in schema.fields] == [
        tuple(f) for f in layout["fields"]]
    assert schema.dtype is DTYPES[KIND_NAMES.index(layout["kind"])]  # the sink relies on it


@pytest.mark.parametrize("layout", layouts(), ids=lambda layout: layout["kind"])
def test_layout_changes_bump_the_version(layout: dict) -> None:
    version, itemsize, pinned = PINNED[layout["kind"]]
    got = (layout["version"], layout["itemsize"], fingerprint(layout))
    assert got == (version, itemsize, pinned), (
        f"{layout['kind']}: layout changed; bump its version in feedhandler/contract/kinds.py and "
        f"update PINNED to {got}"
    )


@pytest.mark.parametrize("kind", list(SCHEMAS))
def test_dtype_is_the_cpp_layout(kind: str) -> None:
    schema = SCHEMAS[kind]
    dtype = schema.dtype
    namespace = "feedhandler" if kind in ("control", "gap") else "binance.spot"
    assert schema.name == f"{namespace}.{kind}"
    assert dtype.itemsize == schema.itemsize
    assert dtype.names == tuple(f.name for f in schema.fields)
    end = 0
    for f in sorted(schema.fields, key=lambda f: f.offset):
        sub, offset = dtype.fields[f.name][:2]
        assert offset == f.offset and sub.itemsize == f.size, f.name
        assert f.offset >= end, f"{kind}.{f.name} overlaps the field before it"
        # natural C alignment of the struct member (Int128LE is two 8-byte words)
        align = {"int64": 8, "fixed8": 8, "int128": 8, "int16": 2}.get(f.type, 1)
        assert f.offset % align == 0, f.name
        end = f.offset + f.size
        if f.type in ("int64", "fixed8", "int16", "int128"):
            assert sub.base.isnative or sub.base.byteorder in "<|" or sub.names, f.name
    assert end <= dtype.itemsize


def test_field_conventions() -> None:
    for kind, schema in SCHEMAS.items():
        types = {f.name: f.type for f in schema.fields}
        assert types["ts_recv"] == "int64", kind
        for name, ftype in types.items():
            if name.startswith("ts_"):
                assert ftype == "int64", f"{kind}.{name}: timestamps are int64 ns"
            if name.endswith("price"):
                assert ftype == "fixed8", f"{kind}.{name}: prices are int64 1e-8 ints"
            if name.endswith("qty"):  # one order's: int64; summed over orders (levels): int128
                assert ftype in ("fixed8", "int128"), f"{kind}.{name}: quantities are 1e-8 ints"
            if "volume" in name:
                assert ftype == "int128", f"{kind}.{name}: 24 h volumes can exceed int64"
        if "symbol" in types:
            (symbol,) = [f for f in schema.fields if f.name == "symbol"]
            assert (symbol.type, symbol.count) == ("bytes", 32), kind


def test_schema_by_name() -> None:
    for schema in SCHEMAS.values():
        assert schema_by_name(schema.name, schema.version) is schema
    with pytest.raises(KeyError, match=r"unknown schema binance\.spot\.trade v99"):
        schema_by_name("binance.spot.trade", 99)


WIDE_VALUES = ["0", "-1.5", "0.00000001", "-0.00000001", "92233720368.54775808",
               "12345678901234567890.12345678", "-1701411834604692317316873037158.84105728"]


@pytest.mark.parametrize("text", WIDE_VALUES)
def test_wide_volumes_round_trip_through_the_decoder(text: str) -> None:
    frame = (
        b'{"e":"24hrMiniTicker","E":1,"s":"X","c":"1","o":"1","h":"1","l":"1","v":"%s","q":"0"}'
        % text.encode()
    )
    (row,) = feedhandler.parse([frame])["miniTicker"]
    whole, _, frac = text.lstrip("-").partition(".")
    magnitude = int(whole) * SCALE + int(frac.ljust(8, "0"))
    assert wide_to_int(row["volume"]) == (-magnitude if text.startswith("-") else magnitude)


@pytest.mark.parametrize("text", WIDE_VALUES)
def test_to_decimal_is_exact(text: str) -> None:
    units = int(Decimal(text).scaleb(8, Context(prec=60)))
    assert to_decimal(units) == Decimal(text)


def test_wide_to_int_reads_the_two_words() -> None:
    dtype = SCHEMAS["miniTicker"].dtype
    rows = np.zeros(3, dtype)
    rows["volume"]["lo"] = [0, 2**64 - 1, 5]
    rows["volume"]["hi"] = [1, -1, -(2**63)]
    assert [wide_to_int(r["volume"]) for r in rows] == [2**64, -1, -(2**127) + 5]


# A cheap token's book level (the simulator's PEPE-like symbols) and the edges of the range.
QTY_VALUES = ["109576294318.00000000", "92233720368.54775808",
              "1701411834604692317316873037158.84105727"]


@pytest.mark.parametrize("text", QTY_VALUES)
def test_quantities_beyond_int64_decode_exactly(text: str) -> None:
    frame = (b'{"e":"depthUpdate","E":1,"s":"PEPEUSDT","U":1,"u":2,"b":[["0.00000123","%s"]],'
             b'"a":[]}' % text.encode())
    result = feedhandler.parse([frame])
    assert not result.dead_letters
    (row,) = result["depth"]
    assert to_decimal(wide_to_int(row["qty"])) == Decimal(text)


def test_quantity_beyond_int128_is_rejected_not_wrapped() -> None:
    too_big = b"1701411834604692317316873037158.84105728"  # (2^127) * 1e-8
    frame = b'{"u":1,"s":"X","b":"1","B":"%s","a":"1","A":"1"}' % too_big
    result = feedhandler.parse([frame])
    assert [(d.reason, d.field) for d in result.dead_letters] == [("overflow", "B")]
    assert len(result["bookTicker"]) == 0


@pytest.mark.parametrize("schema", [*SCHEMAS.values(), *HISTORY.values()],
                         ids=lambda s: f"{s.kind}-v{s.version}")
def test_a_compact_record_is_its_record_cut_before_the_symbol(schema: Schema) -> None:
    """The compact encoding relies on every layout ending in its symbol."""
    if "symbol" not in (schema.dtype.names or ()):
        with pytest.raises(ValueError, match="do not end in a symbol"):
            compact_row(schema)
        return
    row, symbol = compact_row(schema), schema.dtype.fields["symbol"]
    assert row.itemsize == symbol[1] and row.names == schema.dtype.names[:-1]
    assert all(row.fields[n] == schema.dtype.fields[n] for n in row.names)


def test_v1_messages_still_decode() -> None:
    """A message a v1 handler produced (int64 quantities) decodes from its headers alone,
    into the current layout (128-bit quantities, sign-extended)."""
    from feedhandler.contract import H_COUNT, H_ENCODING, H_SCHEMA, H_VERSION, decode_value

    v1 = schema_by_name("binance.spot.bookTicker", 1)
    records = np.zeros(2, v1.dtype)
    records["update_id"] = [7, 8]
    records["bid_qty"] = [441000, 92233720368_54775807]  # int64 at 1e-8, its largest value
    records["symbol"] = b"BTCUSDT"
    headers = {H_SCHEMA: v1.name, H_VERSION: "1", H_ENCODING: "records", H_COUNT: "2"}
    decoded = decode_value(headers, records.tobytes())
    assert decoded.dtype == SCHEMAS["bookTicker"].dtype != v1.dtype
    assert [wide_to_int(q) for q in decoded["bid_qty"]] == [441000, 92233720368_54775807]
    assert decoded["update_id"].tolist() == [7, 8]
