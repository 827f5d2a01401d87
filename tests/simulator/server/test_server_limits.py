"""Connection-attempt limits (429/418 + Retry-After) and the 1024-streams limit."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import websockets

from feedhandler.simulator.server.limits import AttemptLimiter, Refusal, SlidingWindow
from feedhandler.simulator.testing import SimulatorServer
from tests.simulator.server.simhelpers import StubFactory, connect, recv_json, request


def test_sliding_window_counts_the_last_window_only() -> None:
    window = SlidingWindow(limit=3, window=1.0)
    assert [window.hit(t) for t in (0.0, 0.1, 0.2, 0.3)] == [True, True, True, False]
    assert window.hit(1.15) is True  # 0.0 and 0.1 have left the window
    assert window.full(1.15) is True
    assert window.seconds_until_room(1.15) == pytest.approx(0.05)
    assert window.full(1.21) is False


def test_attempt_limiter_escalates_from_429_to_418() -> None:
    limiter = AttemptLimiter(limit=2, window=10.0, ban_after=3, ban_duration=60.0)
    assert limiter.check("10.0.0.1", 0.0) is None
    assert limiter.check("10.0.0.1", 1.0) is None
    assert limiter.check("10.0.0.2", 1.0) is None  # other IPs have their own budget
    assert limiter.check("10.0.0.1", 2.5) == Refusal(429, 8)  # room again at t=10
    assert limiter.check("10.0.0.1", 3.0) == Refusal(429, 7)
    assert limiter.check("10.0.0.1", 4.0) == Refusal(418, 60)  # third refusal: banned
    assert limiter.check("10.0.0.1", 30.0) == Refusal(418, 34)  # the window passed, the ban not
    assert limiter.check("10.0.0.1", 64.0) is None


def test_a_ban_shorter_than_the_window_says_to_wait_for_the_window() -> None:
    # a client that waits a 418's Retry-After is let in, not refused again (a new step to a ban)
    limiter = AttemptLimiter(limit=3, window=5.0, ban_after=2, ban_duration=4.0)
    assert [limiter.check("ip", t) for t in (0.0, 0.1, 0.2)] == [None] * 3
    assert limiter.check("ip", 0.3) == Refusal(429, 5)
    assert limiter.check("ip", 0.4) == Refusal(418, 5)  # banned 4 s, room at t=5.0
    assert limiter.check("ip", 5.1) is None


def test_refused_attempts_do_not_fill_the_window() -> None:
    limiter = AttemptLimiter(limit=1, window=5.0, ban_after=0, ban_duration=60.0)
    assert limiter.check("ip", 0.0) is None
    assert [limiter.check("ip", t) for t in (1.0, 2.0, 3.0)] == [
        Refusal(429, 4),
        Refusal(429, 3),
        Refusal(429, 2),
    ]
    assert limiter.check("ip", 5.0) is None  # a client that obeys Retry-After gets in


async def _status(url: str) -> tuple[int, str | None, dict[str, object]]:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with connect(url):
            pass
    response = refused.value.response
    return response.status_code, response.headers.get("Retry-After"), orjson.loads(response.body)


async def test_attempts_over_the_limit_get_429_then_418(stub: StubFactory) -> None:
    config = {"max_attempts": 3, "attempt_window": 1.0, "ban_after": 2, "ban_duration": 30.0}
    async with SimulatorServer(source=stub, **config) as sim:
        url = sim.url + "/ws/btcusdt@trade"
        for _ in range(3):
            async with connect(url) as ws:
                assert (await recv_json(ws))["e"] == "trade"
        status, retry_after, body = await _status(url)
        assert (status, retry_after) == (429, "1")
        assert body["code"] == -1003
        assert "too many connection attempts" in str(body["msg"])
        status, retry_after, _ = await _status(url)
        assert (status, retry_after) == (418, "30")
        await asyncio.sleep(1.0)
        assert (await _status(url))[:2] == (418, "29")  # the ban outlasts the window
        assert sim.refused == 3


async def test_waiting_retry_after_is_enough(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, max_attempts=2, attempt_window=0.5) as sim:
        url = sim.url + "/ws/btcusdt@trade"
        for _ in range(2):
            async with connect(url):
                pass
        status, retry_after, _ = await _status(url)
        assert (status, retry_after) == (429, "1")
        await asyncio.sleep(0.5)
        async with connect(url) as ws:
            assert (await recv_json(ws))["e"] == "trade"


async def test_bad_targets_are_refused_with_http_errors(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, max_streams=2) as sim:
        assert (await _status(sim.url + "/api/v3/klines"))[0] == 404
        status, _, body = await _status(sim.url + "/ws/btcusdt@trade?timeUnit=NANOSECOND")
        assert (status, body) == (
            400,
            {"code": 2, "msg": "Invalid request: invalid timeUnit 'NANOSECOND'"},
        )
        status, _, body = await _status(sim.url + "/ws/btcusdt@nope")
        assert (status, body) == (400, {"code": 2, "msg": "Invalid request: invalid stream"})
        status, _, body = await _status(sim.url + "/stream?streams=a@trade/b@trade/c@trade")
        assert (status, body) == (
            400,
            {"code": 2, "msg": "Invalid request: too many streams (max 2)"},
        )
        async with connect(sim.url + "/stream?streams=a@trade/b@trade/a@trade") as ws:
            listing = {"method": "LIST_SUBSCRIPTIONS", "id": 1}
            assert await request(ws, listing) == {"result": ["a@trade", "b@trade"], "id": 1}


async def test_1024_streams_per_connection(stub: StubFactory) -> None:
    names = [f"s{i:04d}usdt@trade" for i in range(1025)]
    async with (
        SimulatorServer(source=stub, rate=2000) as sim,
        connect(sim.url + "/stream?streams=" + "/".join(names[:200])) as ws,
    ):
        rest = {"method": "SUBSCRIBE", "params": names[200:1024], "id": 1}
        assert await request(ws, rest) == {"result": None, "id": 1}
        over = {"method": "SUBSCRIBE", "params": [names[1024]], "id": 2}
        assert await request(ws, over) == {
            "code": 2,
            "msg": "Invalid request: too many streams (max 1024)",
            "id": 2,
        }
        listing = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3})
        assert listing["result"] == names[:1024]
        seen = {(await recv_json(ws))["stream"] for _ in range(1100)}
        assert names[1023] in seen and names[1024] not in seen
        assert len(stub.opened[0].streams) == 1024  # the shared market's source
