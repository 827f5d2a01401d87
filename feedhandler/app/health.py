"""Operator endpoints over HTTP/1.1: `/livez`, `/readyz` and Prometheus `/metrics` (the
exposition itself is feedhandler/app/metrics.py), and `/subscriptions`: GET lists each
connection's streams, POST `{"add": [...], "remove": [...]}` changes them live (live.py).

Every answer is computed at request time from the handler's status snapshot (supervisor and
sink, `Handler.status()`), so nothing here costs anything per message. One
request per connection, answered and closed: probes and scrapers need no more. A client that
misbehaves (never sends, never reads, opens connections without end) is bounded in time and in
number, so the endpoints stay up for the probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from feedhandler.app.live import ChangeRejected
from feedhandler.app.metrics import CONTENT_TYPE, exposition
from feedhandler.config import ConfigError

if TYPE_CHECKING:
    from feedhandler.app.handler import Handler

log = logging.getLogger(__name__)

LIVENESS_TIMEOUT_S = 5.0  # the service loop runs every 2 ms: seconds without it is a wedge
REQUEST_TIMEOUT_S = 5.0  # a client this slow to send its request holds a connection for nothing
WRITE_TIMEOUT_S = 10.0  # nor one that does not read its answer (a large /metrics stays queued)
# Probes and a scraper or two need a few connections at once; past this many, the one waiting
# longest for its request is closed (or, with none waiting, the new one): each held one keeps
# its answer's memory.
MAX_CONNECTIONS = 64
# After an answer to a request not read whole (a refused body) the client may still be sending:
# closing with its data unread would reset the connection and could lose the answer, so it is
# read away first.
LINGER_S = 1.0
LINGER_BYTES = 16 << 20
REFUSED_WARNING_S = 60.0  # "connections refused" is logged at most this often
MAX_REQUEST_BYTES = 8192
MAX_BODY_BYTES = 1 << 20  # a POST /subscriptions of thousands of streams
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout", 411: "Length Required",
           413: "Content Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable"}
MIB = 1 << 20
Answer = tuple[int, str, str]


class HealthServer:
    def __init__(self, handler: Handler, host: str, port: int, writes: str = "loopback") -> None:
        """`writes`: who may POST (config health_writes): "loopback", "any" or "off"."""
        self.handler = handler
        self.host, self.port = host, port
        self.writes = writes
        self.liveness_timeout_s = LIVENESS_TIMEOUT_S
        self.request_timeout_s = REQUEST_TIMEOUT_S
        self.write_timeout_s = WRITE_TIMEOUT_S
        self.max_connections = MAX_CONNECTIONS
        self.connections = 0  # open now
        self.refused = 0  # closed at once, over max_connections
        self._refused_logged = -REFUSED_WARNING_S
        # connections not yet holding a whole request, oldest first (the ones the cap evicts)
        self._waiting: dict[asyncio.StreamWriter, None] = {}
        self._server: asyncio.Server | None = None
        self._routes = {"/livez": self.livez, "/readyz": self.readyz, "/metrics": self.metrics,
                        "/subscriptions": self.subscriptions}
        self._posts: dict[str, Callable[[bytes], Awaitable[Answer]]] = {
            "/subscriptions": self.change_subscriptions}

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                      limit=MAX_REQUEST_BYTES)
        except OSError as exc:  # (uvloop's own text repeats the address: the errno's is enough)
            why = os.strerror(exc.errno) if exc.errno else exc
            raise ConfigError(f"health_host/health_port: cannot listen on {self.host}:"
                              f"{self.port}: {why}") from exc
        host, port = self._server.sockets[0].getsockname()[:2]
        log.info("health endpoints on http://%s:%d (/livez /readyz /metrics)", host, port)

    def close(self) -> None:
        """Stop accepting (answers under way finish on their own: waiting for a slow client
        must not delay the shutdown flush)."""
        if self._server is not None:
            self._server.close()
            self._server = None

    # --- endpoints: (status, content type, body) -------------------------------------------
    def livez(self) -> tuple[int, str, str]:
        # A blocked loop cannot answer at all (the probe times out); this catches a loop that
        # answers while the service task, which flushes batches and serves Kafka, is not running.
        age = time.monotonic() - self.handler.heartbeat
        if age > self.liveness_timeout_s:
            return 503, TEXT, f"service loop stalled: last ran {age:.1f} s ago\n"
        return 200, TEXT, f"ok: service loop ran {age * 1000:.0f} ms ago\n"

    def readyz(self) -> tuple[int, str, str]:
        failures = self.readiness_failures()
        if failures:
            return 503, TEXT, "".join(f"{line}\n" for line in failures)
        count = len(self.handler.status().supervisor.connections)
        return 200, TEXT, f"ready: {count} connection{'s' * (count != 1)} open\n"

    def readiness_failures(self) -> list[str]:
        # Connected and delivering is ready. A quiet stream (an illiquid symbol) may send
        # nothing for minutes: that alone is not a failure until the connection's staleness
        # bounds say so (then it is being replaced, and shows as connecting).
        status = self.handler.status()
        failures: list[str] = []
        for conn in status.supervisor.connections:
            # one line per check, whatever the error message looks like
            error = " ".join(conn.last_error.split())
            if conn.quarantined:
                where = "".join(f" {part}" for part in conn.quarantined if part)  # a leg
                failures.append(f"shard {conn.shard}{where}: quarantined ({error})")
            if conn.state == "quarantined":
                continue
            if conn.state != "open":
                blocked = status.supervisor.blocked_for_s
                failures.append(f"shard {conn.shard}: connecting (attempt "
                                f"{conn.failed_attempts + 1}"
                                f"{f', last error: {error}' if error else ''}"
                                f"{f', throttled: {blocked:.0f} s left' if blocked else ''})")
            elif conn.suspect:
                failures.append(f"shard {conn.shard}: no data for a while, waiting for the "
                                f"pong to our ping")
            elif conn.never_delivered:
                failures.append(f"shard {conn.shard}: open {conn.open_for_s:.0f} s, nothing "
                                f"delivered yet")
        if self.handler.universe is not None and status.universe_symbols is None:
            failures.append("universe: no exchangeInfo yet (its streams are not planned)")
        elif not status.supervisor.connections:
            # (a universe selection that takes no symbol, every stream removed at runtime): a
            # handler that streams nothing must not pass for one that serves its plan
            failures.append("no streams: nothing to serve")
        if status.paused:
            limit = self.handler.config.kafka.backlog_limit_mb
            failures.append(f"sink: paused, backlog {status.backlog_bytes / MIB:.1f} MiB "
                            f"(limit {limit} MiB)")
        return failures

    def metrics(self) -> tuple[int, str, str]:
        return 200, CONTENT_TYPE, exposition(self.handler)

    def subscriptions(self) -> Answer:
        connections = {str(c.index): list(c.feed.shard.streams)
                       for c in self.handler.supervisor.children}
        return 200, JSON, orjson.dumps({"shards": connections}).decode() + "\n"

    async def change_subscriptions(self, body: bytes) -> Answer:
        """200 and the result; 400 and one line for bad input (nothing changed); 502 when
        the exchange refused part of it or the broker has no topics for it."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return 400, TEXT, f"bad request: body is not JSON: {exc}\n"
        try:
            add, remove = _stream_lists(request)
            result = await self.handler.live.change(add, remove)
        except ChangeRejected as exc:
            return 400, TEXT, f"bad request: {exc}\n"
        except ConfigError as exc:  # the data topics of the new streams
            return 502, TEXT, f"not changed: {exc}\n"
        status = 502 if result.errors else 200
        return status, JSON, orjson.dumps(result.json()).decode() + "\n"

    # --- HTTP -------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.connections >= self.max_connections:
            # the client that has waited longest without a whole request goes (a flood of idle
            # connections must not lock the probes out); with none, this one
            victim = next(iter(self._waiting), writer)
            self._waiting.pop(victim, None)
            victim.transport.abort()
            self.refused += 1
            if time.monotonic() - self._refused_logged >= REFUSED_WARNING_S:
                self._refused_logged = time.monotonic()
                log.warning("health endpoints: %d connections open, the most allowed: closed "
                            "%s (%d so far)", self.connections,
                            "the new one" if victim is writer else "the longest idle one",
                            self.refused)
            if victim is writer:
                return
        self.connections += 1
        try:
            await self._exchange(reader, writer)
        finally:
            self.connections -= 1

    async def _exchange(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        self._waiting[writer] = None
        try:
            reply = await self._answer(reader, _peer(writer))
        except Exception:  # a bug in one answer must not take the endpoints down
            log.exception("health endpoint failed")
            reply = Reply(500, TEXT, "internal error\n", read_whole=False)
        finally:
            self._waiting.pop(writer, None)
        data = reply.body.encode()
        head = (f"HTTP/1.1 {reply.status} {REASONS[reply.status]}\r\n"
                f"Content-Type: {reply.content_type}\r\nContent-Length: {len(data)}\r\n"
                f"Cache-Control: no-store\r\nConnection: close\r\n\r\n").encode()
        try:
            async with asyncio.timeout(self.write_timeout_s):
                if writer.transport.is_closing():  # reset by the client meanwhile
                    raise ConnectionResetError
                writer.write(head if reply.head_only else head + data)
                await writer.drain()
                if not reply.read_whole:
                    await _read_away(reader, writer)
                writer.close()  # flushes what is left, then closes
                await writer.wait_closed()
        except (OSError, RuntimeError, TimeoutError):  # (uvloop: RuntimeError once closed)
            writer.transport.abort()  # the client is gone, or does not read: nothing to wait for

    async def _answer(self, reader: asyncio.StreamReader, peer: str) -> Reply:
        """The reply to one request from `peer` (its address, "" when unknown)."""
        try:
            async with asyncio.timeout(self.request_timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")  # all of it: no RST on close
        except TimeoutError:
            return Reply(408, TEXT, "request timeout\n", read_whole=False)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return Reply(400, TEXT, "bad request\n", read_whole=False)
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return Reply(400, TEXT, "bad request\n", read_whole=False)
        method, target, _ = parts
        bodiless = method in ("GET", "HEAD")
        path = target.split("?", 1)[0]
        route = self._routes.get(path)
        if route is None:
            return Reply(404, TEXT, "not found: try /livez, /readyz, /metrics or "
                                    "/subscriptions\n", read_whole=bodiless)
        post = self._posts.get(path)
        if method == "POST" and post is not None:
            if not self._may_write(peer):
                # (the port serves probes and scrapes from anywhere; a change is an operator's)
                return Reply(403, TEXT, self._refusal(path, peer), read_whole=False)
            return await self._post(post, head, reader)
        if not bodiless:
            return Reply(405, TEXT, "method not allowed\n", read_whole=False)
        return Reply(*route(), head_only=method == "HEAD")

    def _refusal(self, path: str, peer: str) -> str:
        if self.writes == "off":
            return f"POST {path} is off (health_writes: off)\n"
        return (f"POST {path} refused from {peer or 'this client'} (health_writes: "
                f"{self.writes}); from the pod itself it is allowed: kubectl port-forward or "
                "exec\n")

    def _may_write(self, peer: str) -> bool:
        if self.writes != "loopback":
            return self.writes == "any"
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])  # (less an IPv6 zone)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.is_loopback

    async def _post(self, post: Callable[[bytes], Awaitable[Answer]], head: bytes,
                    reader: asyncio.StreamReader) -> Reply:
        lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n")[1:]
                   if line.lower().startswith(b"content-length:")]
        try:
            length = int(lengths[0]) if len(lengths) == 1 else -1
        except ValueError:
            length = -1
        if length < 0:
            return Reply(411, TEXT, "one Content-Length header required\n", read_whole=False)
        if length > MAX_BODY_BYTES:
            return Reply(413, TEXT, f"body over {MAX_BODY_BYTES} bytes\n", read_whole=False)
        try:
            async with asyncio.timeout(self.request_timeout_s):
                body = await reader.readexactly(length)
        except TimeoutError:
            return Reply(408, TEXT, "request timeout\n", read_whole=False)
        except (asyncio.IncompleteReadError, ConnectionError):
            return Reply(400, TEXT, "bad request: body shorter than Content-Length\n",
                         read_whole=False)
        return Reply(*await post(body))


class Reply(NamedTuple):
    status: int
    content_type: str
    body: str
    head_only: bool = False  # HEAD: the head alone, with the body's length
    read_whole: bool = True  # False: the client may still be sending (read away before closing)


def _peer(writer: asyncio.StreamWriter) -> str:
    """The client's IP address ("" when unknown)."""
    name = writer.get_extra_info("peername")
    return str(name[0]) if isinstance(name, tuple) and name else ""


async def _read_away(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Half-close, then read and drop what the client still sends until it closes, for up to
    LINGER_S and LINGER_BYTES."""
    if writer.transport.is_closing():  # the client is gone already
        return
    writer.write_eof()
    left = LINGER_BYTES
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(LINGER_S):
            while left > 0 and (chunk := await reader.read(min(left, 1 << 16))):
                left -= len(chunk)


def _stream_lists(request: Any) -> tuple[list[str], list[str]]:
    """`{"add": [...], "remove": [...]}` (either may be left out) -> the two lists."""
    if not isinstance(request, dict):
        raise ChangeRejected('expected a JSON object {"add": [...], "remove": [...]}')
    unknown = sorted(set(request) - {"add", "remove"})
    if unknown:
        raise ChangeRejected(f"unknown key {unknown[0]!r} (expected add, remove)")
    lists = []
    for key in ("add", "remove"):
        names = request.get(key, [])
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ChangeRejected(f"{key!r} must be a list of stream names")
        lists.append(names)
    return lists[0], lists[1]
