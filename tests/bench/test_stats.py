"""Stage summaries: HdrHistogram percentiles of nanosecond samples, reported in µs."""

from __future__ import annotations

import numpy as np

from feedhandler.bench.stats import summarize


def test_percentiles_of_a_known_distribution() -> None:
    samples = np.arange(1, 10_001) * 1_000  # 1 µs .. 10 ms, uniform
    summary = summarize(samples)
    assert summary["count"] == 10_000
    for key, expected in (("p50_us", 5_000), ("p90_us", 9_000), ("p99_us", 9_900),
                          ("p99_9_us", 9_990), ("max_us", 10_000)):
        assert abs(summary[key] - expected) <= expected * 0.001  # 3 significant digits
    assert summary["mean_us"] == 5_000.5
    assert summary["negative"] == 0
    cdf = np.array(summary["cdf"])
    assert cdf[0, 0] == 0.0 and cdf[-1, 0] == 100.0
    assert (np.diff(cdf[:, 1]) >= 0).all()


def test_negative_samples_are_counted_and_recorded_as_zero() -> None:
    summary = summarize(np.array([-5_000, -1, 2_000, 4_000]), cdf=False)
    assert (summary["negative"], summary["p50_us"], summary["max_us"]) == (2, 0.0, 4.0)
    assert summary["mean_us"] == 1.5  # (0 + 0 + 2 + 4) / 4: the mean of what was recorded
    assert "cdf" not in summary
    assert summarize(np.array([], np.int64)) == {"count": 0}
