"""Blocking calls off the event loop on daemon threads: unlike `asyncio.to_thread`, a call still
running when the handler stops (a Kafka admin request, an HTTP snapshot) does not hold the
process past its shutdown budget, and its answer, no longer wanted, is dropped."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")


async def in_daemon_thread(call: Callable[..., T], *args: Any) -> T:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if done.done():  # the awaiting task was cancelled
            return
        if ok:
            done.set_result(value)
        else:
            done.set_exception(value)

    def work() -> None:
        value: Any
        try:
            ok, value = True, call(*args)
        except BaseException as exc:  # handed to the awaiting task
            ok, value = False, exc
        with suppress(RuntimeError):  # the loop closed meanwhile: nobody waits any more
            loop.call_soon_threadsafe(settle, ok, value)

    threading.Thread(target=work, name=getattr(call, "__name__", "blocking"),
                     daemon=True).start()
    return await done
