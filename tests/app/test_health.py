"""/livez, /readyz and /metrics of a running handler, against the in-process simulator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from feedhandler.app.handler import Handler
from feedhandler.app.health import HealthServer
from feedhandler.config import ConfigError, load_config
from feedhandler.simulator.server.faults import FaultSpec
from feedhandler.simulator.testing import SimulatorServer
from feedhandler.sinks.null import NullSink
from tests.app.prometheus_text import Key, parse_metrics, value
from tests.app.uvloop_run import sync
from tests.wsapi.test_client import refusing

T = TypeVar("T")
MiB = 1 << 20


# --- helpers ----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(url: str, **overrides: Any) -> Any:
    return load_config(None, {"url": url, "streams": "btcusdt@trade,ethusdt@bookTicker",
                              "sink": "null", "health_port": free_port(),
                              "health_host": "127.0.0.1", "connection.backoff_initial_s": 0.01,
                              "connection.backoff_max_s": 0.05, "batch.linger_ms": 1.0,
                              **overrides}, environ={})



@contextlib.asynccontextmanager
async def running(handler: Handler) -> AsyncIterator[Handler]:
    task = asyncio.create_task(handler.run())
    try:
        await eventually(lambda: get(handler, "/livez"), lambda r: r[0] == 200)
        yield handler
    finally:
        handler.stop()
        await task


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[Handler, HealthServer]]:
    """A handler running against a quiet simulator, and its health server."""
    async with SimulatorServer(rate=100.0) as sim:
        handler = Handler(config(sim.url))
        async with running(handler):
            assert handler.health is not None
            yield handler, handler.health


async def eventually(probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool],
                     timeout: float = 5.0) -> T:
    """Call `probe` until `accept` takes its result; fail with the last one at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = await probe()
        except ConnectionRefusedError as exc:  # the server is not up yet
            last: object = exc
        else:
            if accept(result):
                return result
            last = result
        assert time.monotonic() < deadline, f"still {last!r} after {timeout} s"
        await asyncio.sleep(0.005)


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    await eventually(lambda: asyncio.sleep(0, None), lambda _: predicate(), timeout)


async def exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], str]:
    """Send `raw`, read the answer until the server closes: (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    response = await reader.read()
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, _, v in (h.partition(": ") for h in header_lines)}
    assert status_line.startswith("HTTP/1.1 ") and headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body) or raw.startswith(b"HEAD ")
    return int(status_line.split(" ")[1]), headers, body.decode()


async def get(handler: Handler, path: str) -> tuple[int, str]:
    status, _, body = await exchange(handler.config.health_port,
                                     f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    return status, body


# --- a small parser of the Prometheus text format 0.0.4 ---------------------------------------
async def scrape(handler: Handler) -> dict[Key, float]:
    status, headers, body = await exchange(handler.config.health_port,
                                           b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_metrics(body)[0]


# --- tests ------------------------------------------------------------------------------------
@sync
async def test_readyz_fails_until_connected_then_passes() -> None:
    port = free_port()  # nothing listens there yet: the handler keeps retrying
    handler = Handler(config(f"ws://127.0.0.1:{port}", streams="btcusdt@trade"))
    async with running(handler):
        assert (await get(handler, "/livez"))[0] == 200
        status, body = await eventually(lambda: get(handler, "/readyz"),
                                        lambda r: "last error" in r[1])
        assert status == 503
        assert re.fullmatch(r"shard 0: connecting \(attempt \d+, last error: .+\)\n", body)
        async with SimulatorServer(port=port, rate=2000.0):
            status, body = await eventually(lambda: get(handler, "/readyz"),
                                            lambda r: r[0] == 200)
            assert body == "ready: 1 connection open\n"
            assert handler.shards[0].listener is not None


@sync
async def test_a_quiet_connection_is_ready_and_its_silence_shows_in_metrics() -> None:
    # an illiquid symbol may send nothing for minutes: not a reason to take the pod out
    silent = (FaultSpec.parse("stall:after=0,seconds=30"),)  # open, then nothing at all
    async with SimulatorServer(rate=2000.0, faults=silent) as sim:
        handler = Handler(config(sim.url, streams="btcusdt@trade"))
        async with running(handler):
            _, body = await eventually(lambda: get(handler, "/readyz"), lambda r: r[0] == 200)
            assert body == "ready: 1 connection open\n"
            metrics = await scrape(handler)
            assert value(metrics, "feedhandler_connection_up", shard="0") == 1
            assert value(metrics, "feedhandler_frames_total", shard="0") == 0
            assert not any(name == "feedhandler_last_frame_age_seconds" for name, _ in metrics)


@sync
async def test_readyz_flags_a_connection_that_never_delivered_past_stale_after() -> None:
    silent = (FaultSpec.parse("stall:after=0,seconds=30"),)  # open, then nothing at all
    async with SimulatorServer(rate=2000.0, faults=silent) as sim:
        handler = Handler(config(sim.url, streams="btcusdt@trade", **{
            "connection.stale_after_s": 0.2, "connection.ping_timeout_s": 5.0}))
        async with running(handler):
            _, body = await eventually(lambda: get(handler, "/readyz"),
                                       lambda r: "nothing delivered" in r[1])
            assert re.fullmatch(r"shard 0: open \d+ s, nothing delivered yet\n", body) or \
                body == "shard 0: no data for a while, waiting for the pong to our ping\n"
            (conn,) = handler.status().supervisor.connections
            assert conn.state == "open" and conn.never_delivered and conn.frames == 0


@sync
async def test_metrics_parse_and_equal_the_handler_counters() -> None:
    async with SimulatorServer(rate=2000.0) as sim:
        sink = NullSink()
        handler = Handler(config(sim.url, **{"connection.streams_per_connection": 1}), sink)
        async with running(handler):
            await sim.wait_for_connections(2)
            # A gap is only visible after an id: dropping a connection's first trades is not one.
            await until(lambda: handler.stats.records["trade"] > 0)
            sim.faults.malformed()  # one per connection
            sim.faults.gap("btcusdt@trade", n=3)
            await until(lambda: handler.stats.errors["malformed_json"] == 2
                        and handler.stats.gaps >= 1)
            # Freeze the counters: stop reading, let the service loop flush the open batches.
            for shard in handler.shards:
                shard.pause_reading()
            await until(lambda: not any(s.decoder.pending_rows for s in handler.shards))
            metrics = await scrape(handler)
            stats = handler.stats
            # one attempt each, each its own epoch
            assert sorted(shard.epoch for shard in handler.shards) == \
                list(range(1, len(handler.shards) + 1))
            for shard in handler.shards:
                index = str(shard.shard.index)
                assert shard.frames > 0
                assert value(metrics, "feedhandler_frames_total", shard=index) == shard.frames
                assert value(metrics, "feedhandler_connection_up", shard=index) == 1
                assert value(metrics, "feedhandler_connection_epoch", shard=index) == shard.epoch
                age = value(metrics, "feedhandler_last_frame_age_seconds", shard=index)
                assert 0 <= age < 5
            for kind in ("trade", "bookTicker", "gap", "depth"):
                assert value(metrics, "feedhandler_records_total", kind=kind) == \
                    stats.records[kind]
            assert stats.records["trade"] > 0 and stats.records["depth"] == 0
            assert value(metrics, "feedhandler_rejected_frames_total",
                         reason="malformed_json") == 2
            assert value(metrics, "feedhandler_rejected_frames_total", reason="oversized") == 0
            assert value(metrics, "feedhandler_gaps_total") == stats.gaps >= 1
            assert value(metrics, "feedhandler_reconnects_total") == stats.reconnects == 0
            assert value(metrics, "feedhandler_paused") == 0
            assert value(metrics, "feedhandler_sink_backlog_bytes") == 0
            assert value(metrics, "feedhandler_sink_records_total") == sink.records == \
                sum(stats.records[k] for k in stats.records if k not in ("gap", "control"))
            assert value(metrics, "feedhandler_sink_batches_total") == sink.batches
            assert value(metrics, "feedhandler_sink_dead_letters_total") == sink.dead_letters == 2
            assert value(metrics, "feedhandler_sink_control_events_total") == \
                sink.control_events
            assert 0 <= value(metrics, "feedhandler_service_loop_age_seconds") < 5


@sync
async def test_snapshots_and_ws_api_requests_show_in_metrics() -> None:
    async with SimulatorServer(rate=500.0) as sim:
        handler = Handler(config(sim.url, streams="btcusdt@depth@100ms,ethusdt@depth@100ms",
                                 **{"book.snapshots": True, "book.snapshot_limit": 100,
                                    "wsapi.url": sim.url + "/ws-api/v3"}))
        async with running(handler):
            await until(lambda: handler.book_sync is not None
                        and handler.book_sync.snapshots == 2)
            metrics = await scrape(handler)
            assert value(metrics, "feedhandler_book_snapshots_total", result="published") == 2
            assert value(metrics, "feedhandler_book_snapshots_total", result="failed") == 0
            assert value(metrics, "feedhandler_book_resyncs_total") == 2  # (each book's start)
            assert value(metrics, "feedhandler_wsapi_connected") == 1
            assert value(metrics, "feedhandler_wsapi_connects_total") == 1
            # the clock sync and the two depth requests, each weighed
            assert value(metrics, "feedhandler_wsapi_requests_total", outcome="sent") == 3
            assert value(metrics, "feedhandler_wsapi_requests_total", outcome="timeout") == 0
            assert value(metrics, "feedhandler_request_weight_used") == 2 + 1 + 2 * 5
            assert value(metrics, "feedhandler_request_weight_limit") == 6000


@sync
async def test_a_ws_api_that_refuses_its_first_connection_fails_the_start() -> None:
    """As a stream connection refused at start: the configuration is wrong, exit 2."""
    async with SimulatorServer(rate=100.0) as sim, refusing(403) as url:
        handler = Handler(config(sim.url, streams="btcusdt@depth@100ms",
                                 **{"book.snapshots": True, "wsapi.url": url}))
        with pytest.raises(ConfigError, match=r"wsapi: ws://127.0.0.1:\d+/ws-api/v3\?timeUnit=X "
                                              r"refused: HTTP 403"):
            await asyncio.wait_for(handler.run(), 10.0)


@sync
async def test_readyz_names_the_shard_whose_connection_dropped() -> None:
    async with SimulatorServer(rate=2000.0) as sim:
        handler = Handler(config(sim.url, **{"connection.streams_per_connection": 1}))
        async with running(handler):
            await eventually(lambda: get(handler, "/readyz"), lambda r: r[0] == 200)
            # shard 1 is ethusdt@bookTicker (streams sorted); its reconnects are refused
            (eth,) = [c for c in sim.connections if c.subscriptions() == ["ethusdt@bookTicker"]]
            sim.faults.refuse_handshakes(429, count=10_000)
            sim.faults.drop(conn=eth)
            status, body = await eventually(lambda: get(handler, "/readyz"),
                                            lambda r: "429" in r[1])
            assert status == 503
            assert body.startswith("shard 1: connecting (attempt ") and body.count("\n") == 1
            assert re.search(r", throttled: \d s left\)$", body.strip()), body  # Retry-After 5
            metrics = await scrape(handler)
            assert 0 < value(metrics, "feedhandler_connection_blocked_seconds") <= 5
            assert value(metrics, "feedhandler_connection_up", shard="0") == 1
            assert value(metrics, "feedhandler_connection_up", shard="1") == 0
            assert value(metrics, "feedhandler_connection_epoch", shard="1") >= 2
            assert value(metrics, "feedhandler_reconnects_total") == handler.stats.reconnects == 1


@sync
async def test_sink_backpressure_makes_the_handler_unready_until_it_drains() -> None:
    class BackedUpSink(NullSink):
        backlog = 0

        def backlog_bytes(self) -> int:
            return self.backlog

    async with SimulatorServer(rate=500.0) as sim:
        sink = BackedUpSink()
        handler = Handler(config(sim.url, **{"kafka.backlog_limit_mb": 1}), sink)
        async with running(handler):
            await eventually(lambda: get(handler, "/readyz"), lambda r: r[0] == 200)
            sink.backlog = 3 * MiB
            _, body = await eventually(lambda: get(handler, "/readyz"), lambda r: r[0] == 503)
            assert body == "sink: paused, backlog 3.0 MiB (limit 1 MiB)\n"
            metrics = await scrape(handler)
            assert value(metrics, "feedhandler_paused") == 1
            assert value(metrics, "feedhandler_sink_backlog_bytes") == 3 * MiB
            sink.backlog = 0
            await eventually(lambda: get(handler, "/readyz"), lambda r: r[0] == 200)
            assert value(await scrape(handler), "feedhandler_paused") == 0


@sync
async def test_livez_fails_when_the_service_loop_stops_running() -> None:
    async with SimulatorServer(rate=500.0) as sim:
        handler = Handler(config(sim.url))
        async with running(handler):
            status, body = await get(handler, "/livez")
            assert status == 200 and body.startswith("ok: service loop ran ")
            first = handler.heartbeat  # the service loop keeps it fresh
            await until(lambda: handler.heartbeat > first)
            assert handler.health is not None
            handler.health.liveness_timeout_s = 0.2
            # The event loop keeps serving HTTP; only the service task is gone.
            (service,) = [t for t in asyncio.all_tasks() if t.get_name() == "service"]
            service.cancel()
            status, body = await eventually(lambda: get(handler, "/livez"),
                                            lambda r: r[0] != 200)
            assert status == 503
            assert re.fullmatch(r"service loop stalled: last ran \d+\.\d s ago\n", body)


@sync
async def test_unknown_paths_bad_methods_and_garbage_are_answered_and_survived() -> None:
    async with serving() as (handler, health):
        port = handler.config.health_port
        health.request_timeout_s = 0.1

        async def status_of(raw: bytes) -> int:
            return (await exchange(port, raw))[0]

        assert await status_of(b"GET /nope HTTP/1.1\r\n\r\n") == 404
        assert await status_of(b"GET /livez/ HTTP/1.1\r\n\r\n") == 404
        assert await status_of(b"POST /readyz HTTP/1.1\r\nContent-Length: 0\r\n\r\n") == 405
        assert await status_of(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n") == 200
        status, headers, body = await exchange(port, b"HEAD /livez HTTP/1.1\r\n\r\n")
        assert status == 200 and body == "" and int(headers["content-length"]) > 0
        assert await status_of(b"\x16\x03\x01\x02\x00\xff\xfe\r\n\r\n") == 400
        assert await status_of(b"GET /livez\r\n\r\n") == 400  # HTTP/0.9
        assert await status_of(b"GET /livez HTTP/1.1\r\n" + b"X: y\r\n" * 2000) == 400
        assert await status_of(b"GET /livez HTTP/1.1\r\n") == 408  # never finishes

        # a client that leaves without a word, and one that leaves mid-request
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /li")
        await writer.drain()
        writer.close()

        assert (await get(handler, "/livez"))[0] == 200


@pytest.mark.parametrize(("writes", "peer", "allowed"), [
    ("loopback", "127.0.0.1", True), ("loopback", "127.3.2.1", True), ("loopback", "::1", True),
    ("loopback", "::ffff:127.0.0.1", True), ("loopback", "10.0.0.7", False),
    ("loopback", "fe80::1%eth0", False), ("loopback", "", False), ("any", "10.0.0.7", True),
    ("off", "127.0.0.1", False)])
def test_who_may_change_subscriptions(writes: str, peer: str, allowed: bool) -> None:
    """The port serves probes and scrapes from anywhere; by default a change comes only from
    the pod itself (kubectl exec or port-forward)."""
    server = HealthServer(Handler(config("ws://127.0.0.1:9")), "127.0.0.1", 0, writes)
    assert server._may_write(peer) is allowed


@sync
async def test_a_refused_change_says_why_and_reading_still_works() -> None:
    async with SimulatorServer(rate=100.0) as sim:
        handler = Handler(config(sim.url, health_writes="off"))
        async with running(handler):
            body = b'{"add": ["bnbusdt@trade"]}'
            status, _, text = await exchange(
                handler.config.health_port,
                b"POST /subscriptions HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s"
                % (len(body), body))
            assert (status, text) == (403, "POST /subscriptions is off (health_writes: off)\n")
            assert (await get(handler, "/subscriptions"))[0] == 200
            assert list(handler.shards[0].shard.streams) == ["btcusdt@trade", "ethusdt@bookTicker"]


@sync
async def test_a_taken_port_fails_the_start_naming_the_key() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        handler = Handler(config("ws://127.0.0.1:9", health_port=port))
        expected = rf"health_host/health_port: cannot listen on 127\.0\.0\.1:{port}: "
        with pytest.raises(ConfigError, match=expected):
            await handler.run()
    assert handler.shards[0].epoch == 0, "nothing was started"


@sync
async def test_a_refused_body_is_read_away_so_the_client_gets_the_answer() -> None:
    # Closing with the client's data unread resets the connection, and a reset can lose the
    # answer the client has not read yet.
    async with serving() as (handler, health):
        port = handler.config.health_port
        big = b"[" * (3 << 20)
        for request in (b"POST /subscriptions HTTP/1.1\r\nContent-Length: %d\r\n\r\n"
                        % len(big) + big,  # 413, body unread
                        b"POST /subscriptions HTTP/1.1\r\n\r\n" + big,  # 411, no length
                        b"POST /readyz HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(big)
                        + big):  # 405
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
            writer.write_eof()
            response = await reader.read()
            writer.close()
            assert response.split(b" ", 2)[1] in (b"413", b"411", b"405"), response[:80]
        await until(lambda: health.connections == 0, 5.0)


@sync
async def test_clients_that_never_read_or_pile_up_connections_are_bounded() -> None:
    async with serving() as (handler, health):
        port = handler.config.health_port
        health.request_timeout_s = 60.0
        # an answer far larger than the socket buffers, to a client that never reads it
        health.write_timeout_s = 0.3
        health._routes["/huge"] = lambda: (200, "text/plain", "x" * (64 << 20))
        _, stuck = await asyncio.open_connection("127.0.0.1", port)
        stuck.write(b"GET /huge HTTP/1.1\r\n\r\n")
        await until(lambda: health.connections == 1, 5.0)
        await until(lambda: health.connections == 0, 5.0)  # aborted, not held
        stuck.close()

        # at the cap, the connection idle longest goes, so the probes still get through
        health.max_connections = 5
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        await until(lambda: health.connections == 5, 5.0)
        assert (await get(handler, "/livez"))[0] == 200
        assert health.refused == 1
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(idle[0][0].read(), 5.0) == b""  # the oldest
        for _, held in idle:
            held.close()
        await until(lambda: health.connections == 0, 5.0)

        # with every connection busy answering, it is the new one that is closed
        health.write_timeout_s = 30.0
        busy = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
        for _, writer in busy:
            writer.write(b"GET /huge HTTP/1.1\r\n\r\n")
        await until(lambda: health.connections == 5 and not health._waiting, 10.0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /livez HTTP/1.1\r\n\r\n")
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), 5.0) == b""
        writer.close()
        assert health.refused == 2 and health.connections == 5
        for _, held in busy:
            held.transport.abort()
        await until(lambda: health.connections == 0, 5.0)
        assert (await get(handler, "/livez"))[0] == 200


def test_a_client_that_resets_mid_request_leaves_no_error(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with serving() as (handler, health):
            for partial in (b"GET /li", b"POST /subscriptions HTTP/1.1\r\n"
                                        b"Content-Length: 100\r\n\r\n{"):
                _, writer = await asyncio.open_connection("127.0.0.1",
                                                          handler.config.health_port)
                writer.write(partial)
                await writer.drain()
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                struct.pack("ii", 1, 0))  # close = RST
                writer.transport.abort()
            await until(lambda: health.connections == 0, 5.0)
            assert (await get(handler, "/livez"))[0] == 200

    sync(main)()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]


@sync
async def test_a_quiet_shards_next_connection_is_not_flagged_as_never_delivered() -> None:
    """A shard that delivered, lost its connection, and whose next one is quiet (an illiquid
    symbol): that connection has delivered nothing past stale_after_s, which is no failure
    for a shard known to deliver."""
    faults = (FaultSpec.parse("drop:after=20,conn=1"),  # some trades, then the link is lost
              FaultSpec.parse("stall:after=0,seconds=30,conn=2"))  # then nothing at all
    async with SimulatorServer(rate=2000.0, faults=faults) as sim:
        handler = Handler(config(sim.url, streams="btcusdt@trade", **{
            "connection.stale_after_s": 0.2, "connection.ping_timeout_s": 5.0,
            "connection.backoff_initial_s": 0.05}))
        async with running(handler):
            child = handler.supervisor.children[0]
            await eventually(lambda: get(handler, "/readyz"),
                             lambda r: child.verdict.never_delivered)  # the second connection
            (conn,) = handler.status().supervisor.connections
            assert conn.state == "open" and conn.frames == 20 and not conn.never_delivered
            assert "nothing delivered" not in (await get(handler, "/readyz"))[1]
