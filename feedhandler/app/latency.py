"""Latency histograms, filled per batch with vectorised numpy (never per record in Python):

- event -> receive: the exchange's event time (`E`) to our receive time, per record of the
  kinds that carry one (network + exchange-side delay; includes the two clocks' offset);
- receive -> produce: our receive time to the batch's hand-over to the sink (decode + linger);
- produce -> ack: per Kafka message, librdkafka's time from produce() until its delivery
  report is served (queue, send, the produce request's round trip, and the wait for the
  service loop's next poll, every 2 ms); `kafka.ack_latency`.

Buckets are Prometheus `le` bounds in seconds; counts are kept per bucket (not cumulative) and
summed at scrape time. Counting is done in C (`_ext.buckets`): it runs between one kind's
hand-over and the next.
"""

from __future__ import annotations

import time

import numpy as np

from feedhandler._ext.buckets import observe

# 100 µs .. 10 s: a colocated handler sees single milliseconds, a distant one tens to hundreds
BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
             1.0, 2.5, 5.0, 10.0)


class Histogram:
    def __init__(self, bounds_s: tuple[float, ...] = BUCKETS_S) -> None:
        self.bounds_s = bounds_s
        self._bounds_ns = np.array([round(b * 1e9) for b in bounds_s], np.int64)
        self.counts = np.zeros(len(bounds_s) + 1, np.int64)  # the last: above every bound
        self.sum_ns = 0

    def observe(self, values_ns: np.ndarray, now_ns: int | None = None) -> None:
        """Counts values (with `now_ns`: the time from each value to it), in ns."""
        self.sum_ns += observe(self.counts, self._bounds_ns, values_ns, now_ns)

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, cumulative count) including +Inf, as a Prometheus histogram exposes them."""
        totals = np.cumsum(self.counts)
        return [*((repr(b), float(n)) for b, n in zip(self.bounds_s, totals[:-1], strict=True)),
                ("+Inf", float(totals[-1]))]


class LatencyHistograms:
    """(stage, kind) -> Histogram, created on first use."""

    def __init__(self) -> None:
        self.histograms: dict[tuple[str, str], Histogram] = {}

    def _get(self, stage: str, kind: str) -> Histogram:
        histogram = self.histograms.get((stage, kind))
        if histogram is None:
            histogram = self.histograms[(stage, kind)] = Histogram()
        return histogram

    def observe_batch(self, kind: str, records: np.ndarray, now_ns: int | None = None) -> None:
        """A batch handed to the sink at `now_ns` (default: now)."""
        if not len(records):
            return
        received = records["ts_recv"]
        now = time.time_ns() if now_ns is None else now_ns  # ts_recv is CLOCK_REALTIME
        self._get("receive_to_produce", kind).observe(received, now)
        if "ts_event" in (records.dtype.names or ()):
            # (our clock behind the exchange's makes some negative: they count as 0)
            self._get("event_to_receive", kind).observe(received - records["ts_event"])

    def observe_acks(self, kind: str, latencies_s: np.ndarray) -> None:
        """Kafka messages of `kind` acknowledged `latencies_s` after their produce()."""
        self._get("produce_to_ack", kind).observe(np.rint(latencies_s * 1e9).astype(np.int64))
