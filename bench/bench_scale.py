"""Memory and CPU against stream count: the handler (null sink) on N streams of the paced
simulator, each run its own process; per run its peak RSS, CPU time, frames, errors and gaps.

Streams are per-symbol book and trade kinds (depth@100ms, depth20@100ms, bookTicker, trade)
over N / 4 symbols: also the scale check that no real-size value overflows (issue 8).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_scale.py \
        [--streams 1,1000,3000,5000] [--duration 20] [--rate 2000]

Soak (RSS flat over time): one stream count, a long run, RSS sampled while it runs:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_scale.py \
        --streams 150 --kinds trade,aggTrade,bookTicker --duration 600 --rate 110000 \
        --sample-s 30 --time-unit us
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

from feedhandler.argtypes import counts, number
from feedhandler.simulator.market import Universe
from feedhandler.simulator.testing import SimulatorProcess

KINDS = ("depth@100ms", "depth20@100ms", "bookTicker", "trade")
SEED = 20261204


def streams_for(count: int, kinds: Sequence[str] = KINDS) -> tuple[int, list[str]]:
    symbols = max(1, -(-count // len(kinds)))
    universe = Universe.generate(SEED, max(symbols, 2))
    names = [f"{s.symbol.lower()}@{k}" for s in universe.symbols for k in kinds]
    return symbols, names[:count]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def run(count: int, duration: float, rate: int, sample_s: float = 0.0,
        kinds: Sequence[str] = KINDS, time_unit: str = "ms") -> dict[str, object]:
    symbols, streams = streams_for(count, kinds)
    with SimulatorProcess(["--seed", str(SEED), "--symbols", str(max(symbols, 2)),
                           "--rate", str(rate)]) as sim, tempfile.TemporaryFile() as out:
        handler = subprocess.Popen(
            [sys.executable, "-m", "feedhandler", "run", "--url", sim.url,
             "--streams", ",".join(streams), "--sink", "null", "--duration", str(duration),
             "--summary-json", "--live", "off", "--stats-interval", "0",
             "--log-level", "WARNING", "--time-unit", time_unit],
            stdout=out, stderr=subprocess.DEVNULL)
        samples: list[tuple[float, float]] = []  # (seconds since start, RSS MiB)
        started = time.monotonic()
        while True:  # this process's own rusage, once it exited
            pid, status, usage = os.wait4(handler.pid, os.WNOHANG if sample_s else 0)
            if pid:
                break
            time.sleep(sample_s)
            with contextlib.suppress(FileNotFoundError, StopIteration):  # (just exited)
                samples.append((round(time.monotonic() - started),
                                round(rss_mib(handler.pid), 1)))
        handler.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = out.read().decode().strip().splitlines()
    if handler.returncode != 0 or not lines:
        sys.exit(f"{count} streams: the handler exited {handler.returncode}")
    summary = json.loads(lines[-1])
    cpu_s = usage.ru_utime + usage.ru_stime
    return {"streams": len(streams), "symbols": symbols, "frames": summary["frames"],
            "errors": sum(summary["errors"].values()), "gaps": summary["gaps"],
            "reconnects": summary["reconnects"], "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "cpu_s": round(cpu_s, 2),
            "cpu_us_per_frame": round(cpu_s / max(summary["frames"], 1) * 1e6, 1),
            **({"rss_mib_over_time": samples} if sample_s else {})}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--streams", type=counts, default="1,1000,3000,5000")
    p.add_argument("--duration", type=number(), default=20.0)
    p.add_argument("--rate", type=number(int), default=2000, help="simulator events/s, market-wide")
    p.add_argument("--sample-s", type=number(zero=True), default=0.0,
                   help="sample the handler's RSS this often while it runs (soak)")
    p.add_argument("--kinds", default=",".join(KINDS), help="stream kinds per symbol")
    p.add_argument("--time-unit", choices=("ms", "us"), default="ms",
                   help="the handler's timeUnit; us spares the simulator cutting µs to ms "
                        "(a regex per event: ~1/5 of its time at 100k/s)")
    args = p.parse_args()
    rows = [run(n, args.duration, args.rate, args.sample_s, args.kinds.split(","),
                args.time_unit)
            for n in args.streams]
    print("| streams | symbols | frames | errors | gaps | reconnects | peak RSS MiB | CPU s "
          "| CPU µs/frame |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        series = r.pop("rss_mib_over_time", None)
        print("| " + " | ".join(str(v) for v in r.values()) + " |")
        if series:
            print("RSS MiB over time (s, MiB):", json.dumps(series))


if __name__ == "__main__":
    main()
