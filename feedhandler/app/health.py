"""Operator endpoints over HTTP/1.1: `/livez`, `/readyz` and Prometheus `/metrics` (the
exposition itself is feedhandler/app/metrics.py).

Every answer is computed at request time from the handler's status snapshot (supervisor and
sink, `Handler.status()`), so nothing here costs anything per message. One
request per connection, answered and closed: probes and scrapers need no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from feedhandler.app.metrics import CONTENT_TYPE, exposition
from feedhandler.config import ConfigError

if TYPE_CHECKING:
    from feedhandler.app.handler import Handler

log = logging.getLogger(__name__)

LIVENESS_TIMEOUT_S = 5.0  # the service loop runs every 2 ms: seconds without it is a wedge
REQUEST_TIMEOUT_S = 5.0  # a client this slow to send its request holds a connection for nothing
MAX_REQUEST_BYTES = 8192
TEXT = "text/plain; charset=utf-8"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 500: "Internal Server Error", 503: "Service Unavailable"}
MIB = 1 << 20


class HealthServer:
    def __init__(self, handler: Handler, host: str, port: int) -> None:
        self.handler = handler
        self.host, self.port = host, port
        self.liveness_timeout_s = LIVENESS_TIMEOUT_S
        self.request_timeout_s = REQUEST_TIMEOUT_S
        self._server: asyncio.Server | None = None
        self._routes = {"/livez": self.livez, "/readyz": self.readyz, "/metrics": self.metrics}

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                      limit=MAX_REQUEST_BYTES)
        except OSError as exc:
            raise ConfigError(f"health_host/health_port: cannot listen on {self.host}:"
                              f"{self.port}: {exc.strerror or exc}") from exc
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
            if conn.state == "quarantined":
                failures.append(f"shard {conn.shard}: quarantined ({error})")
            elif conn.state != "open":
                failures.append(f"shard {conn.shard}: connecting (attempt "
                                f"{conn.failed_attempts + 1}"
                                f"{f', last error: {error}' if error else ''})")
            elif conn.suspect:
                failures.append(f"shard {conn.shard}: no data for a while, waiting for the "
                                f"pong to our ping")
            elif conn.never_delivered:
                failures.append(f"shard {conn.shard}: open {conn.open_for_s:.0f} s, nothing "
                                f"delivered yet")
        if status.paused:
            limit = self.handler.config.kafka.backlog_limit_mb
            failures.append(f"sink: paused, backlog {status.backlog_bytes / MIB:.1f} MiB "
                            f"(limit {limit} MiB)")
        return failures

    def metrics(self) -> tuple[int, str, str]:
        return 200, CONTENT_TYPE, exposition(self.handler)

    # --- HTTP -------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_only = False
        try:
            status, content_type, body, head_only = await self._answer(reader)
        except Exception:  # a bug in one answer must not take the endpoints down
            log.exception("health endpoint failed")
            status, content_type, body = 500, TEXT, "internal error\n"
        data = body.encode()
        head = (f"HTTP/1.1 {status} {REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(data)}\r\nCache-Control: no-store\r\n"
                f"Connection: close\r\n\r\n").encode()
        try:
            writer.write(head if head_only else head + data)
            await writer.drain()
        except ConnectionError:
            pass  # the client is gone: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, str, str, bool]:
        try:
            async with asyncio.timeout(self.request_timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")  # all of it: no RST on close
        except TimeoutError:
            return 408, TEXT, "request timeout\n", False
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return 400, TEXT, "bad request\n", False
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            return 400, TEXT, "bad request\n", False
        method, target, _ = parts
        route = self._routes.get(target.split("?", 1)[0])
        if route is None:
            return 404, TEXT, "not found: try /livez, /readyz or /metrics\n", False
        if method not in ("GET", "HEAD"):
            return 405, TEXT, "method not allowed\n", False
        return (*route(), method == "HEAD")
