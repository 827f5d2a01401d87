"""Frame generation rate of the simulator's market model (`Feed.next_frames`).

    .venv/bin/python bench/bench_simulator_generate.py [--frames N] [--seed S]

Prints frames/s and MB/s for a bookTicker-only subscription over 20 symbols, a mixed
subscription, and an all-market `!miniTicker@arr` over the default 3000-symbol universe.
Rates are per second of this process's CPU time (generation is single-threaded), so a busy
machine does not distort them; best of three runs.
"""

from __future__ import annotations

import argparse
import time

from feedhandler.argtypes import number
from feedhandler.simulator.market import Feed, Universe

_MIXED_SUFFIXES = ("trade", "aggTrade", "bookTicker", "depth@100ms", "depth20@100ms", "kline_1m")


def _rate(universe: Universe, seed: int, streams: list[str], frames: int) -> tuple[float, float]:
    feed = Feed(seed, universe)
    feed.subscribe(streams)
    feed.next_frames(1000)  # warm up: engines created, caches filled
    produced = size = 0
    elapsed = 0.0
    while produced < frames:
        started = time.process_time()
        batch = feed.next_frames(4096)
        elapsed += time.process_time() - started
        produced += len(batch)
        size += sum(len(payload) for _, payload in batch)
    return produced / elapsed, size / elapsed / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=number(int), default=500_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    universe = Universe.generate(args.seed)
    symbols = [spec.symbol.lower() for spec in universe.symbols[:20]]
    cases = {
        "bookTicker x20 symbols": [f"{s}@bookTicker" for s in symbols],
        "mixed x20 symbols (trade, aggTrade, bookTicker, depth@100ms, depth20@100ms, kline_1m)": [
            f"{s}@{suffix}" for s in symbols for suffix in _MIXED_SUFFIXES
        ],
        "!miniTicker@arr + btcusdt@bookTicker, 3000 symbols": [
            "!miniTicker@arr",
            "btcusdt@bookTicker",
        ],
    }
    for label, streams in cases.items():
        frames_per_s, mb_per_s = max(
            _rate(universe, args.seed, streams, args.frames) for _ in range(3)
        )
        print(f"{label}: {frames_per_s:,.0f} frames/s, {mb_per_s:.1f} MB/s")


if __name__ == "__main__":
    main()
