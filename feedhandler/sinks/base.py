"""The interface between the decoders' batches and a destination."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol, runtime_checkable

import numpy as np

from feedhandler.contract import Frames


class Sink(Protocol):
    def publish_batch(self, kind: str, records: np.ndarray, epoch: int,
                      frames: Frames | None = None) -> None:
        """A batch of one kind (possibly many symbols) from one connection at `epoch`, in
        exchange order; the sink owns `records` afterwards. `frames`, for the raw encoding: the
        frames the batch was decoded from."""

    def publish_dead_letter(self, reason: str, field: str, stream: str, frame: bytes) -> None:
        """A rejected frame, unchanged."""

    def publish_control(self, event: dict[str, Any]) -> None:
        """A gap, reconnect, subscription change, backpressure or exchange control event."""

    def service(self) -> None:
        """Called on a cadence by the event loop: serve delivery reports, retry the backlog."""

    def backlog_bytes(self) -> int:
        """Bytes accepted but not yet handed to the destination (the backpressure signal)."""

    def summary(self) -> dict[str, Any]:
        """Counters for the run summary and metrics."""

    def close(self, timeout: float) -> int:
        """Flush within `timeout` seconds; returns how many messages are still undelivered."""


@runtime_checkable
class HoldingSink(Protocol):
    """A sink that may hold records back to send fewer, bigger messages (Kafka's hold_ms)."""

    @property
    def holding(self) -> bool:
        """Whether records are held now."""

    def caught_up(self) -> None:
        """The handler has read what the exchange sent so far: held records go now, as
        holding them longer would only add latency."""


@runtime_checkable
class TopicSink(Protocol):
    """A sink whose topics must exist before data arrives (Kafka)."""

    def add_streams(self, streams: Collection[str]) -> None:
        """Create or check the data topics of streams subscribed at runtime; blocks."""
