"""The kind declarations are consistent: every name they refer to exists, and every example
payload decodes to exactly the values its declared fields name."""

from __future__ import annotations

import json

import pytest

from feedhandler.contract.kinds import KINDS, TYPES, Read, Role, kind_index, sequence_fields
from feedhandler.records import SCALE, SCHEMAS, wide_to_int


def test_kinds_are_unique_and_well_formed() -> None:
    names = [k.name for k in KINDS]
    assert len(set(names)) == len(names)
    assert [k.name for k in KINDS if k.role is not Role.MARKET] == ["control", "gap", "book"]
    streams = [s.text for k in KINDS for s in k.streams]
    assert len(set(streams)) == len(streams)
    events = [e for k in KINDS for e in k.events]
    assert len(set(events)) == len(events)
    for kind in KINDS:
        columns = [f.name for f in kind.fields]
        assert len(set(columns)) == len(columns), kind.name
        assert columns[0] == "ts_recv", kind.name
        for f in kind.fields:
            assert f.type in TYPES, (kind.name, f.name)
            assert (f.key is None) == (f.read is Read.NONE), (kind.name, f.name)
            if f.null_flag:
                assert kind.field(f.null_flag).type == "uint8", (kind.name, f.name)
        if kind.sequence:
            assert kind.field(kind.sequence.first).type == "int64"
            assert kind.field(kind.sequence.last).type == "int64"
        if kind.role is Role.MARKET:
            assert kind.streams and kind.example, kind.name
            assert kind.events or kind.first_keys, kind.name
        if kind.role is Role.DERIVED:
            assert not kind.streams and kind.derived_from in names, kind.name


def test_sequence_fields_and_indices() -> None:
    assert sequence_fields()["depth"] == ("first_update_id", "last_update_id")
    assert "kline" not in sequence_fields()
    assert kind_index("trade") == 0 and kind_index("gap") == 11


def _json_value(payload: dict, key: str) -> object:
    for part in key.split("."):
        payload = payload[part]
    return payload


@pytest.mark.parametrize("kind", [k for k in KINDS if k.example and not k.hook],
                         ids=lambda k: k.name)
def test_example_decodes_to_its_declared_values(kind) -> None:  # type: ignore[no-untyped-def]
    import feedhandler

    payload = json.loads(kind.example)
    (row,) = feedhandler.parse([kind.example.encode()])[kind.name]
    schema = SCHEMAS[kind.name]
    assert row.dtype == schema.dtype
    for f in kind.fields:
        if f.key is None or (f.key not in payload and not f.required):
            continue
        value = _json_value(payload, f.key)
        got = row[f.name]
        if f.read is Read.DECIMAL:
            units = wide_to_int(got) if f.type == "int128" else int(got)
            whole, _, frac = str(value).partition(".")
            assert units == int(whole) * SCALE + int(frac.ljust(8, "0")), f.name
        elif f.read is Read.TIMESTAMP:
            assert int(got) == value * 1_000_000, f.name
        elif f.read in (Read.SYMBOL, Read.TEXT):
            assert got == str(value).encode(), f.name
        else:
            assert int(got) == int(value), f.name
