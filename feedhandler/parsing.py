"""Offline decoding: the live listener's C++ decoder applied to frames you already have."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from feedhandler._ext.decoder import Decoder
from feedhandler.records import SCHEMAS


@dataclass(frozen=True)
class DeadLetter:
    reason: str  # malformed_json, overflow, unknown_stream, ...
    field: str  # the field at fault, "" when it is the frame as a whole
    stream: str  # stream name when known
    frame: bytes  # the frame exactly as received


class ParseResult(Mapping[str, np.ndarray]):
    """kind -> records (every kind present, possibly empty), plus what was rejected."""

    def __init__(self, tables: dict[str, np.ndarray], dead_letters: list[DeadLetter]) -> None:
        self._tables = tables
        self.dead_letters = dead_letters
        self.errors: Counter[str] = Counter(d.reason for d in dead_letters)

    def __getitem__(self, kind: str) -> np.ndarray:
        return self._tables[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def __repr__(self) -> str:
        rows = {k: len(v) for k, v in self._tables.items() if len(v)}
        return f"ParseResult(rows={rows}, errors={dict(self.errors)})"


def _join(dtype: np.dtype[Any], parts: list[np.ndarray]) -> np.ndarray:
    """Batches -> one array in the exact wire layout, padding included (numpy's concatenate
    would repack the padded struct or leave its padding bytes uninitialised)."""
    out = np.empty(sum(len(p) for p in parts), dtype)
    raw = out.view(np.uint8)
    offset = 0
    for part in parts:  # decoder batches are wire bytes already, padding zeroed
        size = len(part) * dtype.itemsize
        raw[offset : offset + size] = part.view(np.uint8)
        offset += size
    return out


def parse(
    frames: Iterable[bytes],
    *,
    stream: str | None = None,
    time_unit: str = "ms",
    ts_recv: int | None = None,
    max_frame: int = 1 << 20,
) -> ParseResult:
    """Decode raw frames (bytes) into one record array per kind.

    `stream` names the stream of a raw /ws/<stream> capture (partial depth payloads carry no
    symbol); `time_unit` is "us" for timeUnit=MICROSECOND captures; `ts_recv` stamps every
    record (default: the wall clock when each frame is decoded).
    """
    batches: dict[str, list[np.ndarray]] = {kind: [] for kind in SCHEMAS}
    dead: list[DeadLetter] = []

    def on_batch(kind: str, records: np.ndarray) -> None:
        batches[kind].append(records)

    def on_error(reason: str, field: str, stream_name: str, frame: bytes) -> None:
        dead.append(DeadLetter(reason, field, stream_name, frame))

    decoder = Decoder(
        on_batch, on_error, stream=stream, time_unit=time_unit, max_frame=max_frame,
        batch_rows=65536, linger_ms=None,
    )
    decoder.decode_many(list(frames), ts_recv)
    decoder.flush()
    tables: dict[str, Any] = {kind: _join(SCHEMAS[kind].dtype, parts)
                              for kind, parts in batches.items()}
    return ParseResult(tables, dead)
