"""A/B redundancy cost in the decoder: ns per frame with one connection (overlap off) against
two legs delivering every frame each (set_overlap(BOTH_LEGS): the second copy dropped by id,
or by content for kinds without ids), in one run, rounds alternating.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_redundancy.py [--rounds 15]
    valgrind --tool=callgrind .venv/bin/python bench/bench_redundancy.py --mode off --rounds 1

`--mode off|ab|holes` runs one case only (for instruction counts: the difference between two
`--rounds` values divided by the frames decoded). `holes` (trade only): as `ab`, but the leading
leg misses one frame in LOST_EVERY, so the streams past each hole are held until the other
leg's burst fills it (what a release of the held frames costs).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import orjson

from feedhandler._ext.decoder import Decoder
from feedhandler.argtypes import number

FRAMES = 20_480  # a multiple of CHUNK
SYMBOLS = [f"SYM{i}USDT" for i in range(20)]
CHUNK = 64  # frames per read burst of a leg: the legs take turns, one burst behind
LOST_EVERY = 16  # holes: leg 0 misses these frames


def frames(kind: str) -> list[bytes]:
    out = []
    for i in range(FRAMES):
        symbol = SYMBOLS[i % len(SYMBOLS)]
        seq = i // len(SYMBOLS) + 1
        if kind == "trade":
            data: dict[str, Any] = {"e": "trade", "E": 1_700_000_000_000 + i, "s": symbol,
                                    "t": seq, "p": "43210.12", "q": "0.0123",
                                    "T": 1_700_000_000_000 + i, "m": True}
            stream = f"{symbol.lower()}@trade"
        else:
            data = {"e": "24hrMiniTicker", "E": 1_700_000_000_000 + i, "s": symbol,
                    "c": "43210.12", "o": "43000.00", "h": "43500.00", "l": "42900.00",
                    "v": "1234.5678", "q": "53300000.12"}
            stream = f"{symbol.lower()}@miniTicker"
        out.append(orjson.dumps({"stream": stream, "data": data}))
    return out


def run(mode: str, batch: list[bytes]) -> float:
    """Seconds to decode `batch` once (off) or on both legs (ab, holes), a fresh decoder."""
    rows: dict[str, int] = {}

    def count(kind: str, records: Any) -> None:
        rows[kind] = rows.get(kind, 0) + len(records)

    decoder = Decoder(count, batch_rows=4096, linger_ms=None)
    lead = batch
    if mode != "off":
        decoder.set_overlap(2)  # BOTH_LEGS
    if mode == "holes":
        # (not a stream's first id: one leg's first record starts its stream)
        lead = [frame if i % LOST_EVERY or i < len(SYMBOLS) else None
                for i, frame in enumerate(batch)]
    started = time.perf_counter()
    if mode == "off":
        decoder.decode_many(batch, ts_recv=1)
    else:
        for i in range(0, len(batch), CHUNK):
            decoder.decode_many([f for f in lead[i : i + CHUNK] if f], ts_recv=1, leg=0)
            if i:
                decoder.decode_many(batch[i - CHUNK : i], ts_recv=2, leg=1)
        decoder.decode_many(batch[-CHUNK:], ts_recv=2, leg=1)
    elapsed = time.perf_counter() - started
    decoder.flush()
    lost = len(batch) - sum(1 for f in lead if f)
    assert rows.get("gap", 0) == 0 and decoder.held == 0, (rows, decoder.held)
    assert decoder.duplicates == (0 if mode == "off" else len(batch) - lost)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=number(int), default=15)
    parser.add_argument("--mode", choices=["off", "ab", "holes"])
    parser.add_argument("--kind", choices=["trade", "miniTicker"])
    args = parser.parse_args()
    kinds = [args.kind] if args.kind else ["trade", "miniTicker"]
    print("| kind | one connection, ns/frame (min, median) | A/B: ns per emitted frame "
          "(min, median) | A/B / one | A/B, holes on one leg (min, median) | holes / one |")
    print("|---|---|---|---|---|---|")
    for kind in kinds:
        modes = [args.mode] if args.mode else ["off", "ab", "holes"]
        if kind != "trade":  # (no ids: no holes)
            modes = [m for m in modes if m != "holes"]
        batch = frames(kind)
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.rounds):
            for mode in modes:
                times[mode].append(run(mode, batch) / len(batch) * 1e9)
        cells = []
        for mode in ("off", "ab", "holes"):
            t = times.get(mode)
            cells.append(f"{min(t):.0f}, {statistics.median(t):.0f}" if t else "")
            if mode != "off":
                cells.append(f"{min(t) / min(times['off']):.2f}" if t and "off" in times
                             else "")
        print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
