"""Exchange clock offset, estimated from `time` requests (NTP's midpoint rule).

A sample is (local send time, local receive time, server time): the server read its clock
somewhere inside the round trip, so `server - midpoint` is the offset with an error of at most
half the round trip. The sample with the smallest round trip among the recent ones wins.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClockSample:
    offset_ms: float  # exchange time - local time
    rtt_ms: float


class ClockOffset:
    def __init__(self, keep: int = 8) -> None:
        self._samples: deque[ClockSample] = deque(maxlen=keep)

    def add(self, sent_ns: int, received_ns: int, server_ms: float) -> ClockSample:
        """Record one `time` round trip (local wall-clock ns, server epoch ms; a fraction
        when the server answered in µs)."""
        midpoint_ms = (sent_ns + received_ns) / 2e6
        sample = ClockSample(server_ms - midpoint_ms, (received_ns - sent_ns) / 1e6)
        self._samples.append(sample)
        return sample

    @property
    def best(self) -> ClockSample | None:
        return min(self._samples, key=lambda s: s.rtt_ms, default=None)

    @property
    def offset_ms(self) -> float:
        """Best estimate of exchange time - local time (0 before any sample)."""
        best = self.best
        return best.offset_ms if best is not None else 0.0

    def now_ms(self) -> int:
        """Exchange time now, epoch ms, by our estimate."""
        return int(time.time_ns() / 1e6 + self.offset_ms)

    def to_local_ns(self, exchange_ms: int) -> int:
        """An exchange timestamp (epoch ms) on the local wall clock."""
        return int((exchange_ms - self.offset_ms) * 1e6)
