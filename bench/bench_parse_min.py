"""ns per message of the C++ decoder (bench_parse.py's frames and `cpp` runner), as the minimum
over many short rounds: robust to a loaded machine, for comparing two builds run alternately.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_parse_min.py
    (cd /tmp/main-copy && OPENBLAS_NUM_THREADS=1 PYTHONPATH=. /work/wt-x/.venv/bin/python \\
        bench/bench_parse_min.py)      # the other build, same frames
"""

from __future__ import annotations

import os
import random
import sys
import time

sys.path.insert(0, os.getcwd())
from bench.bench_parse import CASES, run_cpp

ROUNDS = 25


def main() -> None:
    result = {}
    for kind, (make, n, table, _, _) in CASES.items():
        frames = make(n, random.Random(1))
        run_cpp(frames, table)  # warm-up
        best = min(_timed(frames, table) for _ in range(ROUNDS))
        result[kind] = round(best / len(frames))
    print(result)


def _timed(frames: list[bytes], table: str) -> int:
    start = time.perf_counter_ns()
    run_cpp(frames, table)
    return time.perf_counter_ns() - start


if __name__ == "__main__":
    main()
