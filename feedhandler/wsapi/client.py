"""`WsApiClient`: one persistent connection to Binance's WebSocket API (`ws-api/v3`).

Requests are `{"id","method","params"}` text frames; responses are matched by id in whatever
order they come. Each request, before it is sent, waits for the connection and then for its
weight in the shared `WeightBudget`; once sent it waits at most its timeout.

Retries: only idempotent reads (`methods.IDEMPOTENT`) are sent again, after a timeout, a drop,
a 429 (once its `retryAfter` has passed), a 5xx or -1008. A write whose status is unknown is
never resent: the caller gets the exception.

The connection is kept up by a loop that reconnects with backoff, taking a slot from the
shared connection-attempt limiter first (the supervisor's; any object with `async acquire()`
fits) and the connection's weight from the budget. After a reconnect the session is logged on
again before any queued request goes out. Control-plane only: responses are parsed with
orjson, one object per response (a few per second), never per market-data message.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import orjson
from picows import (
    WSError,
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from feedhandler.supervisor.backoff import Backoff
from feedhandler.supervisor.failures import DEFAULT_RETRY_AFTER_S, classify
from feedhandler.supervisor.pending import PendingRequests
from feedhandler.wsapi import errors
from feedhandler.wsapi.budget import NORMAL, URGENT, WeightBudget
from feedhandler.wsapi.clock import ClockOffset
from feedhandler.wsapi.methods import CONNECT_WEIGHT, DEPTH_LIMIT_MAX, IDEMPOTENT, request_weight
from feedhandler.wsapi.signing import Credentials

log = logging.getLogger(__name__)

EventSink = Callable[[dict[str, Any]], None]
_GUARD_S = 0.05
RETRY_BASE_S = 0.2  # the first retry after a 5xx/-1008, doubling (with jitter) after each
# a logon refused for these ends the session; any other failure is tried on a new connection
REFUSED_FOR_GOOD = (errors.Unauthorized, errors.InvalidSignature, errors.BadRequest)
_LONGEST_BAN_S = 3 * 86_400.0  # bans scale from 2 minutes to 3 days
_INTERVAL_S = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}


class BackoffPolicy(Protocol):
    def next_delay(self) -> float: ...
    def reset(self) -> None: ...


class AttemptLimiter(Protocol):
    """The process-wide connection-attempt limiter (`supervisor.limiter.AttemptLimiter`):
    `async with attempt():` waits for a slot and holds it while connecting."""

    def attempt(self) -> AbstractAsyncContextManager[None]: ...
    def block_for(self, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One element of a response's `rateLimits`, as last seen."""

    type: str
    interval_s: int
    limit: int
    count: int


@dataclass(slots=True)
class ClientStats:
    requests: int = 0  # frames sent
    responses: int = 0
    timeouts: int = 0
    retries: int = 0
    late: int = 0  # responses to requests that had already timed out
    rate_limited: int = 0  # 429/418 responses
    connects: int = 0
    disconnects: int = 0


class _Listener(WSListener):
    def __init__(self, client: WsApiClient) -> None:
        super().__init__()
        self._client = client

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self._client._on_message(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()


class WsApiClient:
    """`async with WsApiClient(url, budget) as api: await api.depth("BTCUSDT", 5000)`."""

    def __init__(
        self,
        url: str,
        budget: WeightBudget,
        *,
        credentials: Credentials | None = None,
        request_timeout_s: float = 10.0,
        retries: int = 2,
        recv_window_ms: int = 5000,
        backoff: BackoffPolicy | None = None,
        limiter: AttemptLimiter | None = None,
        on_event: EventSink | None = None,
        max_frame_bytes: int = 64 << 20,  # a 5000-level depth is ~250 kB; exchangeInfo more
        clock_samples: int = 8,  # `time` round trips the clock offset is the best of
        backoff_reset_after_s: float = 30.0,  # up this long: the next reconnect starts afresh
        ssl_context: ssl.SSLContext | None = None,  # wss://: None is picows's default
    ) -> None:
        self.url = url
        self._ssl_context = ssl_context
        self.budget = budget
        self.clock = ClockOffset(keep=clock_samples)
        # `?timeUnit=MICROSECOND`: the server's epoch times are µs (a finer clock offset)
        query = parse_qs(urlsplit(url).query)
        unit = (query.get("timeUnit") or [""])[-1].upper()  # either case, as the exchange
        self._units_per_ms = 1_000 if unit == "MICROSECOND" else 1
        self.rate_limits: dict[tuple[str, int], RateLimit] = {}
        self.stats = ClientStats()
        self.request_timeout_s = request_timeout_s
        self.retries = retries
        self.recv_window_ms = recv_window_ms
        self._credentials = credentials
        self._backoff: BackoffPolicy = backoff or Backoff(0.5, 30.0)
        self._backoff_reset_after_s = backoff_reset_after_s
        self._limiter = limiter
        self._on_event = on_event or (lambda event: None)
        self._max_frame_bytes = max_frame_bytes
        self._pending: PendingRequests[str] = PendingRequests()  # tag: the method
        self._transport: WSTransport | None = None
        self._ready = asyncio.Event()  # connected (and logged on again, if we were)
        self._closed = asyncio.Event()  # close(), or a refusal: whatever waits gives up
        self.refused = ""  # why the exchange refused the connection for good (then no retry)
        self._session_wanted = False  # logon() succeeded: log on again after a reconnect
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._drain: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the connection loop; returns at once (requests wait for the connection)."""
        if self._task is None:
            self._closing = False
            self._closed.clear()
            self._task = asyncio.create_task(self._run(), name="wsapi-connection")

    async def wait_ready(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self._ready.wait()

    async def close(self) -> None:
        self._closing = True
        self._closed.set()
        self._ready.clear()
        if self._transport is not None:
            self._transport.disconnect()
        for task in (self._task, self._drain):
            if task is not None:
                task.cancel()
                # (one that failed keeps its exception, which its done callbacks were told:
                # the client closes all the same, and its owner's shutdown goes on)
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._drain = None
        self._fail_pending(errors.ClientClosed("client closed"))

    async def __aenter__(self) -> WsApiClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The connection loop, once started (it ends only at close(), or by a bug)."""
        return self._task

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    # -- requests -----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        params: Mapping[str, Any] | None = None,
        *,
        priority: int = NORMAL,
        timeout: float | None = None,
        signed: bool = False,
    ) -> Any:
        """Send one request (retrying idempotent reads where safe); its `result`, or raises a
        `errors.WsApiError` subclass."""
        self._started()
        attempts = 1 + (self.retries if method in IDEMPOTENT else 0)
        for attempt in range(attempts):
            try:
                await self._until_ready()
                return await self._send(method, params, priority, timeout, signed)
            except errors.WsApiError as exc:
                if not exc.retryable or attempt + 1 == attempts or self._closing:
                    raise
                self.stats.retries += 1
                # an overloaded exchange gets room: jittered, doubling (a 429 waits on the
                # budget's block instead; a drop or a timeout on the next connection)
                delay = (RETRY_BASE_S * 2 ** attempt * random.uniform(0.5, 1.5)
                         if isinstance(exc, errors.ExecutionUnknown | errors.ServerBusy) else 0.0)
                log.info("wsapi %s: %s; retrying (%d/%d)%s", method, exc, attempt + 1,
                         self.retries, f" in {delay:.2f} s" if delay else "")
                if delay:
                    await self._unless_closed(asyncio.sleep(delay))
        raise AssertionError("unreachable")

    def _started(self) -> None:
        if self._task is None and not self._closing:  # (nothing would ever connect)
            raise errors.ClientClosed("client not started: use `async with` or start()")

    async def _until_ready(self) -> None:
        """Connected (and logged on again), or errors.ClientClosed / Refused."""
        if not self._ready.is_set():  # (set, it is neither closed nor refused)
            await self._unless_closed(self._ready.wait())

    async def _unless_closed(self, waiting: Awaitable[Any]) -> Any:
        """`waiting`'s result, or errors.ClientClosed once close() is called meanwhile."""
        if self._closed.is_set():
            if asyncio.iscoroutine(waiting):
                waiting.close()
            raise self._closed_error()
        task = asyncio.ensure_future(waiting)
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is not None and current.cancelling():
                        raise  # (our caller is cancelled too: that wins over ClientClosed)
        if task.cancelled():
            raise self._closed_error()
        return task.result()

    def _closed_error(self) -> errors.WsApiError:
        if self.refused:
            return errors.Refused(self.refused)
        return errors.ClientClosed("client closed")

    async def _send(
        self,
        method: str,
        params: Mapping[str, Any] | None,
        priority: int,
        timeout: float | None,
        signed: bool,
    ) -> Any:
        self._transport_or_lost()  # (before its weight is booked)
        weight = request_weight(method, params)
        await self._unless_closed(self.budget.acquire(weight, priority))
        pending_s = self.request_timeout_s  # (until answered, or known not sent)
        try:
            result = await self._exchange(method, params, timeout, signed)
            pending_s = 0.0
            return result
        except errors.WsApiError as exc:  # an answer, or not sent at all, but for these:
            if not (isinstance(exc, errors.RequestTimeout)
                    or (isinstance(exc, errors.ConnectionLost) and exc.sent)):
                pending_s = 0.0
            raise
        finally:
            # A request sent and not answered (cancelled by its caller, timed out, its
            # connection lost) may reach the exchange's count later, up to the exchange's
            # own timeout, which is ours: released now, a window could go over the limit
            self.budget.complete(weight, pending_s)

    async def _exchange(
        self, method: str, params: Mapping[str, Any] | None, timeout: float | None, signed: bool
    ) -> Any:
        transport = self._transport_or_lost()  # (it may have dropped while the weight came)
        if not self._ready.is_set() and asyncio.current_task() is not self._task:
            # admitted on a connection since lost, and this one is still resuming the session
            # (clock, logon: the connection task's own requests), or draining: not on it
            raise errors.ConnectionLost("the connection is not serving yet", sent=False)
        if signed:
            params = self._signed(params or {})
        def send(request_id: int) -> None:
            frame: dict[str, Any] = {"id": request_id, "method": method}
            if params:
                frame["params"] = params
            transport.send(WSMsgType.TEXT, orjson.dumps(frame))

        request_id = self._pending.sent(method, send)
        self.stats.requests += 1
        try:
            return await self._pending.answer(request_id, timeout or self.request_timeout_s)
        except TimeoutError:
            self.stats.timeouts += 1
            raise errors.RequestTimeout(
                f"{method}: no response within {timeout or self.request_timeout_s} s"
            ) from None

    def _transport_or_lost(self) -> WSTransport:
        transport = self._transport
        if transport is None or transport.is_disconnected:
            # not ready until _run, which has yet to see the loss, connects again: a retry
            # must wait for it (else logon() spun without yielding, and request() spent every
            # retry in one tick)
            self._ready.clear()
            raise errors.ConnectionLost("not connected", sent=False)
        return transport

    def _signed(self, params: Mapping[str, Any]) -> dict[str, Any]:
        if self._credentials is None:
            raise errors.Unauthorized("no API credentials configured")
        stamped = {**params, "timestamp": self.clock.now_ms()}
        if self.recv_window_ms:
            stamped["recvWindow"] = self.recv_window_ms
        return self._credentials.signed(stamped)

    # -- methods --------------------------------------------------------------------------------

    async def ping(self) -> None:
        await self.request("ping")

    async def time(self) -> int:
        """Exchange time (epoch ms); also refines the clock offset estimate."""
        sent = time.time_ns()
        return int(self._clock_sample(sent, await self.request("time", priority=URGENT)))

    def _clock_sample(self, sent_ns: int, result: dict[str, Any]) -> float:
        """A `time` answer's round trip into the clock offset; the server's time in ms."""
        server_time = result.get("serverTime") if isinstance(result, dict) else None
        if not isinstance(server_time, int) or isinstance(server_time, bool):
            raise errors.Malformed(f"time: no integer serverTime in {str(result)[:80]!r}")
        server_ms = server_time / self._units_per_ms
        self.clock.add(sent_ns, time.time_ns(), server_ms)
        return server_ms

    async def exchange_info(self, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("exchangeInfo", params or None)
        for limit in result.get("rateLimits", []):
            self._track_limit(limit)
        return result

    async def depth(self, symbol: str, limit: int = 100, *, priority: int = NORMAL) -> Any:
        """`{"lastUpdateId", "bids", "asks"}` of `symbol`, up to `limit` (<= 5000) levels."""
        if not 1 <= limit <= DEPTH_LIMIT_MAX:
            raise ValueError(f"depth limit must be within 1..{DEPTH_LIMIT_MAX}, not {limit}")
        return await self.request("depth", {"symbol": symbol, "limit": limit}, priority=priority)

    async def ticker_book(self, symbol: str | None = None) -> Any:
        return await self.request("ticker.book", {"symbol": symbol} if symbol else None)

    async def logon(self) -> dict[str, Any]:
        """`session.logon` with the Ed25519 credentials; kept across reconnects. Waits for the
        connection; sent again only if it was lost before the request went out."""
        self._started()
        while True:
            await self._until_ready()
            try:
                result = await self._logon()
            except errors.ConnectionLost as exc:
                if exc.sent:
                    raise
                continue  # (dropped meanwhile: the next connection)
            self._session_wanted = True
            self._event("logged_on")
            return result

    async def _logon(self) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await self._send(
                "session.logon", None, URGENT, None, signed=True
            )
        except (errors.InvalidSignature, errors.Unauthorized, errors.InvalidTimestamp) as exc:
            raise type(exc)(
                f"session.logon refused: {exc.msg} (check that the private key belongs to the "
                f"API key, that the key is Ed25519 and the clock offset)",
                status=exc.status,
                code=exc.code,
            ) from None
        return result

    async def session_status(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("session.status", priority=URGENT)
        return result

    async def logout(self) -> dict[str, Any]:
        self._session_wanted = False
        result: dict[str, Any] = await self.request("session.logout", priority=URGENT)
        return result

    # -- responses ------------------------------------------------------------------------------

    def _on_message(self, payload: bytes) -> None:
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            log.warning("wsapi: unparsable message of %d bytes ignored", len(payload))
            return
        if not isinstance(message, dict):
            log.warning("wsapi: a message that is no JSON object ignored: %.80s", payload)
            return
        limits = message.get("rateLimits")
        for limit in limits if isinstance(limits, list) else ():
            self._track_limit(limit)
        if "event" in message:
            self._on_server_event(message["event"])
            return
        request_id = message.get("id")
        status = message.get("status", 0)
        error: errors.WsApiError | None = None
        if not isinstance(status, int) or isinstance(status, bool):
            log.warning("wsapi: a response with status %.40r: its request failed", status)
            error = errors.Malformed(f"response status {str(status)[:40]!r} is no integer")
        elif status != 200:
            error = errors.from_response(status, message.get("error"))
            if isinstance(error, errors.RateLimited):
                self._rate_limited(error)
        if request_id is None:
            if error is not None:
                self._server_error(error)
            return
        self.stats.responses += 1
        if self._pending.settle(request_id, message.get("result"), error) is None:
            self.stats.late += 1

    def _track_limit(self, item: Any) -> None:
        try:
            interval_s = _INTERVAL_S[item["interval"]] * int(item["intervalNum"])
            kind, count = str(item["rateLimitType"]), int(item.get("count", 0))
            limit = RateLimit(kind, interval_s, int(item["limit"]), count)
        except (KeyError, TypeError, ValueError):
            return
        self.rate_limits[(limit.type, interval_s)] = limit
        if limit.type == "REQUEST_WEIGHT":
            self.budget.configure(limit.limit, float(interval_s))
            if "count" in item:
                self.budget.observe(limit.count)

    def _rate_limited(self, error: errors.RateLimited) -> None:
        self.stats.rate_limited += 1
        loop = asyncio.get_running_loop()
        if error.retry_after_ms is not None:
            # past the date (in the connection's time unit) by more than our clock offset's
            # error (half the best round trip); never longer than the exchange's longest ban
            until_ms = error.retry_after_ms / self._units_per_ms
            wait_s = min(max(0.0, (until_ms - self.clock.now_ms()) / 1000) + _GUARD_S,
                         _LONGEST_BAN_S)
        else:  # no date given: as for REST and connections, a minute for a 429, 2 for a ban
            wait_s = max(self.budget.interval_s,
                         DEFAULT_RETRY_AFTER_S.get(error.status, self.budget.interval_s))
        self.budget.block_until(loop.time() + wait_s)
        log.warning("wsapi: %s (HTTP %d); no request for %.1f s", error.msg, error.status, wait_s)
        self._event("rate_limited", status=error.status, code=error.code, wait_s=round(wait_s, 3))

    def _server_error(self, error: errors.WsApiError) -> None:
        """An error with `id: null`: the exchange speaks unprompted (a revoked session key)."""
        if isinstance(error, errors.Unauthorized):
            self._session_wanted = False
        log.warning("wsapi: exchange error %s", error)
        self._event("exchange_error", status=error.status, code=error.code, msg=error.msg)

    def _on_server_event(self, event: Any) -> None:
        kind = event.get("e") if isinstance(event, dict) else None
        self._event("exchange_event", event=kind)
        if kind == "serverShutdown" and self._drain is None:
            # reconnect once the requests in flight are answered (or after their timeout)
            self._drain = asyncio.get_running_loop().create_task(self._reconnect_when_idle())

    async def _reconnect_when_idle(self) -> None:
        transport = self._transport
        self._ready.clear()  # new requests wait for the next connection
        deadline = asyncio.get_running_loop().time() + self.request_timeout_s
        while self._pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if transport is not None:
            transport.disconnect()
        self._drain = None

    # -- connection -----------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> None:
        self._on_event({"type": kind, "source": "wsapi", "ts_ns": time.time_ns(), **fields})

    def _fail_pending(self, exc: errors.WsApiError) -> None:
        self._pending.fail_all(lambda _: exc)

    async def _connect(self) -> WSTransport:
        await self.budget.acquire(CONNECT_WEIGHT, URGENT)
        attempt = self._limiter.attempt() if self._limiter is not None else nullcontext()
        try:
            async with attempt:
                try:
                    transport, _ = await ws_connect(
                        lambda: _Listener(self),
                        self.url,
                        ssl_context=self._ssl_context,
                        enable_auto_ping=True,
                        auto_ping_idle_timeout=30.0,
                        auto_ping_reply_timeout=10.0,
                        max_frame_size=self._max_frame_bytes,
                    )
                except (TimeoutError, OSError, WSError) as exc:
                    retry_after = classify(exc).retry_after_s  # (0 unless throttled)
                    if retry_after and self._limiter is not None:
                        # the whole IP is refused; blocked before the slot frees, so that no
                        # attempt waiting for it goes first
                        self._limiter.block_for(retry_after)
                    raise
        finally:
            self.budget.complete(CONNECT_WEIGHT)
        return transport

    async def _run(self) -> None:
        while not self._closing:
            try:
                transport = await self._connect()
            except errors.OverBudget as exc:  # (a live limit below a connection's weight)
                delay = self._backoff.next_delay()
                log.error("wsapi: cannot connect to %s: %s; retrying in %.2f s", self.url, exc,
                          delay)
                self._event("connect_failed", error=str(exc), retry_in_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            except (TimeoutError, OSError, WSError) as exc:
                failure = classify(exc)
                if failure.kind == "permanent":  # 400/401/403: asking again cannot help
                    self.refused = f"{self.url} refused: {failure.reason}"
                    log.error("wsapi: %s; no more attempts", self.refused)
                    self._event("connect_failed", error=failure.reason, retry_in_s=None)
                    self._closed.set()
                    return
                delay = max(self._backoff.next_delay(), failure.retry_after_s)
                log.warning("wsapi: connect to %s failed (%s); retrying in %.2f s",
                            self.url, exc, delay)
                self._event("connect_failed", error=str(exc), retry_in_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            self._transport = transport
            self.stats.connects += 1
            connected = time.monotonic()
            self._event("connected", url=self.url)
            if await self._resume_session():
                if not transport.is_disconnected:
                    self._ready.set()
            else:
                transport.disconnect()  # not fit to serve: try another connection
            try:
                await transport.wait_disconnected()
            except Exception as exc:  # (picows re-raises what ended the link)
                log.warning("wsapi: connection to %s ended: %r", self.url, exc)
            self._ready.clear()
            self._transport = None
            self.stats.disconnects += 1
            self._fail_pending(errors.ConnectionLost("connection lost with the request in flight"))
            if self._closing:
                return
            self._event("disconnected")
            # not at the handshake: a peer that accepts and closes at once gets a growing delay
            if time.monotonic() - connected >= self._backoff_reset_after_s:
                self._backoff.reset()
            await asyncio.sleep(self._backoff.next_delay())

    async def _resume_session(self) -> bool:
        """Clock offset and, if a session was logged on, the logon: before anything queued.
        False when the connection cannot serve as it should (a failed clock sync, a logon that
        failed for a reason another connection may not have): try another."""
        try:
            sent = time.time_ns()
            self._clock_sample(sent, await self._send("time", None, URGENT, None, signed=False))
        except errors.WsApiError as exc:
            log.warning("wsapi: the clock sync on a new connection failed (%s); reconnecting",
                        exc)
            return False
        if not self._session_wanted:
            return True
        try:
            await self._logon()
        except errors.WsApiError as exc:
            self._event("logon_failed", code=exc.code, msg=exc.msg)
            if not isinstance(exc, REFUSED_FOR_GOOD):  # a ban, the clock, a timeout: for now
                log.warning("wsapi: logging on again failed (%s); reconnecting", exc)
                return False
            # refused for good (a revoked key, a bad signature): requests go unauthenticated,
            # and fail as such, until logon() succeeds
            self._session_wanted = False
            log.error("wsapi: logging on again was refused (%s); the session is gone", exc)
            return True
        self._event("logged_on")
        return True

