"""The record tables the decoder writes: names, versions, byte layouts and numpy dtypes.

Every layout follows from the declaration in `feedhandler.contract.kinds`: fields in declared
order, each at its natural C alignment, the record padded to a multiple of its widest
alignment (exactly what a C++ struct of those members is; the generated header asserts it).
Needs no compiled extension: consumers who only `pip install` the package decode with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import numpy as np

from feedhandler.contract.kinds import KINDS, Kind

SCALE = 10**8  # prices, quantities and volumes are integers of 1e-8 units

# type -> (size of one element, alignment, numpy format)
_STORAGE: dict[str, tuple[int, int, Any]] = {
    "int64": (8, 8, "<i8"),
    "fixed8": (8, 8, "<i8"),
    "int16": (2, 2, "<i2"),
    "uint8": (1, 1, "u1"),
    # two little-endian words, as the C++ struct Int128LE {uint64 lo; int64 hi}
    "int128": (16, 8, [("lo", "<u8"), ("hi", "<i8")]),
    "bytes": (1, 1, None),
}


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    # int64, int16, uint8; fixed8 = int64 count of 1e-8 units; int128 = 128-bit count of 1e-8
    # units as two little-endian words (lo uint64, hi int64); bytes = UTF-8, NUL-padded
    type: str
    count: int  # sub-array length, or width for bytes; else 1

    @property
    def is_decimal(self) -> bool:
        return self.type in ("fixed8", "int128")

    @property
    def size(self) -> int:
        return _STORAGE[self.type][0] * self.count

    @property
    def align(self) -> int:
        return _STORAGE[self.type][1]


@dataclass(frozen=True)
class Schema:
    kind: str  # table name: "trade", "bookTicker", ...
    name: str  # schema name on the wire: "binance.spot.trade"
    version: int
    dtype: np.dtype[Any]
    fields: tuple[Field, ...]

    @property
    def itemsize(self) -> int:
        return int(self.dtype.itemsize)


def _format(f: Field) -> Any:
    if f.type == "bytes":
        return f"S{f.count}"
    fmt = _STORAGE[f.type][2]
    return (fmt, (f.count,)) if f.count > 1 else fmt


def layout(kind: Kind, version: int | None = None) -> Schema:
    """The record layout of a declared kind, at its current or an earlier schema version."""
    version = kind.version if version is None else version
    fields, end, widest = [], 0, 1
    for declared in kind.fields:
        f = Field(declared.name, 0, declared.type_at(version), declared.count)
        offset = -(-end // f.align) * f.align
        fields.append(Field(f.name, offset, f.type, f.count))
        end, widest = offset + f.size, max(widest, f.align)
    itemsize = -(-end // widest) * widest
    dtype = np.dtype({"names": [f.name for f in fields],
                      "formats": [_format(f) for f in fields],
                      "offsets": [f.offset for f in fields], "itemsize": itemsize})
    return Schema(kind.name, kind.schema, version, dtype, tuple(fields))


SCHEMAS: dict[str, Schema] = {kind.name: layout(kind) for kind in KINDS}
# Earlier versions, for messages produced before a layout changed (feedhandler.decode).
HISTORY: dict[tuple[str, int], Schema] = {
    (kind.schema, v): layout(kind, v) for kind in KINDS for v in kind.old_versions}
_BY_NAME = {**HISTORY, **{(s.name, s.version): s for s in SCHEMAS.values()}}


def in_current_layout(kind: str, records: np.ndarray) -> np.ndarray:
    """Records of `kind` in any layout it had (an earlier version, or one numpy repacked) in
    its current one (`copied_into`)."""
    schema = SCHEMAS[kind]
    return records if records.dtype == schema.dtype else copied_into(schema, records)


def copied_into(schema: Schema, records: np.ndarray) -> np.ndarray:
    """A new array of `schema`'s exact layout holding `records`, field by field by name:
    padding zero, a quantity that grew from int64 to 128 bits sign-extended, a field added
    since 0."""
    out = np.zeros(len(records), schema.dtype)
    for name in schema.dtype.names or ():
        if name not in (records.dtype.names or ()):
            continue
        source, target = records[name], out[name]
        if target.dtype.names == ("lo", "hi") and source.dtype.names is None:
            values = source.astype(np.int64)
            target["lo"], target["hi"] = values.view(np.uint64), values >> 63
        else:
            target[...] = source
    return out


@cache
def compact_row(schema: Schema) -> np.dtype[Any]:
    """A record of the `compact` encoding: its bytes before the symbol, the last field (the
    fields before it at their offsets); ValueError for a kind without a symbol last."""
    if schema.fields[-1].name != "symbol":
        raise ValueError(f"{schema.kind} records do not end in a symbol to leave out")
    *fields, symbol = schema.fields
    end = symbol.offset
    return np.dtype({"names": [f.name for f in fields], "formats": [_format(f) for f in fields],
                     "offsets": [f.offset for f in fields], "itemsize": end})


def schema_by_name(name: str, version: int) -> Schema:
    """The schema a Kafka message's headers name; KeyError for one this build does not know."""
    try:
        return _BY_NAME[(name, version)]
    except KeyError:
        raise KeyError(f"unknown schema {name} v{version}") from None


def wide_to_int(value: np.void | np.ndarray) -> int:
    """A 128-bit fixed-point field (`lo`, `hi` words) as a Python int of 1e-8 units."""
    return (int(value["hi"]) << 64) | int(value["lo"])


def to_decimal(units: int) -> Decimal:
    """Exact Decimal of an integer count of 1e-8 units (prints as `0E-8` for 0: use to_str
    for text)."""
    return Decimal(f"{units}E-8")  # from a string: exact at any precision, unlike arithmetic


def to_str(units: int) -> str:
    """Exact plain text of an integer count of 1e-8 units: 8 decimals, no exponent, e.g.
    "-0.00010000", "0.00000000" (the form of decimals in the json encodings)."""
    whole, fraction = divmod(abs(units), SCALE)
    return f"{'-' if units < 0 else ''}{whole}.{fraction:08d}"


def from_str(text: str) -> int:
    """A decimal string (at most 8 decimals, no exponent) -> its exact count of 1e-8 units;
    the inverse of to_str. ValueError for anything else."""
    sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text)
    whole, dot, fraction = digits.partition(".")
    if not (whole.isdigit() and whole.isascii() and len(fraction) <= 8
            and (not dot or (fraction.isdigit() and fraction.isascii()))):
        raise ValueError(f"not an exact decimal of at most 8 places: {text!r}")
    return sign * (int(whole) * SCALE + int(fraction.ljust(8, "0")))
