"""Time as the supervisor sees it: a monotonic clock and a sleep, injectable for tests.

Tests of Retry-After and limiter windows replace it with a fake clock whose sleep advances the
time at once, so a 30 s wait takes no real time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


SYSTEM_CLOCK = SystemClock()
