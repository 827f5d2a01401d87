"""A/B redundancy end to end: `feedhandler run` with `connection.redundancy: 2` reaches the
paced simulator (one market per process) through two TCP relays, one per leg (`url` and
`url_b`). The test cuts leg A's connections repeatedly, then leg B's; Kafka holds every trade
and aggTrade id once, in order, and the control topic has no `gap`."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from feedhandler.consume.reader import read_messages
from feedhandler.simulator.market import Universe
from feedhandler.simulator.server.faults import MALFORMED
from feedhandler.simulator.testing import SimulatorProcess
from tests.integration.test_kafka_bridge import SEED, HandlerProcess, control_events
from tests.integration.test_rollover_kafka import (
    ID_COLUMN,
    STREAMS,
    assert_continuous,
    events_on_kafka,
)

pytestmark = pytest.mark.integration

CUTS_S = (3.0, 5.0, 7.0)  # leg A's connections cut at these times, then leg B's 6 s later
RUN_S = 17


class Relay:
    """A TCP relay to `target` on 127.0.0.1 (its own thread and loop); `cut()` aborts every
    connection through it (both sides, no close frame), as a dead network path would."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._loop = asyncio.new_event_loop()
        self._transports: set[asyncio.WriteTransport] = set()
        self._ready = threading.Event()
        self.port = 0
        self.cuts = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _relay(self, client_r: asyncio.StreamReader,
                     client_w: asyncio.StreamWriter) -> None:
        upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self._target)
        pair = {client_w.transport, upstream_w.transport}
        self._transports |= pair

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await reader.read(1 << 16):
                    writer.write(data)
                    await writer.drain()
            writer.transport.abort()

        await asyncio.gather(pipe(client_r, upstream_w), pipe(upstream_r, client_w))
        self._transports -= pair

    def cut(self) -> None:
        def abort() -> None:
            self.cuts += bool(self._transports)
            for transport in list(self._transports):
                transport.abort()

        self._loop.call_soon_threadsafe(abort)

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@pytest.mark.slow
def test_losing_either_leg_loses_and_repeats_nothing(kafka_bootstrap: str,
                                                     tmp_path: Path) -> None:
    symbols = [s.symbol.lower() for s in Universe.generate(SEED).symbols[:10]]
    streams = [f"{s}@{stream}" for s in symbols for stream in STREAMS.values()]
    with SimulatorProcess(["--seed", str(SEED), "--rate", "2000"]) as sim:
        port = urlsplit(sim.url).port
        assert port is not None
        relays = Relay(port), Relay(port)
        try:
            env = {"FEEDHANDLER_CONNECTION__REDUNDANCY": "2",
                   "FEEDHANDLER_CONNECTION__URL_B": f"ws://127.0.0.1:{relays[1].port}",
                   "FEEDHANDLER_CONNECTION__BACKOFF_MAX_S": "0.5"}
            started = time.monotonic()
            handler = HandlerProcess(tmp_path / "handler.log",
                                     f"ws://127.0.0.1:{relays[0].port}", kafka_bootstrap,
                                     streams, "--duration", str(RUN_S), env=env)
            for leg, offset in ((0, 0.0), (1, 6.0)):
                for at in CUTS_S:
                    time.sleep(max(0.0, started + at + offset - time.monotonic()))
                    relays[leg].cut()
            summary = handler.finish(timeout=60)
        finally:
            for relay in relays:
                relay.close()
    assert [relay.cuts for relay in relays] == [len(CUTS_S)] * 2, handler.stderr()
    sink = summary["sink"]
    assert sink["failed"] == 0 and sink["undelivered"] == 0, sink
    assert sink["records_delivered"] == sum(summary["records"][k] for k in ID_COLUMN)
    assert summary["errors"] == {} and summary["gaps"] == 0, summary
    assert summary["connections"]["duplicates"] > 0, "both legs delivered"

    events = control_events(kafka_bootstrap, handler.market)
    types = [e["type"] for e in events]
    assert "gap" not in types, handler.stderr()
    lost = [e["leg"] for e in events if e["type"] == "disconnected"]
    assert lost == [0] * len(CUTS_S) + [1] * len(CUTS_S), types
    urls = {(e["leg"], urlsplit(e["url"]).port) for e in events if e["type"] == "connected"}
    assert urls == {(0, relays[0].port), (1, relays[1].port)}

    all_continuous(kafka_bootstrap, handler.market, len(symbols))


@pytest.mark.slow
def test_legs_roll_over_in_turn(kafka_bootstrap: str, tmp_path: Path) -> None:
    """Both legs reach their lifetime together: one closes and rejoins while the other
    serves, then the other; no gap, no repeat."""
    symbols = [s.symbol.lower() for s in Universe.generate(SEED).symbols[:10]]
    streams = [f"{s}@{stream}" for s in symbols for stream in STREAMS.values()]
    env = {"FEEDHANDLER_CONNECTION__REDUNDANCY": "2",
           "FEEDHANDLER_CONNECTION__MAX_LIFETIME_S": "3",
           "FEEDHANDLER_CONNECTION__ROLLOVER_LEAD_S": "1.5"}
    with SimulatorProcess(["--seed", str(SEED), "--rate", "2000", "--lifetime", "3"]) as sim:
        handler = HandlerProcess(tmp_path / "handler.log", sim.url, kafka_bootstrap, streams,
                                 "--duration", "12", env=env)
        summary = handler.finish(timeout=60)
    assert summary["errors"] == {} and summary["gaps"] == 0, summary
    events = control_events(kafka_bootstrap, handler.market)
    assert "gap" not in [e["type"] for e in events], handler.stderr()
    rollovers = [e for e in events if e["type"] == "rollover"]
    assert len(rollovers) >= 6, handler.stderr()
    assert {e["leg"] for e in rollovers} == {0, 1}
    assert {e["cause"] for e in rollovers} == {"lifetime"}
    assert summary["connections"]["rollovers"] == len(rollovers)
    all_continuous(kafka_bootstrap, handler.market, len(symbols))


@pytest.mark.slow
def test_holes_repeats_and_swaps_on_one_leg_are_covered_by_the_other(kafka_bootstrap: str,
                                                                       tmp_path: Path) -> None:
    """The simulator's first connection (one leg) skips ids, repeats events and swaps
    neighbours on every stream; the other leg delivers them all: Kafka holds every id once, in
    order, and no gap is reported."""
    symbols = [s.symbol.lower() for s in Universe.generate(SEED).symbols[:10]]
    streams = [f"{s}@{stream}" for s in symbols for stream in STREAMS.values()]
    faults = ["gap:every=400,n=3,conn=1", "duplicate:every=700,conn=1",
              "reorder:every=900,conn=1"]
    with SimulatorProcess(["--seed", str(SEED), "--rate", "2000",
                           *(arg for fault in faults for arg in ("--fault", fault))]) as sim:
        handler = HandlerProcess(tmp_path / "handler.log", sim.url, kafka_bootstrap, streams,
                                 "--duration", "8",
                                 env={"FEEDHANDLER_CONNECTION__REDUNDANCY": "2"})
        summary = handler.finish(timeout=60)
    assert summary["errors"] == {} and summary["gaps"] == 0, summary
    assert summary["connections"]["duplicates"] > 0, "both legs delivered"
    events = control_events(kafka_bootstrap, handler.market)
    assert [e for e in events if e["type"] in ("gap", "disconnected")] == [], handler.stderr()
    all_continuous(kafka_bootstrap, handler.market, len(symbols))


def test_a_bad_frame_both_legs_carry_is_one_dead_letter(kafka_bootstrap: str,
                                                        tmp_path: Path) -> None:
    """Both legs carry the same malformed frame after every 1,000th event: each is rejected,
    logged and dead-lettered once; the other leg's copy is only counted."""
    symbols = [s.symbol.lower() for s in Universe.generate(SEED).symbols[:10]]
    streams = [f"{s}@{stream}" for s in symbols for stream in STREAMS.values()]
    with SimulatorProcess(["--seed", str(SEED), "--rate", "2000",
                           "--fault", "malformed:every=1000"]) as sim:
        handler = HandlerProcess(tmp_path / "handler.log", sim.url, kafka_bootstrap, streams,
                                 "--duration", "5",
                                 env={"FEEDHANDLER_CONNECTION__REDUNDANCY": "2"})
        summary = handler.finish(timeout=60)
    rejected = summary["errors"].get("malformed_json", 0)
    copies = summary["connections"]["rejected_copies"]
    assert summary["errors"] == {"malformed_json": rejected} and summary["gaps"] == 0, summary
    # (the run may end between one leg's malformed frame and the other's)
    assert rejected >= 4 and copies in (rejected, rejected - 1), summary
    dead = list(read_messages(kafka_bootstrap, [f"binance.{handler.market}.deadletter"]))
    assert len(dead) == rejected and {m.value() for m in dead} == {MALFORMED}
    all_continuous(kafka_bootstrap, handler.market, len(symbols))


def all_continuous(bootstrap: str, market: str, symbols: int) -> None:
    for kind in ID_COLUMN:
        per_symbol = events_on_kafka(bootstrap, market, kind)
        assert len(per_symbol) == symbols, kind
        for symbol, records in per_symbol.items():
            assert_continuous(kind, symbol, records)
