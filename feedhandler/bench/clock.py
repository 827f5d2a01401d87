"""The simulator host's clock against ours, by round trips: two hosts without PTP.

NTP's midpoint rule over the simulator's WS API `time`, asked in µs
(`/ws-api/v3?timeUnit=MICROSECOND`): the server read its clock somewhere inside the round trip,
so `serverTime - midpoint` is the offset, wrong by at most half the round trip. Of many round
trips the shortest wins (`WsApiClient.time`, the handler's own estimator).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from feedhandler.simulator.server.wsapi import API_PATH
from feedhandler.wsapi.budget import WeightBudget
from feedhandler.wsapi.client import WsApiClient

SAMPLES = 64  # `time` weighs 1 of the 6,000 a minute
TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class RoundTripClock:
    offset_us: float  # the simulator host's clock minus ours
    error_us: float  # at most: half the shortest round trip
    samples: int

    def note(self) -> str:
        return (f"two hosts: the simulator host's clock minus ours is {self.offset_us:+,.0f} µs "
                f"± {self.error_us:,.0f} µs (round trips to its WS API `time` in µs, the "
                f"shortest of {self.samples}, midpoint rule); send → recv and end to end are "
                "corrected by it and are exact only to that ±")


def api_url(stream_url: str) -> str:
    """The WS API endpoint, in µs, of the simulator serving `stream_url` (ws://HOST:PORT...)."""
    parts = urlsplit(stream_url)
    return urlunsplit((parts.scheme, parts.netloc, API_PATH.decode(), "timeUnit=MICROSECOND",
                       ""))


async def round_trip_offset(stream_url: str, samples: int = SAMPLES,
                            timeout_s: float = TIMEOUT_S,
                            ssl_context: ssl.SSLContext | None = None) -> RoundTripClock:
    """Measure the clock offset of the simulator behind `stream_url` by `samples` round trips
    (TimeoutError past `timeout_s`). A simulator started with `--api-clock-offset-ms` adds that
    lead to its API's clock, not to its streams' `E`: leave it at 0 for latency runs."""
    async with asyncio.timeout(timeout_s), WsApiClient(
            api_url(stream_url), WeightBudget(6000, 60.0), clock_samples=samples,
            ssl_context=ssl_context) as api:
        for _ in range(samples):
            await api.time()
    best = api.clock.best
    assert best is not None  # (samples >= 1 round trips made)
    return RoundTripClock(best.offset_ms * 1_000, best.rtt_ms * 500, samples)
