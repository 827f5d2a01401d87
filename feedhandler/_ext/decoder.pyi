"""Binance frames -> batches of numpy records (Cython over the C++ core in ext/cpp)."""

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from feedhandler._ext.buffers import RecordBuffers

KIND_COUNT: int
KIND_NAMES: tuple[str, ...]
ERROR_NAMES: tuple[str, ...]
SIMD_KERNEL: str
BOTH_LEGS: int  # set_overlap: A/B redundancy, first arrival wins
HOLD_NS: int  # records past a hole wait this long for the other leg to fill it
HOLD_BYTES: int  # ... and hold at most this many bytes of frames
COPY_WINDOW_NS: int  # a rejected frame the other connection delivered this recently: its copy
COPY_DIGESTS: int  # ... among at most this many rejected frames remembered
LEAD_BOUNDS_NS: tuple[int, ...]  # leg_counts: upper bounds of the lead buckets
DTYPES: tuple[np.dtype[Any], ...]

# (kind, records) or, with capture_frames, (kind, records, (payload, offsets, rows))
OnBatch = Callable[..., None]
OnError = Callable[[str, str, str, bytes], None]  # (reason, field, stream, frame)
OnControl = Callable[[bytes, int], None]  # (frame, leg)

def layouts() -> list[dict[str, Any]]: ...
def classify_stream(name: str) -> tuple[str, str, int, int, bool] | None: ...
def parse_decimal(text: bytes, wide: bool = False) -> int: ...

class Decoder:
    frames: int  # read-only
    redecoded: int  # read-only: held frames decoded again
    rejected_copies: int  # read-only: rejected frames the other connection delivered too
    buffers: RecordBuffers  # read-only

    def __init__(
        self,
        on_batch: OnBatch,
        on_error: OnError | None = None,
        on_control: OnControl | None = None,
        *,
        batch_rows: int | Mapping[str, int] = 4096,
        linger_ms: float | Mapping[str, float | None] | None = 5.0,
        max_frame: int = 1 << 20,
        stream: str | None = None,
        time_unit: str = "ms",
        capture_frames: bool = False,
        burst: bool = False,
        after_burst: Callable[[], None] | None = None,
    ) -> None: ...
    def set_stream(self, stream: str) -> None: ...
    def reset_sequences(self) -> None: ...
    def set_overlap(self, primary: int | None) -> None: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def held(self) -> int: ...
    def overlap_counts(self, leg: int) -> tuple[int, int]: ...
    def leg_connected(self, leg: int) -> None: ...
    def leg_lost(self, leg: int) -> bool: ...
    @property
    def overlap(self) -> int | None: ...
    def leg_counts(self, leg: int) -> tuple[int, int, int, tuple[int, ...], int]: ...
    def decode(self, frame: bytes | bytearray | memoryview, ts_recv: int | None = None,
               is_text: bool = True, leg: int = 0, followed_by: bytes = b"") -> None: ...
    def decode_many(self, frames: list[bytes], ts_recv: int | None = None,
                    is_text: bool = True, leg: int = 0) -> None: ...
    def flush(self) -> None: ...
    def flush_expired(self, now: int = 0) -> None: ...
    @property
    def error_counts(self) -> dict[str, int]: ...
    @property
    def row_counts(self) -> dict[str, int]: ...
    @property
    def pending_rows(self) -> int: ...
