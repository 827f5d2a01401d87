"""The sub-millisecond pacing tick: a timerfd the event loop reads."""

from __future__ import annotations

import asyncio

import pytest

from feedhandler.simulator.server.ticker import Ticker


async def test_it_ticks_while_started_and_closes_once() -> None:
    calls: list[float] = []
    loop = asyncio.get_running_loop()
    ticker = Ticker(loop, 200, lambda: calls.append(loop.time()))
    assert ticker._fd < 0  # nothing held until started
    ticker.start()
    await asyncio.sleep(0.05)
    ticker.stop()
    ticked = len(calls)
    assert ticked >= 10, calls  # 250 expirations due; a late loop gets one call for several
    await asyncio.sleep(0.02)
    assert len(calls) == ticked  # stopped: disarmed and no longer read
    ticker.close()
    ticker.close()  # (idempotent: the fd is closed once)
    assert ticker._fd < 0


@pytest.mark.parametrize("interval_us", [0, 1_000_000])
async def test_an_interval_outside_a_second_is_refused(interval_us: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.999999"):
        Ticker(asyncio.get_running_loop(), interval_us, lambda: None)
