"""Opening and closing one WebSocket link, with every failure turned into a `Failure`.

picows's ws_connect returns a listener of None when the peer closes during the upgrade, and
raises anything from OSError to WSHandshakeError otherwise; `open_link` makes both a
`LinkFailed` carrying the classified failure. TLS is verified always, against
`connection.ca_file` or the system store; the whole attempt (TCP, TLS, upgrade) is bounded
by `connection.handshake_timeout_s`. An attempt given up (that bound, or a stop) leaves no
connection behind: picows keeps the socket of a cancelled ws_connect, and makes the listener
only when the upgrade completes, which can be later still (see `_Attempt`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any

from picows import WSListener, WSTransport, ws_connect

from feedhandler._ext.listener import FeedListener
from feedhandler.config import ConnectionConfig
from feedhandler.supervisor.failures import CLOSED_DURING_UPGRADE, Failure, classify


class LinkFailed(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.reason)
        self.failure = failure


def tls_context(ca_file: str) -> ssl.SSLContext:
    """Verification on (certificate and host name); the CA bundle is `ca_file` if given."""
    return ssl.create_default_context(cafile=ca_file or None)


def tls_context_for(url: str, ca_file: str) -> ssl.SSLContext | None:
    """tls_context(ca_file) for a wss:// `url`; None for ws://."""
    return tls_context(ca_file) if url.startswith("wss://") else None


class Link:
    """One open connection: its transport and the listener that feeds the decoder."""

    def __init__(self, transport: Any, listener: FeedListener) -> None:
        self.transport = transport
        self.listener = listener
        self._disconnected: asyncio.Future[None] = \
            asyncio.ensure_future(transport.wait_disconnected())
        # Consumed here, so a protocol error never surfaces as "exception never retrieved".
        self._disconnected.add_done_callback(_consume)

    def closed(self) -> asyncio.Future[None]:
        return self._disconnected

    def close_info(self) -> tuple[int | None, str, str]:
        """(code, reason, who): the close frame that ended the link, or (None, ...) for a
        link that ended without one."""
        listener = self.listener
        handshake = self.transport.close_handshake
        if handshake is not None and handshake.sent is not None and not handshake.recv_then_sent:
            # ours came first (the peer's, if any, was the reply)
            return int(handshake.sent.code), handshake.sent.reason or "", "us"
        if listener.close_code is not None:
            return listener.close_code, listener.close_reason, "peer"
        if handshake is not None and handshake.recv is not None:  # empty close frame
            return None, "empty close frame", "peer"
        done = self._disconnected
        error = done.exception() if done.done() and not done.cancelled() else None
        code = getattr(error, "code", None)
        if error is not None and code is not None:  # picows's parser closed it (1002, 1009)
            return int(code), str(error.args[1] if len(error.args) > 1 else error), "us"
        return None, "TCP closed without a close frame", "peer"

    async def close(self, timeout_s: float, code: int = 1000, reason: str = "") -> None:
        """Graceful close: our close frame, the peer's reply (at most `timeout_s`), then TCP."""
        if not self._disconnected.done():
            self.listener.close(code, reason)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._disconnected), timeout_s)
        self.abort()
        with contextlib.suppress(BaseException):
            await self._disconnected

    def abort(self) -> None:
        if not self._disconnected.done():
            self.transport.disconnect(False)


class _Attempt:
    """The listener of one connection attempt. picows calls `listener` when the upgrade
    completes, and a cancelled ws_connect leaves its socket open, so an upgrade can complete
    after the attempt was given up: that connection is closed at once by a listener that feeds
    nothing. One given up between its upgrade and ws_connect's return (its `connected` event
    already out, maybe the records of its first read) is closed too, so it feeds no further;
    the next connection reports the gap again, as for any connection that was never served."""

    def __init__(self, factory: Callable[[], FeedListener]) -> None:
        self._factory = factory
        self._made: FeedListener | None = None
        self._given_up = False

    def listener(self) -> WSListener:
        if self._given_up:
            return _Closing()
        self._made = self._factory()
        return self._made

    def give_up(self) -> None:
        self._given_up = True
        if self._made is not None and self._made.transport is not None:
            self._made.transport.disconnect(False)


class _Closing(WSListener):
    """An upgrade that completed after its attempt was given up."""

    def on_ws_connected(self, transport: WSTransport) -> None:
        transport.disconnect(False)


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


Connect = Callable[[str, Callable[[], FeedListener], ConnectionConfig], Any]


async def open_link(url: str, factory: Callable[[], FeedListener],
                    config: ConnectionConfig, ssl_context: ssl.SSLContext | None) -> Link:
    """Connect and upgrade, or raise LinkFailed; cancellation propagates as usual."""
    timeout = config.handshake_timeout_s
    extra: dict[str, Any] = {}
    if url.startswith("wss://"):
        extra = {"ssl_context": ssl_context, "ssl_handshake_timeout": timeout}
    attempt = _Attempt(factory)
    try:
        async with asyncio.timeout(timeout):
            transport, listener = await ws_connect(
                attempt.listener, url,
                websocket_handshake_timeout=timeout,
                enable_auto_ping=False,  # staleness is ours: see staleness.py
                enable_auto_pong=False,  # FeedListener answers: it must see every frame
                # single frames past max_frame_bytes are dead-lettered by the decoder as
                # oversized; only absurd ones end the connection (1009)
                max_frame_size=max(config.max_frame_bytes * 4, 16 << 20),
                max_redirects=0,
                **extra,
            )
    except BaseException as exc:
        attempt.give_up()
        if isinstance(exc, Exception):  # any shape of failed upgrade is a failed attempt
            raise LinkFailed(classify(exc)) from exc
        raise  # cancelled (a stop)
    if listener is None:  # the peer closed before the upgrade completed
        transport.disconnect(False)
        raise LinkFailed(CLOSED_DURING_UPGRADE)
    assert isinstance(listener, FeedListener)  # what `factory` makes
    return Link(transport, listener)
