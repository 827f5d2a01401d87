"""Cost of the universe's tick/step check per decoded batch, next to the decoding of the same
records (one run, so the ratio holds on a noisy machine).

    .venv/bin/python bench/bench_precision.py

Batches of trade records decoded from frames by one long-lived `Decoder` (decode_many + flush,
as a socket read burst), 1 to 4096 rows over 1 or 50 symbols, all on their grid (the common
case: nothing to report). Medians over repetitions.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from feedhandler._ext.decoder import Decoder
from feedhandler.universe import PrecisionCheck, SymbolInfo

SYMBOLS = [f"S{i:03d}USDT" for i in range(200)]
FRAME = ('{"e":"trade","E":1,"s":"%s","t":%d,"p":"%d.%02d","q":"0.%05d","T":1,"m":true}')


def frames(rows: int, symbols: int, rng: np.random.Generator) -> list[bytes]:
    picks = rng.integers(0, symbols, rows)
    ids = [0] * symbols  # contiguous per symbol: no gap rows
    out = []
    for i, s in enumerate(picks):
        ids[s] += 1
        out.append((FRAME % (SYMBOLS[s], ids[s], 100 + i % 7, i % 100, 100 * (1 + i % 9)))
                   .encode())
    return out


def median_ns(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        action()
        times.append(time.perf_counter_ns() - start)
    return float(np.median(times))


def measure(check: PrecisionCheck, batch: list[bytes]) -> tuple[float, float]:
    """(decode, check) ns per row of one batch of frames."""
    got: list[np.ndarray] = []
    keep = [True]  # the first decode's records are kept, later ones only timed
    decoder = Decoder(lambda kind, table: got.append(table.copy()) if keep[0] else None,
                      batch_rows={"trade": 1 << 16})

    def decode() -> None:
        decoder.reset_sequences()  # the same ids again: no gap rows
        decoder.decode_many(batch)
        decoder.flush()

    decode()
    keep[0] = False
    records = np.concatenate(got)
    assert len(records) == len(batch)
    repeat = max(30, 40_000 // len(batch))
    decoded = median_ns(decode, repeat) / len(batch)
    checked = median_ns(lambda: check.check("trade", records), repeat) / len(batch)
    return decoded, checked


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    rng = np.random.default_rng(1)
    check = PrecisionCheck(lambda event: None)
    check.update(SymbolInfo(s, "TRADING", "USDT", frozenset(), 1_000_000, 1_000)
                 for s in SYMBOLS)  # tick 0.01, step 0.00001
    print("| rows | symbols | decode, ns/row | check, ns/row | check / decode |")
    print("|---:|---:|---:|---:|---:|")
    for rows, symbols in ((1, 1), (64, 4), (4096, 1), (4096, 50)):
        decoded, checked = measure(check, frames(rows, symbols, rng))
        print(f"| {rows} | {symbols} | {decoded:,.0f} | {checked:,.0f} | "
              f"{checked / decoded:.2f} |")
    assert not check.violations


if __name__ == "__main__":
    main()
