"""A virtual clock for supervisor tests: sleeps complete in order of their wake-up time, at once.

The earliest pending sleeper wakes next and moves the time forward to its wake-up time, so a
30 s Retry-After costs milliseconds of real time while every ordering stays as it would be.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.slept: list[float] = []  # every sleep asked for, in order
        self._sleepers: list[tuple[float, int]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        me = (self.time + max(0.0, seconds), next(self._seq))
        heapq.heappush(self._sleepers, me)
        try:
            while True:
                await asyncio.sleep(0.001)  # real work (sockets) goes on meanwhile
                if self._sleepers[0] == me:
                    heapq.heappop(self._sleepers)
                    self.time = max(self.time, me[0])
                    return
        except asyncio.CancelledError:
            self._sleepers.remove(me)
            heapq.heapify(self._sleepers)
            raise
