"""Reconnect delays: exponential with full jitter and a cap.

Full jitter (a uniform draw in [0, min(cap, initial * 2**n)]) spreads a fleet of clients that
lost their connections at the same moment; the cap bounds the wait once the peer is back.
The caller decides when to `reset()`: for exchange connections, only after one has delivered
data for a while, so a peer that accepts and closes at once still sees growing delays.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"backoff: need 0 < initial ({initial_s}) <= max ({max_s})")
        self.initial_s, self.max_s = initial_s, max_s
        self.failures = 0  # consecutive, since the last reset
        self._rng = rng or random.Random()

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.max_s, self.initial_s * float(2 ** min(self.failures, 64)))

    def next_delay(self) -> float:
        """Delay before the next attempt; each call counts one more failure."""
        delay = self._rng.uniform(0, self.ceiling())
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
