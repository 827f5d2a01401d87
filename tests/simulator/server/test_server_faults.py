"""Every fault, on demand (`sim.faults`) and on a schedule (`FaultSpec`, i.e. `--fault`)."""

from __future__ import annotations

import asyncio
import itertools
import time

import orjson
import pytest
import websockets

from feedhandler.simulator.server import FaultSpec
from feedhandler.simulator.server.faults import INVALID_UTF8, MALFORMED
from feedhandler.simulator.testing import SimulatorServer
from tests.simulator.server.simhelpers import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawClient,
    StubFactory,
    connect,
    recv_json,
)

TRADE = "btcusdt@trade"


async def trade_ids(ws: websockets.ClientConnection, count: int) -> list[int]:
    return [(await recv_json(ws))["t"] for _ in range(count)]


def steps(ids: list[int]) -> list[int]:
    return [b - a for a, b in itertools.pairwise(ids)]


# --- connection-level faults -------------------------------------------------------------


async def test_drop_closes_tcp_without_a_close_frame(stub: StubFactory) -> None:
    async with (
        SimulatorServer(source=stub, rate=200) as sim,
        connect(sim.url + "/ws/" + TRADE) as ws,
    ):
        await recv_json(ws)
        assert sim.faults.drop() == 1
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            while True:
                await recv_json(ws)
        assert closed.value.rcvd is None  # no close frame came
        await asyncio.sleep(0.05)
        assert sim.connections == []


async def test_close_with_a_chosen_code(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, rate=200) as sim:
        for code, reason in ((4001, "bye"), (1011, ""), (1013, "try later")):
            async with connect(sim.url + "/ws/" + TRADE) as ws:
                await recv_json(ws)
                sim.faults.close(code, reason)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await recv_json(ws)
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (code, reason)


async def test_stall_stops_events_and_pings_but_keeps_the_connection(stub: StubFactory) -> None:
    config = {"rate": 100, "ping_interval": 0.05, "max_incoming": 100}
    async with SimulatorServer(source=stub, **config) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, "/ws/" + TRADE)
        frames: list[tuple[float, int, bytes]] = []

        async def read_for(seconds: float) -> None:
            async with asyncio.timeout(seconds):
                while True:
                    kind, payload = await client.recv()
                    frames.append((time.monotonic(), kind, payload))
                    if kind == OP_PING:
                        client.send(OP_PONG, payload)

        with pytest.raises(TimeoutError):
            await read_for(0.2)
        stalled = time.monotonic()
        assert sim.faults.stall(0.4) == 1
        with pytest.raises(TimeoutError):
            await read_for(0.7)
        quiet = [kind for at, kind, _ in frames if stalled + 0.02 < at < stalled + 0.38]
        assert quiet == []  # neither events nor pings
        after = [orjson.loads(p)["t"] for at, kind, p in frames if kind == OP_TEXT and at > stalled]
        assert len(after) >= 15 and steps(after) == [1] * (len(after) - 1)  # no events lost
        assert any(kind == OP_PING for at, kind, _ in frames if at > stalled + 0.4)
        assert sim.connections[0].is_open
        client.close()


async def test_ignore_pings_for_a_while(stub: StubFactory) -> None:
    async with (  # rate 1: websockets stops reading (pongs too) when 16 events are unread
        SimulatorServer(source=stub, rate=1) as sim,
        connect(sim.url + "/ws/" + TRADE) as ws,
    ):
        sim.faults.ignore_pings(seconds=0.4)
        unanswered = await ws.ping(b"1")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.shield(unanswered), 0.3)
        await asyncio.sleep(0.15)
        answered = await ws.ping(b"2")
        await asyncio.wait_for(answered, 0.5)  # answered again (pong 2 also settles ping 1)


async def test_garbage_frames_between_good_events(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, rate=200) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, "/ws/" + TRADE)
        await client.recv_until(OP_TEXT)
        sim.faults.malformed()
        sim.faults.invalid_utf8()
        sim.faults.binary()
        sim.faults.oversized(size=200_000)
        frames = [await client.recv() for _ in range(10)]
        assert sim.connections[0].injected == 4
        client.close()

    def trade_id(kind: int, payload: bytes) -> int | None:
        try:
            return int(orjson.loads(payload)["t"]) if kind == OP_TEXT else None
        except (orjson.JSONDecodeError, KeyError):
            return None

    good = [trade_id(*frame) for frame in frames if trade_id(*frame) is not None]
    odd = [frame for frame in frames if trade_id(*frame) is None]
    assert steps(good) == [1] * (len(good) - 1)  # no good event lost around the garbage
    assert odd[:3] == [(OP_TEXT, MALFORMED), (OP_TEXT, INVALID_UTF8), (OP_BINARY, bytes(range(16)))]
    kind, oversized = odd[3]
    assert kind == OP_TEXT and len(oversized) == 200_000
    assert orjson.loads(oversized)["e"] == "oversized"
    assert len(odd) == 4
    with pytest.raises(UnicodeDecodeError):
        INVALID_UTF8.decode()


@pytest.mark.parametrize(
    ("fault", "expected_steps"),
    [("gap", [1, 4, 1]), ("duplicate", [1, 0, 1]), ("reorder", [1, 2, -1, 2])],
)
async def test_sequence_faults(stub: StubFactory, fault: str, expected_steps: list[int]) -> None:
    async with (
        SimulatorServer(source=stub, rate=200) as sim,
        connect(sim.url + "/ws/" + TRADE) as ws,
    ):
        before = await trade_ids(ws, 3)
        {"gap": lambda: sim.faults.gap(TRADE, n=3), "duplicate": lambda: sim.faults.duplicate(),
         "reorder": lambda: sim.faults.reorder(TRADE)}[fault]()  # fmt: skip
        after = await trade_ids(ws, 30)
    ids = before + after
    changes = [i for i, step in enumerate(steps(ids)) if step != 1]
    assert len(changes) == sum(step != 1 for step in expected_steps)  # one disturbance only
    start = changes[0] - 1
    assert steps(ids)[start : start + len(expected_steps)] == expected_steps


async def test_gap_on_the_real_market_skips_trade_ids() -> None:
    async with (
        SimulatorServer(seed=3, symbols=20, rate=300) as sim,
        connect(sim.url + "/ws/" + TRADE) as ws,
    ):
        before = await trade_ids(ws, 5)
        sim.faults.gap(TRADE, n=2)
        after = await trade_ids(ws, 40)
    assert sorted(steps(before + after)) == [1] * 43 + [3]


async def test_server_shutdown_event_raw_combined_and_microseconds(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, rate=20) as sim:
        urls = [
            "/ws/" + TRADE,
            "/stream?streams=" + TRADE,
            "/ws/" + TRADE + "?timeUnit=MICROSECOND",
        ]
        async with (
            connect(sim.url + urls[0]) as raw,
            connect(sim.url + urls[1]) as combined,
            connect(sim.url + urls[2]) as micro,
        ):
            await sim.wait_for_connections(3)
            now_ms = time.time_ns() // 1_000_000
            assert sim.faults.server_shutdown() == 3
            events = []
            for ws in (raw, combined, micro):
                while True:
                    event = await recv_json(ws)
                    if "serverShutdown" in orjson.dumps(event).decode():
                        events.append(event)
                        break
    assert events[0]["e"] == "serverShutdown" and set(events[0]) == {"e", "E"}
    assert abs(events[0]["E"] - now_ms) < 1000
    assert events[1]["stream"] == "!serverShutdown"
    assert events[1]["data"]["e"] == "serverShutdown"
    assert abs(events[2]["E"] // 1000 - now_ms) < 1000 and len(str(events[2]["E"])) == 16


async def test_stop_sends_server_shutdown_then_closes(stub: StubFactory) -> None:
    sim = SimulatorServer(source=stub, rate=20, shutdown_grace=0.2)
    async with sim, connect(sim.url + "/ws/" + TRADE) as ws:
        await recv_json(ws)
        stopping = asyncio.create_task(sim.stop())
        while (event := await recv_json(ws)).get("e") != "serverShutdown":
            pass
        got_event = time.monotonic()
        with pytest.raises(websockets.ConnectionClosedOK) as closed:
            while True:
                await recv_json(ws)
        assert time.monotonic() - got_event >= 0.18
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "Server shutdown")
        await stopping
    assert event["e"] == "serverShutdown"


async def test_stop_gives_ws_api_clients_the_same_announcement_grace_and_close(
        stub: StubFactory) -> None:
    sim = SimulatorServer(source=stub, rate=20, shutdown_grace=0.2)
    async with sim, connect(sim.url + "/ws-api/v3") as ws:
        stopping = asyncio.create_task(sim.stop())
        event = await recv_json(ws)
        got_event = time.monotonic()
        with pytest.raises(websockets.ConnectionClosedOK) as closed:
            await recv_json(ws)
        assert time.monotonic() - got_event >= 0.18  # not dropped at once
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "Server shutdown")
        await stopping
    assert event["event"]["e"] == "serverShutdown"


async def test_refuse_handshakes_on_demand(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, rate=20) as sim:
        sim.faults.refuse_handshakes(status=418, count=2, retry_after=7)
        for _ in range(2):
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with connect(sim.url + "/ws/" + TRADE):
                    pass
            response = refused.value.response
            assert (response.status_code, response.headers["Retry-After"]) == (418, "7")
        async with connect(sim.url + "/ws/" + TRADE) as ws:
            assert (await recv_json(ws))["t"] == 1
        with pytest.raises(ValueError, match="429 or 418"):
            sim.faults.refuse_handshakes(status=503)


# --- scheduled faults (--fault) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("malformed:every=1000", FaultSpec("malformed", every=1000)),
        ("drop:after=0", FaultSpec("drop", after=0)),
        ("stall:after=5000,seconds=2.5", FaultSpec("stall", after=5000, params={"seconds": 2.5})),
        (
            "gap:every=500,stream=btcusdt@kline_1h@+08:00,n=3",
            FaultSpec("gap", every=500, params={"stream": "btcusdt@kline_1h@+08:00", "n": 3}),
        ),
        (
            "close:every=7,code=4000,reason=go",
            FaultSpec("close", every=7, params={"code": 4000, "reason": "go"}),
        ),
        ("refuse:every=3,status=418", FaultSpec("refuse", every=3, params={"status": 418})),
        ("shutdown:after=500,conn=3", FaultSpec("shutdown", after=500, conn=3)),
    ],
)
def test_fault_spec_parsing(text: str, spec: FaultSpec) -> None:
    assert FaultSpec.parse(text) == spec


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("explode:every=1", "unknown fault 'explode'"),
        ("malformed", "exactly one of every=N or after=N"),
        ("malformed:every=1,after=2", "exactly one of every=N or after=N"),
        ("malformed:every=0", "every must be >= 1"),
        ("stall:after=1,seconds=soon", "seconds must be float"),
        ("drop:after=1,n=2", "takes no n"),
        ("gap:every", "expected key=value"),
        ("shutdown:after=1,conn=0", "conn= picks a connection id"),
        ("refuse:every=1,conn=2", "conn= picks a connection id"),
        ("refuse:after=0", "counts handshake attempts from 1"),
    ],
)
def test_fault_spec_errors(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        FaultSpec.parse(text)


async def test_scheduled_malformed_frames_are_exactly_placed(stub: StubFactory) -> None:
    config = {"fast": True, "max_messages": 50, "faults": (FaultSpec.parse("malformed:every=10"),)}
    async with SimulatorServer(source=stub, **config) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, "/ws/" + TRADE)
        frames = [await client.recv() for _ in range(55)]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.recv(), 0.3)
        assert sim.connections[0].injected == 5
        client.close()
    shape = ["bad" if payload == MALFORMED else orjson.loads(payload)["t"] for _, payload in frames]
    expected: list[object] = []
    for block in range(5):
        expected += [*range(block * 10 + 1, block * 10 + 11), "bad"]
    assert shape == expected


async def test_scheduled_drop_and_gap(stub: StubFactory) -> None:
    faults = (FaultSpec.parse("gap:every=5,n=2"), FaultSpec.parse("drop:after=12"))
    async with SimulatorServer(source=stub, fast=True, faults=faults) as sim:
        async with connect(sim.url + "/ws/" + TRADE) as ws:
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                ids = []
                while True:
                    ids.append((await recv_json(ws))["t"])
        assert closed.value.rcvd is None
        assert ids == [1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 15, 16]
        assert sim.connections == []


async def test_scheduled_refusals(stub: StubFactory) -> None:
    faults = (FaultSpec.parse("refuse:every=2,retry_after=3"),)
    async with SimulatorServer(source=stub, rate=20, faults=faults) as sim:
        outcomes = []
        for _ in range(4):
            try:
                async with connect(sim.url + "/ws/" + TRADE):
                    outcomes.append(101)
            except websockets.InvalidStatus as refused:
                response = refused.value.response if hasattr(refused, "value") else refused.response
                outcomes.append((response.status_code, response.headers["Retry-After"]))
        assert outcomes == [101, (429, "3"), 101, (429, "3")]


async def test_after_zero_fires_before_the_first_event(stub: StubFactory) -> None:
    faults = (FaultSpec.parse("shutdown:after=0"), FaultSpec.parse("close:after=2,code=4002"))
    async with SimulatorServer(source=stub, rate=100, faults=faults) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, "/ws/" + TRADE)
        first = orjson.loads((await client.recv())[1])
        assert first["e"] == "serverShutdown"
        assert [orjson.loads((await client.recv())[1])["t"] for _ in range(2)] == [1, 2]
        kind, payload = await client.recv()
        assert (kind, int.from_bytes(payload[:2], "big")) == (OP_CLOSE, 4002)
        client.close()


async def test_a_fault_with_conn_fires_on_that_connection_only(stub: StubFactory) -> None:
    faults = (FaultSpec.parse("close:after=2,code=4003,conn=2"),)
    async with SimulatorServer(source=stub, rate=200, faults=faults) as sim:
        first = await RawClient.open("127.0.0.1", sim.port, "/ws/" + TRADE)
        second = await RawClient.open("127.0.0.1", sim.port, "/ws/" + TRADE)
        assert [(await second.recv())[0] for _ in range(2)] == [OP_TEXT, OP_TEXT]
        kind, payload = await second.recv()  # after its own second event
        assert (kind, int.from_bytes(payload[:2], "big")) == (OP_CLOSE, 4003)
        # connection 1 sails past its second event: one market, ids shared
        ids = [orjson.loads((await first.recv())[1])["t"] for _ in range(4)]
        assert ids == list(range(ids[0], ids[0] + 4)) and ids[-1] >= 3
        first.close()
        second.close()
