"""Histogram buckets counted in C (the handler's per-batch latency histograms)."""

import numpy as np

def observe(
    counts: np.ndarray, bounds: np.ndarray, values: np.ndarray, now: int | None = None
) -> int: ...
