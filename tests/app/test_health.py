"""/livez, /readyz and /metrics of a running handler, against the in-process simulator."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import numpy as np
import pytest

from feedhandler.app.handler import Handler
from feedhandler.app.health import exposition, family
from feedhandler.config import ConfigError, load_config
from feedhandler.simulator.server.faults import FaultSpec
from feedhandler.simulator.testing import SimulatorServer
from feedhandler.sinks.null import NullSink

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


def sync(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Run an async test on a fresh event loop (no plugin needed)."""
    def wrapper() -> None:
        asyncio.run(test())

    wrapper.__name__ = test.__name__
    return wrapper


@contextlib.asynccontextmanager
async def running(handler: Handler) -> AsyncIterator[Handler]:
    task = asyncio.create_task(handler.run())
    try:
        await eventually(lambda: get(handler, "/livez"), lambda r: r[0] == 200)
        yield handler
    finally:
        handler.stop()
        await task


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


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
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
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
Key = tuple[str, tuple[tuple[str, str], ...]]


def parse_metrics(text: str) -> tuple[dict[Key, float], dict[str, str]]:
    """(value by (name, sorted labels), type by family); asserts the format's rules."""
    assert text.endswith("\n")
    values: dict[Key, float] = {}
    types: dict[str, str] = {}
    helps: set[str] = set()
    finished: set[str] = set()  # a family's samples must be contiguous
    current = ""
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert NAME.fullmatch(name) and name not in helps, line
            helps.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helps and name not in types, line
            assert kind in ("counter", "gauge", "untyped"), line
            assert kind != "counter" or name.endswith("_total"), f"counter {name} lacks _total"
            types[name] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, f"not a sample: {line!r}"
            name, labels_text, value = match.groups()
            assert name in types, f"sample before its TYPE: {line!r}"
            if name != current:
                assert name not in finished, f"{name} samples are not contiguous"
                finished.add(current)
                current = name
            labels: list[tuple[str, str]] = []
            pos = 0
            while labels_text and pos < len(labels_text):
                label = LABEL.match(labels_text, pos)
                assert label, f"bad labels in {line!r}"
                unescaped = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], label[2])
                labels.append((label[1], unescaped))
                pos = label.end() + (labels_text[label.end():label.end() + 1] == ",")
            key = (name, tuple(sorted(labels)))
            assert key not in values, f"duplicate sample {key}"
            values[key] = float(value)
    return values, types


async def scrape(handler: Handler) -> dict[Key, float]:
    status, headers, body = await exchange(handler.config.health_port,
                                           b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse_metrics(body)[0]


def value(metrics: dict[Key, float], name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


# --- tests ------------------------------------------------------------------------------------
@sync
async def test_readyz_fails_until_the_first_frame_then_passes() -> None:
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
            assert body == "ready: 1 connection receiving\n"
            assert handler.shards[0].listener is not None
            assert handler.shards[0].listener.frames > 0


@sync
async def test_readyz_fails_while_a_connection_has_sent_no_frame() -> None:
    silent = (FaultSpec.parse("stall:after=0,seconds=30"),)  # open, then nothing at all
    async with SimulatorServer(rate=2000.0, faults=silent) as sim:
        handler = Handler(config(sim.url, streams="btcusdt@trade"))
        async with running(handler):
            status, body = await eventually(lambda: get(handler, "/readyz"),
                                            lambda r: "no frame" in r[1])
            assert (status, body) == (503, "shard 0: connected, no frame yet (epoch 1)\n")
            metrics = await scrape(handler)
            assert value(metrics, "feedhandler_connection_up", shard="0") == 1
            assert value(metrics, "feedhandler_frames_total", shard="0") == 0
            assert not any(name == "feedhandler_last_frame_age_seconds" for name, _ in metrics)


@sync
async def test_metrics_parse_and_equal_the_handler_counters() -> None:
    async with SimulatorServer(rate=2000.0) as sim:
        sink = NullSink()
        handler = Handler(config(sim.url, **{"connection.streams_per_connection": 1}), sink)
        async with running(handler):
            await sim.wait_for_connections(2)
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
            for shard in handler.shards:
                index = str(shard.shard.index)
                assert shard.frames > 0
                assert value(metrics, "feedhandler_frames_total", shard=index) == shard.frames
                assert value(metrics, "feedhandler_connection_up", shard=index) == 1
                assert value(metrics, "feedhandler_connection_epoch", shard=index) == 1
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
            metrics = await scrape(handler)
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
    async with SimulatorServer(rate=100.0) as sim:
        handler = Handler(config(sim.url))
        async with running(handler):
            port = handler.config.health_port
            assert handler.health is not None
            handler.health.request_timeout_s = 0.1

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


def test_exposition_escapes_label_values_and_help_and_formats_special_values() -> None:
    lines = family("x_total", "counter", "a \\ help\nline", [
        ({"error": 'quote " back \\ new\nline'}, 3),
        ({"a": "1", "b": "2"}, True),
    ])
    assert lines == [
        "# HELP x_total a \\\\ help\\nline",
        "# TYPE x_total counter",
        'x_total{error="quote \\" back \\\\ new\\nline"} 3',
        'x_total{a="1",b="2"} 1',
    ]
    gauges = family("g", "gauge", "g", [({}, float("inf")), ({"k": "v"}, float("nan")),
                                        ({"k": "w"}, np.int64(7)), ({"k": "z"}, 0.25)])
    assert gauges[2:] == ["g +Inf", 'g{k="v"} NaN', 'g{k="w"} 7.0', 'g{k="z"} 0.25']
    values, types = parse_metrics("\n".join(lines) + "\n")
    assert values[("x_total", (("error", 'quote " back \\ new\nline'),))] == 3
    assert types == {"x_total": "counter"}


def test_kafka_sink_summary_becomes_typed_metrics() -> None:
    class KafkaLikeSink(NullSink):
        def summary(self) -> dict[str, Any]:
            return {"produced": 10, "delivered": 7, "failed": 1, "in_flight": 2,
                    "records_produced": 400, "records_delivered": 360, "records_failed": 40,
                    "buffer_full": 3, "backlog_peak_bytes": 4096,
                    "errors": {"_MSG_SIZE_TOO_LARGE": 1},
                    "latency_us": {"ack": {"p50": 1500, "p99": 20000}},
                    "undelivered": 2, "records_unsent": 0, "new_counter": 5, "note": "text"}

    handler = Handler(config("ws://127.0.0.1:9"), KafkaLikeSink())
    values, types = parse_metrics(exposition(handler))
    assert value(values, "feedhandler_sink_messages_produced_total") == 10
    assert value(values, "feedhandler_sink_messages_delivered_total") == 7
    assert value(values, "feedhandler_sink_messages_in_flight") == 2
    assert value(values, "feedhandler_sink_records_failed_total") == 40
    assert types["feedhandler_sink_records_delivered"] == "gauge"  # can go down
    assert value(values, "feedhandler_sink_errors_total", error="_MSG_SIZE_TOO_LARGE") == 1
    assert value(values, "feedhandler_sink_latency_seconds", stage="ack", quantile="0.99") == 0.02
    assert value(values, "feedhandler_sink_latency_seconds", stage="ack", quantile="0.5") == 0.0015
    assert types["feedhandler_sink_new_counter"] == "untyped"  # a key this module doesn't know
    assert not any(name.endswith("_note") for name, _ in values)
    # before any connection: no frame age to report, connection down at epoch 0
    assert value(values, "feedhandler_connection_up", shard="0") == 0
    assert ("feedhandler_last_frame_age_seconds", (("shard", "0"),)) not in values
