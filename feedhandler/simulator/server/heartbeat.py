"""Server pings and the pong deadline (protocol doc §2).

A ping goes out every `interval` seconds. Each carries a unique payload, so a pong counts only
when it echoes a ping still waiting for its answer; it then settles that ping and every older
one. Unsolicited pongs (empty, as the docs ask, or echoing nothing we sent) keep nothing alive.
A ping left unanswered for `timeout` seconds calls `on_timeout`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable


class Heartbeat:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        timeout: float,
        send_ping: Callable[[bytes], None],
        on_timeout: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._interval = interval
        self._timeout = timeout
        self._send_ping = send_ping
        self._on_timeout = on_timeout
        self._counter = itertools.count(1)
        # payload -> deadline handle, oldest first (dicts keep insertion order)
        self._waiting: dict[bytes, asyncio.TimerHandle] = {}
        self._next_ping: asyncio.TimerHandle | None = None
        self.pings_sent = 0
        self.pongs_accepted = 0

    def start(self) -> None:
        self._schedule(self._interval)

    def stop(self) -> None:
        if self._next_ping is not None:
            self._next_ping.cancel()
            self._next_ping = None
        for handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()

    def pause(self) -> None:
        """Stop pinging (a stall) without forgetting pings already waiting for a pong."""
        if self._next_ping is not None:
            self._next_ping.cancel()
            self._next_ping = None

    def resume(self) -> None:
        if self._next_ping is None:
            self._schedule(self._interval)

    def on_pong(self, payload: bytes) -> bool:
        """Account a pong; True when it answered one of our pings."""
        if payload not in self._waiting:
            return False
        while self._waiting:
            sent, handle = next(iter(self._waiting.items()))
            handle.cancel()
            del self._waiting[sent]
            if sent == payload:
                break
        self.pongs_accepted += 1
        return True

    def _schedule(self, delay: float) -> None:
        self._next_ping = self._loop.call_later(delay, self._ping)

    def _ping(self) -> None:
        payload = str(next(self._counter)).encode()
        self._waiting[payload] = self._loop.call_later(self._timeout, self._expired, payload)
        self.pings_sent += 1
        self._send_ping(payload)
        self._schedule(self._interval)

    def _expired(self, payload: bytes) -> None:
        if self._waiting.pop(payload, None) is not None:
            self.stop()
            self._on_timeout()
