"""The 2026 kinds end to end (simulator -> `feedhandler run` -> real Kafka -> `feedhandler
consume`), and no overflow on cheap tokens' quantities at scale."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from feedhandler.parsing import parse
from feedhandler.records import wide_to_int
from feedhandler.simulator.market import Feed, Universe
from feedhandler.simulator.market.universe import DEFAULT_COUNT
from feedhandler.simulator.testing import SimulatorProcess
from tests.integration.test_kafka_bridge import (
    SEED,
    HandlerProcess,
    assert_all_delivered,
    assert_same,
    consumed,
    expected_streams,
)

pytestmark = pytest.mark.integration

INT64_MAX = 2**63 - 1


def test_block_trade_and_reference_price_through_kafka(kafka_bootstrap: str,
                                                        tmp_path: Path) -> None:
    universe = Universe.generate(SEED)
    streams = [f"{s.symbol.lower()}@{k}" for s in universe.symbols[:20]
               for k in ("blockTrade", "referencePrice", "trade")]
    frames = 6000
    args = ["--seed", str(SEED), "--fast", "--max-messages", str(frames)]
    with SimulatorProcess(args) as sim:
        handler = HandlerProcess(tmp_path / "handler.log", sim.url, kafka_bootstrap, streams,
                                 "--max-messages", str(frames))
        summary = handler.finish()
    assert summary["errors"] == {} and summary["gaps"] == 0
    assert summary["records"]["blockTrade"] > 0 and summary["records"]["referencePrice"] > 0
    assert_all_delivered(summary)
    assert_same(consumed(kafka_bootstrap, handler.market, streams),
                expected_streams(streams, frames))
    # ... and as a user reads them: the consume CLI, exact decimal strings, `r: null` kept.
    for kind in ("blockTrade", "referencePrice"):
        out = subprocess.run(
            [sys.executable, "-m", "feedhandler", "consume", "--kafka-bootstrap",
             kafka_bootstrap, "--market", handler.market, "--kind", kind, "--format", "jsonl",
             "--idle-timeout", "5"],
            capture_output=True, text=True, timeout=120, check=True).stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert len(rows) == summary["records"][kind]
        first = rows[0]
        assert first["symbol"] and isinstance(first["price"], str) and "." in first["price"]
        if kind == "blockTrade":
            assert isinstance(first["qty"], str) and isinstance(first["trade_id"], int)
        else:
            assert first["price_known"] in (0, 1) and first["ts_engine"] > 0


SYMBOLS, PER_SYMBOL = 750, ("depth@100ms", "depth20@100ms", "bookTicker", "trade")


def test_cheap_tokens_really_exceed_int64() -> None:
    """The scale run below is only a test of the representation if quantities past int64 at
    1e-8 do occur: the simulated universe's cheap tokens carry such book levels."""
    universe = Universe.generate(SEED, SYMBOLS)
    biggest = 0
    for spec in sorted(universe.symbols, key=lambda s: -s.mean_qty)[:10]:  # largest orders
        feed = Feed(SEED, universe)
        feed.subscribe([f"{spec.symbol.lower()}@depth20@100ms"])
        frames = [b'{"stream":"%s","data":%s}' % (s.encode(), p) for s, p in
                  feed.next_frames(100)]
        parsed = parse(frames)
        assert not parsed.dead_letters
        book = parsed["depthPartial"]
        for side in ("bid_qty", "ask_qty"):
            biggest = max(biggest, *(wide_to_int(q) for q in book[side].reshape(-1)))
    assert biggest > INT64_MAX, "no level beyond int64 at 1e-8: the scale run proves nothing"


def whole_universe_streams(universe: Universe) -> list[str]:
    """5,000 streams touching every symbol of the simulator's default universe: every book's
    diff depth, plus partial depth and bookTicker for the first thousand."""
    names = [s.symbol.lower() for s in universe.symbols]
    return [*(f"{n}@depth@100ms" for n in names), *(f"{n}@depth20@100ms" for n in names[:1000]),
            *(f"{n}@bookTicker" for n in names[:1000])]


@pytest.mark.slow
@pytest.mark.parametrize(("symbols", "count"), [(SYMBOLS, 3000), (DEFAULT_COUNT, 5000)],
                         ids=["3000-streams-750-symbols", "5000-streams-whole-universe"])
def test_book_streams_never_overflow(symbols: int, count: int) -> None:
    universe = Universe.generate(SEED, symbols)
    streams = [f"{s.symbol.lower()}@{k}" for s in universe.symbols for k in PER_SYMBOL] \
        if symbols == SYMBOLS else whole_universe_streams(universe)
    assert len(streams) == count
    args = ["--seed", str(SEED), "--symbols", str(symbols), "--rate", "2000"]
    with SimulatorProcess(args) as sim:
        run = subprocess.run(
            [sys.executable, "-m", "feedhandler", "run", "--url", sim.url,
             "--streams", ",".join(streams), "--sink", "null", "--duration", "10",
             "--summary-json", "--log-level", "WARNING"],
            capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["frames"] > 5_000, "it ran"
    assert summary["errors"] == {}  # no `overflow` (nor anything else) dead-lettered
    assert summary["gaps"] == 0
    assert summary["records"]["depthPartial"] > 0
