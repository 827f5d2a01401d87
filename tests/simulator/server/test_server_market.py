"""One market per process: connections share ids and times; REST depth and the true books come
from the same market."""

from __future__ import annotations

import asyncio
import itertools
import json
import statistics
import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest

from feedhandler.simulator.server import market
from feedhandler.simulator.server.market import to_millis
from feedhandler.simulator.testing import SimulatorServer
from tests.simulator.market.marketcheck import LocalBook
from tests.simulator.server.simhelpers import OP_CLOSE, OP_TEXT, RawClient, StubFactory, recv_json
from tests.simulator.server.simhelpers import connect as bounded_connect

TRADE = "btcusdt@trade"


def connect(url: str) -> Any:
    """A client with an unbounded queue: one that stopped reading, its queue full, could not
    read the close frame, and closing would wait for its 10 s timeout."""
    return bounded_connect(url, max_queue=None)


async def http_get(url: str) -> tuple[int, Any]:
    def get() -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    return await asyncio.to_thread(get)


def test_to_millis_cuts_every_microsecond_time_and_nothing_else() -> None:
    payload = (
        b'{"e":"kline","E":1767225600123456,"s":"BTCUSDT","k":{"t":1767225600000000,'
        b'"T":1767225659999999,"f":123456789,"L":1234567890,"o":"1767225600123456.5"},'
        b'"x":[12345678901234567,1767225600123456]}'
    )
    assert to_millis(payload) == (
        b'{"e":"kline","E":1767225600123,"s":"BTCUSDT","k":{"t":1767225600000,'
        b'"T":1767225659999,"f":123456789,"L":1234567890,"o":"1767225600123456.5"},'
        b'"x":[12345678901234567,1767225600123]}'
    )


async def test_two_connections_see_the_same_events() -> None:
    streams = "btcusdt@trade/btcusdt@aggTrade/ethusdt@depth@100ms"
    async with (
        SimulatorServer(seed=7, symbols=20, rate=300) as sim,
        connect(sim.url + "/ws/" + streams) as first,
    ):
        released = sim.market.record()
        early = [await recv_json(first) for _ in range(50)]
        url = sim.url + "/stream?streams=" + streams + "&timeUnit=MICROSECOND"
        async with connect(url) as second:
            late = [(await recv_json(second))["data"] for _ in range(100)]
            more = [await recv_json(first) for _ in range(150)]
    mine = early + more
    sent = [orjson.loads(to_millis(payload)) for _, payload in released]
    skip = next(i for i, event in enumerate(mine) if event in sent)  # recorded from here
    start = sent.index(mine[skip])
    assert skip < 5 and sent[start : start + len(mine) - skip] == mine[skip:]
    key = {"trade": "t", "aggTrade": "a", "depthUpdate": "u"}
    ids = [(e["e"], e[key[e["e"]]]) for e in mine]
    assert len(set(ids)) == len(ids)  # one sequence, never restarted
    overlap = [
        e for e in mine if (e["e"], e[key[e["e"]]]) in {(x["e"], x[key[x["e"]]]) for x in late}
    ]
    assert len(overlap) == 100  # the second connection joined mid-sequence, and got all of it
    assert late[0]["e"] != early[0]["e"] or late[0][key[late[0]["e"]]] > ids[0][1]
    for ms, us in zip(overlap, late, strict=True):
        assert ms["E"] == us["E"] // 1000
        assert {k: v for k, v in ms.items() if k not in "ET"} == {
            k: v for k, v in us.items() if k not in "ET"
        }


async def test_a_new_connection_joins_the_sequence_instead_of_restarting() -> None:
    async with SimulatorServer(seed=7, symbols=20, rate=2000) as sim:
        async with connect(sim.url + "/ws/" + TRADE) as ws:
            before = [(await recv_json(ws))["t"] for _ in range(50)]
        async with connect(sim.url + "/ws/" + TRADE) as ws:
            after = [(await recv_json(ws))["t"] for _ in range(50)]
    assert before == list(range(before[0], before[0] + 50))
    assert after == list(range(after[0], after[0] + 50))
    assert after[0] > before[-1]


async def test_sequence_faults_hit_one_connection_only(stub: StubFactory) -> None:
    async with (
        SimulatorServer(source=stub, rate=500) as sim,
        connect(sim.url + "/ws/" + TRADE) as one,
        connect(sim.url + "/ws/" + TRADE) as two,
    ):
        first, _ = await sim.wait_for_connections(2)
        await recv_json(one), await recv_json(two)
        sim.faults.gap(TRADE, n=3, conn=first)
        ones = [(await recv_json(one))["t"] for _ in range(200)]
        twos = [(await recv_json(two))["t"] for _ in range(203)]
    assert sorted(b - a for a, b in itertools.pairwise(ones)) == [1] * 198 + [4]
    assert [b - a for a, b in itertools.pairwise(twos)] == [1] * 202


async def test_max_messages_per_connection_on_the_shared_market(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, rate=1000, max_messages=30) as sim:
        async with connect(sim.url + "/ws/" + TRADE) as one:
            ids = [(await recv_json(one))["t"] for _ in range(30)]
            with pytest.raises(TimeoutError):
                await recv_json(one, timeout=0.3)
        async with connect(sim.url + "/ws/" + TRADE) as two:  # a fresh budget
            more = [(await recv_json(two))["t"] for _ in range(30)]
    assert ids == list(range(1, 31)) and more[0] > 30


async def test_rest_depth_and_diffs_rebuild_the_true_book() -> None:
    stream = "btcusdt@depth@100ms"
    async with (
        SimulatorServer(seed=7, symbols=20, rate=40) as sim,
        connect(sim.url + "/ws/" + stream) as ws,
    ):
        buffered = [await recv_json(ws) for _ in range(3)]
        status, snapshot = await http_get(
            sim.url.replace("ws:", "http:") + "/api/v3/depth?symbol=BTCUSDT&limit=5000"
        )
        assert status == 200 and snapshot["lastUpdateId"] >= buffered[-1]["u"]
        book = LocalBook(snapshot)
        for event in buffered:
            book.apply(event)
        compared = 0
        for _ in range(40):
            book.apply(await recv_json(ws))
            last_id, bids, asks = sim.market.snapshot("BTCUSDT", 1 << 30)
            if last_id == book.update_id:  # the market has not moved on since this diff
                assert book.sorted_levels() == (bids, asks)
                compared += 1
        assert compared >= 10
        true = sim.market.true_books()
        assert set(true) == {"BTCUSDT"} and true["BTCUSDT"][0] >= book.update_id


async def test_http_endpoints_answer_like_binance() -> None:
    async with SimulatorServer(seed=7, symbols=20, rate=100) as sim:
        base = sim.url.replace("ws:", "http:")
        status, depth = await http_get(base + "/api/v3/depth?symbol=ETHUSDT&limit=5")
        assert status == 200 and set(depth) == {"lastUpdateId", "bids", "asks"}
        assert len(depth["bids"]) == len(depth["asks"]) == 5
        assert float(depth["bids"][0][0]) < float(depth["asks"][0][0])
        assert (await http_get(base + "/api/v3/depth?symbol=ETHUSDT"))[1]["bids"][:5] == depth[
            "bids"
        ]
        assert await http_get(base + "/api/v3/depth") == (
            400,
            {
                "code": -1102,
                "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
            },
        )
        assert (await http_get(base + "/api/v3/depth?symbol=NOPE"))[1]["code"] == -1121
        assert (await http_get(base + "/api/v3/depth?symbol=ETHUSDT&limit=x"))[1]["code"] == -1100
        status, books = await http_get(base + "/sim/books?symbols=ETHUSDT,BTCUSDT")
        assert status == 200 and list(books) == ["ETHUSDT", "BTCUSDT"]
        assert books["ETHUSDT"]["bids"][:5] == depth["bids"]
        full = sim.market.true_books(["ETHUSDT"])["ETHUSDT"]
        assert len(books["ETHUSDT"]["asks"]) == len(full[2]) > 5
        assert sim.refused == 0 and sim.connections == []


async def test_pregenerated_market_is_paced_and_continues_live() -> None:
    streams = [f"{s}@trade" for s in ("btcusdt", "ethusdt", "bnbusdt", "solusdt")]
    config: dict[str, Any] = {
        "seed": 7,
        "symbols": 20,
        "rate": 4000,
        "pregenerate": 3000,
        "max_incoming": 50,
    }
    async with (
        SimulatorServer(**config) as sim,
        connect(sim.url + "/ws/" + "/".join(streams)) as ws,
    ):
        first = await recv_json(ws, timeout=10)  # after the pre-generation
        started = asyncio.get_running_loop().time()
        events = [first] + [await recv_json(ws) for _ in range(5999)]
        span = asyncio.get_running_loop().time() - started
        assert sim.market.events >= 6000
    assert 1.2 < span < 8.0, span  # 4,000 events/s, not as fast as the client reads
    by_symbol: dict[str, list[int]] = {}
    for event in events:
        by_symbol.setdefault(event["s"], []).append(event["t"])
    assert len(by_symbol) == 4
    for ids in by_symbol.values():  # pre-generated, then live: one continuous sequence
        assert ids == list(range(ids[0], ids[0] + len(ids)))


async def test_a_finer_tick_releases_the_same_pace_in_smaller_bursts(
    stub: StubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatch = market.SharedMarket._dispatch
    bursts: dict[int, list[int]] = {}
    for tick_us in (1000, 100):
        sizes = bursts[tick_us] = []

        def counted(self: market.SharedMarket, events: list[Any], sizes: list[int] = sizes) -> None:
            sizes.append(len(events))
            dispatch(self, events)

        monkeypatch.setattr(market.SharedMarket, "_dispatch", counted)
        async with (
            SimulatorServer(source=stub, rate=20_000, tick_us=tick_us) as sim,
            connect(sim.url + "/ws/btcusdt@trade") as ws,
        ):
            started = asyncio.get_running_loop().time()
            for _ in range(3000):
                await recv_json(ws)
            span = asyncio.get_running_loop().time() - started
        assert span > 0.1, span  # paced at 20k/s either way (0.15 s), not as fast as read
    # loop timers: a millisecond's events at once (~20); a 100 µs timerfd tick: ~2
    assert statistics.median(bursts[1000]) >= 10, bursts[1000][:50]
    assert statistics.median(bursts[100]) <= statistics.median(bursts[1000]) / 3, bursts[100][:50]


async def test_a_connection_that_cannot_write_is_closed_past_its_backlog(
    stub: StubFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(market, "MAX_BACKLOG", 50)
    async with SimulatorServer(source=stub, rate=2000) as sim:
        client = await RawClient.open("127.0.0.1", sim.port, "/ws/" + TRADE)
        await client.recv_until(OP_TEXT)
        sim.faults.stall(5.0)  # it sends nothing while the market goes on
        payload = await client.recv_until(OP_CLOSE)
        assert (int.from_bytes(payload[:2], "big"), payload[2:]) == (1008, b"Slow consumer")
        client.close()


async def test_a_connection_that_subscribes_later_still_gets_the_pregenerated_market() -> None:
    """`/ws`, then SUBSCRIBE: the pre-generation waits for the first stream (it was spent on
    the connection's empty list, and the market ran live from the start)."""
    async with SimulatorServer(seed=7, symbols=5, rate=100, pregenerate=2000,
                               max_incoming=50) as sim, connect(sim.url + "/ws") as ws:
        await asyncio.sleep(0.1)
        assert sim.market._pregenerate == 2000  # not yet spent
        await ws.send(orjson.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"],
                                    "id": 1}).decode())
        while "e" not in await recv_json(ws, timeout=10):  # (its reply first)
            pass
        assert sim.market._pregenerate == 0 and len(sim.market._ready) > 1000


async def test_a_snapshot_asked_for_while_the_market_pregenerates_is_overloaded() -> None:
    """A worker thread moves the books meanwhile: a snapshot would be torn (or far ahead)."""
    async with SimulatorServer(seed=7, symbols=5, rate=100) as sim:
        base = sim.url.replace("ws:", "http:")
        sim.market._deferred = []  # what a pre-generation sets until its events are ready
        status, body = await http_get(base + "/api/v3/depth?symbol=BTCUSDT&limit=5")
        books = await http_get(base + "/sim/books")
        sim.market._deferred = None
        assert (status, body["code"]) == (503, -1008) and books[0] == 503
        assert (await http_get(base + "/api/v3/depth?symbol=BTCUSDT&limit=5"))[0] == 200
