"""Wall-clock send-time stamps for latency runs (`--wall-clock`).

Each event's `E` (event time) is replaced by the wall clock (CLOCK_REALTIME) read just before
the events are encoded and written, in the connection's time unit: µs with
`timeUnit=MICROSECOND`, ms otherwise. A client that stamps its receive time on the same clock
then measures wire + parse latency as `ts_recv - E`. Other time fields (trade `T`, kline
bounds) keep the market's simulated times; payloads without `E` (bookTicker, partial depth)
are sent unchanged.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from feedhandler.simulator.server.source import Event
from feedhandler.simulator.server.urls import TimeUnit

_EVENT_TIME = re.compile(rb'"E":\d+')
_NS_PER_UNIT = {"us": 1_000, "ms": 1_000_000}


def stamp_send_time(events: Sequence[Event], time_unit: TimeUnit) -> list[Event]:
    """`events` with every `"E":<int>` set to now; all-market arrays get it on each item."""
    field = b'"E":%d' % (time.time_ns() // _NS_PER_UNIT[time_unit])
    sub = _EVENT_TIME.sub
    return [(stream, sub(field, payload)) for stream, payload in events]
