"""How many events a connection may send now, and when to look again.

- `FastPacer`: as many as flow control lets through, one batch per event-loop turn.
- `RatePacer`: N events/s, released on a fine timer tick (not once per second), so the stream
  is smooth. After a stall or a flow-control pause it resumes at the rate, without a catch-up
  burst beyond `MAX_LAG` seconds' worth.
- `RecordedPacer`: replay at the recorded inter-arrival times, scaled by `speed`.
"""

from __future__ import annotations

from typing import Protocol

TICK = 0.001  # finest pacing granularity (s); one loop wake-up sends every event due by then
MAX_LAG = 0.05  # how far behind schedule a paced stream may catch up (s)


class Pacer(Protocol):
    def allowance(self, now: float) -> int:
        """Events that may be sent at `now` (0: wait for `next_wakeup`)."""
        ...

    def consumed(self, count: int) -> None: ...

    def next_wakeup(self, now: float) -> float | None:
        """Loop time to try again; None when nothing will ever be due (replay at its end)."""
        ...

    def restart(self, now: float) -> None:
        """Continue from `now` after a pause, forgetting the backlog."""
        ...


class FastPacer:
    def __init__(self, batch: int) -> None:
        self._batch = batch

    def allowance(self, now: float) -> int:
        return self._batch

    def consumed(self, count: int) -> None:
        pass

    def next_wakeup(self, now: float) -> float | None:
        return now

    def restart(self, now: float) -> None:
        pass


class RatePacer:
    def __init__(self, rate: float, batch: int, now: float) -> None:
        self._rate = rate
        self.batch = batch
        self._next = now  # loop time the next event is due

    def allowance(self, now: float) -> int:
        if now < self._next:
            return 0
        self._next = max(self._next, now - MAX_LAG)
        return min(self.batch, int((now - self._next) * self._rate) + 1)

    def consumed(self, count: int) -> None:
        self._next += count / self._rate

    def next_wakeup(self, now: float) -> float | None:
        # still behind after a full batch: the rest goes on the next loop turn, not a tick later
        return now if self._next <= now else max(self._next, now + TICK)

    def restart(self, now: float) -> None:
        self._next = max(self._next, now)


class TimedSource(Protocol):
    """A source whose events carry capture times (nanoseconds), i.e. a recording."""

    def first_ns(self) -> int | None: ...
    def peek_ns(self) -> int | None: ...
    def count_due(self, until_ns: int, limit: int) -> int: ...


class RecordedPacer:
    def __init__(self, source: TimedSource, speed: float, batch: int, now: float) -> None:
        self._source = source
        self._speed = speed
        self._batch = batch
        self._start = now
        self._base_ns = source.first_ns() or 0

    def _recorded_ns(self, now: float) -> int:
        return self._base_ns + int((now - self._start) * self._speed * 1e9)

    def allowance(self, now: float) -> int:
        return self._source.count_due(self._recorded_ns(now), self._batch)

    def consumed(self, count: int) -> None:
        pass

    def next_wakeup(self, now: float) -> float | None:
        due_ns = self._source.peek_ns()
        if due_ns is None:
            return None
        return max(now, self._start + (due_ns - self._base_ns) / (self._speed * 1e9))

    def restart(self, now: float) -> None:
        due_ns = self._source.peek_ns()
        if due_ns is not None and self._recorded_ns(now) > due_ns:
            self._start = now - (due_ns - self._base_ns) / (self._speed * 1e9)
