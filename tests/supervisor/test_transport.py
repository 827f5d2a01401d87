"""`open_link`: an attempt given up (its timeout, or a stop) leaves no connection feeding the
decoder, whether its upgrade completed just before or only after it was given up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from feedhandler._ext.decoder import Decoder
from feedhandler._ext.listener import FeedListener
from feedhandler.config import ConnectionConfig
from feedhandler.supervisor import transport
from feedhandler.supervisor.transport import LinkFailed, open_link

CONFIG = ConnectionConfig(handshake_timeout_s=0.05)
URL = "ws://127.0.0.1:9/stream?streams=btcusdt@trade"


class FakeTransport:
    def __init__(self) -> None:
        self.disconnects: list[bool] = []

    def disconnect(self, graceful: bool = True) -> None:
        self.disconnects.append(graceful)


class Connected(FeedListener):
    """A listener whose upgrade completed (picows set its transport)."""

    transport = FakeTransport()  # type: ignore[assignment]


def stalled_upgrade(upgraded: bool, factories: list[Any]) -> Any:
    """A ws_connect that never returns; with `upgraded`, after making its listener (the
    upgrade completed, ws_connect had not returned yet)."""
    async def ws_connect(factory: Any, url: str, **kwargs: Any) -> Any:
        factories.append(factory)
        if upgraded:
            factory()
        await asyncio.sleep(60)
    return ws_connect


def test_an_upgrade_completing_after_the_timeout_is_closed_and_makes_no_feed_listener(
        monkeypatch: pytest.MonkeyPatch) -> None:
    factories: list[Any] = []
    made: list[FeedListener] = []
    monkeypatch.setattr(transport, "ws_connect", stalled_upgrade(False, factories))

    def feed_listener() -> FeedListener:
        made.append(FeedListener(Decoder(lambda *batch: None)))
        return made[-1]

    with pytest.raises(LinkFailed, match="handshake timed out"):
        asyncio.run(open_link(URL, feed_listener, CONFIG, None))
    late = factories[0]()  # picows completes the upgrade now
    socket = FakeTransport()
    late.on_ws_connected(socket)
    assert socket.disconnects == [False] and made == []


@pytest.mark.parametrize("how", ["timeout", "stop"])
def test_a_connection_upgraded_as_its_attempt_is_given_up_is_closed(
        monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    factories: list[Any] = []
    made: list[Connected] = []
    monkeypatch.setattr(transport, "ws_connect", stalled_upgrade(True, factories))
    Connected.transport = FakeTransport()  # type: ignore[assignment]

    def feed_listener() -> FeedListener:
        made.append(Connected(Decoder(lambda *batch: None)))
        return made[-1]

    async def attempt() -> None:
        task = asyncio.ensure_future(open_link(URL, feed_listener, CONFIG, None))
        if how == "stop":
            await asyncio.sleep(0.01)
            task.cancel()
        await task

    with pytest.raises(LinkFailed if how == "timeout" else asyncio.CancelledError):
        asyncio.run(attempt())
    assert len(made) == 1 and made[0].transport.disconnects == [False]  # type: ignore[attr-defined]


def test_the_listener_answers_pings_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """picows's auto-pong would answer a ping without passing it on: a read that ends with
    one would not show the listener its end (the end-of-read hand-over)."""
    options: dict[str, Any] = {}

    async def ws_connect(factory: Any, url: str, **kwargs: Any) -> Any:
        options.update(kwargs)
        raise OSError("refused")

    monkeypatch.setattr(transport, "ws_connect", ws_connect)
    with pytest.raises(LinkFailed):
        asyncio.run(open_link(URL, lambda: FeedListener(Decoder(lambda *batch: None)), CONFIG,
                              None))
    assert options["enable_auto_pong"] is False and options["enable_auto_ping"] is False
