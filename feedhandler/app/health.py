"""Operator endpoints over HTTP/1.1: `/livez`, `/readyz` and Prometheus `/metrics`.

Every answer is computed at request time from state the handler keeps anyway (HandlerStats, the
connections' listeners, the sink's summary), so nothing here costs anything per message. One
request per connection, answered and closed: probes and scrapers need no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from feedhandler._ext.decoder import ERROR_NAMES, KIND_NAMES
from feedhandler.config import ConfigError

if TYPE_CHECKING:
    from feedhandler.app.handler import Handler

log = logging.getLogger(__name__)

LIVENESS_TIMEOUT_S = 5.0  # the service loop runs every 2 ms: seconds without it is a wedge
REQUEST_TIMEOUT_S = 5.0  # a client this slow to send its request holds a connection for nothing
MAX_REQUEST_BYTES = 8192
TEXT = "text/plain; charset=utf-8"
METRICS = "text/plain; version=0.0.4; charset=utf-8"
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 500: "Internal Server Error", 503: "Service Unavailable"}
MIB = 1 << 20
QUANTILES = {"p50": "0.5", "p99": "0.99"}  # librdkafka's percentile names

Labels = dict[str, str]
Samples = Iterable[tuple[Labels, float]]

# sink.summary() key -> (metric name after feedhandler_sink_, type, help). Keys of KafkaSink and
# NullSink; other numbers a sink reports are exported untyped under their own name.
SINK_METRICS: dict[str, tuple[str, str, str]] = {
    "produced": ("messages_produced_total", "counter", "Messages handed to librdkafka."),
    "delivered": ("messages_delivered_total", "counter", "Messages acknowledged by the broker."),
    "failed": ("messages_failed_total", "counter",
               "Messages rejected for good, or purged unsent at shutdown."),
    "in_flight": ("messages_in_flight", "gauge",
                  "Messages librdkafka holds, not yet acknowledged."),
    "undelivered": ("messages_undelivered", "gauge",
                    "Messages not yet acknowledged: in librdkafka plus in the sink's backlog."),
    "records_produced": ("records_produced_total", "counter", "Records handed to librdkafka."),
    # produced - failed: includes records in flight, and drops when a failure is reported
    "records_delivered": ("records_delivered", "gauge",
                          "Records produced and not failed (includes those in flight)."),
    "records_failed": ("records_failed_total", "counter", "Records in failed messages."),
    "records_unsent": ("records_unsent", "gauge", "Records waiting in the sink's backlog."),
    "buffer_full": ("buffer_full_total", "counter",
                    "Times librdkafka's queue was full (messages went to the backlog)."),
    "backlog_peak_bytes": ("backlog_peak_bytes", "gauge", "Largest backlog so far, in bytes."),
    "records": ("records_total", "counter", "Records accepted by the sink."),
    "batches": ("batches_total", "counter", "Batches accepted by the sink."),
    "dead_letters": ("dead_letters_total", "counter", "Rejected frames accepted by the sink."),
    "control_events": ("control_events_total", "counter", "Control events accepted by the sink."),
}


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

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
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
        count = len(self.handler.shards)
        return 200, TEXT, f"ready: {count} connection{'s' * (count != 1)} receiving\n"

    def readiness_failures(self) -> list[str]:
        handler = self.handler
        failures: list[str] = []
        for conn in handler.shards:
            if conn.listener is None:
                # one line per check, whatever the exception's message looks like
                error = f", last error: {' '.join(conn.last_error.split())}" \
                    if conn.last_error else ""
                state = f"connecting (attempt {conn.failed_attempts + 1}{error})"
            elif not conn.listener.frames:
                state = f"connected, no frame yet (epoch {conn.epoch})"
            else:
                continue
            failures.append(f"shard {conn.shard.index}: {state}")
        if handler.paused:
            limit = handler.config.kafka.backlog_limit_mb
            failures.append(f"sink: paused, backlog {handler.sink.backlog_bytes() / MIB:.1f} MiB "
                            f"(limit {limit} MiB)")
        return failures

    def metrics(self) -> tuple[int, str, str]:
        return 200, METRICS, exposition(self.handler)

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


# --- Prometheus text exposition format 0.0.4 --------------------------------------------------
def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(value: str) -> str:
    return _escape_help(value).replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(int(value))  # int(): bools as 0/1
    number = float(value)  # numpy scalars too
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


def family(name: str, kind: str, help_text: str, samples: Samples) -> list[str]:
    """One metric family: HELP, TYPE and its samples."""
    lines = [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
        lines.append(f"{name}{{{pairs}}} {_number(value)}" if pairs else
                     f"{name} {_number(value)}")
    return lines


def exposition(handler: Handler) -> str:
    stats, shards = handler.stats, handler.shards
    now_ns = time.time_ns()  # frames are stamped with the wall clock
    lines = [
        *family("feedhandler_frames_total", "counter", "Data frames received, per connection.",
                (({"shard": str(c.shard.index)}, c.frames) for c in shards)),
        # every known label value from the start, so that rate() sees the first increase
        *family("feedhandler_records_total", "counter",
                "Records decoded and handed over in batches, by kind.",
                (({"kind": k}, stats.records[k]) for k in dict.fromkeys([*KIND_NAMES,
                                                                         *stats.records]))),
        *family("feedhandler_rejected_frames_total", "counter",
                "Frames rejected by the decoders (dead-lettered), by reason.",
                (({"reason": r}, stats.errors[r]) for r in dict.fromkeys([*ERROR_NAMES,
                                                                          *stats.errors]))),
        *family("feedhandler_gaps_total", "counter",
                "Sequence gaps detected (missing or backwards update ids).", [({}, stats.gaps)]),
        *family("feedhandler_reconnects_total", "counter", "Exchange connections lost.",
                [({}, stats.reconnects)]),
        *family("feedhandler_connection_up", "gauge",
                "1 while the connection is open, per connection.",
                (({"shard": str(c.shard.index)}, c.listener is not None) for c in shards)),
        *family("feedhandler_connection_epoch", "gauge",
                "Connection attempts so far (the epoch in Kafka headers), per connection.",
                (({"shard": str(c.shard.index)}, c.epoch) for c in shards)),
        # absent until a connection's first frame: there is no age to report yet
        *family("feedhandler_last_frame_age_seconds", "gauge",
                "Seconds since the last data frame, per connection.",
                (({"shard": str(c.shard.index)}, max(0, now_ns - c.last_frame_ns) / 1e9)
                 for c in shards if c.last_frame_ns)),
        *family("feedhandler_paused", "gauge",
                "1 while exchange reads are paused by sink backpressure.", [({}, handler.paused)]),
        *family("feedhandler_service_loop_age_seconds", "gauge",
                "Seconds since the service loop last ran (it runs every 2 ms).",
                [({}, time.monotonic() - handler.heartbeat)]),
        *family("feedhandler_sink_backlog_bytes", "gauge",
                "Bytes accepted by the sink and not yet handed to Kafka.",
                [({}, handler.sink.backlog_bytes())]),
        *_sink_families(handler.sink.summary()),
    ]
    return "\n".join(lines) + "\n"


def _sink_families(summary: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for key, value in summary.items():
        if key == "errors":
            lines += family("feedhandler_sink_errors_total", "counter",
                            "Messages lost, by librdkafka error name.",
                            (({"error": str(name)}, n) for name, n in value.items()))
        elif key == "latency_us":
            lines += family("feedhandler_sink_latency_seconds", "gauge",
                            "librdkafka latency percentiles, worst broker, last statistics "
                            "window: queue (in librdkafka), send (socket buffer), ack (rtt).",
                            (({"stage": stage, "quantile": QUANTILES.get(q, q)}, us / 1e6)
                             for stage, quantiles in value.items()
                             for q, us in quantiles.items()))
        elif key in SINK_METRICS:
            name, kind, help_text = SINK_METRICS[key]
            lines += family(f"feedhandler_sink_{name}", kind, help_text, [({}, value)])
        elif isinstance(value, int | float):
            name = "feedhandler_sink_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)
            lines += family(name, "untyped", f"sink.summary()[{key!r}]", [({}, value)])
    return lines
