"""Sequence faults on one stream: drop, repeat or swap its next frames.

The frames are the model's real frames, so a dropped depth update is a true `U > u + 1`
gap (the book changes it carried are lost to the client, which must re-snapshot), a dropped
trade is a missing trade id, a repeated frame is a duplicate id, and a swap delivers ids out
of order. Faults are queued per stream and applied in the order they were requested.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

Frame = tuple[str, bytes]


@dataclass(slots=True)
class _Fault:
    action: str  # "drop", "duplicate" or "reorder"
    remaining: int = 1  # frames still to drop


class FaultInjector:
    """Applies queued faults to a stream of frames that has not been delivered yet."""

    def __init__(self) -> None:
        self._queued: dict[str, deque[_Fault]] = {}
        self._held: dict[str, Frame] = {}  # first frame of a pending swap

    @property
    def pending(self) -> bool:
        return bool(self._queued)

    def gap(self, stream: str, n: int) -> None:
        """Drop the next `n` frames of `stream` (for trades/aggTrades: `n` missing ids)."""
        if n < 1:
            raise ValueError("gap size must be at least 1")
        self._queue(stream, _Fault("drop", n))

    def duplicate(self, stream: str) -> None:
        """Send the next frame of `stream` twice."""
        self._queue(stream, _Fault("duplicate"))

    def reorder(self, stream: str) -> None:
        """Swap the next two frames of `stream`."""
        self._queue(stream, _Fault("reorder"))

    def discard(self, stream: str) -> None:
        """Forget faults (and a held frame) of a stream that is no longer subscribed."""
        self._queued.pop(stream, None)
        self._held.pop(stream, None)

    def apply(self, frames: list[Frame]) -> None:
        """Rewrite `frames` in place; a swap's first frame is held until its partner comes."""
        queued, held = self._queued, self._held
        result: list[Frame] = []
        for frame in frames:
            faults = queued.get(frame[0])
            if faults is None:
                result.append(frame)
                continue
            fault = faults[0]
            done = True
            if fault.action == "drop":
                fault.remaining -= 1
                done = fault.remaining == 0
            elif fault.action == "duplicate":
                result += (frame, frame)
            elif frame[0] in held:
                result += (frame, held.pop(frame[0]))
            else:
                held[frame[0]] = frame
                done = False
            if done:
                faults.popleft()
                if not faults:
                    del queued[frame[0]]
        frames[:] = result

    def _queue(self, stream: str, fault: _Fault) -> None:
        self._queued.setdefault(stream, deque()).append(fault)
