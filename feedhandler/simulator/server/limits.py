"""Rate limits: incoming messages per connection, connection attempts per client IP.

Both use sliding windows (a deque of timestamps), stricter than fixed one-second buckets: a
client that respects "N per window" measured over any window is never cut off.

Connection attempts (protocol doc §2 leaves the stream servers' answer open; assumptions): an
attempt over the limit gets HTTP 429 with `Retry-After` = whole seconds until the window has
room. Only accepted attempts fill the window, so a client that waits `Retry-After` gets in.
Refused attempts are counted separately; `ban_after` of them inside one window ban the IP for
`ban_duration`, answered with HTTP 418 and `Retry-After` = the ban's remaining seconds (the REST
API's documented escalation); `ban_after=0` disables bans.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


class SlidingWindow:
    """At most `limit` events in any `window` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        times = self._times
        while times and times[0] <= now - self.window:
            times.popleft()

    def full(self, now: float) -> bool:
        self._expire(now)
        return len(self._times) >= self.limit

    def record(self, now: float) -> None:
        self._times.append(now)

    def hit(self, now: float) -> bool:
        """Record an event; False when it is over the limit."""
        self.record(now)
        self._expire(now)
        return len(self._times) <= self.limit

    def seconds_until_room(self, now: float) -> float:
        self._expire(now)
        if len(self._times) < self.limit:
            return 0.0
        return self._times[len(self._times) - self.limit] + self.window - now


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int  # 429 or 418
    retry_after: int  # seconds, for the Retry-After header

    @classmethod
    def after(cls, status: int, seconds: float) -> Refusal:
        return cls(status, max(1, math.ceil(seconds)))


class AttemptLimiter:
    """Per-IP connection-attempt limit with escalation to a temporary ban."""

    def __init__(self, limit: int, window: float, ban_after: int, ban_duration: float) -> None:
        self._limit = limit
        self._window = window
        self._ban_after = ban_after
        self._ban_duration = ban_duration
        self._accepted: dict[str, SlidingWindow] = {}
        self._refused: dict[str, SlidingWindow] = {}
        self._banned_until: dict[str, float] = {}

    def check(self, ip: str, now: float) -> Refusal | None:
        """Account one attempt from `ip`; None means let it in."""
        accepted = self._accepted.setdefault(ip, SlidingWindow(self._limit, self._window))
        banned_until = self._banned_until.get(ip)
        if banned_until is not None:
            if now < banned_until:
                return self._banned(accepted, banned_until, now)
            del self._banned_until[ip]
        if not accepted.full(now):
            accepted.record(now)
            return None
        if self._ban_after > 0:
            refused = self._refused.setdefault(ip, SlidingWindow(self._ban_after, self._window))
            refused.record(now)
            if refused.full(now):
                self._banned_until[ip] = now + self._ban_duration
                del self._refused[ip]
                return self._banned(accepted, now + self._ban_duration, now)
        return Refusal.after(429, accepted.seconds_until_room(now))

    @staticmethod
    def _banned(accepted: SlidingWindow, until: float, now: float) -> Refusal:
        """A 418 whose Retry-After is no sooner than the window has room: a client that waits
        as told is let in, not refused again (each refusal a step nearer the next ban)."""
        return Refusal.after(418, max(until - now, accepted.seconds_until_room(now)))
