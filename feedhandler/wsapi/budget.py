"""The process-wide request-weight budget every WebSocket API request queues on.

Binance counts `REQUEST_WEIGHT` per IP in calendar-aligned windows (6000 per minute by
default; read the live value from `rateLimits`). The budget keeps a *sliding* window of the
weight it granted, `interval + margin` long: no `interval`-long stretch of time can then hold
more than `limit`, so no aligned window on the exchange's clock can either, whatever the clock
offset; `margin` absorbs the network's jitter between our send and the exchange's count.

Callers `await acquire(weight, priority)`; lower priority numbers go first and a waiter is
never overtaken by a lower-priority one (a big snapshot is not starved by a stream of pings).
A 429/418 `retryAfter` stops every grant until then (`block_until`). When the exchange reports
more weight used than we granted (another process on the same IP), the difference is counted
too (`observe`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque

# priorities: lower goes first
URGENT = 0  # session logon, clock sync
NORMAL = 10  # one-off reads
RESYNC = 20  # a symbol's book after a gap
SNAPSHOT = 30  # initial books, universe refreshes


class WeightBudget:
    def __init__(self, limit: int, interval_s: float, margin_s: float = 1.0) -> None:
        if limit <= 0 or interval_s <= 0 or margin_s < 0:
            raise ValueError("weight budget: limit and interval must be > 0, margin >= 0")
        self.limit = limit
        self.interval_s = interval_s
        self.margin_s = margin_s
        self._granted: deque[tuple[float, int]] = deque()  # (loop time, weight)
        self._used = 0
        self._blocked_until = 0.0
        self._waiters: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self.granted_total = 0  # weight granted since start (metrics)
        self.external = 0  # weight the exchange counted that we did not grant

    @property
    def window_s(self) -> float:
        return self.interval_s + self.margin_s

    def used(self) -> int:
        """Weight granted within the current sliding window."""
        self._expire(asyncio.get_running_loop().time())
        return self._used

    def waiting(self) -> int:
        return sum(1 for *_, future in self._waiters if not future.done())

    def configure(self, limit: int, interval_s: float) -> None:
        """Follow the exchange's live `REQUEST_WEIGHT` limit."""
        if limit > 0 and interval_s > 0 and (limit, interval_s) != (self.limit, self.interval_s):
            self.limit, self.interval_s = limit, interval_s
            self._dispatch()

    async def acquire(self, weight: int, priority: int = NORMAL) -> None:
        """Wait until `weight` fits in the window (and no ban is running), then take it."""
        if weight > self.limit:
            raise ValueError(f"request weight {weight} exceeds the whole budget {self.limit}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), weight, future))
        self._dispatch()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release(weight)  # granted, but the caller gave up: give it back
            raise

    def block_until(self, loop_time: float) -> None:
        """Grant nothing before `loop_time` (a 429/418 `retryAfter`)."""
        if loop_time > self._blocked_until:
            self._blocked_until = loop_time
            self._dispatch()

    def observe(self, count: int) -> None:
        """The exchange says `count` weight is used in its current window: anything beyond
        what we granted is someone else's, and is counted as used now."""
        loop_time = asyncio.get_running_loop().time()
        self._expire(loop_time)
        extra = count - self._used
        if extra > 0:
            self.external += extra
            self._granted.append((loop_time, extra))
            self._used += extra

    def _expire(self, now: float) -> None:
        granted, horizon = self._granted, now - self.window_s
        while granted and granted[0][0] <= horizon:
            self._used -= granted.popleft()[1]

    def _release(self, weight: int) -> None:
        for index in range(len(self._granted) - 1, -1, -1):
            granted = self._granted[index][1]
            if granted == weight:
                del self._granted[index]
                self._used -= weight
                break
        self._dispatch()

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._expire(now)
        waiters = self._waiters
        while waiters and waiters[0][3].done():  # cancelled while waiting
            heapq.heappop(waiters)
        while waiters and now >= self._blocked_until:
            _, _, weight, future = waiters[0]
            if future.done():
                heapq.heappop(waiters)
                continue
            if self._used + weight > self.limit:
                break
            heapq.heappop(waiters)
            self._granted.append((now, weight))
            self._used += weight
            self.granted_total += weight
            future.set_result(None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if waiters:
            self._timer = loop.call_at(self._next_room(now, waiters[0][2]), self._dispatch)

    def _next_room(self, now: float, weight: int) -> float:
        """When `weight` will fit (or the block ends, whichever is later)."""
        if now < self._blocked_until:
            return self._blocked_until
        need = self._used + weight - self.limit
        for at, granted in self._granted:
            need -= granted
            if need <= 0:
                return at + self.window_s + 1e-6
        return now
