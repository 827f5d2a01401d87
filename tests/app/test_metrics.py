"""The Prometheus exposition: escaping, number formats, the sink's summary as typed metrics."""

from __future__ import annotations

from typing import Any

import numpy as np

from feedhandler.app.handler import Handler
from feedhandler.app.metrics import exposition, family
from feedhandler.config import load_config
from feedhandler.sinks.null import NullSink
from tests.app.prometheus_text import parse_metrics, value


def test_exposition_escapes_label_values_and_help_and_formats_special_values() -> None:
    lines = family("x_total", "counter", "a \\ help\nline", [
        ({"error": 'quote " back \\ new\nline'}, 3),
        ({"a": "1", "b": "2"}, True),
    ])
    assert lines == [
        "# HELP x_total a \\\\ help\\nline",
        "# TYPE x_total counter",
        'x_total{error="quote \\" back \\\\ new\\nline"} 3',
        'x_total{a="1",b="2"} 1',
    ]
    gauges = family("g", "gauge", "g", [({}, float("inf")), ({"k": "v"}, float("nan")),
                                        ({"k": "w"}, np.int64(7)), ({"k": "z"}, 0.25)])
    assert gauges[2:] == ["g +Inf", 'g{k="v"} NaN', 'g{k="w"} 7.0', 'g{k="z"} 0.25']
    values, types = parse_metrics("\n".join(lines) + "\n")
    assert values[("x_total", (("error", 'quote " back \\ new\nline'),))] == 3
    assert types == {"x_total": "counter"}


def test_kafka_sink_summary_becomes_typed_metrics() -> None:
    class KafkaLikeSink(NullSink):
        def summary(self) -> dict[str, Any]:
            return {"produced": 10, "delivered": 7, "failed": 1, "in_flight": 2,
                    "records_produced": 400, "records_delivered": 360, "records_failed": 40,
                    "buffer_full": 3, "backlog_peak_bytes": 4096,
                    "errors": {"_MSG_SIZE_TOO_LARGE": 1},
                    "latency_us": {"ack": {"p50": 1500, "p99": 20000}},
                    "undelivered": 2, "records_unsent": 0, "new_counter": 5, "note": "text"}

    config = load_config(None, {"url": "ws://127.0.0.1:9", "sink": "null"}, environ={})
    handler = Handler(config, KafkaLikeSink())
    values, types = parse_metrics(exposition(handler))
    assert value(values, "feedhandler_sink_messages_produced_total") == 10
    assert value(values, "feedhandler_sink_messages_delivered") == 7
    assert types["feedhandler_sink_messages_delivered"] == "gauge"  # in flight drops it
    assert value(values, "feedhandler_sink_messages_in_flight") == 2
    assert value(values, "feedhandler_sink_records_failed_total") == 40
    assert types["feedhandler_sink_records_delivered"] == "gauge"  # can go down
    assert value(values, "feedhandler_sink_errors_total", error="_MSG_SIZE_TOO_LARGE") == 1
    assert value(values, "feedhandler_sink_latency_seconds", stage="ack", quantile="0.99") == 0.02
    assert value(values, "feedhandler_sink_latency_seconds", stage="ack", quantile="0.5") == 0.0015
    assert types["feedhandler_sink_new_counter"] == "untyped"  # a key this module doesn't know
    assert not any(name.endswith("_note") for name, _ in values)
    # before any connection: no frame age to report, connection down at epoch 0
    assert value(values, "feedhandler_connection_up", shard="0") == 0
    assert ("feedhandler_last_frame_age_seconds", (("shard", "0"),)) not in values
