"""Prometheus text exposition (format 0.0.4) of a running handler, read at scrape time from
state the handler keeps anyway: nothing is counted per message for it."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from feedhandler._ext.decoder import ERROR_NAMES, KIND_NAMES

if TYPE_CHECKING:
    from feedhandler.app.handler import Handler

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
QUANTILES = {"p50": "0.5", "p99": "0.99"}  # librdkafka's percentile names

Labels = dict[str, str]
Samples = Iterable[tuple[Labels, float]]

# sink.summary() key -> (metric name after feedhandler_sink_, type, help). Keys of KafkaSink and
# NullSink; other numbers a sink reports are exported untyped under their own name.
SINK_METRICS: dict[str, tuple[str, str, str]] = {
    "produced": ("messages_produced_total", "counter", "Messages handed to librdkafka."),
    # produced - failed - in flight: not monotonic (a message refused up front is failed
    # without being produced), so a gauge
    "delivered": ("messages_delivered", "gauge", "Messages acknowledged by the broker."),
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
    connections = handler.status().supervisor.connections
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
        *family("feedhandler_connection_quarantined", "gauge",
                "1 once the exchange refused the connection for good (401/403/400).",
                (({"shard": str(c.shard)}, c.state == "quarantined") for c in connections)),
        *family("feedhandler_connection_replaced_total", "counter",
                "Stale connections replaced, by cause (ping_timeout, silent).",
                (({"shard": str(c.shard), "cause": cause}, c.replaced.get(cause, 0))
                 for c in connections for cause in ("ping_timeout", "silent"))),
        *family("feedhandler_protocol_violations_total", "counter",
                "Connections closed with 1002 for a protocol violation.",
                (({"shard": str(c.shard)}, c.violations) for c in connections)),
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
