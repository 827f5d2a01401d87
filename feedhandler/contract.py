"""The Kafka data contract: topic names, message headers and value encodings.

Producer (feedhandler.sinks.kafka) and consumers (feedhandler.consume) share this module, and
the README restates it for other languages. Header values are UTF-8 text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import orjson

from feedhandler.records import SCHEMAS, Schema, schema_by_name, wide_to_int

H_SCHEMA: Final = "fh.schema"  # e.g. binance.spot.trade
H_VERSION: Final = "fh.version"  # schema version, e.g. 1
H_ENCODING: Final = "fh.encoding"  # records | json | raw
H_COUNT: Final = "fh.count"  # records in the message
H_SEQ_FIRST: Final = "fh.seq.first"  # first/last sequence id covered (kinds that have one)
H_SEQ_LAST: Final = "fh.seq.last"
H_INSTANCE: Final = "fh.instance"  # handler instance that produced it
H_EPOCH: Final = "fh.epoch"  # connection epoch: bumps on every (re)connect
H_REASON: Final = "fh.reason"  # dead-letter: why the frame was rejected
H_FIELD: Final = "fh.field"  # dead-letter: the field at fault
H_STREAM: Final = "fh.stream"  # dead-letter / raw: the exchange stream name

ENCODINGS: Final = ("records", "json", "raw")
DEFAULT_TOPIC_TEMPLATE: Final = "{exchange}.{market}.{kind}"

# The id each kind is sequenced by: (first id column, last id column).
SEQUENCE_FIELDS: Final[dict[str, tuple[str, str]]] = {
    "trade": ("trade_id", "trade_id"),
    "aggTrade": ("agg_id", "agg_id"),
    "bookTicker": ("update_id", "update_id"),
    "depth": ("first_update_id", "last_update_id"),
    "depthPartial": ("last_update_id", "last_update_id"),
}


def topic_for(kind: str, symbol: str = "", template: str = DEFAULT_TOPIC_TEMPLATE,
              exchange: str = "binance", market: str = "spot") -> str:
    return template.format(exchange=exchange, market=market, kind=kind, symbol=symbol.lower())


def batch_headers(schema: Schema, records: np.ndarray, encoding: str, instance: str,
                  epoch: int) -> list[tuple[str, bytes]]:
    headers = [
        (H_SCHEMA, schema.name.encode()),
        (H_VERSION, str(schema.version).encode()),
        (H_ENCODING, encoding.encode()),
        (H_COUNT, str(len(records)).encode()),
        (H_INSTANCE, instance.encode()),
        (H_EPOCH, str(epoch).encode()),
    ]
    seq = SEQUENCE_FIELDS.get(schema.kind)
    if seq is not None and len(records):
        headers.append((H_SEQ_FIRST, str(int(records[seq[0]][0])).encode()))
        headers.append((H_SEQ_LAST, str(int(records[seq[1]][-1])).encode()))
    return headers


def header_dict(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    return {k: (v or b"").decode() for k, v in headers or ()}


# --- JSON lines: one object per record, decimals as exact strings ---------------------------

def _fixed(units: int) -> str:
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**8)
    return f"{sign}{whole}.{frac:08d}"


def _unfixed(text: str) -> int:
    negative = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    units = int(whole) * 10**8 + int(frac.ljust(8, "0"))
    return -units if negative else units


def encode_json(schema: Schema, records: np.ndarray) -> bytes:
    lines = []
    for row in records:
        obj: dict[str, object] = {}
        for f in schema.fields:
            value = row[f.name]
            if f.type == "bytes":
                obj[f.name] = bytes(value).decode("utf-8")
            elif f.type == "int128":
                obj[f.name] = _fixed(wide_to_int(value))
            elif f.count > 1:
                obj[f.name] = [_fixed(int(v)) if f.is_decimal else int(v) for v in value]
            elif f.is_decimal:
                obj[f.name] = _fixed(int(value))
            else:
                obj[f.name] = int(value)
        lines.append(orjson.dumps(obj))
    return b"\n".join(lines)


def decode_json(schema: Schema, value: bytes) -> np.ndarray:
    rows = [orjson.loads(line) for line in value.split(b"\n") if line]
    out = np.zeros(len(rows), schema.dtype)
    for i, obj in enumerate(rows):
        for f in schema.fields:
            v = obj[f.name]
            if f.type == "bytes":
                out[i][f.name] = v.encode("utf-8")
            elif f.type == "int128":
                units = _unfixed(v)
                out[i][f.name] = (units & (2**64 - 1), units >> 64)
            elif f.count > 1:
                out[i][f.name] = [_unfixed(x) if isinstance(x, str) else x for x in v]
            else:
                out[i][f.name] = _unfixed(v) if isinstance(v, str) else v
    return out


def decode_value(headers: dict[str, str], value: bytes) -> np.ndarray:
    """A message value -> records, from the message's headers alone."""
    schema = schema_by_name(headers[H_SCHEMA], int(headers[H_VERSION]))
    encoding = headers.get(H_ENCODING, "records")
    if encoding == "records":
        records = np.frombuffer(value, dtype=schema.dtype)
    elif encoding == "json":
        records = decode_json(schema, value)
    elif encoding == "raw":
        from feedhandler.parsing import parse  # raw frames: decode them as the handler did

        records = parse(value.split(b"\n"), stream=headers.get(H_STREAM) or None)[schema.kind]
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    count = headers.get(H_COUNT)
    if count is not None and int(count) != len(records):
        raise ValueError(f"header says {count} records, value holds {len(records)}")
    return records


__all__ = ["SCHEMAS"]
