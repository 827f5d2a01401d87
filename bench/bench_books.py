"""Book rebuild benchmark: ns per depth record applied by the C++ books (`BookBuilder`), and
the per-snapshot cost of turning a 5000-level WS API answer into snapshot rows (Python).

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_books.py

Depth records come from the simulator's market model (`Feed`, 20 symbols' `@depth@100ms`,
decoded by `feedhandler.parse`), preceded by one snapshot per symbol so every book is valid;
the best of 5 rounds is printed. Ratios within one run are what to compare; absolute times
depend on the machine and its load.
"""

from __future__ import annotations

import time

import numpy as np

from feedhandler.book import BookBuilder, snapshot_records
from feedhandler.parsing import parse
from feedhandler.simulator.market import Feed, Universe

SEED, SYMBOLS, FRAMES = 7, 20, 20_000


def main() -> None:
    universe = Universe.generate(SEED, SYMBOLS)
    feed = Feed(SEED, universe)
    feed.subscribe([f"{s.symbol.lower()}@depth@100ms" for s in universe])
    start = feed.book_snapshot  # books before the first frame: the snapshots to start from
    snapshots = []
    for spec in universe:
        last, bids, asks = start(spec.symbol, 5000)
        text = {"lastUpdateId": last,
                "bids": [[f"{p / 1e8:.8f}", f"{q / 1e8:.8f}"] for p, q in bids],
                "asks": [[f"{p / 1e8:.8f}", f"{q / 1e8:.8f}"] for p, q in asks]}
        snapshots.append(snapshot_records(spec.symbol, text))
    frames = [payload for _, payload in feed.next_frames(FRAMES)]
    records = parse(frames)["depth"]
    head = np.concatenate(snapshots)
    best = float("inf")
    for _ in range(5):
        builder = BookBuilder()
        t0 = time.perf_counter()
        builder.apply(head)
        builder.apply(records)
        best = min(best, time.perf_counter() - t0)
    valid = sum(builder.valid(s.symbol) for s in universe)
    rows = len(head) + len(records)
    print(f"books: {rows} depth records ({len(frames)} frames, {SYMBOLS} symbols) in "
          f"{best * 1e3:.1f} ms: {best / rows * 1e9:.0f} ns/record; {valid}/{SYMBOLS} valid")

    levels = [[f"{100 + i / 100:.8f}", "1.50000000"] for i in range(5000)]
    answer = {"lastUpdateId": 1, "bids": levels, "asks": levels}
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        snapshot_records("BTCUSDT", answer)
        best = min(best, time.perf_counter() - t0)
    print(f"snapshot rows: 10000 levels in {best * 1e3:.1f} ms ({best / 1e4 * 1e9:.0f} ns/level)")


if __name__ == "__main__":
    main()
