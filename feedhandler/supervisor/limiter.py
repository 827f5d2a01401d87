"""One connection-attempt budget per process, shared by every connection (and the WS API).

Binance allows 300 connection attempts per 5 minutes per IP; past it, handshakes get 429 and
then a 418 ban. `AttemptLimiter` keeps a sliding window of attempts: an attempt waits until the
window has room, so a reconnect storm queues here instead of at the exchange.

An attempt holds its slot from `attempt()` until it ends (handshake answered, failed or
cancelled) and is then stamped with its end time. The exchange counts it somewhere in between,
so two attempts we space by a window are never closer than a window at the exchange.

A 429/418 from the exchange applies to the whole IP: `block_for()` holds every attempt of the
process until the given time has passed. Then one attempt probes alone: the others wait for its
end, so a refusal to it blocks them again instead of every connection being refused at once
(each refusal brings a ban closer).

Several replicas behind one egress IP share the exchange's budget: give each
`limit // replicas` attempts (see README, "Connection attempts").
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from feedhandler.supervisor.clock import SYSTEM_CLOCK, Clock


class AttemptLimiter:
    def __init__(self, limit: int, window_s: float, clock: Clock = SYSTEM_CLOCK) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError(f"attempt limiter: need limit >= 1 and window > 0, got {limit}, "
                             f"{window_s}")
        self.limit, self.window_s = limit, window_s
        self.clock = clock
        self.attempts = 0  # made so far
        self.waits = 0  # attempts that had to wait for room
        self._ended: deque[float] = deque()  # end times of attempts still inside the window
        self._open = 0  # attempts under way
        self._blocked_until = 0.0
        self._probing = False  # after a block: one attempt at a time until one has ended
        self._blocks = 0  # blocks so far: an attempt that saw one come ends no probing
        self._changed = asyncio.Condition()

    def _expire(self, now: float) -> None:
        while self._ended and self._ended[0] <= now - self.window_s:
            self._ended.popleft()

    def delay(self) -> float | None:
        """Seconds until an attempt may start; None while only an attempt under way can free a
        slot (it frees it when it ends)."""
        now = self.clock.now()
        self._expire(now)
        blocked = max(0.0, self._blocked_until - now)
        if self._probing and self._open and not blocked:
            return None  # the probe's end says whether the block is over
        if len(self._ended) + self._open < self.limit:
            return blocked
        if self._open >= self.limit:
            return None
        # the oldest stamped attempts leave the window first
        oldest = self._ended[len(self._ended) + self._open - self.limit]
        return max(blocked, oldest + self.window_s - now)

    @property
    def blocked_for(self) -> float:
        """Seconds left of a block from a 429/418 (0 when none)."""
        return max(0.0, self._blocked_until - self.clock.now())

    def block_for(self, seconds: float) -> None:
        """Hold every attempt for `seconds` (the exchange's Retry-After or ban length). For a
        refused attempt, call it inside its `attempt()`: once the slot ends, the attempts
        waiting behind it may go before a later call."""
        self._blocked_until = max(self._blocked_until, self.clock.now() + seconds)
        self._probing = True
        self._blocks += 1

    async def _wait_for_room(self) -> None:
        waited = False
        while True:
            delay = self.delay()
            if delay == 0:
                break
            waited = True
            if delay is None:  # only an attempt under way can free a slot
                async with self._changed:
                    await self._changed.wait()
            else:
                await self.clock.sleep(delay)
        self.waits += waited

    @asynccontextmanager
    async def attempt(self) -> AsyncIterator[None]:
        """`async with limiter.attempt(): await connect(...)`: waits for room, then holds a slot
        until the block ends (however it ends)."""
        await self._wait_for_room()
        self._open += 1
        self.attempts += 1
        blocks = self._blocks
        try:
            yield
        finally:
            self._open -= 1
            # ended without a block meanwhile: the way is open (a refusal found after this
            # blocks again before the waiters woken here run)
            if self._blocks == blocks:
                self._probing = False
            self._ended.append(self.clock.now())
            async with self._changed:
                self._changed.notify_all()
