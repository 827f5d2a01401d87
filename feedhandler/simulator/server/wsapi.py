"""The simulator's WebSocket API, `/ws-api/v3` (protocol doc §6): the methods a feed handler
uses, request weights with the `REQUEST_WEIGHT` limit, and Ed25519 sessions.

Methods: `ping`, `time`, `exchangeInfo` (the universe, with PRICE_FILTER / LOT_SIZE and the
rate limits), `depth` (the true book of the market, `limit` up to 5000), `ticker.book`,
`session.logon` / `session.status` / `session.logout`.

Rate limits: every request is charged its weight (the client's table, `wsapi.methods`) in
calendar-aligned windows of `api_weight_interval` seconds per client IP; connecting costs 2.
A request over the limit is refused, uncharged, with 429 and `retryAfter` = the window's end
(epoch ms); `api_ban_after` refusals in one window ban the IP for `ban_duration` (418,
`retryAfter` = the ban's end). Every response carries `rateLimits` with the current count,
unless the request or the connection's URL says `returnRateLimits` false.

Time unit: epoch times in responses (`serverTime`, `connectedSince`, `authorizedSince`,
`retryAfter`, a `serverShutdown`'s `E`) are ms, or µs on a connection opened with
`?timeUnit=MICROSECOND` (read from the µs clock, not ms scaled: a client can measure its
clock offset from `time` to the microsecond). Request `timestamp`s stay ms.

Assumptions where the docs are silent: malformed JSON or a request without a usable `id` or
`method` is answered with `id: null`, status 400, code -1100 (-1102 for a missing parameter);
an unknown method is 400/-1100; an unknown API key on logon is 401/-2015.

Listings (`WsApiService.set_status`, for tests): a symbol's exchangeInfo status changes at
runtime (`BREAK` -> `TRADING` lists it, `TRADING` -> `BREAK` delists it).

Faults (`WsApiService.faults`, for tests): `slow_s` delays every response, `jitter_s` adds a
random delay (responses come out of order), `drop` swallows the next N requests (no response),
`limit` answers the next N with 429; `ApiConnection.drop()` cuts a connection.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from feedhandler.simulator.market.fixedpoint import fmt_fixed
from feedhandler.simulator.market.render import SymbolFormat
from feedhandler.simulator.market.universe import SymbolSpec, Universe
from feedhandler.simulator.server.heartbeat import Heartbeat
from feedhandler.simulator.server.market import MarketBusy
from feedhandler.simulator.server.urls import TimeUnit
from feedhandler.wsapi.methods import (
    CONNECT_WEIGHT,
    DEPTH_LIMIT_MAX,
    request_weight,
    used_weight_header,
)
from feedhandler.wsapi.signing import signature_payload

log = logging.getLogger(__name__)

API_PATH = b"/ws-api/v3"  # request target, as picows gives it
SYMBOL_STATUSES = frozenset({"TRADING", "HALT", "BREAK"})  # what symbolStatus may ask for
Levels = list[tuple[int, int]]
_MAX_PRICE = 100_000_000 * 100_000_000  # 1e8 in 1e-8 units
_MAX_QTY = 9_000_000_000 * 100_000_000


class MarketView(Protocol):
    """What the WS API reads from the simulated market."""

    @property
    def universe(self) -> Universe: ...

    def snapshot(self, symbol: str, limit: int) -> tuple[int, Levels, Levels]: ...


class ApiError(Exception):
    def __init__(self, status: int, code: int, msg: str, data: dict[str, Any] | None = None):
        super().__init__(msg)
        self.status, self.code, self.msg, self.data = status, code, msg, data


@dataclass(slots=True)
class ApiFaults:
    slow_s: float = 0.0  # delay before every response...
    jitter_s: float = 0.0  # ...plus a random one up to this: responses overtake each other
    drop: int = 0  # next N requests get no response at all
    limit: int = 0  # next N requests are answered 429


class WeightLimiter:
    """REQUEST_WEIGHT per IP in calendar-aligned windows, with 429 -> 418 escalation."""

    def __init__(self, limit: int, interval_s: int, ban_after: int, ban_s: float) -> None:
        self.limit, self.interval_s = limit, interval_s
        self.ban_after, self.ban_s = ban_after, ban_s
        self._windows: dict[str, tuple[int, int, int]] = {}  # ip -> (window, count, refused)
        self._banned_until_ms: dict[str, int] = {}
        self.charged = 0
        self.refused = 0

    def _window(self, ip: str, now_ms: int) -> tuple[int, int, int]:
        window = now_ms // (self.interval_s * 1000)
        current = self._windows.get(ip)
        if current is None or current[0] != window:
            current = self._windows[ip] = (window, 0, 0)
        return current

    def count(self, ip: str, now_ms: int) -> int:
        return self._window(ip, now_ms)[1]

    def charge(self, ip: str, weight: int, now_ms: int, force_refusal: bool = False) -> None:
        """Count `weight` for `ip`, or raise the 429/418 ApiError without counting it."""
        banned_until = self._banned_until_ms.get(ip, 0)
        if now_ms < banned_until:
            self.refused += 1
            raise _banned(banned_until, now_ms)
        window, count, refused = self._window(ip, now_ms)
        if count + weight <= self.limit and not force_refusal:
            self._windows[ip] = (window, count + weight, refused)
            self.charged += weight
            return
        self.refused += 1
        refused += 1
        self._windows[ip] = (window, count, refused)
        if self.ban_after and refused >= self.ban_after:
            until = now_ms + int(self.ban_s * 1000)
            self._banned_until_ms[ip] = until
            raise _banned(until, now_ms)
        retry_after = (window + 1) * self.interval_s * 1000
        raise ApiError(
            429,
            -1003,
            f"Too much request weight used; current limit is {self.limit} request weight per "
            f"{self.interval_s} SECOND. Please use WebSocket Streams for live updates to avoid "
            "polling the API.",
            {"serverTime": now_ms, "retryAfter": retry_after},
        )

    def used_weight_header(self, ip: str, now_ms: int) -> tuple[str, str]:
        """REST's report of the weight `ip` used in the window, e.g. X-MBX-USED-WEIGHT-1M."""
        return used_weight_header(self.interval_s), str(self.count(ip, now_ms))

    def rate_limits(self, ip: str, now_ms: int) -> list[dict[str, Any]]:
        interval, num = ("MINUTE", self.interval_s // 60) if self.interval_s % 60 == 0 else (
            "SECOND", self.interval_s
        )
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": interval,
                "intervalNum": num,
                "limit": self.limit,
                "count": self.count(ip, now_ms),
            }
        ]


def _banned(until_ms: int, now_ms: int) -> ApiError:
    return ApiError(
        418,
        -1003,
        f"Way too much request weight used; IP banned until {until_ms}. Please use WebSocket "
        "Streams for live updates to avoid bans.",
        {"serverTime": now_ms, "retryAfter": until_ms},
    )


@dataclass(slots=True)
class _Session:
    connected_since_us: int
    micros: bool = False  # the connection's timeUnit: epoch times in responses are µs
    rate_limits: bool = True  # responses carry `rateLimits` (the URL's returnRateLimits)
    api_key: str | None = None
    authorized_since_us: int | None = None

    def stamp(self, epoch_us: int) -> int:
        """An epoch time in this connection's unit."""
        return epoch_us if self.micros else epoch_us // 1_000

    def result(self, now_us: int) -> dict[str, Any]:
        since = self.authorized_since_us
        return {
            "apiKey": self.api_key,
            "authorizedSince": None if since is None else self.stamp(since),
            "connectedSince": self.stamp(self.connected_since_us),
            "returnRateLimits": self.rate_limits,
            "serverTime": self.stamp(now_us),
            "userDataStream": None,
        }


def _symbol_info(spec: SymbolSpec, status: str) -> dict[str, Any]:
    return {
        "symbol": spec.symbol,
        "status": status,
        "baseAsset": spec.base,
        "baseAssetPrecision": 8,
        "quoteAsset": spec.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "isSpotTradingAllowed": True,
        "permissionSets": [["SPOT"]],
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt_fixed(spec.tick_size, 8),
                "maxPrice": fmt_fixed(_MAX_PRICE // spec.tick_size * spec.tick_size, 8),
                "tickSize": fmt_fixed(spec.tick_size, 8),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt_fixed(spec.step_size, 8),
                "maxQty": fmt_fixed(_MAX_QTY // spec.step_size * spec.step_size, 8),
                "stepSize": fmt_fixed(spec.step_size, 8),
            },
        ],
    }


def _params(request: Mapping[str, Any]) -> dict[str, Any]:
    params = request.get("params", {})
    if not isinstance(params, dict):
        raise ApiError(400, -1100, "Illegal characters found in parameter 'params'.")
    return params


def _required(params: Mapping[str, Any], name: str) -> Any:
    if name not in params:
        raise ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, "
                                   "or malformed.")
    return params[name]


class WsApiService:
    """State shared by all WS API connections of one simulator."""

    def __init__(
        self,
        market: MarketView | None,
        *,
        weight_limit: int = 6000,
        weight_interval_s: int = 60,
        ban_after: int = 10,
        ban_s: float = 120.0,
        api_keys: Mapping[str, bytes] | None = None,
        clock_offset_ms: int = 0,
    ) -> None:
        self.market = market
        self.limiter = WeightLimiter(weight_limit, weight_interval_s, ban_after, ban_s)
        self.faults = ApiFaults()
        self.rng = random.Random(0)  # response jitter
        self.clock_offset_ms = clock_offset_ms
        self._keys: dict[str, Ed25519PublicKey] = {}
        for api_key, pem in (api_keys or {}).items():
            self.add_key(api_key, pem)
        self.requests = 0  # requests received (counted or refused)
        self._formats: dict[str, SymbolFormat] = {}
        self.statuses: dict[str, str] = {}  # symbol -> exchangeInfo status; absent: TRADING

    def set_status(self, symbol: str, status: str) -> None:
        """List or delist a symbol at runtime, as exchangeInfo shows it: `TRADING`, or `BREAK`
        (a delisting, or a listing announced but not open yet), `HALT`, ... (its streams are
        unchanged: what a handler follows is its business)."""
        if self.market is None or symbol not in self.market.universe:
            raise KeyError(f"no symbol {symbol!r} in the simulated universe")
        self.statuses[symbol] = status

    def add_key(self, api_key: str, public_pem: bytes) -> None:
        key = load_pem_public_key(public_pem)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("simulator API keys must be Ed25519 public keys")
        self._keys[api_key] = key

    def now_us(self) -> int:
        return time.time_ns() // 1_000 + self.clock_offset_ms * 1_000

    def now_ms(self) -> int:
        return self.now_us() // 1_000

    def connection(self, peer: str, time_unit: TimeUnit = "ms",
                   rate_limits: bool = True) -> ApiConnection:
        # connecting costs weight; over the limit it is the handshake limiter's to refuse
        with contextlib.suppress(ApiError):
            self.limiter.charge(peer, CONNECT_WEIGHT, self.now_ms())
        return ApiConnection(self, peer, time_unit, rate_limits)

    # -- requests -------------------------------------------------------------------------------

    def handle(self, payload: bytes, peer: str, session: _Session) -> bytes:
        """Answer one request frame."""
        self.requests += 1
        request_id: Any = None
        rate_limits = session.rate_limits
        now_us = self.now_us()
        now = now_us // 1_000
        try:
            try:
                request = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise ApiError(400, -1100, "Malformed request: invalid JSON.") from None
            if not isinstance(request, dict) or not isinstance(request.get("method"), str):
                raise ApiError(400, -1100, "Malformed request: no method.")
            request_id = request.get("id")
            method = str(request["method"]).removeprefix("v3/")
            params = _params(request)
            if isinstance(params.get("returnRateLimits"), bool):  # this request's own choice
                rate_limits = params["returnRateLimits"]
            force_refusal = self.faults.limit > 0
            self.faults.limit = max(0, self.faults.limit - 1)
            try:
                self.limiter.charge(peer, request_weight(method, params), now, force_refusal)
                result = self._apply(method, params, session, now_us)
            except (TypeError, ValueError, KeyError, AttributeError):  # {"limit": "x"}, ...
                # (logged in full: a fault of the simulator's own would hide behind it)
                log.debug("ws-api %s %r: answered -1100", method, params, exc_info=True)
                raise ApiError(400, -1100, "Illegal characters found in a parameter.") from None
            except MarketBusy as busy:
                raise ApiError(busy.status, busy.code, busy.msg) from None
            response: dict[str, Any] = {"id": request_id, "status": 200, "result": result}
        except ApiError as exc:
            error: dict[str, Any] = {"code": exc.code, "msg": exc.msg}
            if exc.data is not None:  # the limiter's epoch ms: retryAfter, serverTime (now)
                error["data"] = {name: session.stamp(now_us if name == "serverTime" else
                                                     value * 1_000)
                                 for name, value in exc.data.items()}
            response = {"id": request_id, "status": exc.status, "error": error}
        if rate_limits:
            response["rateLimits"] = self.limiter.rate_limits(peer, now)
        return orjson.dumps(response)

    def _apply(self, method: str, params: dict[str, Any], session: _Session, now_us: int) -> Any:
        handler = self._METHODS.get(method)
        if handler is None:
            raise ApiError(400, -1100, f"Unknown method '{method}'.")
        return handler(self, params, session, now_us)

    def _ping(self, params: dict[str, Any], session: _Session, now_us: int) -> Any:
        return {}

    def _time(self, params: dict[str, Any], session: _Session, now_us: int) -> Any:
        return {"serverTime": session.stamp(now_us)}

    def _universe(self) -> Universe:
        if self.market is None:
            raise ApiError(400, -1121, "Invalid symbol.")
        return self.market.universe

    def _spec(self, params: Mapping[str, Any]) -> SymbolSpec:
        symbol = _required(params, "symbol")
        universe = self._universe()
        if not isinstance(symbol, str) or symbol not in universe:
            raise ApiError(400, -1121, "Invalid symbol.")
        return universe[symbol]

    def _spec_in_status(self, params: Mapping[str, Any]) -> SymbolSpec:
        """The request's symbol, if its optional `symbolStatus` is the symbol's (else -1220)."""
        spec = self._spec(params)
        if not self._matches(spec, params.get("symbolStatus")):
            raise ApiError(400, -1220, "The symbol's status does not match the requested "
                                       "symbolStatus.")
        return spec

    def _matches(self, spec: SymbolSpec, wanted: object) -> bool:
        """Is `spec` in status `wanted` (None: any)?"""
        if wanted is None:
            return True
        if wanted not in SYMBOL_STATUSES:
            raise ApiError(400, -1100, "Illegal characters found in parameter 'symbolStatus'.")
        return self._symbol_status(spec) == wanted

    def _symbol_status(self, spec: SymbolSpec) -> str:
        return self.statuses.get(spec.symbol, "TRADING")

    def _format(self, spec: SymbolSpec) -> SymbolFormat:
        fmt = self._formats.get(spec.symbol)
        if fmt is None:
            fmt = self._formats[spec.symbol] = SymbolFormat(spec)
        return fmt

    def _exchange_info(self, params: dict[str, Any], session: _Session, now_us: int) -> Any:
        universe = self._universe() if self.market is not None else Universe([])
        if "symbol" in params:
            specs = [self._spec(params)]
        elif "symbols" in params:
            specs = [self._spec({"symbol": s}) for s in params["symbols"]]
        else:
            specs = list(universe)
        limiter = self.limiter
        return {
            "timezone": "UTC",
            "serverTime": session.stamp(now_us),
            "rateLimits": [
                {**limiter.rate_limits("", now_us // 1_000)[0], "count": 0},
                {"rateLimitType": "CONNECTIONS", "interval": "MINUTE", "intervalNum": 5,
                 "limit": 300},
            ],
            "exchangeFilters": [],
            "symbols": [_symbol_info(spec, self._symbol_status(spec))
                        for spec in specs],
        }

    def _depth(self, params: dict[str, Any], session: _Session, now_us: int) -> Any:
        spec = self._spec_in_status(params)
        limit = params.get("limit", 100)
        if not isinstance(limit, int) or limit < 1:
            raise ApiError(400, -1100, "Illegal characters found in parameter 'limit'.")
        assert self.market is not None
        last, bids, asks = self.market.snapshot(spec.symbol, min(limit, DEPTH_LIMIT_MAX))
        fmt = self._format(spec)
        return {
            "lastUpdateId": last,
            "bids": [[fmt.price(p), fmt.qty(q)] for p, q in bids],
            "asks": [[fmt.price(p), fmt.qty(q)] for p, q in asks],
        }

    def _ticker_book(self, params: dict[str, Any], session: _Session, now_us: int) -> Any:
        def one(spec: SymbolSpec) -> dict[str, str]:
            assert self.market is not None
            _, bids, asks = self.market.snapshot(spec.symbol, 1)
            fmt = self._format(spec)
            (bp, bq), (ap, aq) = bids[0], asks[0]
            return {"symbol": spec.symbol, "bidPrice": fmt.price(bp), "bidQty": fmt.qty(bq),
                    "askPrice": fmt.price(ap), "askQty": fmt.qty(aq)}

        if "symbol" in params:
            return one(self._spec_in_status(params))
        return [one(spec) for spec in self._universe()
                if self._matches(spec, params.get("symbolStatus"))]

    def _logon(self, params: dict[str, Any], session: _Session, now_us: int) -> Any:
        api_key = _required(params, "apiKey")
        timestamp = _required(params, "timestamp")
        signature = _required(params, "signature")
        recv_window = params.get("recvWindow", 5000)
        if not isinstance(timestamp, int) or not isinstance(recv_window, int | float):
            raise ApiError(400, -1100, "Illegal characters found in parameter 'timestamp'.")
        now = now_us // 1_000  # (the request's timestamp is ms)
        if not (timestamp < now + 1000 and now - timestamp <= recv_window):
            raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        public = self._keys.get(api_key) if isinstance(api_key, str) else None
        if public is None:
            raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        try:
            raw = base64.b64decode(str(signature), validate=True)
            public.verify(raw, signature_payload(params).encode())
        except (InvalidSignature, binascii.Error, ValueError):
            raise ApiError(400, -1022, "Signature for this request is not valid.") from None
        session.api_key, session.authorized_since_us = api_key, now_us
        return session.result(now_us)

    def _status(self, params: dict[str, Any], session: _Session, now_us: int) -> Any:
        return session.result(now_us)

    def _logout(self, params: dict[str, Any], session: _Session, now_us: int) -> Any:
        session.api_key = session.authorized_since_us = None
        return session.result(now_us)

    _METHODS: ClassVar[dict[str, Callable[[WsApiService, dict[str, Any], _Session, int], Any]]] = {
        "ping": _ping,
        "time": _time,
        "exchangeInfo": _exchange_info,
        "depth": _depth,
        "ticker.book": _ticker_book,
        "session.logon": _logon,
        "session.status": _status,
        "session.logout": _logout,
    }


class ApiConnection(WSListener):
    """One WS API client connection."""

    def __init__(self, service: WsApiService, peer: str, time_unit: TimeUnit = "ms",
                 rate_limits: bool = True) -> None:
        super().__init__()
        self._service = service
        self.peer = peer
        self._session = _Session(service.now_us(), micros=time_unit == "us",
                                 rate_limits=rate_limits)
        self._transport: WSTransport | None = None
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._heartbeat: Heartbeat | None = None
        self._lifetime_s = math.inf
        self._lifetime: asyncio.TimerHandle | None = None
        self._closing = False  # our close frame is sent

    def keep_alive(self, ping_interval_s: float, pong_timeout_s: float,
                   lifetime_s: float) -> None:
        """As on stream connections: a ping every `ping_interval_s`, closed (1008) when its
        pong has not come within `pong_timeout_s`, and closed (1000) after `lifetime_s`."""
        self._heartbeat = Heartbeat(self._loop, ping_interval_s, pong_timeout_s,
                                    self._send_ping, lambda: self.close(1008, "Pong timeout"))
        self._lifetime_s = lifetime_s

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        if self._heartbeat is not None:
            self._heartbeat.start()
        if math.isfinite(self._lifetime_s):
            self._lifetime = self._loop.call_later(
                self._lifetime_s, self.close, 1000, "Connection lifetime exceeded")

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            # answered with 1000, as the stream connections do (echoing an empty close's
            # "no code" would put 0 on the wire, which RFC 6455 does not allow); ours answered
            if not self._closing:
                self._closing = True
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()
            return
        if frame.msg_type == WSMsgType.PING:  # (picows's auto-pong is off for every connection)
            transport.send_pong(frame.get_payload_as_bytes())
            return
        if frame.msg_type == WSMsgType.PONG:
            if self._heartbeat is not None:
                self._heartbeat.on_pong(frame.get_payload_as_bytes())
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        faults = self._service.faults
        if faults.drop > 0:
            faults.drop -= 1
            return
        reply = self._service.handle(frame.get_payload_as_bytes(), self.peer, self._session)
        delay = faults.slow_s + self._service.rng.uniform(0.0, faults.jitter_s)
        if delay > 0:
            self._loop.call_later(delay, self._send, reply)
        else:
            transport.send(WSMsgType.TEXT, reply)

    def _send(self, reply: bytes) -> None:
        if self._transport is not None and not self._transport.is_disconnected:
            self._transport.send(WSMsgType.TEXT, reply)

    def _send_ping(self, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_disconnected:
            self._transport.send_ping(payload)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._stop_timers()
        if not self.closed.done():
            self.closed.set_result(None)

    def _stop_timers(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        if self._lifetime is not None:
            self._lifetime.cancel()

    def send_server_shutdown(self) -> None:
        now = self._session.stamp(self._service.now_us())
        self._send(orjson.dumps({"event": {"e": "serverShutdown", "E": now}}))

    def drop(self) -> None:
        """Drop TCP without a close frame."""
        if self._transport is not None:
            self._transport.disconnect(graceful=False)

    def close(self, code: int, reason: str, timeout_s: float = 1.0) -> None:
        """Start the close handshake; TCP goes when the client answers or after `timeout_s`."""
        if self._transport is None or self._transport.is_disconnected:
            return
        self._stop_timers()
        self._closing = True
        self._transport.send_close(WSCloseCode(code), reason.encode())
        self._loop.call_later(timeout_s, self.drop)
