"""The process-wide request-weight budget every WebSocket API request queues on.

Binance counts `REQUEST_WEIGHT` per IP in calendar-aligned windows (6000 per minute by
default; read the live value from `rateLimits`), at the moment it processes a request:
somewhere between our send and its response, later when it is busy. So the budget holds a
request's weight from its grant until `interval + margin` after it completes (`complete`):
two requests the exchange counted in one window (less than `interval` apart) were then both
held when the later one was granted, whatever the exchange's clock or lag, and no window can
exceed `limit`. `margin` only absorbs timer jitter.

Callers `await acquire(weight, priority)`, send, and call `complete(weight)` when the answer
(or the failure) is in. Lower priority numbers go first and a waiter is never overtaken by a
lower-priority one (a big snapshot is not starved by a stream of pings). Periodic refreshes
(`REFRESH`) are granted only while the budget stays within half its limit: weight once granted
is held for a whole window, so without that a round of refreshes would hold the budget and a
gap's resync, which is urgent, would wait up to a window behind weight already spent. A 429/418
`retryAfter` stops every grant until then (`block_until`). When the exchange reports more
weight used than we hold (another process on the same IP), the difference is held too
(`observe`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging

from feedhandler.wsapi import errors

log = logging.getLogger(__name__)

# priorities: lower goes first
URGENT = 0  # session logon, clock sync
NORMAL = 10  # one-off reads
RESYNC = 20  # a symbol's book after a gap
SNAPSHOT = 30  # initial books, universe refreshes
REFRESH = 40  # periodic snapshots of books that are fine


class WeightBudget:
    def __init__(self, limit: int, interval_s: float, margin_s: float = 0.1,
                 floor: int = 1) -> None:
        """`floor`: the heaviest request this process sends; a live limit is followed down to
        it, not below (no request of that weight could ever be granted: an odd or hostile
        `rateLimits` would stop every connection and snapshot for good)."""
        if limit <= 0 or interval_s <= 0 or margin_s < 0 or not 0 < floor <= limit:
            raise ValueError("weight budget: limit and interval must be > 0, margin >= 0, "
                             "0 < floor <= limit")
        self.floor = floor
        self._unfollowed = 0  # the last live limit below the floor (logged once)
        self.limit = self.cap = limit  # cap: this process's share, however high the live limit
        self.interval_s = interval_s
        self.margin_s = margin_s
        self._in_flight = 0  # granted, not completed
        self._done: list[tuple[float, int]] = []  # heap of (loop time it expires, weight)
        self._done_weight = 0
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
        """Weight held: in flight, or completed within the last window."""
        self._expire(asyncio.get_running_loop().time())
        return self._in_flight + self._done_weight

    def waiting(self) -> int:
        return sum(1 for *_, future in self._waiters if not future.done())

    def configure(self, limit: int, interval_s: float) -> None:
        """Follow the exchange's live `REQUEST_WEIGHT` limit, up to the configured one (replicas
        behind one IP each take their share of it)."""
        if limit < self.floor:
            if limit != self._unfollowed:  # (every reply carries it: said once per value)
                self._unfollowed = limit
                log.warning("wsapi: the exchange's REQUEST_WEIGHT limit %d is below the "
                            "heaviest request we send (%d): followed down to that", limit,
                            self.floor)
            limit = self.floor
        limit = min(limit, self.cap)
        if interval_s > 0 and (limit, interval_s) != (self.limit, self.interval_s):
            self.limit, self.interval_s = limit, interval_s
            self._dispatch()

    async def acquire(self, weight: int, priority: int = NORMAL) -> None:
        """Wait until `weight` fits (and no ban is running), then hold it until `complete`;
        errors.OverBudget if it exceeds the whole limit (now, or once the exchange lowers it)."""
        if weight > self.limit:
            raise _over(weight, self.limit)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._seq), weight, future))
        self._dispatch()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.complete(weight)  # granted, but the caller gave up
            raise

    def complete(self, weight: int, pending_s: float = 0.0) -> None:
        """A granted request was answered (or failed): its weight expires one window later.
        `pending_s`: sent, and no answer came (cancelled, timed out, its connection lost), so
        the exchange may count it up to that much later: held as if answered then."""
        loop_time = asyncio.get_running_loop().time()
        self._in_flight -= weight
        self._hold(loop_time + pending_s, weight)
        self._dispatch()

    def block_until(self, loop_time: float) -> None:
        """Grant nothing before `loop_time` (a 429/418 `retryAfter`)."""
        if loop_time > self._blocked_until:
            self._blocked_until = loop_time
            self._dispatch()

    def observe(self, count: int) -> None:
        """The exchange says `count` weight is used in its current window: anything beyond
        what we hold is someone else's, and is held as if completed now."""
        extra = count - self.used()
        if extra > 0:
            self.external += extra
            self._hold(asyncio.get_running_loop().time(), extra)

    def _hold(self, loop_time: float, weight: int) -> None:
        heapq.heappush(self._done, (loop_time + self.window_s, weight))
        self._done_weight += weight

    def _expire(self, now: float) -> None:
        done = self._done
        while done and done[0][0] <= now:
            self._done_weight -= heapq.heappop(done)[1]

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._expire(now)
        waiters = self._waiters
        while waiters and now >= self._blocked_until:
            priority, _, weight, future = waiters[0]
            if future.done():  # cancelled while waiting
                heapq.heappop(waiters)
                continue
            if weight > self.limit:  # the exchange lowered the limit below it: never fits
                heapq.heappop(waiters)
                future.set_exception(_over(weight, self.limit))
                continue
            if self._in_flight + self._done_weight + weight > self._ceiling(priority, weight):
                break
            heapq.heappop(waiters)
            self._in_flight += weight
            self.granted_total += weight
            future.set_result(None)
        while waiters and waiters[0][3].done():
            heapq.heappop(waiters)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if waiters:
            priority, _, weight, _ = waiters[0]
            when = self._next_room(now, weight, self._ceiling(priority, weight))
            if when is not None:  # else only a completion can make room: it dispatches
                self._timer = loop.call_at(when, self._dispatch)

    def _ceiling(self, priority: int, weight: int) -> int:
        """The most weight held once `weight` of `priority` is granted."""
        return self.limit if priority < REFRESH else refresh_ceiling(self.limit, weight)

    def _next_room(self, now: float, weight: int, ceiling: int) -> float | None:
        """When `weight` will fit under `ceiling` by expiry alone (or the block ends)."""
        if now < self._blocked_until:
            return self._blocked_until
        need = self._in_flight + self._done_weight + weight - ceiling
        for expires, held in sorted(self._done):
            need -= held
            if need <= 0:
                return expires + 1e-6
        return None


def refresh_ceiling(limit: int, weight: int) -> int:
    """The most weight held once a refresh of `weight` is granted: half the limit, or that
    weight for a refresh heavier than the half (granted, then, only alone)."""
    return max(limit // 2, weight)


def _over(weight: int, limit: int) -> errors.OverBudget:
    return errors.OverBudget(f"request weight {weight} exceeds the whole budget {limit}")
