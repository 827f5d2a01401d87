"""The simulator server: listens, admits or refuses handshakes, builds connections, shuts down.

Handshake admission, in order: faults forcing a refusal, the per-IP attempt limit (429/418 with
`Retry-After`), the request target (404/400), the initial stream set (400). Everything after the
upgrade belongs to `Connection`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from http import HTTPStatus

import aiofastnet
import orjson
from picows import WSAutoPingStrategy, WSUpgradeRequest, WSUpgradeResponse
from picows import WSUpgradeResponseWithListener as Answer

# picows' public ws_create_server() does not show the listener factory the client's address,
# which the per-IP attempt limit must know before it answers the handshake; so we build the
# protocol ourselves, exactly as ws_create_server does (picows 2.3.1, pinned).
from picows.picows import WSProtocol  # type: ignore[attr-defined]

from feedhandler.simulator.server import rest
from feedhandler.simulator.server.config import SimulatorConfig
from feedhandler.simulator.server.connection import Connection
from feedhandler.simulator.server.faults import Faults, HandshakeFaults
from feedhandler.simulator.server.limits import AttemptLimiter, Refusal
from feedhandler.simulator.server.market import ConnectionView, SharedMarket
from feedhandler.simulator.server.pacing import FastPacer, Pacer, RecordedPacer
from feedhandler.simulator.server.replay import ReplayFactory, ReplaySource
from feedhandler.simulator.server.source import FrameSource, MarketSource, SourceFactory
from feedhandler.simulator.server.subscriptions import SubscriptionError, Subscriptions
from feedhandler.simulator.server.tls import server_context
from feedhandler.simulator.server.urls import UrlError, api_options, parse_target
from feedhandler.simulator.server.wsapi import API_PATH, ApiConnection, WsApiService

_LOG = logging.getLogger(__name__)
_PICOWS_LOG = logging.getLogger("picows.simulator")


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> Answer:
    body = orjson.dumps({"code": code, "msg": msg})
    headers = {"Content-Type": "application/json", **(headers or {})}
    return Answer(WSUpgradeResponse.create_error_response(status, body, headers), None)


def _refused(refusal: Refusal) -> Answer:
    phrase = HTTPStatus(refusal.status).phrase
    return _error(
        refusal.status,
        -1003,
        f"{phrase}: too many connection attempts; retry after {refusal.retry_after} s",
        {"Retry-After": str(refusal.retry_after)},
    )


class Simulator:
    """A Binance-compatible stream server. `await start()`, `await stop()`; see `testing` for
    the context manager tests use."""

    def __init__(self, config: SimulatorConfig, source: SourceFactory | None = None) -> None:
        self.config = config
        self._source = source
        self._connections: dict[int, Connection] = {}
        self._ids = itertools.count(1)
        self._attempts = AttemptLimiter(
            config.max_attempts, config.attempt_window, config.ban_after, config.ban_duration
        )
        self._handshake_faults = HandshakeFaults(config.faults)
        self.faults = Faults(lambda: list(self._connections.values()), self._handshake_faults)
        self._server: asyncio.AbstractServer | None = None
        self._market: SharedMarket | None = None
        self.port = config.port
        self.refused = 0  # handshakes answered 429/418
        self.api: WsApiService | None = None  # the /ws-api/v3 endpoint, once started
        self._api_connections: set[ApiConnection] = set()

    @property
    def url(self) -> str:
        """Base URL (no path): `ws://HOST:PORT` or `wss://HOST:PORT`."""
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{'wss' if self.config.tls else 'ws'}://{host}:{self.port}"

    @property
    def connections(self) -> list[Connection]:
        """Open connections, oldest first."""
        return list(self._connections.values())

    @property
    def api_connections(self) -> list[ApiConnection]:
        """Open `/ws-api/v3` connections."""
        return list(self._api_connections)

    @property
    def market(self) -> SharedMarket:
        """The one market every paced connection shares (`snapshot`, `true_books`); fast and
        replay connections each have their own source. Exists once started, unless replaying."""
        if self._market is None:
            raise RuntimeError("no shared market: not started, or replaying a recording")
        return self._market

    async def start(self) -> None:
        config = self.config
        if self._source is None:
            self._source = (
                ReplayFactory(config.replay)
                if config.replay is not None
                else MarketSource(config.seed, config.symbols)
            )
        shared = self._source.open("us")  # the market renders µs; views convert to ms
        if not isinstance(shared, ReplaySource):  # a recording replays per connection
            self._market = SharedMarket(shared, config.rate, config.batch, config.pregenerate,
                                        config.tick_us)
        self.api = WsApiService(
            self._market,
            weight_limit=config.api_weight_limit,
            weight_interval_s=config.api_weight_interval,
            ban_after=config.api_ban_after,
            ban_s=config.ban_duration,
            api_keys={key: path.read_bytes() for key, path in config.api_keys},
            clock_offset_ms=config.api_clock_offset_ms,
        )
        tls = (
            server_context(config.tls_cert, config.tls_key)
            if config.tls_cert and config.tls_key
            else None
        )
        self._server = await aiofastnet.create_server(
            asyncio.get_running_loop(),
            self._protocol_factory,
            config.host,
            config.port,
            ssl=tls,
            reuse_address=True,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        _LOG.info("listening on %s", self.url)

    async def stop(self) -> None:
        """Refuse new connections, send `serverShutdown`, wait `shutdown_grace`, close all."""
        if self._server is None:
            return
        self._server.close()
        apis, connections = list(self._api_connections), self.connections
        if connections or apis:  # WS API clients get the streams' announcement, grace and close
            for api in apis:
                api.send_server_shutdown()
            for conn in connections:
                conn.send_server_shutdown()
            await asyncio.sleep(self.config.shutdown_grace)
            for conn in connections:
                conn.close(1001, "Server shutdown")
            for api in apis:
                api.close(1001, "Server shutdown", self.config.close_timeout)
            await asyncio.wait(
                [*(api.closed for api in apis), *(conn.closed for conn in connections)],
                timeout=self.config.close_timeout + 1.0,
            )
            for conn in self.connections:  # clients that never completed the close handshake
                conn.abort()
            for api in list(self._api_connections):
                api.drop()
        await self._server.wait_closed()
        self._server = None
        if self._market is not None:
            self._market.stop()

    def _protocol_factory(self) -> WSProtocol:
        def listener_factory(request: WSUpgradeRequest) -> Connection | ApiConnection | Answer:
            peer = protocol.transport.underlying_transport.get_extra_info("peername")
            return self._accept(request, str(peer[0]) if peer else "")

        protocol = WSProtocol(
            None,  # host:port (client side only)
            None,  # path (client side only)
            False,  # is_client_side
            listener_factory,
            _PICOWS_LOG,
            True,  # disconnect_on_exception
            self.config.handshake_timeout,
            False,  # enable_auto_ping: Heartbeat owns pings (unique payloads, 5 msg/s count)
            self.config.ping_interval,
            self.config.pong_timeout,
            WSAutoPingStrategy.PING_PERIODICALLY,
            False,  # enable_auto_pong: client pings count against the limit and can be ignored
            self.config.max_frame_size,
            None,  # extra_headers (client side only)
            16 * 1024,  # read_buffer_init_size
        )
        return protocol

    def _accept(
        self, request: WSUpgradeRequest, peer: str
    ) -> Connection | ApiConnection | Answer:
        if rest.is_http(request):
            if self.api is None:
                return rest.answer(request, self._market)
            return rest.answer(request, self._market, self.api.limiter, peer,
                               self.api.now_ms())
        loop = asyncio.get_running_loop()
        refusal = self._handshake_faults.check() or self._attempts.check(peer, loop.time())
        if refusal is not None:
            self.refused += 1
            _LOG.info("refused %s with HTTP %d", peer, refusal.status)
            return _refused(refusal)
        if request.path.partition(b"?")[0] == API_PATH and self.api is not None:
            try:
                options = api_options(request.path)
            except UrlError as exc:
                return _error(exc.status, 2, f"Invalid request: {exc}")
            api = self.api.connection(peer, options.time_unit, options.rate_limits)
            config = self.config
            api.keep_alive(config.ping_interval, config.pong_timeout, config.lifetime)
            self._api_connections.add(api)
            api.closed.add_done_callback(lambda _: self._api_connections.discard(api))
            return api
        try:
            target = parse_target(request.path)
        except UrlError as exc:
            return _error(exc.status, 2, f"Invalid request: {exc}")
        assert self._source is not None
        subscriptions = Subscriptions(self.config.max_streams, self._source.is_valid_stream)
        try:
            subscriptions.add(target.streams)
        except SubscriptionError as exc:
            return _error(400, 2, str(exc))
        config = self.config
        source: FrameSource
        if config.fast or self._market is None:
            source = self._source.open(target.time_unit)
        else:
            source = self._market.view(target.time_unit, config.max_messages)
        connection = Connection(
            cid=next(self._ids),
            peer=peer,
            request=target,
            subscriptions=subscriptions,
            source=source,
            pacer=self._pacer(source, loop.time()),
            config=config,
            on_open=lambda conn: self._connections.__setitem__(conn.id, conn),
            on_close=lambda conn: self._connections.pop(conn.id, None),
        )
        if isinstance(source, ConnectionView):
            source.reader = connection
        return connection

    def _pacer(self, source: FrameSource, now: float) -> Pacer:
        """The shared market is paced as a whole: its views send what they are given."""
        config = self.config
        if isinstance(source, ReplaySource) and config.replay_speed > 0:
            return RecordedPacer(source, config.replay_speed, config.batch, now)
        return FastPacer(config.batch)
