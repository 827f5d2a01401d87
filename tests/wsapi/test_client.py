"""WsApiClient against the simulator's /ws-api/v3: matching, timeouts, the weight budget,
429 handling, reconnects, Ed25519 sessions and the clock offset."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_create_server

from feedhandler.simulator.testing import SimulatorServer
from feedhandler.supervisor.backoff import Backoff
from feedhandler.wsapi import Credentials, WeightBudget, WsApiClient, errors
from feedhandler.wsapi.signing import signature_payload
from tests.http_answer import answering

API_KEY = "simApiKey0123456789"


def _client(sim: SimulatorServer, budget: WeightBudget | None = None, **kw: Any) -> WsApiClient:
    budget = budget or WeightBudget(sim.config.api_weight_limit, sim.config.api_weight_interval)
    return WsApiClient(sim.url + "/ws-api/v3", budget, **kw)


def _key_files(tmp_path: Path) -> tuple[Ed25519PrivateKey, Path]:
    key = Ed25519PrivateKey.generate()
    public = tmp_path / "public.pem"
    public.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return key, public


async def test_thousand_concurrent_requests_matched_out_of_order_within_the_budget() -> None:
    async with SimulatorServer(api_weight_limit=600, api_weight_interval=1) as sim:
        assert sim.api is not None
        sim.api.faults.jitter_s = 0.05
        symbols = [spec.symbol for spec in list(sim.api.market.universe)[:50]]  # type: ignore[union-attr]
        budget = WeightBudget(600, 1.0, margin_s=0.5)  # margin: server lag under load
        async with _client(sim, budget) as api:
            await api.wait_ready(5)
            completed: list[int] = []

            async def one(i: int) -> None:
                result = await api.ticker_book(symbols[i % len(symbols)])
                assert result["symbol"] == symbols[i % len(symbols)]
                completed.append(i)

            await asyncio.gather(*(one(i) for i in range(1000)))
        assert sorted(completed) == list(range(1000))
        assert completed != sorted(completed)  # answers overtook each other
        assert sim.api.limiter.refused == 0 and api.stats.rate_limited == 0
        assert sim.api.limiter.charged == 2 * 1000 + 2 + 1  # + connecting, + the clock sync
        assert api.rate_limits[("REQUEST_WEIGHT", 1)].limit == 600
        assert api.stats.timeouts == api.stats.retries == 0


async def test_timeouts_fire_and_late_answers_are_ignored() -> None:
    async with SimulatorServer() as sim, _client(sim, retries=0) as api:
        assert sim.api is not None
        await api.wait_ready(5)
        sim.api.faults.drop = 3
        results = await asyncio.gather(
            *(api.request("ping", timeout=0.2) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, errors.RequestTimeout) for r in results)
        assert api.stats.timeouts == 3 and api.in_flight == 0
        sim.api.faults.slow_s = 0.3
        with pytest.raises(errors.RequestTimeout):
            await api.request("time", timeout=0.1)
        sim.api.faults.slow_s = 0.0
        await asyncio.sleep(0.4)
        assert api.stats.late == 1
        assert await api.request("ping") == {}


async def test_idempotent_reads_retry_after_429_writes_do_not(tmp_path: Path) -> None:
    key, public = _key_files(tmp_path)
    async with SimulatorServer(api_weight_interval=1, api_keys=((API_KEY, public),)) as sim:
        assert sim.api is not None
        async with _client(sim, credentials=Credentials(API_KEY, key)) as api:
            await api.wait_ready(5)
            sim.api.faults.limit = 1
            loop = asyncio.get_running_loop()
            start = loop.time()
            assert (await api.depth("BTCUSDT", 5))["lastUpdateId"] > 0
            assert api.stats.rate_limited == 1 and api.stats.retries == 1
            assert loop.time() - start > 0  # waited for retryAfter (the window's end)
            sim.api.faults.limit = 1
            with pytest.raises(errors.RateLimited) as refused:
                await api.logon()
            assert refused.value.status == 429 and refused.value.retry_after_ms
            assert api.stats.retries == 1


async def test_429_retry_after_is_honoured() -> None:
    # the client believes in a budget 10x the exchange's: each 429 stops it until retryAfter
    # (the window's end), so the exchange refuses once per window, never twice, never bans
    async with SimulatorServer(api_weight_limit=40, api_weight_interval=1) as sim:
        assert sim.api is not None
        budget = WeightBudget(400, 1.0)
        budget.configure = lambda limit, interval_s: None  # type: ignore[method-assign]
        async with _client(sim, budget) as api:
            await api.wait_ready(5)
            for _ in range(20):
                assert len((await api.depth("ETHUSDT", 5))["asks"]) == 5
        assert 1 <= api.stats.rate_limited == sim.api.limiter.refused <= 3
        assert api.stats.retries == api.stats.rate_limited


async def test_in_flight_reads_survive_a_dropped_connection() -> None:
    events: list[dict[str, Any]] = []
    async with SimulatorServer() as sim, _client(sim, on_event=events.append) as api:
        assert sim.api is not None
        await api.wait_ready(5)
        sim.api.faults.slow_s = 0.3
        pending = asyncio.create_task(api.depth("BNBUSDT", 10))
        await asyncio.sleep(0.05)
        sim.api_connections[0].drop()
        sim.api.faults.slow_s = 0.0
        result = await pending
        assert len(result["bids"]) == 10
        assert api.stats.connects == 2 and api.stats.retries == 1
        assert [e["type"] for e in events if e["type"] != "exchange_event"][:3] == [
            "connected",
            "disconnected",
            "connected",
        ]


@pytest.mark.parametrize("call", ["depth", "logon"])
async def test_a_request_made_as_the_connection_drops_waits_for_the_next_one(
        call: str, tmp_path: Path) -> None:
    """The transport is gone before the client's loop has seen it: the request waits for the
    reconnect rather than spending its retries at once (a read) or spinning (logon)."""
    key, public = _key_files(tmp_path)
    async with SimulatorServer(api_keys=((API_KEY, public),)) as sim, \
            _client(sim, credentials=Credentials(API_KEY, key)) as api:
        await api.wait_ready(5)
        api._transport.disconnect()  # type: ignore[union-attr]
        await asyncio.sleep(0)  # (picows has marked it disconnected; the client's loop not)
        async with asyncio.timeout(10):
            if call == "depth":
                assert len((await api.depth("BNBUSDT", 5))["bids"]) == 5
            else:
                assert (await api.logon())["apiKey"] == API_KEY
        assert api.stats.connects == 2


async def test_a_request_queued_for_weight_across_a_reconnect_waits_for_the_relogon() -> None:
    """Admitted on a connection that then dropped, a request waiting for weight must not go
    out on the next one before its session is logged on again (its clock sync is slow)."""
    sent: list[tuple[int, str]] = []
    connections = itertools.count(1)

    class Peer(WSListener):  # answers at once, but the second connection's `time` late
        def __init__(self) -> None:
            super().__init__()
            self.number = next(connections)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            request = orjson.loads(frame.get_payload_as_bytes())
            sent.append((self.number, request["method"]))
            result = {"serverTime": int(time.time() * 1000), "apiKey": API_KEY,
                      "lastUpdateId": 1, "bids": [], "asks": []}
            answer = orjson.dumps({"id": request["id"], "status": 200, "result": result})
            late = 0.8 if (self.number, request["method"]) == (2, "time") else 0.0
            asyncio.get_running_loop().call_later(late, transport.send, WSMsgType.TEXT, answer)

    server = await ws_create_server(lambda _: Peer(), "127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws-api/v3"
    budget = WeightBudget(30, 0.5, margin_s=0.0)
    try:
        async with WsApiClient(url, budget, credentials=Credentials(
                API_KEY, Ed25519PrivateKey.generate()), backoff=Backoff(0.01, 0.01)) as api:
            await api.logon()
            await asyncio.sleep(0.55)  # the connection's weight expired
            await budget.acquire(25)  # another caller's, held for a window: until the next
            budget.complete(25)  # connection's clock sync is under way
            depth = asyncio.create_task(api.depth("BTCUSDT", 500))  # weight 25: it waits
            await asyncio.sleep(0.01)
            api._transport.disconnect()  # type: ignore[union-attr]
            async with asyncio.timeout(10):
                await depth
    finally:
        server.close()
    second = [method for number, method in sent if number == 2]
    assert second == ["time", "session.logon", "depth"]


async def test_a_request_given_up_after_it_was_sent_keeps_its_weight_for_longer() -> None:
    """The exchange may count it as late as its own timeout (ours): cancelled (a resync
    replacing a refresh) or timed out, its weight is held as if answered then."""
    async with SimulatorServer() as sim, _client(sim, request_timeout_s=2.0) as api:
        assert sim.api is not None
        await api.wait_ready(5)
        sim.api.faults.slow_s = 0.5
        pending = asyncio.create_task(api.depth("BNBUSDT", 5000))  # weight 250
        await asyncio.sleep(0.1)
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pending
        given_up = asyncio.get_running_loop().time()
        (expires,) = [at for at, weight in api.budget._done if weight == 250]
        assert expires - given_up >= 2.0 + api.budget.window_s - 0.01


async def test_logon_status_logout_and_relogon_after_reconnect(tmp_path: Path) -> None:
    key, public = _key_files(tmp_path)
    events: list[dict[str, Any]] = []
    async with SimulatorServer(api_keys=((API_KEY, public),)) as sim:
        credentials = Credentials(API_KEY, key)
        async with _client(sim, credentials=credentials, on_event=events.append) as api:
            await api.wait_ready(5)
            assert (await api.session_status())["apiKey"] is None
            session = await api.logon()
            assert session["apiKey"] == API_KEY and session["authorizedSince"]
            sim.api_connections[0].drop()
            await asyncio.sleep(0.05)
            await api.wait_ready(5)
            assert (await api.session_status())["apiKey"] == API_KEY  # logged on again
            assert "logged_on" in [e["type"] for e in events]
            assert (await api.logout())["apiKey"] is None


async def test_logon_with_a_wrong_key_is_a_clear_error_without_key_material(
    tmp_path: Path,
) -> None:
    _, public = _key_files(tmp_path)
    wrong = Ed25519PrivateKey.generate()
    async with SimulatorServer(api_keys=((API_KEY, public),)) as sim:
        async with _client(sim, credentials=Credentials(API_KEY, wrong)) as api:
            await api.wait_ready(5)
            with pytest.raises(errors.InvalidSignature) as bad:
                await api.logon()
        text = str(bad.value)
        assert "session.logon refused" in text and "-1022" in text
        assert API_KEY not in text
        raw = wrong.private_bytes_raw()
        assert raw.hex() not in text and raw.hex().upper() not in text
        signature = Credentials(API_KEY, wrong).sign({"apiKey": API_KEY})
        assert signature not in text
        async with _client(sim, credentials=Credentials("unknown", wrong)) as api:
            await api.wait_ready(5)
            with pytest.raises(errors.Unauthorized, match="-2015"):
                await api.logon()


async def test_clock_offset_from_the_time_midpoint_makes_logon_work(tmp_path: Path) -> None:
    key, public = _key_files(tmp_path)
    sim = SimulatorServer(api_clock_offset_ms=30_000, api_keys=((API_KEY, public),))
    async with sim, _client(sim, credentials=Credentials(API_KEY, key)) as api:
        await api.wait_ready(5)
        assert abs(api.clock.offset_ms - 30_000) < 50
        await api.time()
        assert api.clock.best is not None and api.clock.best.rtt_ms < 1000
        assert (await api.logon())["apiKey"] == API_KEY


@pytest.mark.parametrize("unit", ["MICROSECOND", "microsecond"])
async def test_a_microsecond_connection_reads_its_times_in_microseconds(unit: str) -> None:
    sim = SimulatorServer(api_clock_offset_ms=30_000, api_weight_interval=1)
    budget = WeightBudget(sim.config.api_weight_limit, sim.config.api_weight_interval)
    async with sim, WsApiClient(sim.url + f"/ws-api/v3?timeUnit={unit}", budget) as api:
        assert sim.api is not None
        await api.wait_ready(5)
        server_ms = await api.time()
        assert abs(server_ms - (time.time_ns() // 1_000_000 + 30_000)) < 1_000  # ms, not µs
        assert abs(api.clock.offset_ms - 30_000) < 50
        # a 429's retryAfter (µs too) stops the budget until the window's end, not for ages
        sim.api.faults.limit = 1
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert (await api.depth("BTCUSDT", 5))["lastUpdateId"] > 0
        assert api.stats.rate_limited == 1 and loop.time() - start < 3


async def test_bad_parameters_and_unknown_symbols_raise_their_class() -> None:
    async with SimulatorServer() as sim, _client(sim) as api:
        await api.wait_ready(5)
        with pytest.raises(errors.BadSymbol):
            await api.depth("NOSUCHPAIR", 5)
        with pytest.raises(errors.BadRequest, match="-1100"):
            await api.request("no.such.method")
        with pytest.raises(ValueError):
            await api.depth("BTCUSDT", 5001)
        # symbolStatus: the request holds only while the symbol is in that state
        assert sim.api is not None
        sim.api.set_status("ETHUSDT", "BREAK")
        assert "lastUpdateId" in await api.request(
            "depth", {"symbol": "ETHUSDT", "limit": 5, "symbolStatus": "BREAK"})
        with pytest.raises(errors.SymbolStatusMismatch):
            await api.request("depth", {"symbol": "ETHUSDT", "symbolStatus": "TRADING"})
        with pytest.raises(errors.SymbolStatusMismatch):
            await api.request("ticker.book", {"symbol": "ETHUSDT", "symbolStatus": "HALT"})
        broken = await api.request("ticker.book", {"symbolStatus": "BREAK"})  # (all symbols)
        assert [t["symbol"] for t in broken] == ["ETHUSDT"]
        with pytest.raises(errors.BadRequest, match="-1100"):
            await api.request("depth", {"symbol": "ETHUSDT", "symbolStatus": "OPEN"})


def test_signature_payload_of_a_logon_matches_the_documented_string() -> None:
    params = {"apiKey": "K", "timestamp": 1649729878532, "recvWindow": 5000, "signature": "x"}
    assert signature_payload(params) == "apiKey=K&recvWindow=5000&timestamp=1649729878532"


class _Backoff:
    """Records what the client asks of its backoff."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def next_delay(self) -> float:
        self.calls.append("next")
        return 0.01

    def reset(self) -> None:
        self.calls.append("reset")


@pytest.mark.parametrize("reset_after_s", [30.0, 0.0])
async def test_the_backoff_starts_afresh_only_after_a_connection_that_lasted(
    reset_after_s: float,
) -> None:
    """A peer that accepts and closes at once must not get a reconnect every half second for
    ever (300 attempts per 5 minutes are the whole process's)."""
    backoff = _Backoff()
    async with SimulatorServer() as sim, _client(
        sim, backoff=backoff, backoff_reset_after_s=reset_after_s
    ) as api:
        for connects in (1, 2, 3):
            await api.wait_ready(5)
            assert api.stats.connects == connects
            sim.api_connections[-1].drop()
            while api.stats.disconnects < connects:
                await asyncio.sleep(0.005)
    resets = ["reset", "next"] * 3 if reset_after_s == 0 else ["next"] * 3
    assert backoff.calls[:6] == resets


class _Limiter:
    def __init__(self) -> None:
        self.blocks: list[float] = []

    @contextlib.asynccontextmanager
    async def attempt(self) -> AsyncIterator[None]:
        yield

    def block_for(self, seconds: float) -> None:
        self.blocks.append(seconds)


async def test_a_handshake_refused_with_429_and_no_retry_after_still_blocks_the_ip() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    events: list[dict[str, Any]] = []
    limiter = _Limiter()
    async with server:
        client = WsApiClient(f"ws://127.0.0.1:{port}/ws-api/v3", WeightBudget(6000, 60),
                             limiter=limiter, on_event=events.append)
        async with client:
            async with asyncio.timeout(5):
                while not events:
                    await asyncio.sleep(0.005)
    assert limiter.blocks == [60.0]  # a plain 429's default, as for stream connections
    assert events[0]["type"] == "connect_failed" and events[0]["retry_in_s"] >= 60


# --- a peer that answers as a script says (shapes the simulator never sends) -----------------
Answer = dict[str, Any] | bytes | None  # a JSON answer, raw bytes, or no answer at all


class _ScriptedApi(WSListener):
    def __init__(self, peer: _ScriptedPeer) -> None:
        super().__init__()
        self.peer = peer
        self.peer.connections += 1
        self.connection = self.peer.connections

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        request = orjson.loads(frame.get_payload_as_bytes())
        self.peer.requests.append((self.connection, request["method"], time.monotonic()))
        answer = self.peer.script(self.connection, request)
        if answer is not None:
            transport.send(WSMsgType.TEXT,
                           answer if isinstance(answer, bytes) else orjson.dumps(answer))


class _ScriptedPeer:
    """A WS API endpoint: `script(connection number, request) -> Answer`."""

    def __init__(self, script: Callable[[int, dict[str, Any]], Answer]) -> None:
        self.script = script
        self.connections = 0
        self.requests: list[tuple[int, str, float]] = []

    async def __aenter__(self) -> str:
        self.server = await ws_create_server(lambda _: _ScriptedApi(self), "127.0.0.1", 0)
        return f"ws://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/ws-api/v3"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


def ok(request: dict[str, Any], result: Any) -> dict[str, Any]:
    return {"id": request["id"], "status": 200, "result": result}


def normal(request: dict[str, Any]) -> dict[str, Any]:
    """What the exchange answers to the methods these tests send."""
    results = {"time": {"serverTime": int(time.time() * 1000)}, "ping": {},
               "session.logon": {"apiKey": API_KEY}}
    return ok(request, results.get(request["method"], {"lastUpdateId": 1, "bids": [],
                                                        "asks": []}))


def _api(url: str, **kw: Any) -> WsApiClient:
    kw.setdefault("backoff", _Backoff())
    return WsApiClient(url, WeightBudget(6000, 60.0), request_timeout_s=1.0, **kw)


async def test_answers_of_any_shape_fail_one_request_and_the_client_serves_on() -> None:
    """A status or error of the wrong type, `rateLimits` that is no list, a frame that is no
    object: each fails (or is dropped with) the request it answers, never the connection loop;
    a later request is answered as usual on the same connection."""
    bad: list[Any] = [{"status": "abc"}, {"status": 400, "error": "boom"},
                      {"status": 400, "error": {"code": "x", "msg": "m"}},
                      {"status": 200, "result": {}, "rateLimits": 5}, b"[1, 2]", b"\xff{"]

    def script(_: int, request: dict[str, Any]) -> Answer:
        if request["method"] != "depth" or not bad:
            return normal(request)
        answer = bad.pop(0)
        return answer if isinstance(answer, bytes) else {"id": request["id"], **answer}

    async with _ScriptedPeer(script) as url, _api(url, retries=0) as api:
        await api.wait_ready(5)
        outcomes = []
        for _ in range(6):
            try:
                outcomes.append(type(await api.depth("BTCUSDT", 5)).__name__)
            except errors.WsApiError as exc:
                outcomes.append(type(exc).__name__)
        assert outcomes == ["Malformed", "BadRequest", "BadRequest", "dict", "RequestTimeout",
                            "RequestTimeout"]
        assert await api.depth("BTCUSDT", 5) == {"lastUpdateId": 1, "bids": [], "asks": []}
        assert api.connected and api.stats.connects == 1


@pytest.mark.parametrize(("status", "wait_s"), [(429, 60.0), (418, 120.0)])
async def test_a_throttle_without_retry_after_waits_as_for_rest_and_connections(
        status: int, wait_s: float) -> None:
    """No `retryAfter`: a minute for a 429, two for a ban (the shortest Binance gives), not
    one weight window (here 1 s), which would walk straight into the next 418."""
    def script(_: int, request: dict[str, Any]) -> Answer:
        if request["method"] == "depth":
            return {"id": request["id"], "status": status,
                    "error": {"code": -1003, "msg": "Too much request weight used"}}
        return normal(request)

    events: list[dict[str, Any]] = []
    async with _ScriptedPeer(script) as url, WsApiClient(
            url, WeightBudget(6000, 1.0), request_timeout_s=1.0, backoff=_Backoff(), retries=0,
            on_event=events.append) as api:
        await api.wait_ready(5)
        with pytest.raises(errors.RateLimited):
            await api.depth("BTCUSDT", 5)
        (event,) = [e for e in events if e["type"] == "rate_limited"]
        assert (event["status"], event["wait_s"]) == (status, wait_s)
        with pytest.raises(TimeoutError):  # the budget grants nothing meanwhile
            await asyncio.wait_for(api.request("ping"), 0.3)


async def test_an_answer_over_the_frame_limit_costs_the_connection_not_the_client() -> None:
    def script(_: int, request: dict[str, Any]) -> Answer:
        big = request["method"] == "depth" and request["params"]["limit"] == 5000
        return ok(request, {"bids": ["x" * 4096]}) if big else normal(request)

    async with _ScriptedPeer(script) as url, _api(url, max_frame_bytes=1024, retries=0) as api:
        await api.wait_ready(5)
        with pytest.raises(errors.ConnectionLost):
            await api.depth("BTCUSDT", 5000)
        assert (await api.depth("BTCUSDT", 5))["lastUpdateId"] == 1  # on the next connection
        assert api.stats.connects == 2


async def test_a_connection_whose_clock_sync_fails_is_replaced_before_it_serves() -> None:
    def script(connection: int, request: dict[str, Any]) -> Answer:
        if request["method"] == "time" and connection == 1:
            return ok(request, {"serverTime": "soon"})
        return normal(request)

    events: list[dict[str, Any]] = []
    peer = _ScriptedPeer(script)
    async with peer as url, _api(url, on_event=events.append) as api:
        assert await api.request("ping") == {}
        assert [(c, m) for c, m, _ in peer.requests] == [(1, "time"), (2, "time"), (2, "ping")]
        assert [e["type"] for e in events] == ["connected", "disconnected", "connected"]


async def test_a_session_resumed_after_a_reconnect_or_else_a_new_connection(
        tmp_path: Path) -> None:
    """A logon that times out on the new connection is tried again on another one: requests
    never go out unauthenticated in between."""
    key, _ = _key_files(tmp_path)

    def script(connection: int, request: dict[str, Any]) -> Answer:
        if request["method"] == "session.logon" and connection == 2:
            return None  # no answer: a timeout
        return normal(request)

    peer = _ScriptedPeer(script)
    events: list[dict[str, Any]] = []
    async with peer as url, _api(url, credentials=Credentials(API_KEY, key),
                                 on_event=events.append) as api:
        await api.logon()  # the first call: it waits for the connection
        api._transport.disconnect()  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
        assert await api.request("ping") == {}
        methods = [(c, m) for c, m, _ in peer.requests]
        assert methods == [(1, "time"), (1, "session.logon"), (2, "time"),
                           (2, "session.logon"), (3, "time"), (3, "session.logon"),
                           (3, "ping")]
        assert [e["type"] for e in events if e["type"] in ("logged_on", "logon_failed")] == [
            "logged_on", "logon_failed", "logged_on"]


@pytest.mark.parametrize(("status", "code"), [(418, -1003), (429, -1003), (400, -1021)])
async def test_a_logon_refused_for_now_is_tried_on_a_new_connection(
        tmp_path: Path, status: int, code: int) -> None:
    """A ban, a throttle or a clock error on the re-logon ends no session: the connection is
    replaced (once the ban is over) and the session resumed there."""
    key, _ = _key_files(tmp_path)

    def script(connection: int, request: dict[str, Any]) -> Answer:
        if request["method"] == "session.logon" and connection == 2:
            return {"id": request["id"], "status": status,
                    "error": {"code": code, "msg": "not now",
                              "data": {"retryAfter": int(time.time() * 1000) + 200}}}
        return normal(request)

    peer = _ScriptedPeer(script)
    events: list[dict[str, Any]] = []
    async with peer as url, _api(url, credentials=Credentials(API_KEY, key),
                                 on_event=events.append) as api:
        await api.logon()
        api._transport.disconnect()  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
        assert await api.request("ping") == {}
        assert [(c, m) for c, m, _ in peer.requests][-3:] == [
            (3, "time"), (3, "session.logon"), (3, "ping")]
        assert [e["type"] for e in events if e["type"] in ("logged_on", "logon_failed")] == [
            "logged_on", "logon_failed", "logged_on"]


async def test_a_logon_refused_for_good_ends_the_session(tmp_path: Path) -> None:
    key, _ = _key_files(tmp_path)

    def script(connection: int, request: dict[str, Any]) -> Answer:
        if request["method"] == "session.logon" and connection == 2:
            return {"id": request["id"], "status": 401,
                    "error": {"code": -2015, "msg": "Invalid API-key, IP, or permissions"}}
        return normal(request)

    peer = _ScriptedPeer(script)
    async with peer as url, _api(url, credentials=Credentials(API_KEY, key)) as api:
        await api.logon()
        api._transport.disconnect()  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
        assert await api.request("ping") == {}  # on connection 2, without a session
        assert [(c, m) for c, m, _ in peer.requests][-3:] == [
            (2, "time"), (2, "session.logon"), (2, "ping")]


@contextlib.asynccontextmanager
async def refusing(status: int) -> AsyncIterator[str]:
    """A WS API endpoint that answers every upgrade with `status`."""
    async with answering(status, b"unknown timeUnit") as port:
        yield f"ws://127.0.0.1:{port}/ws-api/v3?timeUnit=X"


async def test_a_handshake_refused_for_good_is_not_tried_again() -> None:
    events: list[dict[str, Any]] = []
    async with refusing(400) as url, _api(url, on_event=events.append) as api:
        waiting = asyncio.ensure_future(api.request("ping"))
        with pytest.raises(errors.Refused, match="HTTP 400: unknown timeUnit"):
            await asyncio.wait_for(waiting, 2.0)
        with pytest.raises(errors.Refused):
            await api.request("time")
        assert api.task is not None and api.task.done() and api.stats.connects == 0
    assert [(e["type"], e["retry_in_s"]) for e in events] == [("connect_failed", None)]


async def test_a_client_not_started_refuses_at_once() -> None:
    api = WsApiClient("ws://127.0.0.1:9/ws-api/v3", WeightBudget(6000, 60.0))
    for call in (api.request("ping"), api.logon()):
        with pytest.raises(errors.ClientClosed, match="not started"):
            await asyncio.wait_for(call, 1.0)
    await api.start()
    await api.close()
    with pytest.raises(errors.ClientClosed, match="client closed"):
        await asyncio.wait_for(api.request("ping"), 1.0)


async def test_close_ends_the_requests_that_wait_for_the_connection_or_for_weight() -> None:
    async with _ScriptedPeer(lambda _, request: normal(request)) as url:
        budget = WeightBudget(300, 60.0)
        api = WsApiClient(url, budget, request_timeout_s=1.0)
        await api.start()
        await api.wait_ready(5)
        first = asyncio.ensure_future(api.depth("BTCUSDT", 5000))  # weight 250: no room left
        waiting = [asyncio.ensure_future(api.depth("BTCUSDT", 5000)) for _ in range(2)]
        await first
        await asyncio.sleep(0.05)
        unconnected = WsApiClient("ws://127.0.0.1:9/ws-api/v3", WeightBudget(6000, 60.0),
                                  backoff=_Backoff())
        await unconnected.start()
        never = asyncio.ensure_future(unconnected.request("ping"))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await asyncio.gather(api.close(), unconnected.close())
        for request in (*waiting, never):
            with pytest.raises(errors.ClientClosed):
                await asyncio.wait_for(request, 1.0)
        assert time.monotonic() - started < 1.0


async def test_busy_answers_are_retried_after_a_growing_pause() -> None:
    busy = [2]

    def script(_: int, request: dict[str, Any]) -> Answer:
        if request["method"] == "depth" and busy[0]:
            busy[0] -= 1
            return {"id": request["id"], "status": 503,
                    "error": {"code": -1008, "msg": "Server is currently overloaded"}}
        return normal(request)

    peer = _ScriptedPeer(script)
    async with peer as url, _api(url) as api:
        assert (await api.depth("BTCUSDT", 5))["lastUpdateId"] == 1
    sent = [t for _, method, t in peer.requests if method == "depth"]
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert len(sent) == 3 and gaps[0] >= 0.09 and gaps[1] >= 0.19  # 0.2 s, then 0.4 s, +-50 %


async def test_a_live_limit_below_a_connections_weight_does_not_end_the_connection_loop(
        ) -> None:
    """A budget with no floor follows a `rateLimits` of 1: the next connection's weight (2)
    cannot be granted, and the loop says so and tries again instead of dying."""
    def script(connection: int, request: dict[str, Any]) -> Answer:
        answer = normal(request)
        if request["method"] == "depth":
            answer["rateLimits"] = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                                     "intervalNum": 1, "limit": 1, "count": 0}]
        return answer

    events: list[dict[str, Any]] = []
    async with _ScriptedPeer(script) as url:
        api = _api(url, retries=0, on_event=events.append)
        async with api:
            await api.wait_ready(5)
            await api.depth("BTCUSDT", 5)
            assert api.budget.limit == 1
            assert api._transport is not None
            api._transport.disconnect()  # the exchange drops the connection
            async with asyncio.timeout(5):
                while sum(e["type"] == "connect_failed" for e in events) < 2:
                    await asyncio.sleep(0.01)
            assert api.task is not None and not api.task.done()
            api.budget.configure(6000, 60.0)  # the exchange's next word: the loop gets on
            await api.wait_ready(5)
            assert await api.time()
    failed = [e["error"] for e in events if e["type"] == "connect_failed"]
    assert failed[0] == "request weight 2 exceeds the whole budget 1"
