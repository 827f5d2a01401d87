"""Make-before-break rollover end to end: the paced simulator (one market per process) closes
connections after `--lifetime` or announces `serverShutdown`; `feedhandler run` rolls each
connection over before that, and Kafka holds every trade and aggTrade id once, in order, with
no gap event."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

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

RUN_S = 14
ID_COLUMN = {"trade": "trade_id", "aggTrade": "agg_id"}


def ids_on_kafka(bootstrap: str, market: str, kind: str) -> dict[bytes, list[int]]:
    """Per symbol, the ids of `kind` in topic order."""
    out: dict[bytes, list[int]] = defaultdict(list)
    for msg in read_messages(bootstrap, [f"binance.{market}.{kind}"]):
        out[msg.key() or b""] += decode(msg)[ID_COLUMN[kind]].tolist()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("cause", ["lifetime", "server_shutdown"])
def test_rollovers_lose_and_repeat_nothing(kafka_bootstrap: str, tmp_path: Path,
                                           cause: str) -> None:
    symbols = [s.symbol.lower() for s in Universe.generate(SEED).symbols[:10]]
    streams = [f"{s}@{kind}" for s in symbols for kind in ID_COLUMN]
    # Paced at 2000 events/s: a lifetime of 3 s, replaced at 1.5 s; or, with a day's
    # lifetime, a serverShutdown after each connection's 3000th event (1.5 s).
    sim_args = ["--seed", str(SEED), "--rate", "2000"]
    env = {"FEEDHANDLER_CONNECTION__ROLLOVER_LEAD_S": "1.5"}
    if cause == "lifetime":
        sim_args += ["--lifetime", "3"]
        env["FEEDHANDLER_CONNECTION__MAX_LIFETIME_S"] = "3"
    else:
        sim_args += ["--fault", "shutdown:every=3000"]
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
    rollovers = [e for e in events if e["type"] == "rollover"]
    assert len(rollovers) >= 5, handler.stderr()
    assert {e["cause"] for e in rollovers} == {cause}
    assert all(e["in_step"] for e in rollovers), rollovers
    assert sum(e["duplicates"] for e in rollovers) > 0, "the connections overlapped"
    assert summary["connections"]["rollovers"] == len(rollovers)

    for kind in ID_COLUMN:
        per_symbol = ids_on_kafka(kafka_bootstrap, handler.market, kind)
        assert len(per_symbol) == len(symbols)
        for symbol, ids in per_symbol.items():
            # every id once, in order, none missing between the first and the last
            assert ids == list(range(ids[0], ids[0] + len(ids))), (kind, symbol)
