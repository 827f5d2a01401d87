"""Record tables and their batch hand-over (smart batching), owned by a Decoder."""

from collections.abc import Callable

class RecordBuffers:
    bursts: int  # read-only: burst-end hand-overs that found rows

    def __init__(
        self,
        dtypes: tuple[object, ...],
        names: tuple[str, ...],
        on_batch: Callable[..., None],
        batch_rows: list[int],
        linger_ns: list[int],
        *,
        burst: bool = False,
        capture_frames: bool = False,
        after_burst: Callable[[], None] | None = None,
    ) -> None: ...
    def flush(self) -> None: ...
    def flush_burst(self) -> None: ...
    def flush_expired(self, now: int) -> None: ...
    @property
    def row_counts(self) -> dict[str, int]: ...
    @property
    def pending_rows(self) -> int: ...
