"""PNG plots of a `feedhandler bench latency` result: latency CDF per stage, and throughput and
p99 against the offered rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np

from feedhandler.bench.latency import STAGES, run_name

NINES = (0.0, 90.0, 99.0, 99.9, 99.99)


def _nines(percentiles: np.ndarray) -> np.ndarray:
    """Percentile -> -log10(1 - p): 90 % at 1, 99 % at 2, ... (the tail gets the room)."""
    return -np.log10(np.maximum(1.0 - percentiles / 100.0, 1e-5))


def cdf_plot(result: dict[str, Any], path: Path) -> None:
    """One panel per offered rate: each stage of the latency profile, and the floor's end to
    end, as latency against percentile."""
    rates = [r for r in dict.fromkeys(run["offered"] for run in result["runs"])]
    fig, axes = plt.subplots(1, len(rates), figsize=(5 * len(rates), 4.2), squeeze=False)
    for ax, rate in zip(axes[0], rates, strict=True):
        for run in (r for r in result["runs"] if r["offered"] == rate):
            label = run_name(run)
            if run["sink"] == "null" or (run["sink"] == "kafka" and run["profile"] != "latency"):
                stages = {"receive_to_produce"} if run["sink"] == "null" else {"end_to_end"}
            else:
                stages = set(STAGES) if run["sink"] == "kafka" else {"end_to_end"}
            for stage in STAGES:
                summary = run["stages"].get(stage, {})
                if stage not in stages or not summary.get("count"):
                    continue
                points = np.array(summary["cdf"])
                style = "--" if run["sink"] != "kafka" else "-"
                ax.plot(np.maximum(points[:, 1], 0.1), _nines(points[:, 0]), style,
                        label=f"{label}: {stage.replace('_', ' ')}")
        ax.set_xscale("log")
        ax.set_yticks(_nines(np.array(NINES)), [f"{p:g}" for p in NINES])
        ax.set_xlabel("latency (µs)")
        ax.set_ylabel("percentile")
        ax.set_title(f"offered {rate:,} events/s" if isinstance(rate, int) else "saturation")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def rate_plot(result: dict[str, Any], path: Path) -> None:
    """Throughput and p99 (end to end; receive -> produce for the null sink) against the
    offered rate; saturation, when run, drawn as the rightmost point."""
    runs = [r for r in result["runs"] if r["sink"] != "floor" or r["stages"]]
    rates = sorted({r["offered"] for r in runs if isinstance(r["offered"], int)})
    order = [*rates, *(["saturation"] * any(r["offered"] == "saturation" for r in runs))]
    xs = {rate: i for i, rate in enumerate(order)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label in dict.fromkeys(run_name(r) for r in runs):
        mine = [r for r in runs if run_name(r) == label and r["offered"] in xs]
        through = [(xs[r["offered"]], r["throughput_fps"]) for r in mine
                   if r.get("throughput_fps")]
        if through:
            left.plot(*zip(*through, strict=True), "o-", label=label)
        stage = "receive_to_produce" if label == "null" else "end_to_end"
        p99 = [(xs[r["offered"]], r["stages"][stage]["p99_us"]) for r in mine
               if r["stages"].get(stage, {}).get("count")]
        if p99:
            right.plot(*zip(*p99, strict=True), "o-",
                       label=f"{label} ({stage.replace('_', ' ')})")
    for ax in (left, right):
        ax.set_xticks(range(len(order)), [f"{r:,}" if isinstance(r, int) else r for r in order])
        ax.set_xlabel("offered events/s")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # (a run with no data draws nothing)
            ax.legend(fontsize=7)
    left.set_ylabel("events/s handled")
    right.set_ylabel("p99 (µs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
