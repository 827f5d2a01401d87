"""ns per message of the C++ decoder (bench_parse.py's frames and `cpp` runner), as the minimum
over many short rounds: robust to a loaded machine, for comparing two builds run alternately.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_parse_min.py [--decode-only]
    (cd /tmp/main-copy && OPENBLAS_NUM_THREADS=1 PYTHONPATH=. /work/wt-x/.venv/bin/python \\
        bench/bench_parse_min.py)      # the other build, same frames

--decode-only: ns per row (a depth level is a row) of what the listener runs: one long-lived
decoder, Decoder.decode_many + flush(), batches dropped (no np.concatenate, no fresh arrays).
--realistic: the same, ns per frame, over bench_handler_vs_picows.py's realistic frames as its
simulator sends them (combined-stream wrappers; 100,000 frames, ../shared/corpus beside the repo).
"""

from __future__ import annotations

import argparse
import random
import time

from bench_parse import CASES, TS_RECV, run_cpp  # (this script's folder is on sys.path)

from feedhandler._ext.decoder import Decoder

ROUNDS = 25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--decode-only", action="store_true",
                      help="ns per row of one long-lived decoder, batches dropped")
    mode.add_argument("--realistic", action="store_true",
                      help="ns per frame over frames shaped like real captures")
    args = parser.parse_args()
    if args.realistic:
        from bench_handler_vs_picows import realistic_events

        from feedhandler.simulator.server.frames import wrap_combined

        frames = [wrap_combined(stream, payload) for stream, payload in realistic_events(100_000)]
        print({"realistic (ns a frame)": round(_best(frames)[0] / len(frames), 1)})
        return
    decode_only = args.decode_only
    result = {}
    for kind, (make, n, table, _, _) in CASES.items():
        frames = make(n, random.Random(1))
        if decode_only:
            result[kind] = round(_per_row(frames * 10), 1)
            continue
        run_cpp(frames, table)  # warm-up
        best = min(_timed(frames, table) for _ in range(ROUNDS))
        result[kind] = round(best / len(frames))
    print(result)


def _per_row(frames: list[bytes]) -> float:
    best, rows = _best(frames)
    return best / max(rows, 1)


def _best(frames: list[bytes]) -> tuple[int, int]:
    """(the fastest round's ns, rows) of one long-lived decoder over `frames`."""
    rows = [0]
    decoder = Decoder(lambda kind, records: rows.__setitem__(0, rows[0] + len(records)),
                      linger_ms=None)
    best = None
    for _ in range(ROUNDS + 1):  # (the first round warms up, and counts the rows)
        rows[0] = 0
        start = time.perf_counter_ns()
        decoder.decode_many(frames, TS_RECV)
        decoder.flush()
        elapsed = time.perf_counter_ns() - start
        best = elapsed if best is None else min(best, elapsed)
    assert not decoder.error_counts, decoder.error_counts
    return best, rows[0]


def _timed(frames: list[bytes], table: str) -> int:
    start = time.perf_counter_ns()
    run_cpp(frames, table)
    return time.perf_counter_ns() - start


if __name__ == "__main__":
    main()
