"""The record tables the decoder writes: names, versions and numpy dtypes.

The C++ structs in ext/cpp/records.h are the single source of every layout; this module only
reads them back (`feedhandler._ext.decoder.layouts()`), so Python, C++ and the README cannot
drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from feedhandler._ext import decoder as _decoder

SCALE = 10**8  # prices, quantities and volumes are integers of 1e-8 units

FIELD_TYPE_NAMES = {0: "int64", 1: "int16", 2: "uint8", 3: "int128", 4: "bytes", 5: "fixed8"}


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
        unit = {"int64": 8, "fixed8": 8, "int16": 2, "uint8": 1, "int128": 16, "bytes": 1}
        return unit[self.type] * self.count


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


def _load() -> dict[str, Schema]:
    schemas = {}
    for layout, dtype in zip(_decoder.layouts(), _decoder.DTYPES, strict=True):
        fields = tuple(
            Field(name, offset, FIELD_TYPE_NAMES[ftype], count)
            for name, offset, ftype, count in layout["fields"]
        )
        schemas[layout["kind"]] = Schema(
            layout["kind"], layout["schema"], layout["version"], dtype, fields
        )
    return schemas


SCHEMAS: dict[str, Schema] = _load()
_BY_NAME = {(s.name, s.version): s for s in SCHEMAS.values()}


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
    """Exact Decimal of an integer count of 1e-8 units."""
    return Decimal(f"{units}E-8")  # from a string: exact at any precision, unlike arithmetic
