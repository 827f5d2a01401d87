"""Live subscriptions against a fake transport: id matching, batching, the outgoing budget,
error replies, timeouts, reconcile, and where runtime changes go."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any

import orjson
import pytest

from feedhandler.supervisor.subscriptions import (
    ExchangeError,
    OutgoingBudget,
    RequestTimeout,
    SubscriptionClient,
    place,
    route_control,
)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


class Exchange:
    """Answers like a Binance stream server, after `delay`, from its own stream set."""

    def __init__(self, streams: list[str] | None = None, delay: float = 0.0) -> None:
        self.streams = list(streams or [])
        self.delay = delay
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self.client: SubscriptionClient | None = None
        self.silent = False
        self.fail: dict[str, tuple[int, str]] = {}  # method -> error reply

    def send(self, payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        message = orjson.loads(payload)
        self.sent.append((loop.time(), message))
        if not self.silent:
            loop.call_later(self.delay, self.answer, message)

    def answer(self, message: dict[str, Any]) -> None:
        method, params, request_id = message["method"], message.get("params") or [], message["id"]
        reply: dict[str, Any] = {"result": None, "id": request_id}
        if method in self.fail:
            code, msg = self.fail[method]
            reply = {"code": code, "msg": msg, "id": request_id}
        elif method == "SUBSCRIBE":
            self.streams += [s for s in params if s not in self.streams]
        elif method == "UNSUBSCRIBE":
            self.streams = [s for s in self.streams if s not in params]
        elif method == "LIST_SUBSCRIPTIONS":
            reply["result"] = list(self.streams)
        assert self.client is not None
        assert self.client.on_control(orjson.dumps(reply))


def client(exchange: Exchange, events: list[dict[str, Any]], **options: Any) -> SubscriptionClient:
    options.setdefault("budget", OutgoingBudget(limit=50))  # budget tests set their own
    options.setdefault("ids", itertools.count(1))
    exchange.client = SubscriptionClient(exchange, events.append, **options)
    return exchange.client


def test_large_changes_are_batched_and_reported() -> None:
    async def scenario() -> tuple[Exchange, list[dict[str, Any]]]:
        exchange, events = Exchange(), list[dict[str, Any]]()
        subs = client(exchange, events, max_params=200)
        names = [f"s{i:03d}usdt@trade" for i in range(450)]
        await subs.subscribe(names + names[:10])  # repeats are sent once
        await subs.unsubscribe(names[:5])
        return exchange, events

    exchange, events = run(scenario())
    sizes = [(m["method"], len(m["params"])) for _, m in exchange.sent]
    assert sizes == [("SUBSCRIBE", 200), ("SUBSCRIBE", 200), ("SUBSCRIBE", 50), ("UNSUBSCRIBE", 5)]
    assert [m["id"] for _, m in exchange.sent] == [1, 2, 3, 4]
    assert len(exchange.streams) == 445
    assert [(e["type"], len(e["streams"]), e["id"]) for e in events] == [
        ("subscribed", 200, 1), ("subscribed", 200, 2), ("subscribed", 50, 3),
        ("unsubscribed", 5, 4),
    ]  # fmt: skip


def test_replies_are_matched_by_id_in_any_order() -> None:
    async def scenario() -> tuple[list[Any], dict[str, int]]:
        exchange = Exchange(["a@trade"])
        exchange.silent = True
        subs = client(exchange, [])
        calls = [
            asyncio.ensure_future(subs.list_subscriptions()),
            asyncio.ensure_future(subs.subscribe(["b@trade"])),
            asyncio.ensure_future(subs.list_subscriptions()),
        ]
        while len(exchange.sent) < 3:
            await asyncio.sleep(0.001)
        assert not subs.on_control(b'{"e":"trade","E":1}')  # market data is not ours
        assert not subs.on_control(b'{"result":null,"id":99}')  # nor an unknown id
        for _, message in reversed(exchange.sent):  # answered last first
            request_id = message["id"]
            result = None if message["method"] == "SUBSCRIBE" else [f"s{request_id}@trade"]
            assert subs.on_control(orjson.dumps({"result": result, "id": request_id}))
        ids = {m["method"] + str(i): m["id"] for i, (_, m) in enumerate(exchange.sent)}
        return await asyncio.gather(*calls), ids

    (first, subscribed, second), ids = run(scenario())
    assert subscribed is None
    lists = sorted(v for k, v in ids.items() if k.startswith("LIST"))
    assert (first, second) == ([f"s{lists[0]}@trade"], [f"s{lists[1]}@trade"])


def test_error_replies_fail_the_request_and_become_events() -> None:
    async def scenario() -> list[dict[str, Any]]:
        exchange, events = Exchange(), list[dict[str, Any]]()
        exchange.fail["SUBSCRIBE"] = (2, "Invalid request: invalid stream")
        subs = client(exchange, events)
        with pytest.raises(ExchangeError) as error:
            await subs.subscribe(["nope@trade"])
        assert (error.value.code, error.value.msg) == (2, "Invalid request: invalid stream")
        assert not subs.on_control(b'{"code":3,"msg":"Invalid JSON","id":null}')
        assert route_control(b'{"code":3,"msg":"Invalid JSON","id":null}', [subs], events.append)
        assert not route_control(b'{"e":"trade"}', [subs], events.append)
        return events

    assert run(scenario()) == [
        {"type": "subscription_error", "code": 2, "msg": "Invalid request: invalid stream",
         "id": 1, "method": "SUBSCRIBE"},
        {"type": "subscription_error", "code": 3, "msg": "Invalid JSON", "id": None,
         "method": None},
    ]  # fmt: skip


def test_a_request_without_reply_times_out() -> None:
    async def scenario() -> list[dict[str, Any]]:
        exchange, events = Exchange(), list[dict[str, Any]]()
        exchange.silent = True
        subs = client(exchange, events, timeout=0.05)
        with pytest.raises(RequestTimeout):
            await subs.list_subscriptions()
        assert not subs.on_control(b'{"result":[],"id":1}')  # too late: nobody waits
        return events

    assert run(scenario()) == [
        {"type": "subscription_timeout", "method": "LIST_SUBSCRIPTIONS", "id": 1}
    ]


def test_connection_lost_fails_waiting_requests() -> None:
    async def scenario() -> None:
        exchange = Exchange()
        exchange.silent = True
        subs = client(exchange, [])
        waiting = asyncio.ensure_future(subs.subscribe(["a@trade"]))
        while not exchange.sent:
            await asyncio.sleep(0.001)
        subs.connection_lost()
        with pytest.raises(ConnectionError):
            await waiting

    run(scenario())


def test_reconcile_fixes_the_difference() -> None:
    async def scenario() -> tuple[tuple[list[str], list[str]], list[str]]:
        exchange = Exchange(["a@trade", "b@trade", "c@trade"])
        subs = client(exchange, [])
        changes = await subs.reconcile({"b@trade", "c@trade", "d@trade", "e@trade"})
        return changes, exchange.streams

    (added, removed), final = run(scenario())
    assert (added, removed) == (["d@trade", "e@trade"], ["a@trade"])
    assert sorted(final) == ["b@trade", "c@trade", "d@trade", "e@trade"]


def test_budget_keeps_requests_and_pings_under_the_limit() -> None:
    window = 0.2

    async def scenario() -> list[float]:
        budget = OutgoingBudget(limit=5, window=window, reserve=2, margin=0.0)
        exchange = Exchange()
        exchange.client = SubscriptionClient(exchange, lambda e: None, budget=budget)
        budget.note()  # a pong just went out: it takes a request's room
        await asyncio.gather(*(exchange.client.list_subscriptions() for _ in range(8)))
        return [at for at, _ in exchange.sent]

    times = run(scenario())
    assert len(times) == 8
    for start in times:  # with the pong: never more than 3 messages in any window
        assert sum(1 for t in times if start <= t < start + window) <= 3
    assert times[-1] - times[0] >= 2 * window  # 2 + 3 + 3 requests: three windows


def test_budget_forgets_pings_of_a_connection_that_sends_no_request() -> None:
    now = [0.0]
    budget = OutgoingBudget(limit=5, window=1.0, margin=0.1, clock=lambda: now[0])
    for _ in range(2880):  # a day of pings every 30 s, and never a request
        budget.note()
        now[0] += 30.0
    assert len(budget._sent) == 1


def test_budget_rejects_a_reserve_that_leaves_no_room() -> None:
    with pytest.raises(ValueError, match="reserve"):
        OutgoingBudget(limit=5, reserve=5)


def test_place_adds_where_there_is_room_and_never_moves_streams() -> None:
    connections = [{"a", "b", "c"}, {"d"}, {"e", "f"}]
    placement = place(connections, add=["g", "h", "i", "j", "a"], remove=["b", "z"], capacity=3)
    assert placement.remove == {0: ["b"]}
    assert placement.add == {1: ["g", "i"], 0: ["h"], 2: ["j"]}  # emptiest first, ties by index
    assert placement.overflow == []
    full = place([{"a", "b"}], add=["c", "d", "e", "f", "g"], remove=[], capacity=2)
    assert full.add == {} and full.overflow == [["c", "d"], ["e", "f"], ["g"]]
    with pytest.raises(ValueError, match="both added and removed"):
        place([{"a"}], add=["b"], remove=["b"])
    # a quarantined connection (its one stream refused) is the emptiest, but takes nothing:
    # what went there would never flow; a removal still comes off it
    shut = place([{"a", "b"}, {"nosuch"}], add=["c", "d"], remove=["nosuch"], capacity=3,
                 closed={1})
    assert shut.add == {0: ["c"]} and shut.overflow == [["d"]] and shut.remove == {1: ["nosuch"]}


def test_a_stream_added_again_goes_back_to_the_connection_that_carried_it() -> None:
    # its decoder still has the stream's last ids: what it missed while off is a gap there
    connections = [{"a"}, {"b", "c", "d"}]
    assert place(connections, add=["x"], remove=[], capacity=4, homes={"x": 1}).add == {1: ["x"]}
    # full, or closed: the emptiest as usual
    assert place(connections, add=["x"], remove=[], capacity=3, homes={"x": 1}).add == {0: ["x"]}
    assert place(connections, add=["x"], remove=[], capacity=4, homes={"x": 1},
                 closed={1}).add == {0: ["x"]}


def test_clients_sharing_one_decoder_get_their_own_replies() -> None:
    async def scenario() -> list[list[str]]:
        sent: list[dict[str, Any]] = []

        class Wire:
            def send(self, payload: bytes) -> None:
                sent.append(orjson.loads(payload))

        events: list[dict[str, Any]] = []
        old, new = (SubscriptionClient(Wire(), events.append) for _ in range(2))  # process ids
        calls = [asyncio.ensure_future(c.list_subscriptions()) for c in (old, new)]
        while len(sent) < 2:
            await asyncio.sleep(0.001)
        assert sent[0]["id"] != sent[1]["id"]
        for message in reversed(sent):  # both replies come through the same callback
            reply = {"result": [f"from{message['id']}"], "id": message["id"]}
            assert route_control(orjson.dumps(reply), [old, new], events.append)
        assert events == []
        return await asyncio.gather(*calls)

    first, second = run(scenario())
    assert first != second and all(len(result) == 1 for result in (first, second))
