"""Shared by the parsing tests: the real corpus, and running frames through decoder + reference."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from feedhandler._ext.decoder import Decoder
from feedhandler.records import SCHEMAS
from tests.parsing.reference import Reference, RefError, from_array, normalize, to_array

# Real captured Binance messages, beside the repository (see SOURCES.md there).
CORPUS = Path(__file__).parents[2] / ".." / "shared" / "corpus" / "binance"
TS_RECV = 1_700_000_000_123_456_789


def spot_files() -> list[str]:
    """Spot corpus files (no rest_/futures_ prefix); empty when the corpus is absent."""
    if not CORPUS.is_dir():
        return []
    return sorted(
        p.name for p in CORPUS.glob("*.jsonl") if not p.name.startswith(("rest_", "futures_"))
    )


def require_corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"Binance corpus not found at {CORPUS.resolve()} (shared/ beside the repo)")
    return CORPUS


def all_spot_frames() -> list[bytes]:
    """Every spot corpus line, file after file (skips the test if the corpus is absent)."""
    require_corpus()
    return [frame for name in spot_files() for frame in corpus_lines(name)]


def corpus_lines(name: str) -> list[bytes]:
    """One frame per non-empty line, byte for byte."""
    return [line for line in (require_corpus() / name).read_bytes().split(b"\n") if line.strip()]


@dataclass
class Decoded:
    """What one Decoder produced: batches per kind (as handed over) and the rejected frames."""

    batches: dict[str, list[np.ndarray]] = field(default_factory=dict)
    errors: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    error_counts: dict[str, int] = field(default_factory=dict)

    def array(self, kind: str) -> np.ndarray:
        """All batches of `kind` as one array of the schema dtype."""
        return np.frombuffer(self.raw(kind), SCHEMAS[kind].dtype)

    def raw(self, kind: str) -> bytes:
        """The rows' exact bytes, padding included (np.concatenate would pack the dtype)."""
        return b"".join(part.tobytes() for part in self.batches.get(kind, []))

    def rows(self, kind: str) -> list[dict[str, Any]]:
        return from_array(kind, self.array(kind))

    def kinds(self) -> set[str]:
        return {k for k, parts in self.batches.items() if any(len(p) for p in parts)}


def spaced(frame: bytes) -> bytes:
    """The same JSON with a space after its first '{': never the compact path (the decoder's
    text readers), always simdjson's."""
    return frame[:1] + b" " + frame[1:] if frame.startswith(b"{") else frame


def run_decoder(
    frames: Iterable[bytes],
    *,
    ts_recv: int = TS_RECV,
    is_text: bool = True,
    **options: Any,
) -> Decoded:
    """Frames through one Decoder (offline settings unless overridden), flushed."""
    out = Decoded()

    def on_batch(kind: str, records: np.ndarray) -> None:
        out.batches.setdefault(kind, []).append(records)

    def on_error(reason: str, field: str, stream: str, frame: bytes) -> None:
        out.errors.append((reason, field, stream, frame))

    options.setdefault("linger_ms", None)
    decoder = Decoder(on_batch, on_error, **options)
    for frame in frames:
        decoder.decode(frame, ts_recv, is_text)
    decoder.flush()
    out.error_counts = decoder.error_counts
    return out


@dataclass
class Expected:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def array(self, kind: str) -> np.ndarray:
        return to_array(kind, self.rows.get(kind, []))

    def normalized(self, kind: str) -> list[dict[str, Any]]:
        return normalize(kind, self.rows.get(kind, []))


def run_reference(
    frames: Iterable[bytes],
    *,
    ts_recv: int = TS_RECV,
    is_text: bool = True,
    stream: str | None = None,
    time_unit: str = "ms",
    max_frame: int = 1 << 20,
) -> Expected:
    ref = Reference(stream=stream, time_unit=time_unit, max_frame=max_frame)
    out = Expected()
    for frame in frames:
        try:
            decoded = ref.decode(frame, ts_recv, is_text=is_text)
        except RefError as e:
            out.errors.append((e.reason, e.field))
            continue
        for kind, rows in decoded.items():
            out.rows.setdefault(kind, []).extend(rows)
    return out


def assert_same(decoded: Decoded, expected: Expected, context: str = "") -> None:
    """Every field of every row equal, then the exact bytes (padding must be zero too)."""
    for kind in SCHEMAS:
        got = decoded.rows(kind)
        want = expected.normalized(kind)
        assert len(got) == len(want), f"{context} {kind}: {len(got)} rows, expected {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            diff = {k: (g[k], w[k]) for k in g if g[k] != w[k]}
            assert not diff, f"{context} {kind} row {i}: (decoder, reference) differ: {diff}"
        assert decoded.raw(kind) == expected.array(kind).tobytes(), f"{context} {kind}: bytes"



def examples(n: int) -> settings:
    """Hypothesis settings: `n` examples (times FH_TEST_SCALE, e.g. 100 for a long local fuzz
    run), no per-example deadline: CI machines are small and shared."""
    scale = int(os.environ.get("FH_TEST_SCALE", "1"))
    return settings(
        max_examples=n * scale, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
