"""Make-before-break rollover end to end: the paced simulator (one market per process) closes
connections after `--lifetime` or announces `serverShutdown`; `feedhandler run` rolls each
connection over before that, and Kafka holds every trade, aggTrade and depth id once, in order
(bookTicker's rising), with no gap event."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from feedhandler import decode
from feedhandler.consume.reader import read_messages
from feedhandler.simulator.market import Universe
from feedhandler.simulator.testing import SimulatorProcess
from tests.integration.test_kafka_bridge import (
    SEED,
    HandlerProcess,
    control_events,
)

pytestmark = pytest.mark.integration

RUN_S = 18
ID_COLUMN = {"trade": "trade_id", "aggTrade": "agg_id", "depth": "first_update_id",
             "bookTicker": "update_id"}
STREAMS = {"trade": "trade", "aggTrade": "aggTrade", "depth": "depth@100ms",
           "bookTicker": "bookTicker"}
SHUTDOWN_ON = (3, 6, 9)  # the simulator's connection ids that announce serverShutdown


def events_on_kafka(bootstrap: str, market: str, kind: str) -> dict[bytes, np.ndarray]:
    """Per symbol, the records of `kind` in topic order."""
    out: dict[bytes, list[np.ndarray]] = defaultdict(list)
    for msg in read_messages(bootstrap, [f"binance.{market}.{kind}"]):
        out[msg.key() or b""].append(decode(msg))
    return {symbol: np.concatenate(parts) for symbol, parts in out.items()}


def assert_continuous(kind: str, symbol: bytes, records: np.ndarray) -> None:
    """No id twice, none missing: trade and aggTrade ids count up by one; a diff depth
    event starts where the last ended (its rows share U/u); bookTicker's u (the book's
    update id, shared with depth) only rises."""
    if kind == "depth":
        first, last = records["first_update_id"], records["last_update_id"]
        starts = np.flatnonzero(np.diff(first, prepend=first[0] - 1))
        assert np.array_equal(first[starts[1:]], last[starts[:-1]] + 1), (kind, symbol)
    elif kind == "bookTicker":
        assert np.all(np.diff(records["update_id"]) > 0), (kind, symbol)
    else:
        ids = records[ID_COLUMN[kind]]
        assert np.array_equal(ids, np.arange(ids[0], ids[0] + len(ids))), (kind, symbol)


@pytest.mark.slow
def test_ten_expiries_and_three_server_shutdowns_lose_and_repeat_nothing(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    symbols = [s.symbol.lower() for s in Universe.generate(SEED).symbols[:10]]
    streams = [f"{s}@{stream}" for s in symbols for stream in STREAMS.values()]
    # Paced at 2000 events/s. Lifetime 3 s, replaced at 1.5 s: a rollover every 1.5 s; and
    # three connections announce serverShutdown after their 500th event (0.25 s in).
    sim_args = ["--seed", str(SEED), "--rate", "2000", "--lifetime", "3"]
    for conn in SHUTDOWN_ON:
        sim_args += ["--fault", f"shutdown:after=500,conn={conn}"]
    env = {"FEEDHANDLER_CONNECTION__ROLLOVER_LEAD_S": "1.5",
           "FEEDHANDLER_CONNECTION__MAX_LIFETIME_S": "3"}
    with SimulatorProcess(sim_args) as sim:
        handler = HandlerProcess(tmp_path / "handler.log", sim.url, kafka_bootstrap, streams,
                                 "--duration", str(RUN_S), env=env)
        summary = handler.finish(timeout=60)
    sink = summary["sink"]
    assert sink["failed"] == 0 and sink["undelivered"] == 0, sink
    # (serverShutdown frames are control records: published as events, not data)
    assert sink["records_delivered"] == sum(summary["records"][k] for k in ID_COLUMN)
    assert summary["errors"] == {} and summary["gaps"] == 0, summary
    assert summary["reconnects"] == 0, handler.stderr()

    events = control_events(kafka_bootstrap, handler.market)
    types = [e["type"] for e in events]
    assert "gap" not in types and "disconnected" not in types, handler.stderr()
    rollovers = Counter(e["cause"] for e in events if e["type"] == "rollover")
    assert rollovers["lifetime"] >= 10 and rollovers["server_shutdown"] == 3, rollovers
    assert summary["connections"]["rollovers"] == rollovers.total()
    overlaps = [e for e in events if e["type"] == "rollover"]
    assert all(e["in_step"] for e in overlaps), overlaps
    assert sum(e["duplicates"] for e in overlaps) > 0, "the connections overlapped"

    for kind in ID_COLUMN:
        per_symbol = events_on_kafka(kafka_bootstrap, handler.market, kind)
        assert len(per_symbol) == len(symbols), kind
        for symbol, records in per_symbol.items():
            assert_continuous(kind, symbol, records)
