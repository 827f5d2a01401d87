"""Latency distributions: HdrHistogram percentiles and CDF points of one stage's samples."""

from __future__ import annotations

from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}
UNIT_NS = 100  # samples are recorded in 0.1 µs units: finer than any stage, 3 digits kept
HIGHEST_UNITS = 600 * 10**9 // UNIT_NS  # 10 minutes
# CDF points for the plots: 0 .. 99.99 %, dense in the tail
CDF_PERCENTILES = (*np.linspace(0.0, 90.0, 31).tolist(), 92.0, 94.0, 95.0, 96.0, 97.0, 98.0,
                   99.0, 99.5, 99.8, 99.9, 99.95, 99.99, 100.0)


def histogram(samples_ns: np.ndarray) -> HdrHistogram:
    """An HdrHistogram (0.1 µs units, 3 significant digits) of the samples; values below
    0 count as 0 (see `summarize`), above 10 minutes as 10 minutes."""
    hist = HdrHistogram(1, HIGHEST_UNITS, 3)
    units = np.clip(np.asarray(samples_ns, np.int64) // UNIT_NS, 0, HIGHEST_UNITS)
    values, counts = np.unique(units, return_counts=True)  # one call per distinct value
    for value, count in zip(values.tolist(), counts.tolist(), strict=True):
        hist.record_value(value, count)
    return hist


def summarize(samples_ns: np.ndarray, cdf: bool = True) -> dict[str, Any]:
    """count, p50/p90/p99/p99_9/max/mean in µs, `negative` (samples below 0: clock offset or a
    reordering between two stamps, recorded as 0, in the mean too; above 10 minutes: as 10
    minutes) and, for the plots, `cdf` [[percentile, µs]]."""
    samples = np.asarray(samples_ns, np.int64)
    if not len(samples):
        return {"count": 0}
    hist = histogram(samples)
    us = UNIT_NS / 1000
    result: dict[str, Any] = {"count": len(samples)}
    for name, pct in PERCENTILES.items():
        result[f"{name}_us"] = round(hist.get_value_at_percentile(pct) * us, 1)
    result["max_us"] = round(hist.get_max_value() * us, 1)  # (HdrHistogram's, as the rest)
    recorded = np.clip(samples, 0, HIGHEST_UNITS * UNIT_NS)  # (as the histogram has them)
    result["mean_us"] = round(float(recorded.mean()) / 1000, 1)
    result["negative"] = int((samples < 0).sum())
    if cdf:
        result["cdf"] = [[pct, round(hist.get_value_at_percentile(pct) * us, 1)]
                         for pct in CDF_PERCENTILES]
    return result
