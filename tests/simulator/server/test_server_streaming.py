"""Sending: --max-messages exactness, paced smoothness, fast mode with pre-generation, flow
control, timeUnit, TLS, and the real market model behind the server."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from feedhandler.simulator.server.tls import write_self_signed
from feedhandler.simulator.testing import SimulatorServer
from tests.simulator.server.simhelpers import (
    OP_TEXT,
    RawClient,
    StubFactory,
    StubSource,
    connect,
    recv_json,
    request,
)


async def read_ids(ws: ClientConnection, count: int) -> tuple[dict[str, list[int]], int]:
    """Trade ids per symbol of the next `count` (raw) events, and their wire size."""
    ids: dict[str, list[int]] = {}
    wire = 0
    for _ in range(count):
        payload = await asyncio.wait_for(ws.recv(decode=False), 2.0)
        wire += len(payload) + 2  # these payloads are all < 126 bytes: 2-byte headers
        event = orjson.loads(payload)
        ids.setdefault(event["s"], []).append(event["t"])
    return ids, wire


async def test_max_messages_is_exact_and_the_connection_stays_useful(stub: StubFactory) -> None:
    config = {
        "fast": True,
        "batch": 512,
        "max_messages": 20_000,
        "ping_interval": 0.25,
        "max_incoming": 50,
    }  # pongs may bunch up behind 20k events on a busy machine
    async with (
        SimulatorServer(source=stub, **config) as sim,
        connect(sim.url + "/ws/btcusdt@trade/ethusdt@trade") as ws,
    ):
        ids, wire = await read_ids(ws, 20_000)
        assert ids == {"BTCUSDT": list(range(1, 10_001)), "ETHUSDT": list(range(1, 10_001))}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.4)  # not one event more
        listing = {"method": "LIST_SUBSCRIPTIONS", "id": 1}
        assert await request(ws, listing) == {
            "result": ["btcusdt@trade", "ethusdt@trade"],
            "id": 1,
        }
        (conn,) = sim.connections
        assert (conn.sent, conn.bytes_sent) == (20_000, wire)
        assert conn.pongs_accepted >= 2  # pings keep coming and websockets answers them
        assert conn.is_open


async def test_paced_mode_is_smooth(stub: StubFactory) -> None:
    async with (
        SimulatorServer(source=stub, rate=200, max_messages=100) as sim,
        connect(sim.url + "/ws/btcusdt@trade") as ws,
    ):
        arrivals = []
        for _ in range(100):
            await ws.recv()
            arrivals.append(time.monotonic())
        span = arrivals[-1] - arrivals[0]
        assert 0.4 < span < 0.7, span
        tenths = [
            sum(1 for t in arrivals if i / 10 <= t - arrivals[0] < (i + 1) / 10) for i in (0, 2, 4)
        ]
        assert all(12 <= n <= 28 for n in tenths), tenths  # ~20 per 100 ms, no bursts
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.2)
        assert sim.connections[0].sent == 100


async def test_pregenerated_events_continue_seamlessly(stub: StubFactory) -> None:
    config = {"fast": True, "pregenerate": 3000, "batch": 256, "max_messages": 5000}
    async with (
        SimulatorServer(source=stub, **config) as sim,
        connect(sim.url + "/ws/btcusdt@trade/ethusdt@trade") as ws,
    ):
        ids, _ = await read_ids(ws, 5000)
        assert ids == {"BTCUSDT": list(range(1, 2501)), "ETHUSDT": list(range(1, 2501))}
        assert sim.connections[0].sent == 5000


async def test_a_slow_reader_pauses_the_sender(stub: StubFactory) -> None:
    write_buffer = 64 * 1024
    async with SimulatorServer(source=stub, fast=True, batch=256, write_buffer=write_buffer) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, "/ws/btcusdt@trade")
        (conn,) = await sim.wait_for_connections(1)
        # The client reads nothing: kernel buffers fill, then ours, and sending stops (how
        # soon depends on the machine's load: wait for it, up to a deadline).
        deadline = asyncio.get_running_loop().time() + 10
        stalled_at = -1
        while conn.sent != stalled_at:
            assert asyncio.get_running_loop().time() < deadline, "the sender never paused"
            stalled_at = conn.sent
            await asyncio.sleep(0.3)
        assert stalled_at > 0
        chunk = 256 * 60  # one batch of these events, generously
        assert conn.write_buffer_size <= write_buffer + chunk
        for _ in range(stalled_at):  # drain everything sent so far, in order
            kind, payload = await client.recv()
            assert kind == OP_TEXT
        assert orjson.loads(payload)["t"] == stalled_at
        await asyncio.sleep(0.05)
        assert conn.sent > stalled_at  # resumed
        client.close()


async def test_time_unit_microsecond(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, rate=100) as sim:
        for query, scale in (
            ("", 1),
            ("?timeUnit=MICROSECOND", 1000),
            ("?timeUnit=millisecond", 1),
        ):
            async with connect(sim.url + "/ws/btcusdt@trade" + query) as ws:
                event = await recv_json(ws)
                assert event["E"] == (StubSource.EPOCH_MS + event["t"]) * scale


async def test_real_market_is_deterministic_in_both_time_units() -> None:
    async with SimulatorServer(seed=7, symbols=20, fast=True, max_messages=200) as sim:
        async with connect(sim.url + "/ws/btcusdt@trade") as ws:
            millis = [await recv_json(ws) for _ in range(200)]
        url = sim.url + "/stream?streams=btcusdt%40trade&timeUnit=MICROSECOND"
        async with connect(url) as ws:
            micros = [await recv_json(ws) for _ in range(200)]
    assert {event["stream"] for event in micros} == {"btcusdt@trade"}
    assert [e["t"] for e in millis] == [e["data"]["t"] for e in micros]
    assert all(e["e"] == "trade" and e["s"] == "BTCUSDT" for e in millis)
    assert all(len(str(e["E"])) == 13 for e in millis)
    assert [e["E"] for e in millis] == [e["data"]["E"] // 1000 for e in micros]
    ids = [e["t"] for e in millis]
    assert ids == list(range(ids[0], ids[0] + 200))


async def test_real_market_rejects_unlisted_symbols() -> None:
    async with (
        SimulatorServer(seed=7, symbols=20, rate=100) as sim,
        connect(sim.url + "/ws") as ws,
    ):
        unknown = {"method": "SUBSCRIBE", "params": ["zzzzzzusdt@trade"], "id": 1}
        assert await request(ws, unknown) == {
            "code": 2,
            "msg": "Invalid request: invalid stream",
            "id": 1,
        }
        known = {"method": "SUBSCRIBE", "params": ["ethusdt@bookTicker"], "id": 2}
        assert await request(ws, known) == {"result": None, "id": 2}
        event = await recv_json(ws)
        assert event["s"] == "ETHUSDT" and set(event) == {"u", "s", "b", "B", "a", "A"}


async def test_tls_with_a_self_signed_certificate(stub: StubFactory, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, "127.0.0.1")
    context = ssl.create_default_context(cafile=cert)
    async with SimulatorServer(source=stub, rate=100, tls_cert=cert, tls_key=key) as sim:
        assert sim.url.startswith("wss://127.0.0.1:")
        async with connect(sim.url + "/ws/btcusdt@trade", ssl=context) as ws:
            assert (await recv_json(ws))["t"] == 1
        for host in ("localhost", "127.0.0.1"):
            url = f"wss://{host}:{sim.port}/ws/btcusdt@trade"
            async with connect(url, ssl=context) as ws:
                assert (await recv_json(ws))["e"] == "trade"
        with pytest.raises(ssl.SSLCertVerificationError):
            async with connect(sim.url + "/ws/btcusdt@trade", ssl=ssl.create_default_context()):
                pass


@pytest.mark.parametrize(
    "target",
    [
        "/stream?streams=btcusdt@kline_1m@+08:00",
        "/stream?streams=btcusdt%40kline_1m%40%2B08%3A00&timeUnit=MILLISECOND",
        "/ws/btcusdt%40kline_1m%40+08%3A00?timeUnit=MILLISECOND",
    ],
)
async def test_percent_encoded_names_with_a_plus_reach_the_market(target: str) -> None:
    async with (
        SimulatorServer(seed=7, symbols=20, fast=True, max_messages=2) as sim,
        connect(sim.url + target) as ws,
    ):
        events = [await recv_json(ws) for _ in range(2)]
        assert sim.connections[0].subscriptions() == ["btcusdt@kline_1m@+08:00"]
    klines = [event.get("data", event) for event in events]
    assert all(k["e"] == "kline" and k["k"]["i"] == "1m" for k in klines)
    if target.startswith("/stream"):
        assert {event["stream"] for event in events} == {"btcusdt@kline_1m@+08:00"}
