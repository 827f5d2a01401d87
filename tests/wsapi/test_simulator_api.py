"""The simulator's /ws-api/v3 seen by an independent client (`websockets`): exchangeInfo
filters, depth from the shared market, weights, 429 -> 418, malformed requests, and the
connection's time unit."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
import websockets

from feedhandler.simulator.market.fixedpoint import fmt_fixed
from feedhandler.simulator.testing import SimulatorServer


async def ask(ws: Any, request: dict[str, Any] | bytes) -> Any:
    text = request if isinstance(request, bytes) else orjson.dumps(request)
    await ws.send(text.decode())  # a text frame (bytes would go as a binary frame)
    return orjson.loads(await ws.recv())


async def test_exchange_info_depth_and_ticker_book_follow_the_market() -> None:
    async with SimulatorServer(symbols=30) as sim, websockets.connect(
        sim.url + "/ws-api/v3", ping_interval=None
    ) as ws:
        info = await ask(ws, {"id": 1, "method": "exchangeInfo"})
        assert info["status"] == 200 and len(info["result"]["symbols"]) == 30
        limits = info["result"]["rateLimits"]
        assert limits[0] | {"count": 0} == {"rateLimitType": "REQUEST_WEIGHT", "interval":
                                            "MINUTE", "intervalNum": 1, "limit": 6000, "count": 0}
        for entry in info["result"]["symbols"]:
            spec = sim.market.universe[entry["symbol"]]
            filters = {f["filterType"]: f for f in entry["filters"]}
            assert filters["PRICE_FILTER"]["tickSize"] == fmt_fixed(spec.tick_size, 8)
            assert filters["LOT_SIZE"]["stepSize"] == fmt_fixed(spec.step_size, 8)
            assert entry["status"] == "TRADING"
        depth = await ask(ws, {"id": "d1", "method": "depth",
                               "params": {"symbol": "ETHUSDT", "limit": 5}})
        last, bids, _ = sim.market.snapshot("ETHUSDT", 5)
        assert depth["id"] == "d1" and depth["result"]["lastUpdateId"] == last
        assert len(depth["result"]["bids"]) == len(bids) == 5
        book = await ask(ws, {"id": 3, "method": "v3/ticker.book", "params": {"symbol": "ETHUSDT"}})
        assert book["result"]["bidPrice"] == depth["result"]["bids"][0][0]
        assert depth["rateLimits"][0]["count"] == 2 + 20 + 5  # connect, exchangeInfo, depth


async def test_malformed_requests_and_the_ban_after_repeated_429s() -> None:
    async with SimulatorServer(api_weight_limit=8, api_weight_interval=60,
                               api_ban_after=2) as sim, websockets.connect(
        sim.url + "/ws-api/v3", ping_interval=None
    ) as ws:
        bad = await ask(ws, b'{"id": 1, "method": ')
        assert (bad["id"], bad["status"], bad["error"]["code"]) == (None, 400, -1100)
        missing = await ask(ws, {"id": 2, "method": "depth", "params": {}})
        assert missing["error"]["code"] == -1102
        refused = await ask(ws, {"id": 3, "method": "depth", "params": {"symbol": "BTCUSDT"}})
        assert refused["status"] == 429 and refused["error"]["data"]["retryAfter"] % 60000 == 0
        banned = await ask(ws, {"id": 4, "method": "exchangeInfo"})
        assert banned["status"] == 418 and banned["error"]["code"] == -1003
        assert banned["error"]["data"]["retryAfter"] > banned["error"]["data"]["serverTime"]
        assert sim.api is not None and sim.api.limiter.refused == 2


async def test_time_unit_microsecond_gives_every_epoch_time_in_microseconds() -> None:
    async with SimulatorServer(api_weight_limit=5, api_ban_after=0) as sim:
        async with websockets.connect(sim.url + "/ws-api/v3?timeUnit=MICROSECOND",
                                      ping_interval=None) as ws:
            before = time.time_ns() // 1_000
            server = (await ask(ws, {"id": 1, "method": "time"}))["result"]["serverTime"]
            after = time.time_ns() // 1_000
            assert before <= server <= after  # the µs clock itself, not ms scaled
            status = (await ask(ws, {"id": 2, "method": "session.status"}))["result"]
            assert before - 1_000_000 < status["connectedSince"] <= status["serverTime"] <= \
                time.time_ns() // 1_000
            refused = (await ask(ws, {"id": 3, "method": "time"}))["error"]["data"]
            assert refused["retryAfter"] % 60_000_000 == 0 and refused["serverTime"] > before
        async with websockets.connect(sim.url + "/ws-api/v3?timeUnit=millisecond",
                                      ping_interval=None) as ws:
            refused = (await ask(ws, {"id": 1, "method": "time"}))["error"]["data"]
            assert refused["retryAfter"] % 60_000 == 0 and refused["retryAfter"] < 10**13


async def test_time_without_a_unit_is_milliseconds_and_a_bad_unit_is_refused() -> None:
    async with SimulatorServer(api_clock_offset_ms=5_000) as sim:
        async with websockets.connect(sim.url + "/ws-api/v3", ping_interval=None) as ws:
            before = time.time_ns() // 1_000_000 + 5_000
            server = (await ask(ws, {"id": 1, "method": "time"}))["result"]["serverTime"]
            assert before <= server <= time.time_ns() // 1_000_000 + 5_000
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(sim.url + "/ws-api/v3?timeUnit=NANOSECOND"):
                pass
        response = refused.value.response
        assert response.status_code == 400
        assert orjson.loads(response.body) == {
            "code": 2, "msg": "Invalid request: invalid timeUnit 'NANOSECOND'"}


async def test_return_rate_limits_false_per_request_or_for_the_connection() -> None:
    async with SimulatorServer() as sim:
        async with websockets.connect(sim.url + "/ws-api/v3", ping_interval=None) as ws:
            assert "rateLimits" in await ask(ws, {"id": 1, "method": "time"})
            quiet = await ask(ws, {"id": 2, "method": "time",
                                   "params": {"returnRateLimits": False}})
            assert set(quiet) == {"id", "status", "result"}
        url = sim.url + "/ws-api/v3?returnRateLimits=false"
        async with websockets.connect(url, ping_interval=None) as ws:
            assert "rateLimits" not in await ask(ws, {"id": 1, "method": "time"})
            status = await ask(ws, {"id": 2, "method": "session.status"})
            assert status["result"]["returnRateLimits"] is False
            asked = await ask(ws, {"id": 3, "method": "time", "params": {"returnRateLimits": True}})
            assert "rateLimits" in asked
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(sim.url + "/ws-api/v3?returnRateLimits=no"):
                pass
        assert refused.value.response.status_code == 400


async def test_a_client_ping_is_answered_and_a_bad_parameter_is_an_error_reply() -> None:
    """The handler's WS API client pings after 30 s idle and gives up 10 s later: unanswered,
    it would reconnect every 40 s. A parameter of the wrong type is -1100, as on Binance, not
    a dropped connection."""
    async with SimulatorServer() as sim, websockets.connect(
        sim.url + "/ws-api/v3", ping_interval=None
    ) as ws:
        pong = await ws.ping(b"are you there")
        assert await asyncio.wait_for(pong, 5) >= 0
        bad = await ask(ws, {"id": 9, "method": "depth",
                             "params": {"symbol": "BTCUSDT", "limit": "x"}})
        assert (bad["id"], bad["status"], bad["error"]["code"]) == (9, 400, -1100)
        wrong = await ask(ws, {"id": 10, "method": "exchangeInfo", "params": {"symbols": 5}})
        assert (wrong["status"], wrong["error"]["code"]) == (400, -1100)
        assert (await ask(ws, {"id": 11, "method": "ping"}))["status"] == 200
