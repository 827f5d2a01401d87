"""What the Kafka sink's copy of a record into its symbol's message costs, with and without the
caches flushed between batches.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_open_messages.py [--kind KIND]
        [--rows N] [--symbols K] [--batches B] [--flush-kib 0,2048,6144] [--against REV]

Builds bench/open_messages.cpp with ext/cpp/grouping.cpp (the build's flags) and reports ns
per row of OpenMessages::append for one kind's record layout. In the handler the sink's call
comes after the whole read burst was decoded and librdkafka's thread sent its requests on the
same core, so the rows and the messages' memory are mostly out of the caches: `--flush-kib`
writes that much memory between batches to stand for it (0: everything hot).
`--against REV`: also builds grouping.cpp and grouping.h as of that git revision, and runs the
two builds alternately, each setting `--repeat` times; medians, and this tree / REV.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from feedhandler.argtypes import number
from feedhandler.records import SCHEMAS

HERE = Path(__file__).parent
CPP = HERE.parent / "ext" / "cpp"
# setup.py's release flags
FLAGS = ["-std=c++17", "-O3", "-DNDEBUG",
         f"-march={os.environ.get('FEEDHANDLER_MARCH') or 'x86-64-v2'}"]


def kibs(text: str) -> list[int]:
    """Comma-separated KiB, 0 or more."""
    parse = number(int, zero=True)
    return [int(parse(item)) for item in text.split(",")]


def build(source_dir: Path, out: Path) -> Path:
    subprocess.run(["g++", *FLAGS, f"-I{source_dir}", f"-I{CPP}", str(HERE / "open_messages.cpp"),
                    str(source_dir / "grouping.cpp"), "-o", str(out)], check=True)
    return out


def checkout(rev: str, into: Path) -> Path:
    """grouping.cpp and grouping.h as of `rev` (the other headers from this tree)."""
    for name in ("grouping.cpp", "grouping.h"):
        text = subprocess.run(["git", "show", f"{rev}:ext/cpp/{name}"], cwd=HERE.parent,
                              check=True, capture_output=True, text=True).stdout
        (into / name).write_text(text)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", default="depth", choices=sorted(SCHEMAS))
    parser.add_argument("--rows", type=number(int), default=1000, help="per batch")
    parser.add_argument("--symbols", type=number(int), default=50)
    parser.add_argument("--batches", type=number(int), default=4000)
    parser.add_argument("--flush-kib", type=kibs, default=[0, 1024, 2048, 6144],
                        help="memory written between batches, one run per value (0: none)")
    parser.add_argument("--against", metavar="REV", help="also the grouping code as of REV")
    parser.add_argument("--repeat", type=number(int), default=3)
    args = parser.parse_args()
    dtype = SCHEMAS[args.kind].dtype
    key_offset, key_width = dtype.fields["symbol"][1], dtype["symbol"].itemsize
    with tempfile.TemporaryDirectory() as tmp:
        builds = {"this tree": build(CPP, Path(tmp) / "this")}
        if args.against:
            old = checkout(args.against, Path(tempfile.mkdtemp(dir=tmp)))
            builds[args.against] = build(old, Path(tmp) / "against")
        print(f"ns per row of OpenMessages::append: {args.kind} ({dtype.itemsize}-byte rows), "
              f"{args.rows} rows a batch over {args.symbols} symbols, {args.batches} batches "
              f"(the first tenth not counted); medians of {args.repeat}")
        print(f"{'flushed KiB':>11} " + " ".join(f"{label:>12}" for label in builds)
              + ("  this / against" if args.against else ""))
        for kib in args.flush_kib:
            results: dict[str, list[float]] = {label: [] for label in builds}
            for _ in range(args.repeat):
                for label, binary in builds.items():
                    out = subprocess.run(
                        [str(binary), str(dtype.itemsize), str(key_offset), str(key_width),
                         str(args.rows), str(args.symbols), str(args.batches), str(kib)],
                        check=True, capture_output=True, text=True).stdout
                    results[label].append(float(out))
            medians = [statistics.median(values) for values in results.values()]
            print(f"{kib:>11} " + " ".join(f"{m:>12.2f}" for m in medians)
                  + (f"  {medians[0] / medians[1]:.2f}x" if args.against else ""))


if __name__ == "__main__":
    main()
