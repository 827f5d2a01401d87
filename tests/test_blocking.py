"""Blocking calls on daemon threads: answers and errors come back; a call still running does
not hold the process when the loop ends."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from feedhandler.blocking import in_daemon_thread


def test_the_answer_or_the_error_comes_back() -> None:
    async def main() -> None:
        assert await in_daemon_thread(sum, [1, 2, 3]) == 6
        with pytest.raises(ZeroDivisionError):
            await in_daemon_thread(divmod, 1, 0)

    asyncio.run(main())


def test_a_call_still_running_does_not_hold_the_loop_at_its_end() -> None:
    never = threading.Event()

    async def main() -> None:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await in_daemon_thread(never.wait, 60)

    started = time.monotonic()
    asyncio.run(main())  # (asyncio.to_thread's executor would be joined here: 60 s)
    assert time.monotonic() - started < 30
    never.set()
