"""Live subscriptions on one stream connection: SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS.

Binance closes a connection that sends more than 5 messages a second, pings and pongs included
(binance-protocol.md §2-3). So every request waits for room in an `OutgoingBudget`, a sliding
window that leaves `reserve` slots for the pings and pongs sent outside this module, and a
change of many streams is cut into few requests of at most `max_params` streams each.

Requests carry integer ids, unique in the process, because one decoder (one control callback)
may serve several connections of a shard (rollover, redundancy): `route_control(frame,
clients, on_event)` offers each reply to the clients, which claim their own ids, in any order.
A request without a reply within `timeout` fails with `RequestTimeout`. An error reply
`{"code","msg","id"}` fails its request with `ExchangeError` and is reported as a
`subscription_error` event (also when no request claims it); each applied change is
reported as a `subscribed` / `unsubscribed` event. After a (re)connect, `reconcile(desired)`
compares the wanted streams with LIST_SUBSCRIPTIONS and fixes the difference.

`place` decides where runtime changes go when streams are spread over several connections:
additions go to connections with room, and existing streams never move.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from feedhandler.supervisor.pending import PendingRequests

log = logging.getLogger(__name__)

MAX_STREAMS = 1024  # per connection (binance-protocol.md §2)

EventSink = Callable[[dict[str, Any]], None]

_REQUEST_IDS = itertools.count(1)  # process-wide: replies of several connections may meet


class Transport(Protocol):
    def send(self, payload: bytes) -> None:
        """Send one text frame."""


class ExchangeError(Exception):
    """The exchange answered a request with `{"code","msg","id"}`."""

    def __init__(self, code: int, msg: str, method: str) -> None:
        super().__init__(f"{method} failed: code {code}: {msg}")
        self.code = code
        self.msg = msg


class RequestTimeout(Exception):
    """No reply to a request within the timeout."""


class OutgoingBudget:
    """At most `limit` client messages in any `window` (+ `margin`, for network jitter)
    seconds; requests may use `limit - reserve` of them, the rest is for pings and pongs,
    which the caller reports with `note()` when it can (automatic pongs are covered by the
    reserve)."""

    def __init__(
        self,
        limit: int = 5,
        window: float = 1.0,
        reserve: int = 2,
        margin: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= reserve < limit:
            raise ValueError(f"reserve must be in 0..{limit - 1}, got {reserve}")
        self._requests = limit - reserve
        self._span = window + margin
        self._clock = clock
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()  # FIFO: requests leave in the order they asked

    def note(self) -> None:
        """Account one message sent outside the budget (a ping or a pong)."""
        now = self._clock()
        self._expire(now)  # (a connection that sends no request would keep every ping)
        self._sent.append(now)

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self._span:
            self._sent.popleft()

    def wait_time(self) -> float:
        """Seconds until a request may be sent (0: now)."""
        now = self._clock()
        self._expire(now)
        excess = len(self._sent) - self._requests
        return 0.0 if excess < 0 else self._sent[excess] + self._span - now

    async def acquire(self) -> None:
        """Wait for room, then account one request."""
        async with self._lock:
            while (delay := self.wait_time()) > 0:
                await asyncio.sleep(delay)
            self._sent.append(self._clock())


class SubscriptionClient:
    """Subscription requests of one connection. `transport` sends a frame; feed it every
    control reply with `on_control`; call `connection_lost` when the connection ends."""

    def __init__(
        self,
        transport: Transport,
        on_event: EventSink,
        *,
        budget: OutgoingBudget | None = None,
        timeout: float = 10.0,
        max_params: int = 200,
        ids: Iterator[int] = _REQUEST_IDS,
    ) -> None:
        self._transport = transport
        self._on_event = on_event
        self.budget = budget or OutgoingBudget()
        self._timeout = timeout
        self._max_params = max_params
        self._pending: PendingRequests[str] = PendingRequests(ids)  # tag: the method
        self.requests = 0  # sent so far
        self.replies = 0  # claimed so far: frames of the connection that are not data

    # -- requests ------------------------------------------------------------------------------

    async def subscribe(self, streams: Sequence[str]) -> None:
        """SUBSCRIBE `streams`, in requests of at most `max_params`, sent back to back."""
        await self._change("SUBSCRIBE", "subscribed", streams)

    async def unsubscribe(self, streams: Sequence[str]) -> None:
        await self._change("UNSUBSCRIBE", "unsubscribed", streams)

    async def list_subscriptions(self) -> list[str]:
        result = await self._request("LIST_SUBSCRIPTIONS", None)
        if not isinstance(result, list):
            raise ExchangeError(-1, f"unexpected result {result!r}", "LIST_SUBSCRIPTIONS")
        return [str(name) for name in result]

    async def update(self, add: Sequence[str], remove: Sequence[str]) -> None:
        """Remove, then add: the removals make room under the 1024-stream limit first."""
        await self.unsubscribe(remove)
        await self.subscribe(add)

    async def reconcile(self, desired: Collection[str]) -> tuple[list[str], list[str]]:
        """Make the connection's streams `desired`; returns (added, removed)."""
        current = set(await self.list_subscriptions())
        wanted = set(desired)
        removed, added = sorted(current - wanted), sorted(wanted - current)
        await self.update(added, removed)
        return added, removed

    async def _change(self, method: str, done: str, streams: Sequence[str]) -> None:
        unique = list(dict.fromkeys(streams))
        size = self._max_params
        chunks = [unique[i : i + size] for i in range(0, len(unique), size)]

        async def one(chunk: list[str]) -> None:
            request_id = await self._request(method, chunk, id_out=True)
            self._on_event({"type": done, "streams": chunk, "id": request_id})

        results = await asyncio.gather(*(one(chunk) for chunk in chunks), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    async def _request(self, method: str, params: list[str] | None, id_out: bool = False) -> Any:
        """Send one request when the budget allows; its result (or its id, with `id_out`)."""
        await self.budget.acquire()
        def send(request_id: int) -> None:
            message: dict[str, Any] = {"method": method, "id": request_id}
            if params is not None:
                message["params"] = params
            self._transport.send(orjson.dumps(message))

        request_id = self._pending.sent(method, send)
        self.requests += 1
        try:
            result = await self._pending.answer(request_id, self._timeout)
        except TimeoutError:
            self._on_event({"type": "subscription_timeout", "method": method, "id": request_id})
            text = f"{method} id {request_id}: no reply in {self._timeout} s"
            raise RequestTimeout(text) from None
        return request_id if id_out else result

    # -- replies -------------------------------------------------------------------------------

    def on_control(self, frame: bytes) -> bool:
        """Take one control frame if it answers a request of this client."""
        reply = _reply(frame)
        request_id = reply.get("id") if reply is not None else None
        method = self._pending.tag(request_id)
        if reply is None or method is None:
            return False  # not a reply, someone else's, or one that timed out
        self.replies += 1
        if "code" in reply:
            _report_error(reply, method, self._on_event)
            self._pending.settle(request_id, error=ExchangeError(int(reply["code"] or 0),
                                                                 reply["msg"], method))
        else:
            self._pending.settle(request_id, reply["result"])
        return True

    def connection_lost(self) -> None:
        """Fail every request still waiting: its reply cannot come any more."""
        self._pending.fail_all(lambda method: ConnectionError(f"{method}: connection lost"))

def _reply(frame: bytes) -> dict[str, Any] | None:
    """A control reply (`result` or `code`, no event type), else None."""
    try:
        reply = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(reply, dict) or ("result" not in reply and "code" not in reply):
        return None
    if "code" in reply:
        reply["msg"] = str(reply.get("msg", ""))
    return reply


def _report_error(reply: dict[str, Any], method: str | None, on_event: EventSink) -> None:
    code, msg, request_id = reply["code"], reply["msg"], reply.get("id")
    log.warning("exchange error reply to %s id %r: code %s: %s", method, request_id, code, msg)
    on_event(
        {"type": "subscription_error", "code": code, "msg": msg, "id": request_id,
         "method": method}
    )  # fmt: skip


def route_control(
    frame: bytes, clients: Collection[SubscriptionClient], on_event: EventSink
) -> bool:
    """Give a control frame to the client whose request it answers. An error reply nobody
    claims (its id null or unknown) is reported once, as a `subscription_error` event.
    False when the frame is not a reply (the caller publishes it as it does today)."""
    if any(client.on_control(frame) for client in clients):
        return True
    reply = _reply(frame)
    if reply is None:
        return False
    if "code" in reply:
        _report_error(reply, None, on_event)
    return True


# -- placement -------------------------------------------------------------------------------


@dataclass
class Placement:
    """Where a runtime change goes: per existing connection (by index) the streams to add and
    to remove, and the additions no connection has room for (`overflow`, in groups of at
    most `capacity`: one new connection each)."""

    add: dict[int, list[str]] = field(default_factory=dict)
    remove: dict[int, list[str]] = field(default_factory=dict)
    overflow: list[list[str]] = field(default_factory=list)


def place(
    connections: Sequence[Collection[str]],
    add: Collection[str],
    remove: Collection[str],
    capacity: int = MAX_STREAMS,
    closed: Collection[int] = (),
    homes: Mapping[str, int] | None = None,
) -> Placement:
    """Spread `add` over `connections` (their current streams) with room, the emptiest
    first; take `remove` from wherever it is. Streams already placed never move; streams
    already subscribed are not added twice; unknown removals are ignored. `closed`: positions
    that take no more streams (a quarantined connection: nothing it holds flows). `homes`:
    the position that last carried a stream added again, where it goes back while that has
    room (its decoder still knows the stream's last ids, so what it missed is a gap)."""
    gone = set(remove)
    both = gone.intersection(add)
    if both:
        raise ValueError(f"streams both added and removed: {', '.join(sorted(both))}")
    placement = Placement()
    sizes = []
    where: dict[str, int] = {}
    for index, streams in enumerate(connections):
        for stream in streams:
            where[stream] = index
        dropped = sorted(gone.intersection(streams))
        if dropped:
            placement.remove[index] = dropped
        sizes.append(len(streams) - len(dropped))
    left: list[str] = []
    for stream in sorted(set(add) - set(where)):
        room = [i for i, size in enumerate(sizes) if size < capacity and i not in closed]
        if not room:
            left.append(stream)
            continue
        home = (homes or {}).get(stream)
        target = home if home in room else min(room, key=lambda i: (sizes[i], i))
        placement.add.setdefault(target, []).append(stream)
        sizes[target] += 1
    placement.overflow = [left[i : i + capacity] for i in range(0, len(left), capacity)]
    return placement
