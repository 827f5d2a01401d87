"""Ping/pong timing, the incoming message limit and the connection lifetime, scaled to ms."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
import websockets

from feedhandler.simulator.testing import SimulatorServer
from tests.simulator.server.simhelpers import (
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    RawClient,
    StubFactory,
    connect,
    recv_json,
    request,
)

FAST_PINGS = {"ping_interval": 0.1, "pong_timeout": 0.35, "max_incoming": 100, "rate": 20.0}


def close_code(payload: bytes) -> tuple[int, str]:
    return int.from_bytes(payload[:2], "big"), payload[2:].decode()


async def test_answered_pings_keep_the_connection_alive(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, **FAST_PINGS) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, "/ws/btcusdt@trade")
        pings: list[tuple[float, bytes]] = []
        async with asyncio.timeout(1.5):
            while len(pings) < 10:
                kind, payload = await client.recv()
                assert kind != OP_CLOSE
                if kind == OP_PING:
                    pings.append((time.monotonic(), payload))
                    client.send(OP_PONG, payload)
        (conn,) = sim.connections
        assert conn.is_open
        assert len({payload for _, payload in pings}) == 10  # every ping carries its own payload
        gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(pings)]
        assert all(0.07 < gap < 0.2 for gap in gaps), gaps
        await asyncio.sleep(0.02)
        assert conn.pongs_accepted == 10
        client.close()


async def test_no_pong_closes_after_the_timeout(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, **FAST_PINGS) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, "/ws/btcusdt@trade")
        await client.recv_until(OP_PING)
        first_ping = time.monotonic()
        close = await client.recv_until(OP_CLOSE, timeout=2.0)
        waited = time.monotonic() - first_ping
        assert close_code(close) == (1008, "Pong timeout")
        assert 0.3 < waited < 0.6, waited
        client.send(OP_CLOSE, close[:2])
        with pytest.raises(asyncio.IncompleteReadError):
            await asyncio.wait_for(client.recv(), 2.0)  # the server drops TCP
        assert sim.connections == []


@pytest.mark.parametrize("path", ["/ws/btcusdt@trade", "/ws-api/v3"])
async def test_a_close_without_a_code_is_answered_with_1000(path: str, stub: StubFactory) -> None:
    """Not with the empty close's "no code", 0 on the wire, which RFC 6455 does not allow."""
    async with SimulatorServer(source=stub, **FAST_PINGS) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, path)
        client.send(OP_CLOSE)
        close = await client.recv_until(OP_CLOSE, timeout=2.0)
        assert close_code(close)[0] == 1000
        client.close()


async def test_unsolicited_pongs_do_not_keep_it_alive(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, **FAST_PINGS) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, "/ws/btcusdt@trade")
        started = time.monotonic()

        async def keep_sending_pongs() -> None:
            while True:
                client.send(OP_PONG)  # empty, as the docs ask
                client.send(OP_PONG, b"not-a-ping-payload")
                await asyncio.sleep(0.05)

        sender = asyncio.create_task(keep_sending_pongs())
        close = await client.recv_until(OP_CLOSE, timeout=2.0)
        sender.cancel()
        assert close_code(close) == (1008, "Pong timeout")
        assert 0.4 < time.monotonic() - started < 0.8
        client.close()


async def test_a_late_pong_for_a_newer_ping_settles_the_older_ones(stub: StubFactory) -> None:
    config = {**FAST_PINGS, "pong_timeout": 0.25}
    async with SimulatorServer(source=stub, **config) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, "/ws/btcusdt@trade")
        await client.recv_until(OP_PING)  # left unanswered
        second = await client.recv_until(OP_PING)
        client.send(OP_PONG, second)  # 0.1 s later: answers both within the timeout
        for _ in range(4):
            client.send(OP_PONG, await client.recv_until(OP_PING))
        await asyncio.sleep(0.05)
        (conn,) = sim.connections
        assert conn.is_open and conn.pongs_accepted == 5 and conn.pings_sent == 6
        client.close()


async def test_client_pings_are_answered(stub: StubFactory) -> None:
    async with (
        SimulatorServer(source=stub, rate=50) as sim,
        connect(sim.url + "/ws/btcusdt@trade") as ws,
    ):
        pong = await ws.ping(b"hello")
        latency = await asyncio.wait_for(pong, 1.0)
        assert latency < 0.5


async def test_sixth_message_within_the_window_disconnects(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, rate=20, max_incoming=5, incoming_window=0.5) as sim:
        async with connect(sim.url + "/ws/btcusdt@trade") as ws:
            # pings, pongs and control messages all count
            await asyncio.wait_for(await ws.ping(b"1"), 1.0)
            await asyncio.wait_for(await ws.ping(b"2"), 1.0)
            await ws.pong(b"unsolicited")
            assert (await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}))["id"] == 1
            assert (await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2}))["id"] == 2
            await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":3}')
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                while True:
                    await recv_json(ws)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                1008,
                "Too many requests",
            )
        assert sim.connections == []


async def test_the_window_slides(stub: StubFactory) -> None:
    async with (
        SimulatorServer(source=stub, rate=20, max_incoming=5, incoming_window=0.3) as sim,
        connect(sim.url + "/ws/btcusdt@trade") as ws,
    ):
        for burst in range(3):
            for i in range(5):
                await asyncio.wait_for(await ws.ping(f"{burst}.{i}".encode()), 1.0)
            await asyncio.sleep(0.35)
        assert (await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 9}))["id"] == 9
        (conn,) = sim.connections
        assert conn.received == 16


async def test_lifetime_ends_with_a_close_frame(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, rate=50, lifetime=0.3) as sim:
        started = time.monotonic()
        async with connect(sim.url + "/ws/btcusdt@trade") as ws:
            with pytest.raises(websockets.ConnectionClosedOK) as closed:
                while True:
                    await recv_json(ws)
            lived = time.monotonic() - started
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            1000,
            "Connection lifetime exceeded",
        )
        assert 0.28 < lived < 0.6, lived
        assert sim.connections == []


async def test_ws_api_connections_are_pinged_and_closed_at_their_lifetime(
        stub: StubFactory) -> None:
    """The same keep-alive rules on /ws-api/v3 (Binance: server ping every 20 s, pong within
    a minute, 24 h lifetime)."""
    async with SimulatorServer(source=stub, **FAST_PINGS) as sim:
        silent = await RawClient.open("127.0.0.1", sim.port, "/ws-api/v3")
        await silent.recv_until(OP_PING)
        close = await silent.recv_until(OP_CLOSE, timeout=2.0)
        assert close_code(close) == (1008, "Pong timeout")
    async with SimulatorServer(source=stub, **{**FAST_PINGS, "lifetime": 0.6}) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, "/ws-api/v3")
        pongs = 0
        async with asyncio.timeout(2.0):
            while True:
                kind, payload = await client.recv()
                if kind == OP_PING:
                    client.send(OP_PONG, payload)
                    pongs += 1
                elif kind == OP_CLOSE:
                    break
        assert close_code(payload) == (1000, "Connection lifetime exceeded") and pongs >= 3
