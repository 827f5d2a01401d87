"""A sink that keeps everything it is given, for handler tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from feedhandler.contract import Frames


class RecordingSink:
    def __init__(self) -> None:
        self.batches: list[tuple[str, np.ndarray, int]] = []
        self.dead: list[tuple[str, str, str, bytes]] = []
        self.events: list[dict[str, Any]] = []
        self.sequence: list[str] = []  # "batch:<epoch>" and "event:<type>", in publication order
        self.closed = False

    def publish_batch(self, kind: str, records: np.ndarray, epoch: int,
                      frames: Frames | None = None) -> None:
        self.batches.append((kind, records, epoch))
        self.sequence.append(f"batch:{epoch}")

    def publish_dead_letter(self, reason: str, field: str, stream: str, frame: bytes) -> None:
        self.dead.append((reason, field, stream, frame))

    def publish_control(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.sequence.append(f"event:{event['type']}")

    def service(self) -> None:
        pass

    def backlog_bytes(self) -> int:
        return 0

    def summary(self) -> dict[str, Any]:
        return {"batches": len(self.batches)}

    def close(self, timeout: float) -> int:
        self.closed = True
        return 0

    def rows(self, kind: str) -> int:
        return sum(len(r) for k, r, _ in self.batches if k == kind)
