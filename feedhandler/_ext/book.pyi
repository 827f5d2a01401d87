"""Order books rebuilt from depth records (Cython + ext/cpp/book)."""

from typing import Any

import numpy as np

STATES: tuple[str, ...]
SNAPSHOT_FLAG: int
DEPTH_RECORD_SIZE: int
LEVEL_DTYPE: np.dtype[np.void]

class Books:
    max_levels: int
    def __init__(self, max_levels: int = 0, max_buffer: int = 1_000_000) -> None: ...
    def apply(self, records: np.ndarray) -> None: ...
    def symbols(self) -> list[str]: ...
    def status(self, symbol: str) -> dict[str, Any]: ...
    def levels(self, symbol: str, side: int, depth: int = 0) -> np.ndarray: ...
