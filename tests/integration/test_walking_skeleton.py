"""Simulator -> handler (picows, C++ decoder) -> real Kafka -> consumer, checked field by field."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import defaultdict
from decimal import Decimal

import numpy as np
import pytest
from confluent_kafka import Consumer

from feedhandler import decode, wide_to_int
from feedhandler.simulator.market import Feed, Universe
from feedhandler.simulator.testing import SimulatorProcess

pytestmark = pytest.mark.integration

SEED = 20261121
MESSAGES = 200_000
SYMBOLS = 24


def units(text: str) -> int:
    return int(Decimal(text) * 10**8)


def expected_by_symbol(streams: list[str]) -> dict[bytes, list[tuple[int, int, int, int, int]]]:
    feed = Feed(SEED, Universe.generate(SEED, 50))
    feed.subscribe(streams)
    out: dict[bytes, list[tuple[int, int, int, int, int]]] = defaultdict(list)
    frames = feed.next_frames(MESSAGES)
    assert len(frames) == MESSAGES
    for _stream, payload in frames:
        m = json.loads(payload)
        out[m["s"].encode()].append(
            (m["u"], units(m["b"]), units(m["B"]), units(m["a"]), units(m["A"]))
        )
    return out


def consume_all(bootstrap: str, topic: str, total: int) -> list[np.ndarray]:
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    batches, seen, idle = [], 0, 0
    try:
        while seen < total and idle < 60:
            msg = consumer.poll(1.0)
            if msg is None:
                idle += 1
                continue
            assert msg.error() is None, msg.error()
            records = decode(msg)
            assert msg.key() == records["symbol"][0]
            assert (records["symbol"] == msg.key()).all(), "one symbol per message"
            batches.append(records)
            seen += len(records)
    finally:
        consumer.close()
    return batches


def test_bookticker_end_to_end_exact(kafka_broker) -> None:
    universe = Universe.generate(SEED, 50)
    streams = sorted(f"{s.symbol.lower()}@bookTicker" for s in universe.symbols[:SYMBOLS])
    sim_args = ["--seed", str(SEED), "--symbols", "50", "--fast", "--max-messages", str(MESSAGES)]
    with SimulatorProcess(sim_args) as sim:
        run = subprocess.run(
            [sys.executable, "-m", "feedhandler", "run", "--url", sim.url,
             "--streams", ",".join(streams), "--sink", "kafka",
             "--kafka-bootstrap", kafka_broker.bootstrap, "--max-messages", str(MESSAGES),
             "--instance", "it-skeleton", "--summary-json"],
            capture_output=True, text=True, timeout=300,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["frames"] == MESSAGES
    assert summary["records"] == {"bookTicker": MESSAGES}
    assert summary["errors"] == {} and summary["gaps"] == 0

    batches = consume_all(kafka_broker.bootstrap, "binance.spot.bookTicker", MESSAGES)
    records = np.concatenate(batches)
    assert len(records) == MESSAGES

    got: dict[bytes, list[tuple[int, ...]]] = defaultdict(list)
    for batch in batches:  # per-partition order == per-symbol order (key = symbol)
        cols = [batch[c].tolist() if batch.dtype[c].names is None  # 128-bit quantities:
                else [wide_to_int(v) for v in batch[c]]  # as one int
                for c in ("update_id", "bid_price", "bid_qty", "ask_price", "ask_qty")]
        got[bytes(batch["symbol"][0])].extend(zip(*cols, strict=True))
    expected = expected_by_symbol(streams)
    assert len(expected) >= 20
    assert set(got) == set(expected)
    for symbol, rows in expected.items():
        assert got[symbol] == rows, f"{symbol!r} differs"
    assert (records["ts_recv"] > 1_700_000_000 * 10**9).all()
