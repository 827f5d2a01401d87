"""A sink that only counts: for benchmarks and dry runs."""

from __future__ import annotations

from typing import Any

import numpy as np

from feedhandler.contract import Frames


class NullSink:
    def __init__(self) -> None:
        self.records = 0
        self.batches = 0
        self.dead_letters = 0
        self.control_events = 0

    def publish_batch(self, kind: str, records: np.ndarray, epoch: int,
                      frames: Frames | None = None) -> None:
        self.batches += 1
        self.records += len(records)

    def publish_dead_letter(self, reason: str, field: str, stream: str, frame: bytes) -> None:
        self.dead_letters += 1

    def publish_control(self, event: dict[str, Any]) -> None:
        self.control_events += 1

    def service(self) -> None:
        pass

    def backlog_bytes(self) -> int:
        return 0

    def summary(self) -> dict[str, Any]:
        return {"records": self.records, "batches": self.batches,
                "dead_letters": self.dead_letters, "control_events": self.control_events}

    def close(self, timeout: float) -> int:
        return 0
