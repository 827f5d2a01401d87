"""/metrics through prometheus_client: the sink's summary as typed metrics, latency
histograms, build and process metrics, counters equal to what the simulator sent, and the
README's metric list generated from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from feedhandler import __version__
from feedhandler._ext.decoder import SIMD_KERNEL
from feedhandler.app.handler import Handler
from feedhandler.app.latency import BUCKETS_S, Histogram, LatencyHistograms
from feedhandler.app.metrics import METRICS, SINK_METRICS, exposition, metric_list
from feedhandler.config import load_config
from feedhandler.readme import splice
from feedhandler.records import SCHEMAS
from feedhandler.simulator.testing import SimulatorServer
from feedhandler.sinks.null import NullSink
from tests.app.prometheus_text import parse_metrics, value
from tests.app.recording_sink import RecordingSink
from tests.app.test_health import config, running, scrape, sync, until

ROOT = Path(__file__).resolve().parents[2]


def idle_handler(sink: NullSink | None = None) -> Handler:
    return Handler(load_config(None, {"url": "ws://127.0.0.1:9", "sink": "null"}, environ={}),
                   sink)


def test_kafka_sink_summary_becomes_typed_metrics() -> None:
    class KafkaLikeSink(NullSink):
        def summary(self) -> dict[str, Any]:
            return {"produced": 10, "delivered": 7, "failed": 1, "in_flight": 2,
                    "records_produced": 400, "records_delivered": 360, "records_failed": 40,
                    "buffer_full": 3, "backlog_peak_bytes": 4096,
                    "errors": {"_MSG_SIZE_TOO_LARGE": 1},
                    "latency_us": {"ack": {"p50": 1500, "p99": 20000}},
                    "undelivered": 2, "records_unsent": 0, "new_counter": 5, "note": "text"}

    values, types = parse_metrics(exposition(idle_handler(KafkaLikeSink())))
    assert value(values, "feedhandler_sink_messages_produced_total") == 10
    assert types["feedhandler_sink_messages_produced_total"] == "counter"
    assert value(values, "feedhandler_sink_messages_delivered") == 7
    assert types["feedhandler_sink_messages_delivered"] == "gauge"  # in flight drops it
    assert value(values, "feedhandler_sink_messages_in_flight") == 2
    assert value(values, "feedhandler_sink_records_failed_total") == 40
    assert types["feedhandler_sink_records_delivered"] == "gauge"  # can go down
    assert value(values, "feedhandler_sink_errors_total", error="_MSG_SIZE_TOO_LARGE") == 1
    assert value(values, "feedhandler_sink_latency_seconds", stage="ack", quantile="0.99") == 0.02
    assert value(values, "feedhandler_sink_latency_seconds", stage="ack", quantile="0.5") == 0.0015
    assert types["feedhandler_sink_new_counter"] == "unknown"  # a key this module doesn't know
    assert not any(name.endswith("_note") for name, _ in values)
    # before any connection: no frame age to report, connection down at epoch 0
    assert value(values, "feedhandler_connection_up", shard="0") == 0
    assert ("feedhandler_last_frame_age_seconds", (("shard", "0"),)) not in values


def test_build_info_and_process_metrics() -> None:
    values, types = parse_metrics(exposition(idle_handler()))
    labels = {"version": __version__, "simd_kernel": SIMD_KERNEL}
    (build,) = [dict(k[1]) for k in values if k[0] == "feedhandler_build_info"]
    assert labels.items() <= build.items() and build["python"].count(".") == 2
    assert value(values, "process_resident_memory_bytes") > 10 << 20
    assert value(values, "process_open_fds") > 0
    assert types["process_cpu_seconds_total"] == "counter"
    counters = [name for name, kind in types.items() if kind == "counter"]
    assert counters and all(name.endswith("_total") for name in counters)


@given(st.lists(st.integers(-(1 << 40), 1 << 40), max_size=50), st.integers(-(1 << 40), 1 << 40))
def test_latency_histogram_counts_as_searchsorted_would(values: list[int], now: int) -> None:
    for since in (None, now):
        histogram = Histogram()
        array = np.array(values, np.int64)
        histogram.observe(array, since)
        expected = np.maximum(array if since is None else since - array, 0)  # never below 0
        bounds = np.array([round(b * 1e9) for b in BUCKETS_S], np.int64)
        index = np.searchsorted(bounds, expected, side="left")  # Prometheus le
        assert histogram.counts.tolist() == np.bincount(index, minlength=len(bounds) + 1).tolist()
        assert histogram.sum_ns == int(expected.sum())


def test_latency_histogram_buckets_are_le_counts() -> None:
    histogram = Histogram((0.001, 0.01))
    histogram.observe(np.array([-5, 1_000_000, 1_000_001, 10_000_000, 50_000_000]))
    assert histogram.cumulative() == [("0.001", 2.0), ("0.01", 4.0), ("+Inf", 5.0)]
    assert histogram.sum_ns == 62_000_001  # (-5, a clock stepped back, counts as 0)

    latency = LatencyHistograms()
    trades = np.zeros(3, SCHEMAS["trade"].dtype)
    trades["ts_event"] = 1_000_000_000
    trades["ts_recv"] = 1_000_000_000 + np.array([200_000, 2_000_000, 3_000_000_000])
    latency.observe_batch("trade", trades, now_ns=1_000_000_000 + 3_000_000_000)
    books = np.zeros(2, SCHEMAS["bookTicker"].dtype)  # no event time: one stage only
    books["ts_recv"] = 10
    latency.observe_batch("bookTicker", books, now_ns=10 + 400_000)
    latency.observe_acks("trade", np.array([0.002, 0.001]))  # Kafka messages' produce -> ack
    # (a bound is inclusive: le)
    handler = idle_handler()
    handler.latency = latency
    values, types = parse_metrics(exposition(handler))
    name = "feedhandler_latency_seconds"

    def bucket(stage: str, kind: str, le: str) -> float:
        return value(values, f"{name}_bucket", stage=stage, kind=kind, le=le)

    assert types[f"{name}_bucket"] == "histogram"
    assert bucket("event_to_receive", "trade", "0.00025") == 1
    assert bucket("event_to_receive", "trade", "0.0025") == 2
    assert bucket("event_to_receive", "trade", "2.5") == 2
    assert bucket("event_to_receive", "trade", "+Inf") == 3
    assert value(values, f"{name}_sum", stage="event_to_receive", kind="trade") == \
        (200_000 + 2_000_000 + 3_000_000_000) / 1e9
    assert value(values, f"{name}_count", stage="receive_to_produce", kind="trade") == 3
    assert bucket("receive_to_produce", "bookTicker", "0.0005") == 2
    assert (f"{name}_count", (("kind", "bookTicker"), ("stage", "event_to_receive"))) \
        not in values
    assert bucket("produce_to_ack", "trade", "0.001") == 1
    assert bucket("produce_to_ack", "trade", "0.0025") == 2
    assert value(values, f"{name}_sum", stage="produce_to_ack", kind="trade") == 0.003
    assert len([k for k in values if k[0] == f"{name}_bucket"]) == 4 * (len(BUCKETS_S) + 1)


@sync
async def test_metrics_during_a_run_count_what_the_simulator_sent() -> None:
    sent = 3000
    async with SimulatorServer(rate=20_000.0, max_messages=sent) as sim:
        sink = NullSink()
        handler = Handler(config(sim.url), sink)  # 2 streams, one connection
        async with running(handler):
            await until(lambda: handler.shards[0].frames == sent, timeout=20)
            await until(lambda: not handler.shards[0].decoder.pending_rows)
            metrics = await scrape(handler)
    assert value(metrics, "feedhandler_frames_total", shard="0") == sent
    trades, books = handler.stats.records["trade"], handler.stats.records["bookTicker"]
    assert trades + books == sent and trades > 0 and books > 0  # one record per frame
    assert value(metrics, "feedhandler_records_total", kind="trade") == trades
    assert value(metrics, "feedhandler_records_total", kind="bookTicker") == books
    assert value(metrics, "feedhandler_sink_records_total") == sent
    for kind, count in (("trade", trades), ("bookTicker", books)):
        assert value(metrics, "feedhandler_latency_seconds_count", stage="receive_to_produce",
                     kind=kind) == count
    assert value(metrics, "feedhandler_latency_seconds_count", stage="event_to_receive",
                 kind="trade") == trades


def test_readme_metric_list_is_generated_from_the_code() -> None:
    readme = (ROOT / "README.md").read_text()
    assert splice(readme, "feedhandler.app.metrics", metric_list()) == readme, \
        "README out of date: run `python -m feedhandler.app.metrics`"
    for name in METRICS:
        assert f"`{name}" in readme
    for suffix, _ in SINK_METRICS.values():
        assert f"`feedhandler_sink_{suffix}" in readme


@sync
async def test_a_redundant_shard_shows_both_legs_who_won_and_by_how_much() -> None:
    async with SimulatorServer(rate=5000.0) as sim:
        sink = RecordingSink()
        handler = Handler(config(sim.url, **{"connection.redundancy": 2}), sink)
        async with running(handler):
            feed = handler.shards[0]
            await until(lambda: feed.trusted == {0, 1} and feed.decoder.duplicates >= 1000)
            metrics = await scrape(handler)
            (shard,) = handler.status().supervisor.connections
    assert [(leg.leg, leg.state, leg.trusted) for leg in shard.legs] == \
        [(0, "open", True), (1, "open", True)]
    for leg in shard.legs:
        assert value(metrics, "feedhandler_leg_up", shard="0", leg=str(leg.leg)) == 1
    won = [value(metrics, "feedhandler_leg_won_total", shard="0", leg=leg) for leg in "01"]
    leads = [value(metrics, "feedhandler_leg_lead_seconds_count", leg=leg) for leg in "01"]
    assert sum(won) > 0 and sum(leads) > 0
    for leg in "01":  # the +Inf bucket is the count
        assert value(metrics, "feedhandler_leg_lead_seconds_bucket", leg=leg, le="+Inf") == \
            value(metrics, "feedhandler_leg_lead_seconds_count", leg=leg)
    trades = np.concatenate([rows["trade_id"] for kind, rows, _ in sink.batches
                             if kind == "trade"])
    assert (np.diff(trades) == 1).all()  # both legs' trades, each id once, in order
    assert "gap" not in [e["type"] for e in sink.events]


def test_an_event_time_ahead_of_our_clock_counts_as_0_so_the_sum_never_falls() -> None:
    latency = LatencyHistograms()
    trades = np.zeros(2, SCHEMAS["trade"].dtype)
    trades["ts_recv"] = 1_000_000_000
    trades["ts_event"] = 1_000_000_000 + np.array([-2_000_000, 3_000_000])  # 3 ms ahead
    latency.observe_batch("trade", trades, now_ns=1_000_000_000)
    histogram = latency.histograms[("event_to_receive", "trade")]
    assert histogram.sum_ns == 2_000_000 and histogram.cumulative()[0][1] == 1


def test_each_shard_exports_the_silence_its_streams_allow() -> None:
    """FeedhandlerShardStale compares each shard's frame age with this, so an illiquid trade
    stream's quiet minutes raise no alert and a dead kline stream's half minute does."""
    for streams, allowed in ((["btcusdt@trade"], 600), (["btcusdt@trade", "btcusdt@kline_1m"], 30)):
        handler = Handler(load_config(None, {"url": "ws://127.0.0.1:9", "sink": "null",
                                             "streams": streams}, environ={}))
        values, types = parse_metrics(exposition(handler))
        assert value(values, "feedhandler_connection_max_silence_seconds", shard="0") == allowed
        assert types["feedhandler_connection_max_silence_seconds"] == "gauge"
    handler = Handler(load_config(None, {"url": "ws://127.0.0.1:9", "sink": "null",
                                         "streams": ["btcusdt@trade"],
                                         "connection": {"max_silence_s": 45}}, environ={}))
    values, _ = parse_metrics(exposition(handler))
    assert value(values, "feedhandler_connection_max_silence_seconds", shard="0") == 45
