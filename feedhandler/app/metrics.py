"""Prometheus metrics of a running handler, through prometheus_client: a custom collector reads
the state the handler keeps anyway (HandlerStats, the connections, the sink's summary, the
per-batch latency histograms) when /metrics is scraped, so nothing is counted per message for
it. Process metrics (`process_*`, `python_*`) come from prometheus_client's own collectors.

`python -m feedhandler.app.metrics` rewrites the README's metric list (generated from METRICS
and SINK_METRICS below; tests/app/test_metrics.py keeps them in sync).
"""

from __future__ import annotations

import platform
import re
import time
import weakref
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from feedhandler import __version__
from feedhandler._ext.decoder import ERROR_NAMES, KIND_NAMES, LEAD_BOUNDS_NS, SIMD_KERNEL
from feedhandler.readme import rewrite
from feedhandler.supervisor.connection import ROLLOVER_CAUSES

if TYPE_CHECKING:
    from feedhandler.app.handler import Handler
    from feedhandler.supervisor.status import LegStatus

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes
QUANTILES = {"p50": "0.5", "p99": "0.99"}  # librdkafka's percentile names


class Spec(NamedTuple):
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]
    help: str


# Every metric the handler exports besides the sink's: name -> spec. Counters end in _total.
METRICS: dict[str, Spec] = {
    "feedhandler_build_info": Spec("gauge", ("version", "simd_kernel", "python"),
                                   "Always 1; the labels describe the build."),
    "feedhandler_frames_total": Spec("counter", ("shard",),
                                     "Data frames received, per connection."),
    "feedhandler_records_total": Spec("counter", ("kind",),
                                      "Records decoded and handed over in batches, by kind."),
    "feedhandler_rejected_frames_total": Spec(
        "counter", ("reason",), "Frames rejected by the decoders (dead-lettered), by reason."),
    "feedhandler_gaps_total": Spec("counter", (),
                                   "Sequence gaps detected (missing or backwards update ids)."),
    "feedhandler_reconnects_total": Spec("counter", (), "Exchange connections lost."),
    "feedhandler_connection_up": Spec("gauge", ("shard",),
                                      "1 while the connection is open, per connection."),
    "feedhandler_connection_epoch": Spec(
        "gauge", ("shard",),
        "The epoch of the connection's latest attempt (the Kafka header fh.epoch): it grows with "
        "every connection attempt of the instance, and names one connection."),
    "feedhandler_last_frame_age_seconds": Spec(
        "gauge", ("shard",),
        "Seconds since the last data frame, per connection (absent before the first)."),
    "feedhandler_connection_max_silence_seconds": Spec(
        "gauge", ("shard",),
        "Longest silence the connection's streams allow (connection.max_silence_s, or their "
        "default: 30 s for streams pushed on a timer, 600 s for event-driven ones); past it "
        "the connection is replaced."),
    "feedhandler_connection_quarantined": Spec(
        "gauge", ("shard",),
        "1 once the exchange refused the connection for good (401/403/400); with "
        "connection.redundancy 2, either leg (the shard serves on without redundancy)."),
    "feedhandler_connection_replaced_total": Spec(
        "counter", ("shard", "cause"),
        "Stale connections replaced, by cause (ping_timeout, silent)."),
    "feedhandler_rollovers_total": Spec(
        "counter", ("shard", "cause"),
        "Connections replaced make-before-break, by cause (lifetime, server_shutdown, silent)."),
    "feedhandler_duplicates_dropped_total": Spec(
        "counter", ("shard",),
        "Records both connections of a rollover (or both A/B legs) delivered, published once."),
    "feedhandler_rejected_copies_total": Spec(
        "counter", ("shard",),
        "Rejected frames both connections of a rollover (or both A/B legs) delivered byte for "
        "byte: rejected, dead-lettered and logged once."),
    "feedhandler_leg_up": Spec(
        "gauge", ("shard", "leg"),
        "A/B redundancy (connection.redundancy 2): 1 while the leg (0, 1) is connected."),
    "feedhandler_leg_won_total": Spec(
        "counter", ("shard", "leg"),
        "A/B redundancy: records the leg delivered first (published from it)."),
    "feedhandler_leg_lead_seconds": Spec(
        "histogram", ("leg",),
        "A/B redundancy: how much earlier the winning leg delivered a record than the other "
        "leg its copy (the last emitted id, or the same content; all shards)."),
    "feedhandler_protocol_violations_total": Spec(
        "counter", ("shard",), "Connections closed with 1002 for a protocol violation."),
    "feedhandler_connection_attempts_total": Spec(
        "counter", (), "Connection attempts through the process-wide attempt limiter."),
    "feedhandler_connection_blocked_seconds": Spec(
        "gauge", (), "Seconds left before any connection attempt may go, after the exchange "
        "answered 429/418 (0 when none)."),
    "feedhandler_paused": Spec("gauge", (),
                               "1 while exchange reads are paused by sink backpressure."),
    "feedhandler_service_loop_age_seconds": Spec(
        "gauge", (), "Seconds since the service loop last ran (it runs every 2 ms)."),
    "feedhandler_sink_backlog_bytes": Spec(
        "gauge", (), "Bytes accepted by the sink and not yet handed to Kafka (values plus ~1 KB a "
        "message for its key and headers)."),
    "feedhandler_precision_violations_total": Spec(
        "counter", ("kind", "symbol"),
        "Prices off the symbol's tick size or quantities off its step size (exchangeInfo), "
        "published as sent; only with a universe."),
    "feedhandler_universe_symbols": Spec(
        "gauge", (), "Symbols the universe follows (TRADING and selected); only with a universe."),
    "feedhandler_universe_held_symbols": Spec(
        "gauge", (), "Symbols exchangeInfo no longer lists as TRADING, still followed: a "
        "delisting of more than universe.max_delist of them at once is held (an exchange-wide "
        "BREAK); only with a universe."),
    "feedhandler_universe_refresh_failures_total": Spec(
        "counter", (), "exchangeInfo reads that failed or could not be applied in full (the "
        "plan stays as it was, or a listing is not followed); only with a universe."),
    "feedhandler_universe_refresh_age_seconds": Spec(
        "gauge", (), "Seconds since exchangeInfo was last read and applied: listings and "
        "delistings are followed no later than this; only with a universe that refreshes "
        "(universe.refresh_s > 0), once read."),
    "feedhandler_universe_refresh_interval_seconds": Spec(
        "gauge", (), "universe.refresh_s: how often exchangeInfo is read (0: once, at start); "
        "only with a universe."),
    "feedhandler_latency_seconds": Spec(
        "histogram", ("stage", "kind"),
        "Latency by stage: event_to_receive (exchange event time to our receive time, per "
        "record; below 0, when our clock is behind, counted as 0), receive_to_produce "
        "(receive to the batch's hand-over to the sink, per record), produce_to_ack "
        "(produce() until the delivery report is served, per Kafka message; "
        "kafka.ack_latency)."),
    # requests to the exchange (WS API, REST snapshots; absent when none are made)
    "feedhandler_request_weight_used": Spec(
        "gauge", (), "REQUEST_WEIGHT the handler holds (in flight, or answered within the "
        "last window), shared by the WS API and REST snapshots."),
    "feedhandler_request_weight_limit": Spec(
        "gauge", (), "The weight budget: wsapi.weight_limit, or the exchange's lower live limit."),
    "feedhandler_wsapi_connected": Spec("gauge", (), "1 while the WS API connection serves."),
    "feedhandler_wsapi_requests_total": Spec(
        "counter", ("outcome",), "WS API requests sent (sent), and among them: timed out "
        "(timeout), answered 429/418 (rate_limited), sent again (retry), answered late."),
    "feedhandler_wsapi_connects_total": Spec("counter", (), "WS API connections opened."),
    "feedhandler_book_snapshots_total": Spec(
        "counter", ("result",), "Depth snapshots: published, failed (fetch or answer; retried), "
        "stale (older than the diffs: fetched again); with book.snapshots."),
    "feedhandler_book_resyncs_total": Spec(
        "counter", (), "book_resync events: intervals in which a symbol's book is not valid."),
    # the handler's own books (book.publish; absent without it)
    "feedhandler_books_valid": Spec("gauge", (), "Streamed symbols whose in-handler book is "
                                    "valid (not while their stream is lost)."),
    "feedhandler_book_records_total": Spec("counter", (), "`book` records published."),
    "feedhandler_book_crossed_total": Spec(
        "counter", (), "Depth events after which an in-handler book was crossed or locked."),
    "feedhandler_book_tickers_total": Spec(
        "counter", ("result",),
        "bookTickers checked against the in-handler book at their update id: agreed, "
        "mismatch, or uncovered (no book state at that id: not compared)."),
    "feedhandler_book_apply_seconds_total": Spec(
        "counter", (), "Time spent updating the in-handler books and checking bookTickers."),
}

# sink.summary() key -> metric (after feedhandler_sink_). Keys of KafkaSink and NullSink;
# other numbers a sink reports are exported untyped under their own name.
SINK_METRICS: dict[str, tuple[str, Spec]] = {
    "produced": ("messages_produced_total",
                 Spec("counter", (), "Messages handed to librdkafka.")),
    # produced - failed - in flight: not monotonic (a message refused up front is failed
    # without being produced), so a gauge
    "delivered": ("messages_delivered", Spec("gauge", (), "Messages acknowledged by the broker.")),
    "failed": ("messages_failed_total",
               Spec("counter", (), "Messages rejected for good, or purged unsent at shutdown.")),
    "in_flight": ("messages_in_flight",
                  Spec("gauge", (), "Messages librdkafka holds, not yet acknowledged.")),
    "undelivered": ("messages_undelivered", Spec(
        "gauge", (), "Messages not yet acknowledged: in librdkafka plus in the sink's backlog.")),
    "records_produced": ("records_produced_total",
                         Spec("counter", (), "Records handed to librdkafka.")),
    # produced - failed: includes records in flight, and drops when a failure is reported
    "records_delivered": ("records_delivered", Spec(
        "gauge", (), "Records produced and not failed (includes those in flight).")),
    "records_failed": ("records_failed_total",
                       Spec("counter", (), "Records in failed messages.")),
    "records_unsent": ("records_unsent",
                       Spec("gauge", (), "Records waiting in the sink's backlog.")),
    "records_held": ("records_held", Spec(
        "gauge", (), "Records held for fewer, bigger messages (kafka.hold_ms), not yet produced.")),
    "buffer_full": ("buffer_full_total", Spec(
        "counter", (), "Times librdkafka's queue was full (messages went to the backlog).")),
    "backlog_peak_bytes": ("backlog_peak_bytes",
                           Spec("gauge", (), "Largest backlog so far, in bytes.")),
    # the null sink's (the Kafka sink's are above; feedhandler_records_total and
    # feedhandler_rejected_frames_total count the same for any sink)
    "records": ("records_total", Spec("counter", (), "Null sink: records accepted.")),
    "batches": ("batches_total", Spec("counter", (), "Null sink: batches accepted.")),
    "dead_letters": ("dead_letters_total",
                     Spec("counter", (), "Null sink: rejected frames accepted.")),
    "control_events": ("control_events_total",
                       Spec("counter", (), "Null sink: control events accepted.")),
    "errors": ("errors_total",
               Spec("counter", ("error",), "Messages lost, by librdkafka error name.")),
    "latency_us": ("latency_seconds", Spec(
        "gauge", ("stage", "quantile"),
        "librdkafka latency percentiles, worst broker, last statistics window: queue (in "
        "librdkafka), send (socket buffer), ack (produce request round trip).")),
    "wakeups_per_request": ("broker_wakeups_per_request", Spec(
        "gauge", (), "librdkafka's broker threads: poll-loop wake-ups per request sent, worst "
        "broker that sent any, last statistics window: 3-4 while it sleeps between requests, "
        "tens to thousands while it spins waiting for an acknowledgement (logged).")),
}


def _family(name: str, samples: Iterable[tuple[tuple[str, ...], float]],
            spec: Spec | None = None) -> Metric:
    spec = spec or METRICS[name]
    family: Metric
    if spec.type == "counter":
        family = CounterMetricFamily(name, spec.help, labels=spec.labels)
    elif spec.type == "gauge":
        family = GaugeMetricFamily(name, spec.help, labels=spec.labels)
    else:
        family = UnknownMetricFamily(name, spec.help, labels=spec.labels)
    for labels, value in samples:
        family.add_metric(list(labels), float(value))
    return family


class HandlerCollector:
    """Evaluated at every scrape (prometheus_client's custom collector protocol)."""

    def __init__(self, handler: Handler) -> None:
        self._handler = weakref.ref(handler)

    def collect(self) -> Iterator[Metric]:
        handler = self._handler()
        if handler is None:
            return
        stats, snapshot = handler.stats, handler.status()  # one snapshot per scrape
        status = snapshot.supervisor
        connections = status.connections  # the supervisor's snapshot, never the connections
        now_ns = time.time_ns()  # frames are stamped with the wall clock
        yield _family("feedhandler_build_info",
                      [((__version__, SIMD_KERNEL, platform.python_version()), 1)])
        yield _family("feedhandler_frames_total",
                      (((str(c.shard),), c.frames) for c in connections))
        # every known label value from the start, so that rate() sees the first increase
        yield _family("feedhandler_records_total",
                      (((k,), stats.records[k]) for k in dict.fromkeys([*KIND_NAMES,
                                                                        *stats.records])))
        yield _family("feedhandler_rejected_frames_total",
                      (((r,), stats.errors[r]) for r in dict.fromkeys([*ERROR_NAMES,
                                                                       *stats.errors])))
        yield _family("feedhandler_gaps_total", [((), stats.gaps)])
        yield _family("feedhandler_reconnects_total", [((), stats.reconnects)])
        yield _family("feedhandler_connection_up",
                      (((str(c.shard),), c.state == "open") for c in connections))
        yield _family("feedhandler_connection_epoch",
                      (((str(c.shard),), c.epoch) for c in connections))
        yield _family("feedhandler_last_frame_age_seconds",
                      (((str(c.shard),), max(0, now_ns - c.last_frame_ns) / 1e9)
                       for c in connections if c.last_frame_ns))
        yield _family("feedhandler_connection_max_silence_seconds",
                      (((str(c.shard),), c.max_silence_s) for c in connections))
        yield _family("feedhandler_connection_quarantined",
                      (((str(c.shard),), bool(c.quarantined)) for c in connections))
        yield _family("feedhandler_connection_replaced_total",
                      (((str(c.shard), cause), c.replaced.get(cause, 0))
                       for c in connections for cause in ("ping_timeout", "silent")))
        yield _family("feedhandler_rollovers_total",
                      (((str(c.shard), cause), c.rollovers.get(cause, 0))
                       for c in connections for cause in ROLLOVER_CAUSES))
        yield _family("feedhandler_duplicates_dropped_total",
                      (((str(c.shard),), c.duplicates) for c in connections))
        yield _family("feedhandler_rejected_copies_total",
                      (((str(c.shard),), c.rejected_copies) for c in connections))
        legs = [(c.shard, leg) for c in connections for leg in c.legs]
        yield _family("feedhandler_leg_up", (((str(shard), str(leg.leg)), leg.state == "open")
                                             for shard, leg in legs))
        yield _family("feedhandler_leg_won_total", (((str(shard), str(leg.leg)), leg.won)
                                                    for shard, leg in legs))
        yield self._lead([leg for _, leg in legs])
        yield _family("feedhandler_protocol_violations_total",
                      (((str(c.shard),), c.violations) for c in connections))
        yield _family("feedhandler_connection_attempts_total", [((), status.attempts)])
        yield _family("feedhandler_connection_blocked_seconds", [((), status.blocked_for_s)])
        yield _family("feedhandler_paused", [((), snapshot.paused)])
        yield _family("feedhandler_service_loop_age_seconds",
                      [((), time.monotonic() - handler.heartbeat)])
        yield _family("feedhandler_sink_backlog_bytes", [((), snapshot.backlog_bytes)])
        yield _family("feedhandler_precision_violations_total",
                      (((kind, symbol), n) for (kind, symbol), n in
                       sorted(snapshot.precision.items())))
        if handler.universe is not None:  # (its fields: UniverseTracker.status)
            yield _family("feedhandler_universe_refresh_failures_total",
                          [((), snapshot.universe_failures)])
            yield _family("feedhandler_universe_held_symbols", [((), snapshot.universe_held)])
            yield _family("feedhandler_universe_refresh_interval_seconds",
                          [((), snapshot.universe_refresh_s)])
        if snapshot.universe_symbols is not None:
            yield _family("feedhandler_universe_symbols", [((), snapshot.universe_symbols)])
        if snapshot.universe_age_s is not None:
            yield _family("feedhandler_universe_refresh_age_seconds",
                          [((), snapshot.universe_age_s)])
        yield self._latency(handler)
        yield from _sink_families(snapshot.sink)
        yield from _request_families(snapshot.requests, snapshot.snapshots)
        yield from _book_families(snapshot.books)

    @staticmethod
    def _lead(legs: list[LegStatus]) -> Metric:
        spec = METRICS["feedhandler_leg_lead_seconds"]
        family = HistogramMetricFamily("feedhandler_leg_lead_seconds", spec.help,
                                       labels=spec.labels)
        for index in (0, 1):
            mine = [leg for leg in legs if leg.leg == index]
            if not mine:
                continue
            counts = [sum(column) for column in zip(*(leg.lead_buckets for leg in mine),
                                                     strict=True)]
            bounds = [f"{bound / 1e9:g}" for bound in LEAD_BOUNDS_NS] + ["+Inf"]
            cumulative = [sum(counts[: i + 1]) for i in range(len(counts))]
            family.add_metric([str(index)], list(zip(bounds, cumulative, strict=True)),
                              sum(leg.lead_sum_s for leg in mine))
        return family

    @staticmethod
    def _latency(handler: Handler) -> Metric:
        spec = METRICS["feedhandler_latency_seconds"]
        family = HistogramMetricFamily("feedhandler_latency_seconds", spec.help,
                                       labels=spec.labels)
        for (stage, kind), histogram in sorted(handler.latency.histograms.items()):
            family.add_metric([stage, kind], histogram.cumulative(), histogram.sum_ns / 1e9)
        return family


def _request_families(requests: dict[str, int],
                      snapshots: dict[str, int]) -> Iterator[Metric]:
    if requests:
        yield _family("feedhandler_request_weight_used", [((), requests["weight_used"])])
        yield _family("feedhandler_request_weight_limit", [((), requests["weight_limit"])])
    if "connected" in requests:
        yield _family("feedhandler_wsapi_connected", [((), requests["connected"])])
        yield _family("feedhandler_wsapi_requests_total", [
            ((outcome,), requests[key]) for outcome, key in (
                ("sent", "requests"), ("timeout", "timeouts"),
                ("rate_limited", "rate_limited"), ("retry", "retries"), ("late", "late"))])
        yield _family("feedhandler_wsapi_connects_total", [((), requests["connects"])])
    if snapshots:
        yield _family("feedhandler_book_snapshots_total", [
            (("published",), snapshots["snapshots"]), (("failed",), snapshots["failures"]),
            (("stale",), snapshots["stale"])])
        yield _family("feedhandler_book_resyncs_total", [((), snapshots["resyncs"])])


def _book_families(books: dict[str, int]) -> Iterator[Metric]:
    if not books:
        return
    yield _family("feedhandler_books_valid", [((), books["valid"])])
    yield _family("feedhandler_book_records_total", [((), books["records"])])
    yield _family("feedhandler_book_crossed_total", [((), books["crossed"])])
    mismatches = books["ticker_mismatches"]
    yield _family("feedhandler_book_tickers_total", [
        (("agreed",), books["tickers_compared"] - mismatches), (("mismatch",), mismatches),
        (("uncovered",), books["tickers_uncovered"])])
    yield _family("feedhandler_book_apply_seconds_total", [((), books["apply_ns"] / 1e9)])


def _sink_families(summary: dict[str, Any]) -> Iterator[Metric]:
    for key, value in summary.items():
        if key in SINK_METRICS:
            suffix, spec = SINK_METRICS[key]
            name = f"feedhandler_sink_{suffix}"
            if key == "errors":
                yield _family(name, (((str(e),), n) for e, n in value.items()), spec)
            elif key == "latency_us":
                yield _family(name, (((stage, QUANTILES.get(q, q)), us / 1e6)
                                     for stage, quantiles in value.items()
                                     for q, us in quantiles.items()), spec)
            else:
                yield _family(name, [((), value)], spec)
        elif isinstance(value, int | float):
            name = "feedhandler_sink_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)
            yield _family(name, [((), value)], Spec("untyped", (), f"sink.summary()[{key!r}]"))


_registries: weakref.WeakKeyDictionary[Handler, CollectorRegistry] = weakref.WeakKeyDictionary()


def registry(handler: Handler) -> CollectorRegistry:
    """The handler's registry: its collector plus process, platform and GC metrics."""
    found = _registries.get(handler)
    if found is None:
        found = _registries[handler] = CollectorRegistry()
        found.register(HandlerCollector(handler))
        ProcessCollector(registry=found)
        PlatformCollector(registry=found)
        GCCollector(registry=found)
    return found


def exposition(handler: Handler) -> str:
    """The Prometheus text format of everything above, evaluated now."""
    return generate_latest(registry(handler)).decode()


# --- the README's metric list -------------------------------------------------------------
def _names(name: str, spec: Spec) -> str:
    labels = f"{{{','.join(spec.labels)}}}" if spec.labels else ""
    if spec.type == "histogram":
        return f"`{name}_bucket{labels[:-1] + ',le}' if labels else '{le}'}`, `_sum`, `_count`"
    return f"`{name}{labels}`"


def metric_list() -> str:
    rows = [f"| {_names(name, spec)} | {spec.type} | {spec.help} |"
            for name, spec in METRICS.items()]
    rows += [f"| {_names('feedhandler_sink_' + suffix, spec)} | {spec.type} | {spec.help} |"
             for suffix, spec in SINK_METRICS.values()]
    return "\n".join(["| metric | type | meaning |", "|---|---|---|", *rows,
                      "| `process_*`, `python_*` | | prometheus_client's process (CPU, memory, "
                      "file descriptors, start time), platform and GC collectors |"]) + "\n"


if __name__ == "__main__":
    rewrite("feedhandler.app.metrics", metric_list())
