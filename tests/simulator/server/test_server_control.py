"""JSON control messages: every method and every documented error code.

The first tests drive `control.handle` directly; the last ones go through a real connection
with the independent `websockets` client, including the `combined` wrapper switching.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from feedhandler.simulator.server import control
from feedhandler.simulator.server.subscriptions import Subscriptions
from feedhandler.simulator.testing import SimulatorServer
from tests.simulator.server.simhelpers import StubFactory, connect, recv_json, request


class Session:
    def __init__(self, max_streams: int = 1024) -> None:
        self.combined = False
        self.subs = Subscriptions(max_streams, lambda name: name.endswith("@trade"))

    def subscribe(self, streams: list[str]) -> None:
        self.subs.add(streams)

    def unsubscribe(self, streams: list[str]) -> None:
        self.subs.remove(streams)

    def subscriptions(self) -> list[str]:
        return self.subs.names()


def call(session: Session, message: Any) -> dict[str, Any]:
    raw = message if isinstance(message, bytes) else orjson.dumps(message)
    reply = orjson.loads(control.handle(raw, session))
    assert isinstance(reply, dict)
    return reply


def test_documented_success_replies() -> None:
    session = Session()
    sub = {"method": "SUBSCRIBE", "params": ["btcusdt@trade", "ethusdt@trade"], "id": 1}
    assert call(session, sub) == {"result": None, "id": 1}
    unsub = {"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": 312}
    assert call(session, unsub) == {"result": None, "id": 312}
    listing = {"method": "LIST_SUBSCRIPTIONS", "id": 3}
    assert call(session, listing) == {"result": ["btcusdt@trade"], "id": 3}
    get = {"method": "GET_PROPERTY", "params": ["combined"], "id": 2}
    assert call(session, get) == {"result": False, "id": 2}
    assert call(session, {"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}) == {
        "result": None,
        "id": 5,
    }
    assert session.combined is True
    assert call(session, get) == {"result": True, "id": 2}


def test_reply_bytes_match_the_documented_text() -> None:
    session = Session()
    sub = b'{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}'
    assert control.handle(sub, session) == b'{"result":null,"id":1}'
    listing = b'{"method":"LIST_SUBSCRIPTIONS","id":3}'
    assert control.handle(listing, session) == b'{"result":["btcusdt@trade"],"id":3}'


def test_subscribe_is_idempotent_and_keeps_order() -> None:
    session = Session()
    call(session, {"method": "SUBSCRIBE", "params": ["b@trade", "a@trade"], "id": 1})
    call(session, {"method": "SUBSCRIBE", "params": ["a@trade", "c@trade", "c@trade"], "id": 2})
    call(session, {"method": "UNSUBSCRIBE", "params": ["zzz@trade"], "id": 3})
    assert session.subscriptions() == ["b@trade", "a@trade", "c@trade"]


@pytest.mark.parametrize("request_id", [0, -5, 2**63 - 1, -(2**63), "abc123", "A" * 36, None])
def test_accepted_ids_are_echoed(request_id: Any) -> None:
    reply = call(Session(), {"method": "LIST_SUBSCRIPTIONS", "id": request_id})
    assert reply == {"result": [], "id": request_id}


ID_ERROR = "Invalid request: request ID must be an unsigned integer"


@pytest.mark.parametrize(
    ("message", "code", "msg", "reply_id"),
    [
        ({"method": "SET_PROPERTY", "params": ["colour", True], "id": 7}, 0, "Unknown property", 7),
        ({"method": "GET_PROPERTY", "params": ["colour"], "id": 8}, 0, "Unknown property", 8),
        (
            {"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 9},
            1,
            "Invalid value type: expected Boolean",
            9,
        ),
        (
            {"method": "SET_PROPERTY", "params": ["combined"], "id": 9},
            1,
            "Invalid value type: expected Boolean",
            9,
        ),
        (
            {"method": "SET_PROPERTY", "params": [1, True], "id": 10},
            2,
            "Invalid request: property name must be a string",
            10,
        ),
        (
            {"method": "GET_PROPERTY", "id": 11},
            2,
            "Invalid request: property name must be a string",
            11,
        ),
        ({"method": "LIST_SUBSCRIPTIONS"}, 2, ID_ERROR, None),
        ({"method": "LIST_SUBSCRIPTIONS", "id": 2**63}, 2, ID_ERROR, None),
        ({"method": "LIST_SUBSCRIPTIONS", "id": 1.5}, 2, ID_ERROR, None),
        ({"method": "LIST_SUBSCRIPTIONS", "id": True}, 2, ID_ERROR, None),
        ({"method": "LIST_SUBSCRIPTIONS", "id": "has-dash"}, 2, ID_ERROR, None),
        ({"method": "LIST_SUBSCRIPTIONS", "id": "A" * 37}, 2, ID_ERROR, None),
        (
            {"method": "PING", "id": 12},
            2,
            "Invalid request: unknown variant `PING`, expected one of `SUBSCRIBE`, "
            "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
            None,
        ),
        (
            {"method": "SET_PROPERTY", "params": ["combined", True, 1], "id": 13},
            2,
            "Invalid request: too many parameters",
            13,
        ),
        (
            {"method": "GET_PROPERTY", "params": ["combined", 1], "id": 13},
            2,
            "Invalid request: too many parameters",
            13,
        ),
        (
            {"method": "LIST_SUBSCRIPTIONS", "params": ["x"], "id": 13},
            2,
            "Invalid request: too many parameters",
            13,
        ),
        ({"params": [], "id": 14}, 2, "Invalid request: missing field `method`", None),
        ([1, 2], 2, "Invalid request: expected a JSON object", None),
        (
            {"method": "SUBSCRIBE", "id": 15},
            2,
            "Invalid request: missing field `params`",
            15,
        ),
        (
            {"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 16},
            2,
            "Invalid request: params must be an array of stream names",
            16,
        ),
        (
            {"method": "SUBSCRIBE", "params": ["btcusdt@nope"], "id": 17},
            2,
            "Invalid request: invalid stream",
            17,
        ),
        (b'{"method":"SUBSCRIBE",', 3, "Invalid JSON: expected value at line 1 column 23", None),
        (b"", 3, "Invalid JSON: expected value at line 1 column 1", None),
    ],
)
def test_error_replies(message: Any, code: int, msg: str, reply_id: Any) -> None:
    session = Session()
    assert call(session, message) == {"code": code, "msg": msg, "id": reply_id}
    assert session.subscriptions() == []
    assert session.combined is False


def test_subscribe_beyond_the_stream_limit_changes_nothing() -> None:
    session = Session(max_streams=3)
    call(session, {"method": "SUBSCRIBE", "params": ["a@trade", "b@trade"], "id": 1})
    reply = call(session, {"method": "SUBSCRIBE", "params": ["c@trade", "d@trade"], "id": 2})
    assert reply == {"code": 2, "msg": "Invalid request: too many streams (max 3)", "id": 2}
    assert session.subscriptions() == ["a@trade", "b@trade"]
    reply = call(session, {"method": "SUBSCRIBE", "params": ["a@trade", "c@trade"], "id": 3})
    assert reply == {"result": None, "id": 3}  # a@trade is already there: 3 in total


async def test_combined_property_switches_the_wrapper(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, rate=200, max_incoming=50) as sim:
        async with connect(sim.url + "/ws/btcusdt@trade") as ws:
            raw = await recv_json(ws)
            assert raw["e"] == "trade" and raw["s"] == "BTCUSDT"
            get = {"method": "GET_PROPERTY", "params": ["combined"], "id": 1}
            assert await request(ws, get) == {"result": False, "id": 1}
            on = {"method": "SET_PROPERTY", "params": ["combined", True], "id": 2}
            assert await request(ws, on) == {"result": None, "id": 2}
            wrapped = await recv_json(ws)
            assert wrapped["stream"] == "btcusdt@trade"
            assert wrapped["data"]["t"] > raw["t"]
            off = {"method": "SET_PROPERTY", "params": ["combined", False], "id": 3}
            assert await request(ws, off) == {"result": None, "id": 3}
            assert "stream" not in await recv_json(ws)

        async with connect(sim.url + "/stream?streams=btcusdt@trade") as ws:
            get = {"method": "GET_PROPERTY", "params": ["combined"], "id": "x1"}
            assert await request(ws, get) == {"result": True, "id": "x1"}
            assert (await recv_json(ws))["stream"] == "btcusdt@trade"


async def test_live_subscribe_and_unsubscribe_change_the_events(stub: StubFactory) -> None:
    async with (
        SimulatorServer(source=stub, rate=500, max_incoming=50) as sim,
        connect(sim.url + "/stream") as ws,
    ):
        sub = {"method": "SUBSCRIBE", "params": ["ethusdt@trade", "btcusdt@trade"], "id": 1}
        assert await request(ws, sub) == {"result": None, "id": 1}
        seen = {(await recv_json(ws))["stream"] for _ in range(6)}
        assert seen == {"ethusdt@trade", "btcusdt@trade"}
        unsub = {"method": "UNSUBSCRIBE", "params": ["ethusdt@trade"], "id": 2}
        assert await request(ws, unsub) == {"result": None, "id": 2}
        listing = {"method": "LIST_SUBSCRIPTIONS", "id": 3}
        assert await request(ws, listing) == {"result": ["btcusdt@trade"], "id": 3}
        seen = {(await recv_json(ws))["stream"] for _ in range(6)}
        assert seen == {"btcusdt@trade"}
        bad = {"method": "SUBSCRIBE", "params": ["btcusdt@trade", "x@nope"], "id": 4}
        assert await request(ws, bad) == {
            "code": 2,
            "msg": "Invalid request: invalid stream",
            "id": 4,
        }
        assert await request(ws, b"not json") == {
            "code": 3,
            "msg": "Invalid JSON: expected value at line 1 column 1",
            "id": None,
        }


async def test_a_fragmented_request_is_answered_once_whole(stub: StubFactory) -> None:
    sim = SimulatorServer(source=stub, rate=10, max_incoming=50)
    async with sim, connect(sim.url + "/ws/btcusdt@trade") as ws:
        await ws.send(['{"method":"LIST_', 'SUBSCRIPTIONS",', '"id":4}'])  # 3 frames
        reply = await recv_json(ws)
        while "id" not in reply:  # market events meanwhile
            reply = await recv_json(ws)
        assert reply == {"result": ["btcusdt@trade"], "id": 4}
