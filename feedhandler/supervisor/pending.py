"""Requests that carry an integer id and wait for the reply with that id: the request half of
both JSON protocols we speak (stream-connection control messages, the WebSocket API).

Replies may come in any order; one that comes after its request timed out, or that names an
id this side never sent, is not claimed (`settle` returns None)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")  # what the caller keeps per request (e.g. its method)


class PendingRequests(Generic[T]):
    def __init__(self, ids: Iterator[int] | None = None) -> None:
        self._ids = ids if ids is not None else itertools.count(1)
        self._waiting: dict[int, tuple[T, asyncio.Future[Any]]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def open(self, tag: T) -> int:
        """A new request id; send the request, then `await answer(id, timeout)`."""
        request_id = next(self._ids)
        self._waiting[request_id] = (tag, asyncio.get_running_loop().create_future())
        return request_id

    def sent(self, tag: T, send: Callable[[int], object]) -> int:
        """`open`, then `send(request_id)`; if that raises (the connection went meanwhile), the
        id is forgotten: no one will await its answer."""
        request_id = self.open(tag)
        try:
            send(request_id)
        except BaseException:
            del self._waiting[request_id]
            raise
        return request_id

    async def answer(self, request_id: int, timeout: float) -> Any:
        """The reply's result; its error raised; TimeoutError after `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                return await self._waiting[request_id][1]
        finally:
            self._waiting.pop(request_id, None)

    def _open_future(self, request_id: object) -> tuple[T, asyncio.Future[Any]] | None:
        waiting = self._waiting.get(request_id) if isinstance(request_id, int) else None
        return waiting if waiting is not None and not waiting[1].done() else None

    def tag(self, request_id: object) -> T | None:
        """The tag of a request still waiting for `request_id`, else None."""
        waiting = self._open_future(request_id)
        return waiting[0] if waiting is not None else None

    def settle(self, request_id: object, result: Any = None,
               error: BaseException | None = None) -> T | None:
        """Answer a waiting request (its tag), or None: not ours, or answered already."""
        waiting = self._open_future(request_id)
        if waiting is None:
            return None
        tag, future = waiting
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
        return tag

    def fail_all(self, error: Callable[[T], BaseException]) -> None:
        """Every waiting request fails with `error(tag)`: its reply cannot come any more."""
        waiting, self._waiting = self._waiting, {}
        for tag, future in waiting.values():
            if not future.done():
                future.set_exception(error(tag))
