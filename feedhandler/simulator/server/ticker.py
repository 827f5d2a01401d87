"""Pacing ticks finer than the event loop's timers: a periodic timerfd read by the loop (Linux).

uvloop's timers and clock have millisecond resolution, so a market paced by them releases every
event due in a millisecond at once: at 100k events/s, a burst of 100 each millisecond, and a
client's first frame of a burst waits for the rest to be parsed. `Ticker` calls back every
`interval_us` instead, from the loop (no thread, no GIL hand-off); a late loop gets one call
for the expirations it missed. Python 3.11 has no `os.timerfd_create`, hence ctypes.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
from collections.abc import Callable

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def _check(result: int) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result


class Ticker:
    """`callback()` every `interval_us` while started."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_us: int,
                 callback: Callable[[], None]) -> None:
        if not 0 < interval_us < 1_000_000:
            raise ValueError(f"tick interval must be 1..999999 µs, got {interval_us}")
        self._loop = loop
        self._period = _Timespec(0, interval_us * 1_000)
        self._callback = callback
        self._fd = -1  # made by the first start, so that a ticker never started holds none
        self.started = False

    def start(self) -> None:
        if not self.started:
            if self._fd < 0:
                self._fd = _check(_libc.timerfd_create(_CLOCK_MONOTONIC,
                                                       _TFD_NONBLOCK | _TFD_CLOEXEC))
            self._arm(self._period)
            self._loop.add_reader(self._fd, self._on_expired)
            self.started = True

    def stop(self) -> None:
        if self.started:
            self._loop.remove_reader(self._fd)
            self._arm(_Timespec(0, 0))
            self.started = False

    def close(self) -> None:
        self.stop()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _arm(self, period: _Timespec) -> None:
        spec = _Itimerspec(period, period)  # (a zero value disarms)
        _check(_libc.timerfd_settime(self._fd, 0, ctypes.byref(spec), None))

    def _on_expired(self) -> None:
        try:
            os.read(self._fd, 8)  # the expirations since the last read: one call for all
        except BlockingIOError:
            return
        self._callback()
