"""The interface between the decoder's batches and a destination."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Sink(Protocol):
    def publish_batch(self, kind: str, records: np.ndarray, epoch: int) -> None:
        """A batch of one kind (possibly many symbols); the sink owns `records` afterwards."""

    def publish_dead_letter(self, reason: str, field: str, stream: str, frame: bytes) -> None:
        """A rejected frame, unchanged."""

    def publish_control(self, event: dict[str, Any]) -> None:
        """A gap, reconnect, subscription change or exchange control message."""

    def service(self) -> None:
        """Called on a cadence by the event loop: serve delivery reports, retry backlog."""

    def backlog_bytes(self) -> int:
        """Bytes accepted but not yet handed to the destination (backpressure signal)."""

    def close(self, timeout: float) -> int:
        """Flush within `timeout` seconds; returns how many messages are still undelivered."""
