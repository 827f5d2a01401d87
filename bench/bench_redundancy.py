"""A/B redundancy cost in the decoder: ns per frame with one connection (overlap off) against
two legs delivering every frame each (set_overlap(BOTH_LEGS): the second copy dropped by id,
or by content for kinds without ids), in one run, rounds alternating.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_redundancy.py [--rounds 15]
    valgrind --tool=callgrind .venv/bin/python bench/bench_redundancy.py --mode off --rounds 1

`--mode off|ab` runs one case only (for instruction counts: the difference between two
`--rounds` values divided by the frames decoded).
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


def _ignore(*_: Any) -> None:
    pass


def run(mode: str, batch: list[bytes]) -> float:
    """Seconds to decode `batch` once (off) or on both legs (ab), a fresh decoder."""
    decoder = Decoder(_ignore, batch_rows=4096, linger_ms=None)
    if mode == "ab":
        decoder.set_overlap(2)  # BOTH_LEGS
    started = time.perf_counter()
    if mode == "off":
        decoder.decode_many(batch, ts_recv=1)
    else:
        for i in range(0, len(batch), CHUNK):
            decoder.decode_many(batch[i : i + CHUNK], ts_recv=1, leg=0)
            if i:
                decoder.decode_many(batch[i - CHUNK : i], ts_recv=2, leg=1)
        decoder.decode_many(batch[-CHUNK:], ts_recv=2, leg=1)
    elapsed = time.perf_counter() - started
    decoder.flush()
    if mode == "ab":
        assert decoder.duplicates == len(batch), decoder.duplicates
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=number(int), default=15)
    parser.add_argument("--mode", choices=["off", "ab"])
    parser.add_argument("--kind", choices=["trade", "miniTicker"])
    args = parser.parse_args()
    kinds = [args.kind] if args.kind else ["trade", "miniTicker"]
    modes = [args.mode] if args.mode else ["off", "ab"]
    print("| kind | one connection, ns/frame (min, median) | A/B: ns per emitted frame "
          "(min, median) | A/B / one |")
    print("|---|---|---|---|")
    for kind in kinds:
        batch = frames(kind)
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for _ in range(args.rounds):
            for mode in modes:
                times[mode].append(run(mode, batch) / len(batch) * 1e9)
        cells = [f"{min(t):.0f}, {statistics.median(t):.0f}" for t in times.values()]
        ratio = f"{min(times['ab']) / min(times['off']):.2f}" if len(modes) == 2 else ""
        print(f"| {kind} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    main()
