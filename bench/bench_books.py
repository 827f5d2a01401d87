"""Book rebuild benchmark: ns per depth record applied by the C++ books (`BookBuilder`), the
per-snapshot cost of turning a 5000-level WS API answer into snapshot rows (Python), and the
per-batch cost of the handler's own books (`book.publish`: `HandlerBooks.on_depth` on each
decoded batch, and one `book` record tick of every symbol) against parsing the same batch.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_books.py

Depth records come from the simulator's market model (`Feed`, 20 symbols' `@depth@100ms`,
decoded by `feedhandler.parse`), preceded by one snapshot per symbol so every book is valid;
the best of 5 rounds is printed. Ratios within one run are what to compare; absolute times
depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from feedhandler._ext.decoder import Decoder
from feedhandler.book import BookBuilder, snapshot_records
from feedhandler.book.live import HandlerBooks
from feedhandler.config import BookConfig
from feedhandler.parsing import parse
from feedhandler.simulator.market import Feed, Universe

SEED, SYMBOLS, FRAMES = 7, 20, 20_000
BATCH_FRAMES = 64  # frames per decoded batch (a read burst of a busy connection)


def market(kinds: tuple[str, ...]) -> tuple[list[np.ndarray], list[bytes]]:
    """Snapshot rows of each symbol's book before the first frame (5000 levels a side), and
    FRAMES frames of these streams of every symbol."""
    universe = Universe.generate(SEED, SYMBOLS)
    feed = Feed(SEED, universe)
    feed.subscribe([f"{s.symbol.lower()}@{kind}" for s in universe for kind in kinds])
    snapshots = []
    for spec in universe:
        last, bids, asks = feed.book_snapshot(spec.symbol, 5000)
        text = {"lastUpdateId": last,
                "bids": [[f"{p / 1e8:.8f}", f"{q / 1e8:.8f}"] for p, q in bids],
                "asks": [[f"{p / 1e8:.8f}", f"{q / 1e8:.8f}"] for p, q in asks]}
        snapshots.append(snapshot_records(spec.symbol, text))
    return snapshots, [payload for _, payload in feed.next_frames(FRAMES)]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    snapshots, frames = market(("depth@100ms",))
    records = parse(frames)["depth"]
    head = np.concatenate(snapshots)
    best = float("inf")
    for _ in range(5):
        builder = BookBuilder()
        t0 = time.perf_counter()
        builder.apply(head)
        builder.apply(records)
        best = min(best, time.perf_counter() - t0)
    valid = sum(builder.valid(s) for s in builder.symbols())
    rows = len(head) + len(records)
    print(f"books: {rows} depth records ({len(frames)} frames, {SYMBOLS} symbols) in "
          f"{best * 1e3:.1f} ms: {best / rows * 1e9:.0f} ns/record; {valid}/{SYMBOLS} valid")

    handler_books(snapshots, frames)
    handler_books(*market(("depth@100ms", "bookTicker")))

    levels = [[f"{100 + i / 100:.8f}", "1.50000000"] for i in range(5000)]
    answer = {"lastUpdateId": 1, "bids": levels, "asks": levels}
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        snapshot_records("BTCUSDT", answer)
        best = min(best, time.perf_counter() - t0)
    print(f"snapshot rows: 10000 levels in {best * 1e3:.1f} ms ({best / 1e4 * 1e9:.0f} ns/level)")


def handler_books(snapshots: list[np.ndarray], frames: list[bytes]) -> None:
    """Per batch of BATCH_FRAMES depth frames: decoding it (a long-lived decoder, as in the
    handler) vs the in-handler books' update, and one publishing tick (top-20 records of the
    changed books)."""
    handed: list[tuple[str, np.ndarray]] = []
    decoder = Decoder(lambda kind, records: handed.append((kind, records)), linger_ms=None)
    books = HandlerBooks(BookConfig(snapshots=True, publish=True, top_n=20),
                         lambda records: None, lambda event: None, lambda symbol, u, why: None)
    for rows_of_one in snapshots:
        books.on_depth(rows_of_one)
    parse_ns, apply_ns, tick_ns, rows = [], [], [], []
    for i in range(0, len(frames), BATCH_FRAMES):
        t0 = time.perf_counter_ns()
        decoder.decode_many(frames[i:i + BATCH_FRAMES])
        decoder.flush()
        t1 = time.perf_counter_ns()
        for kind, records in handed:
            if kind == "depth":
                books.on_depth(records)
            else:
                books.on_book_ticker(records)
        t2 = time.perf_counter_ns()
        books.publish(t2)
        t3 = time.perf_counter_ns()
        parse_ns.append(t1 - t0)
        apply_ns.append(t2 - t1)
        tick_ns.append(t3 - t2)
        rows.append(sum(len(r) for _, r in handed))
        handed.clear()

    def pct(values: list[int], q: float) -> float:
        return float(np.percentile(values, q)) / 1e3

    ratio = np.array(apply_ns) / np.array(parse_ns)
    summary = books.summary()
    print(f"handler books: {len(parse_ns)} batches of {BATCH_FRAMES} frames "
          f"({np.mean(rows):.0f} rows each: {summary['tickers_compared']} bookTickers compared, "
          f"{summary['tickers_uncovered']} not); per batch, microseconds p50/p99: "
          f"decode {pct(parse_ns, 50):.0f}/{pct(parse_ns, 99):.0f}, books update "
          f"{pct(apply_ns, 50):.0f}/{pct(apply_ns, 99):.0f} (books/decode p50 "
          f"{np.median(ratio):.2f}, p99 {np.percentile(ratio, 99):.2f}); tick of {SYMBOLS} "
          f"top-20 records {pct(tick_ns, 50):.0f}/{pct(tick_ns, 99):.0f}; "
          f"{books.records} records, {summary['valid']}/{SYMBOLS} valid, "
          f"{summary['ticker_mismatches']} disagreements")

if __name__ == "__main__":
    main()
