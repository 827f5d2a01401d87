"""Machine-readable schemas of each kind, from its declaration: a JSON Schema for the `json` and
`jsonrecord` encodings, and an Arrow schema (plus an exact batch -> Arrow table conversion) for
the `records` encoding.

    python -m feedhandler.contract.schemas json [KIND]    # JSON Schemas, by schema name
    python -m feedhandler.contract.schemas arrow [KIND]   # Arrow schemas (needs pyarrow)

Arrow types: times (`ts_*`) are timestamp[ns, UTC]; decimal64 fields decimal128(19, 8) and
decimal128 fields decimal256(39, 8), both exact (the record's integer is the unscaled value);
text is string (without its NUL padding); `T[N]` fields are fixed-size lists of N.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from feedhandler.contract.kinds import DATA_ROLES, KIND_BY_NAME
from feedhandler.records.schema import SCHEMAS, Field

if TYPE_CHECKING:
    import pyarrow as pa

DECIMAL = r"^-?[0-9]+\.[0-9]{8}$"  # the json encodings' exact decimal text (to_str)
_INTEGERS = {"int64": 64, "int16": 16}
# Exact Arrow decimals: int64 counts have at most 19 digits, 128-bit counts at most 39.
_ARROW_DECIMAL = {"fixed8": (19, 16), "int128": (39, 32)}  # precision, storage bytes


def data_kinds() -> list[str]:
    return [k for k in SCHEMAS if KIND_BY_NAME[k].role in DATA_ROLES]


def _json_item(f: Field) -> dict[str, Any]:
    if f.type == "bytes":
        # maxLength counts characters: the byte bound can only be said (a non-ASCII symbol
        # of 32 characters passes it at up to 128 bytes)
        return {"type": "string", "maxLength": f.count,
                "description": f"at most {f.count} bytes of UTF-8"}
    if f.is_decimal:
        return {"type": "string", "pattern": DECIMAL}
    if f.type == "uint8":
        return {"type": "integer", "minimum": 0, "maximum": 255}
    bits = _INTEGERS[f.type]
    return {"type": "integer", "minimum": -(2 ** (bits - 1)), "maximum": 2 ** (bits - 1) - 1}


def json_schema(kind: str) -> dict[str, Any]:
    """JSON Schema (2020-12) of one record of `kind` in the json/jsonrecord encodings."""
    schema, declared = SCHEMAS[kind], KIND_BY_NAME[kind]
    properties: dict[str, Any] = {}
    for f in schema.fields:
        item = _json_item(f)
        if f.count > 1 and f.type != "bytes":
            item = {"type": "array", "items": item, "minItems": f.count, "maxItems": f.count}
        properties[f.name] = {**item, "description": declared.field(f.name).doc}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:feedhandler:{schema.name}:v{schema.version}",
        "title": f"{schema.name} v{schema.version}",
        "description": declared.notes,
        "type": "object",
        "properties": properties,
        "required": [f.name for f in schema.fields],
        "additionalProperties": False,
    }


def _arrow_type(f: Field) -> pa.DataType:
    import pyarrow as pa

    if f.type == "bytes":
        return pa.string()
    if f.is_decimal:
        precision, _ = _ARROW_DECIMAL[f.type]
        item: pa.DataType = (pa.decimal128 if f.type == "fixed8" else pa.decimal256)(precision, 8)
    elif f.name.startswith("ts_"):
        item = pa.timestamp("ns", tz="UTC")
    else:
        item = {"int64": pa.int64(), "int16": pa.int16(), "uint8": pa.uint8()}[f.type]
    return pa.list_(item, f.count) if f.count > 1 else item


def arrow_schema(kind: str) -> pa.Schema:
    """Arrow schema of `kind`'s records (fields in record order, none nullable)."""
    import pyarrow as pa

    schema = SCHEMAS[kind]
    return pa.schema([pa.field(f.name, _arrow_type(f), nullable=False) for f in schema.fields],
                     metadata={"fh.schema": schema.name, "fh.version": str(schema.version)})


def _arrow_decimals(f: Field, column: np.ndarray, type_: pa.DataType) -> pa.Array:
    """Integer counts of 1e-8 -> Arrow decimals with the same unscaled value, built from
    their little-endian two's complement words (exact, no per-value Python)."""
    import pyarrow as pa

    if f.type == "fixed8":
        low = column.reshape(-1).astype(np.int64)
        words = [low.view(np.uint64), (low >> 63).view(np.uint64)]  # sign-extended
    else:
        flat = column.reshape(-1)
        high = flat["hi"].astype(np.int64)
        sign = (high >> 63).view(np.uint64)
        words = [flat["lo"].astype(np.uint64), high.view(np.uint64), sign, sign]
    data = np.stack(words, axis=1)
    array: pa.Array = pa.Array.from_buffers(type_, len(data), [None, pa.py_buffer(data)])
    return array


def arrow_table(kind: str, records: np.ndarray) -> pa.Table:
    """A decoded batch of `kind` (e.g. feedhandler.decode's array) as an Arrow table of
    arrow_schema(kind), exactly."""
    import pyarrow as pa

    schema = arrow_schema(kind)
    columns = []
    for f, target in zip(SCHEMAS[kind].fields, schema, strict=True):
        column = records[f.name]
        item_type = target.type.value_type if f.count > 1 and f.type != "bytes" else target.type
        if f.type == "bytes":
            array: pa.Array = pa.array(column.tolist(), pa.binary()).cast(pa.string())
        elif f.is_decimal:
            array = _arrow_decimals(f, column, item_type)
        else:
            array = pa.array(column.reshape(-1), item_type)
        if f.count > 1 and f.type != "bytes":
            array = pa.FixedSizeListArray.from_arrays(array, f.count)
        columns.append(array)
    table: pa.Table = pa.Table.from_arrays(columns, schema=schema)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m feedhandler.contract.schemas",
                                     description="Print each kind's machine-readable schema.")
    parser.add_argument("format", choices=["json", "arrow"],
                        help="json: JSON Schema of the json/jsonrecord encodings; "
                             "arrow: Arrow schema of the records encoding")
    parser.add_argument("kind", nargs="?", choices=data_kinds(), help="one kind (default: all)")
    args = parser.parse_args(argv)
    kinds = [args.kind] if args.kind else data_kinds()
    if args.format == "json":
        out = {SCHEMAS[k].name: json_schema(k) for k in kinds}
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for k in kinds:
            sys.stdout.write(f"# {SCHEMAS[k].name}\n{arrow_schema(k).to_string()}\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
