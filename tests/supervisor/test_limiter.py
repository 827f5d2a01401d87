"""The process-wide connection-attempt limiter, on a virtual clock."""

from __future__ import annotations

import asyncio

import pytest

from feedhandler.supervisor.limiter import AttemptLimiter
from tests.supervisor.fake_clock import FakeClock


async def _attempt(limiter: AttemptLimiter, clock: FakeClock, started: list[float],
                   duration: float = 0.0) -> None:
    async with limiter.attempt():
        started.append(clock.now())
        if duration:
            await clock.sleep(duration)


def test_a_storm_waits_for_the_window_and_never_exceeds_it() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = AttemptLimiter(10, 60.0, clock)
        started: list[float] = []
        await asyncio.gather(*(_attempt(limiter, clock, started, 0.5) for _ in range(25)))
        t0 = started[0]
        offsets = sorted(t - t0 for t in started)
        assert offsets[:10] == [0.0] * 10
        # the 11th waits until the first attempt's end (0.5) leaves the window
        assert offsets[10:20] == [60.5] * 10 and offsets[20:] == [121.0] * 5
        # any 60 s window holds at most 10 starts
        for i, t in enumerate(offsets):
            assert sum(1 for u in offsets if t <= u < t + 60.0) <= 10, i
        assert limiter.attempts == 25 and limiter.waits == 15

    asyncio.run(main())


def test_attempts_under_way_hold_their_slot_until_they_end() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = AttemptLimiter(2, 10.0, clock)
        release = asyncio.Event()

        async def held() -> None:
            async with limiter.attempt():
                await release.wait()

        slow = [asyncio.create_task(held()) for _ in range(2)]
        await asyncio.sleep(0.01)
        assert limiter.delay() is None  # full, and only an open attempt can free a slot
        started: list[float] = []
        third = asyncio.create_task(_attempt(limiter, clock, started))
        await asyncio.sleep(0.01)
        assert not started
        clock.time += 30.0  # the slow ones end at +30 and are stamped then
        ended = clock.now()
        release.set()
        await asyncio.gather(*slow, third)
        assert started == [ended + 10.0]

    asyncio.run(main())


def test_a_block_holds_every_attempt_until_it_passes() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = AttemptLimiter(300, 300.0, clock)
        limiter.block_for(30.0)
        limiter.block_for(5.0)  # a shorter block does not shorten the longer one
        assert limiter.blocked_for == 30.0
        started: list[float] = []
        t0 = clock.now()
        await asyncio.gather(*(_attempt(limiter, clock, started) for _ in range(3)))
        assert [t - t0 for t in started] == [30.0] * 3 and limiter.blocked_for == 0

    asyncio.run(main())


def test_after_a_block_one_attempt_probes_and_a_refusal_blocks_the_rest_again() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = AttemptLimiter(300, 300.0, clock)
        started: list[float] = []

        async def refused_once() -> None:
            async with limiter.attempt():
                started.append(clock.now())
                await clock.sleep(0.5)  # the handshake's round trip
                if len(started) == 1:
                    limiter.block_for(10.0)  # the probe is refused: a 429 again

        t0 = clock.now()
        limiter.block_for(2.0)
        await asyncio.gather(*(refused_once() for _ in range(4)))
        # one probe at +2 s; its refusal at +2.5 s holds the other three for 10 s more; the
        # next probe goes alone, and once it has ended the rest go together
        assert [t - t0 for t in started] == [2.0, 12.5, 13.0, 13.0]

    asyncio.run(main())


def test_a_cancelled_waiter_takes_no_slot() -> None:
    async def main() -> None:
        clock = FakeClock()
        limiter = AttemptLimiter(1, 10.0, clock)
        async with limiter.attempt():
            waiter = asyncio.create_task(_attempt(limiter, clock, []))
            await asyncio.sleep(0.01)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
        assert limiter.attempts == 1 and limiter.delay() == pytest.approx(10.0)

    asyncio.run(main())


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="limit"):
        AttemptLimiter(0, 300.0)
