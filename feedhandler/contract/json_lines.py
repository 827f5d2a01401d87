"""The `json` encoding of the data contract: normalized JSON lines, one object per record.

Integers (ids, times, counts, flags) are JSON numbers; decimals (`fixed8`, `int128` fields) are
exact strings with 8 decimals ("-0.00010000"); byte strings are JSON strings without their NUL
padding; sub-arrays are JSON arrays. Keys follow the schema's field order. Every line ends in
"\\n".

The encoder runs no Python per record. A batch becomes one matrix with a row per record and a
column per 4-byte cell of text; each field fills its cells for all rows at once (digits four at
a time from a lookup table), NUL bytes pad every cell that holds less than four characters, and
dropping the NULs leaves the lines. JSON text never contains a raw NUL, so NUL is a safe filler.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from feedhandler.records.schema import Field, Schema, from_str

CELL = 4


def _cells(text: bytes) -> np.ndarray:
    """Text, NUL-padded to whole cells, as uint32 cells."""
    return np.frombuffer(text.ljust(-(-len(text) // CELL) * CELL, b"\0"), np.uint32)


_DIGITS = np.frombuffer(b"".join(b"%04d" % i for i in range(10_000)), np.uint32)
# The most significant group of a number: leading zeros are NUL ("\0\0" "42"); group 0 is all
# NUL, except in a number's last group, where it is "0".
_LEADING = np.frombuffer(b"".join(b"%4d" % i for i in range(10_000)).replace(b" ", b"\0"),
                         np.uint32).copy()
_LAST_LEADING = _LEADING.copy()
_LEADING[0] = 0
_GROUP = 10_000
_SIGN = _cells(b"-")[0]
_QUOTE, _QUOTE_SIGN = _cells(b'"')[0], _cells(b'"-')[0]
_DOT, _COMMA, _CLOSE = _cells(b".")[0], _cells(b",")[0], _cells(b"]")[0]
_OPEN = _cells(b"[")
_LIMB = np.uint64(10**8)
_WORD = np.uint64(0xFFFF_FFFF)
# Bytes a JSON string holds verbatim: printable ASCII except '"' and '\' (and the NUL padding).
_PLAIN = np.zeros(256, bool)
_PLAIN[0x20:0x7F] = True
_PLAIN[[ord('"'), ord("\\")]] = False
_PLAIN[0] = True


def _groups(value: np.ndarray, count: int) -> list[np.ndarray]:
    """Non-negative int64 -> `count` base-1e4 digit groups, most significant first."""
    groups = []
    for _ in range(count):
        value, group = np.divmod(value, _GROUP)
        groups.append(group)
    return groups[::-1]


def _number(groups: list[np.ndarray]) -> np.ndarray:
    """Digit groups (most significant first) -> cells without leading zeros; "0" for zero."""
    started = np.zeros(len(groups[0]), bool)
    cells = []
    for i, group in enumerate(groups):
        leading = _LAST_LEADING if i == len(groups) - 1 else _LEADING
        cells.append(np.where(started, np.take(_DIGITS, group), np.take(leading, group)))
        started |= group != 0
    return np.stack(cells, axis=1)


def _group_count(magnitude: np.ndarray) -> int:
    return -(-len(str(int(magnitude.max(initial=0)))) // 4)


def _magnitude(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int64 -> (negative, |value| as uint64); exact for INT64_MIN (its negation wraps to 2^63)."""
    values = values.astype(np.int64, copy=False)
    return values < 0, np.where(values < 0, -values, values).view(np.uint64)


def _integer(values: np.ndarray) -> np.ndarray:
    negative, magnitude = _magnitude(values)
    # Split off the low 8 digits in uint64 so that the rest of the arithmetic fits int64.
    high, low = (part.astype(np.int64) for part in np.divmod(magnitude, _LIMB))
    digits = _number([*_groups(high, _group_count(high)), *_groups(low, 2)])
    if not negative.any():
        return digits
    return np.column_stack([np.where(negative, _SIGN, 0).astype(np.uint32), digits])


def _decimal(negative: np.ndarray, whole: list[np.ndarray], fraction: np.ndarray) -> np.ndarray:
    """'"-123.45000000"' from the whole part's digit groups and the fraction (< 1e8)."""
    quote_sign = np.where(negative, _QUOTE_SIGN, _QUOTE).astype(np.uint32)
    n = len(negative)
    return np.column_stack([
        quote_sign, _number(whole), np.full(n, _DOT, np.uint32),
        *(np.take(_DIGITS, g) for g in _groups(fraction, 2)), np.full(n, _QUOTE, np.uint32),
    ])


def _fixed8(values: np.ndarray) -> np.ndarray:
    negative, magnitude = _magnitude(values)
    whole, fraction = (part.astype(np.int64) for part in np.divmod(magnitude, _LIMB))
    return _decimal(negative, _groups(whole, max(1, _group_count(whole))), fraction)


def _int128(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Two's complement (lo uint64, hi int64), 1e-8 units -> decimal string cells."""
    negative = hi < 0
    hi_u, lo_u = hi.view(np.uint64), lo.astype(np.uint64, copy=False)
    carry = (negative & (lo_u == 0)).astype(np.uint64)
    lo_u = np.where(negative, ~lo_u + np.uint64(1), lo_u)
    hi_u = np.where(negative, ~hi_u + carry, hi_u)
    # Long division by 1e8 over 32-bit words keeps every intermediate below 2^63.
    words = [hi_u >> np.uint64(32), hi_u & _WORD, lo_u >> np.uint64(32), lo_u & _WORD]
    limbs = []  # base 1e8, least significant first; 2^127 < 1e40
    for _ in range(5):
        rest = np.zeros_like(lo_u)
        for i, word in enumerate(words):
            words[i], rest = np.divmod((rest << np.uint64(32)) | word, _LIMB)
        limbs.append(rest.astype(np.int64))
    whole = [g for limb in limbs[:0:-1] for g in _groups(limb, 2)]
    nonzero = [bool(g.any()) for g in whole]
    first = nonzero.index(True) if True in nonzero else len(whole) - 1
    return _decimal(negative, whole[first:], limbs[0])


def _text(values: np.ndarray) -> np.ndarray:
    """NUL-padded UTF-8 -> JSON string cells."""
    n, width = len(values), values.dtype.itemsize
    padded = -(-width // CELL) * CELL
    raw = np.zeros((n, padded), np.uint8)
    raw[:, :width] = np.ascontiguousarray(values).view(np.uint8).reshape(n, width)
    if not _PLAIN[raw].all():
        # Needs escaping or holds non-ASCII: orjson writes each distinct value once (the
        # decoder only stores valid UTF-8; "replace" keeps a corrupt row from stopping a batch).
        distinct, inverse = np.unique(values, return_inverse=True)
        texts = [orjson.dumps(bytes(v).decode("utf-8", "replace"))[1:-1] for v in distinct]
        table = np.zeros((len(texts), -(-max(map(len, texts)) // CELL) * CELL), np.uint8)
        for row, text in zip(table, texts, strict=True):
            row[: len(text)] = np.frombuffer(text, np.uint8)
        raw = table[inverse.reshape(-1)]
    quote = np.full(n, _QUOTE, np.uint32)
    return np.column_stack([quote, raw.view(np.uint32), quote])


def _scalar(field: Field, values: np.ndarray) -> np.ndarray:
    if field.type == "bytes":
        return _text(values)
    if field.type == "int128":
        return _int128(values["lo"], values["hi"])
    if field.type == "fixed8":
        return _fixed8(values)
    return _integer(values)


def _field(field: Field, values: np.ndarray) -> np.ndarray:
    if field.count == 1 or field.type == "bytes":
        return _scalar(field, values)
    n = len(values)
    items = _scalar(field, values.reshape(-1))
    items = np.column_stack([items, np.full(len(items), _COMMA, np.uint32)]).reshape(n, -1)
    items[:, -1] = _CLOSE
    return np.column_stack([np.broadcast_to(_OPEN, (n, 1)), items])


def encode_json(schema: Schema, records: np.ndarray, lead: bytes = b"") -> bytes:
    """Records -> JSON lines. `lead` (e.g. b'"schema":"x",') is written first in each object."""
    n = len(records)
    if n == 0:
        return b""
    blocks: list[np.ndarray] = []
    for i, field in enumerate(schema.fields):
        key = (b"{" + lead if i == 0 else b",") + orjson.dumps(field.name) + b":"
        blocks.append(np.broadcast_to(_cells(key), (n, len(_cells(key)))))
        blocks.append(_field(field, records[field.name]))
    blocks.append(np.broadcast_to(_cells(b"}\n"), (n, 1)))
    text: np.ndarray = np.hstack(blocks).view(np.uint8).reshape(-1)
    kept: np.ndarray = text[text != 0]
    return kept.tobytes()


def decode_json(schema: Schema, value: bytes) -> np.ndarray:
    """JSON lines -> records (the inverse of `encode_json`); per value, for consumers."""
    rows: list[dict[str, Any]] = [orjson.loads(line) for line in value.splitlines() if line]
    out = np.zeros(len(rows), schema.dtype)
    if not rows:  # (an empty list has no shape for the sub-array columns to take)
        return out
    for field in schema.fields:
        column = [row[field.name] for row in rows]
        if field.type == "bytes":
            out[field.name] = [text.encode() for text in column]
        elif field.type == "int128":  # scalars, or lists of them (partial depth quantities)
            units = np.array([[from_str(t) for t in item] if field.count > 1
                              else from_str(item) for item in column], dtype=object)
            out[field.name]["lo"] = (units & 0xFFFF_FFFF_FFFF_FFFF).astype(np.uint64)
            out[field.name]["hi"] = (units >> 64).astype(np.int64)
        elif field.is_decimal and field.count > 1:
            out[field.name] = [[from_str(text) for text in item] for item in column]
        elif field.is_decimal:
            out[field.name] = [from_str(text) for text in column]
        else:
            out[field.name] = column
    return out
