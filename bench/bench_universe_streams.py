"""Every simulated symbol x four book and trade kinds through the handler (null sink): no
`overflow`, no gap. Issue 8's scale check beyond the suite's 3,000-stream test.

    .venv/bin/python bench/bench_universe_streams.py [--symbols 1250] [--duration 30]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from feedhandler.simulator.market import Universe
from feedhandler.simulator.testing import SimulatorProcess

KINDS = ("depth@100ms", "depth20@100ms", "bookTicker", "trade")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--symbols", type=int, default=1250)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=20261204)
    args = p.parse_args()
    universe = Universe.generate(args.seed, args.symbols)
    streams = [f"{s.symbol.lower()}@{k}" for s in universe.symbols for k in KINDS]
    with SimulatorProcess(["--seed", str(args.seed), "--symbols", str(args.symbols),
                           "--rate", "2000"]) as sim:
        run = subprocess.run(
            [sys.executable, "-m", "feedhandler", "run", "--url", sim.url,
             "--streams", ",".join(streams), "--sink", "null", "--duration",
             str(args.duration), "--summary-json", "--live", "off", "--stats-interval", "0",
             "--log-level", "WARNING"],
            capture_output=True, text=True, timeout=args.duration + 120)
    if run.returncode != 0:
        sys.exit(f"run failed ({run.returncode}): {run.stderr[-2000:]}")
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    print(json.dumps({"streams": len(streams), "symbols": len(universe.symbols),
                      **{k: summary[k] for k in ("frames", "records", "errors", "gaps",
                                                 "reconnects", "elapsed_s")}}))


if __name__ == "__main__":
    main()
