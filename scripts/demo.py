"""`make demo`: local Kafka + simulator + handler, then the decoded records and a summary.

Everything runs on 127.0.0.1 with free ports and is stopped before the script exits.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from feedhandler import decode
from feedhandler.consume.reader import read_messages
from feedhandler.contract import H_SCHEMA, H_VERSION, header_dict
from feedhandler.contract.json_lines import encode_json
from feedhandler.records import schema_by_name
from feedhandler.simulator.testing import SimulatorProcess
from feedhandler.testing.kafka import LocalKafka

SYMBOLS = ["btcusdt", "ethusdt", "bnbusdt", "solusdt", "xrpusdt"]
KINDS = ["bookTicker", "trade", "aggTrade", "depth@100ms", "kline_1m", "miniTicker"]


def show(bootstrap: str, topics: list[str]) -> Counter[str]:
    """Read every topic to its end: count records, print the first two of each as JSON."""
    counts: Counter[str] = Counter()
    for msg in read_messages(bootstrap, topics):
        records = decode(msg)
        schema = schema_by_name(*_schema_header(msg))
        shown = min(len(records), max(0, 2 - counts[msg.topic()]))
        for line in encode_json(schema, records[:shown]).splitlines():
            print(f"  {msg.topic()}: {line.decode()}")
        counts[msg.topic()] += len(records)
    return counts


def _schema_header(msg: Any) -> tuple[str, int]:
    headers = header_dict(msg.headers())
    return headers[H_SCHEMA], int(headers[H_VERSION])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=100_000)
    args = p.parse_args()
    streams = [f"{s}@{k}" for s in SYMBOLS for k in KINDS]
    with tempfile.TemporaryDirectory(prefix="feedhandler-demo-") as work, \
            LocalKafka(Path(work) / "kafka") as kafka:
        print(f"kafka broker ready at {kafka.bootstrap}")
        sim_args = ["--seed", "1", "--fast", "--max-messages", str(args.messages)]
        with SimulatorProcess(sim_args) as sim:
            print(f"simulator listening at {sim.url}; handler streams {len(streams)} streams")
            run = subprocess.run(
                [sys.executable, "-m", "feedhandler", "run", "--url", sim.url,
                 "--streams", ",".join(streams), "--sink", "kafka",
                 "--kafka-bootstrap", kafka.bootstrap, "--max-messages", str(args.messages),
                 "--instance", "demo", "--summary-json"],
                capture_output=True, text=True, timeout=600,
            )
        if run.returncode != 0:
            print(run.stderr[-3000:], file=sys.stderr)
            return run.returncode
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        records = summary["records"]
        topics = [f"binance.spot.{kind}" for kind in records if kind not in ("gap", "control")]
        print("decoded records read back from Kafka (first two per topic):")
        counts = show(kafka.bootstrap, topics)
    print("handler summary:", json.dumps(summary))
    print("records per topic in Kafka:", json.dumps(dict(counts)))
    missing = {t: records[t.split(".")[-1]] - counts[t] for t in topics
               if counts[t] != records[t.split(".")[-1]]}
    if missing:
        print(f"MISMATCH between handler and Kafka: {missing}", file=sys.stderr)
        return 1
    print("all records delivered; broker and simulator stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
