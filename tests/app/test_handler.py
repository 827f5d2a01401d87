"""The handler against the in-process simulator: reconnect gaps, dead letters, sequence gaps."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import numpy as np
import pytest
import uvloop

from feedhandler.app import handler as handler_module
from feedhandler.app.handler import Handler, _is_server_shutdown
from feedhandler.book.sync import SymbolSync
from feedhandler.config import load_config
from feedhandler.simulator.testing import SimulatorServer
from feedhandler.sinks.base import Sink
from feedhandler.sinks.null import NullSink
from tests.app.recording_sink import RecordingSink
from tests.app.uvloop_run import sync


def config(url: str, **overrides: Any) -> Any:
    return load_config(None, {"url": url, "streams": "btcusdt@trade,ethusdt@bookTicker",
                              "sink": "null", "connection.backoff_initial_s": 0.01,
                              "batch.linger_ms": 1.0, **overrides}, environ={})



async def run_until(handler: Handler, predicate: Any, timeout: float = 10.0) -> None:
    task = asyncio.create_task(handler.run())
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)
    finally:
        handler.stop()
        await task


@sync
async def test_reconnect_publishes_disconnect_and_gap_then_resumes() -> None:
    async with SimulatorServer(rate=2000.0) as sim:
        sink = RecordingSink()
        handler = Handler(config(sim.url), sink)

        async def drop_once() -> None:
            await sim.wait_for_connections(1)
            await asyncio.sleep(0.2)
            sim.faults.drop()

        dropper = asyncio.create_task(drop_once())
        await run_until(handler, lambda: any(e["type"] == "gap" for e in sink.events)
                        and any(b[2] == 2 for b in sink.batches))
        await dropper
    types = [e["type"] for e in sink.events]
    assert types[:2] == ["started", "connected"] and types[-1] == "stopped"
    assert "disconnected" in types and types.count("connected") >= 2
    started, stopped = sink.events[0], sink.events[-1]
    assert started["streams"] == 2 and started["version"] and started["ts_ns"] > 0
    assert stopped["frames"] == handler.frames and stopped["ts_ns"] >= started["ts_ns"]
    gap = next(e for e in sink.events if e["type"] == "gap")
    assert gap["reason"] == "reconnect" and gap["to_ns"] > gap["from_ns"] > 0
    assert gap["epoch"] == 2
    # published before any record of the new connection (which may come before `opened`)
    assert sink.sequence.index("event:gap") < sink.sequence.index("batch:2")
    assert {b[2] for b in sink.batches} >= {1, 2}  # records carry the epoch they came in on
    assert handler.stats.reconnects >= 1 and sink.closed


@sync
async def test_a_ws_api_loop_that_fails_stops_the_handler_which_still_closes_its_sink() -> None:
    """(a bug's case: the exit code says so, 1) and a WS API drop is no exchange reconnect."""
    async with SimulatorServer(rate=500.0) as sim:
        sink = RecordingSink()
        handler = Handler(config(sim.url, streams="btcusdt@depth@100ms", **{
            "book.snapshots": True, "wsapi.url": sim.url + "/ws-api/v3"}), sink)
        assert handler.wsapi is not None

        async def broken() -> None:
            await asyncio.sleep(0.3)
            raise RuntimeError("a bug in the WS API's loop")

        handler.wsapi._run = broken  # type: ignore[method-assign]
        handler._publish_event({"type": "disconnected", "source": "wsapi", "ts_ns": 1})
        async with asyncio.timeout(15):
            await handler.run()
    assert isinstance(handler.error, RuntimeError) and sink.closed
    assert sink.events[-1]["type"] == "stopped" and handler.stats.reconnects == 0


@sync
async def test_bad_frames_are_dead_lettered_without_losing_neighbours() -> None:
    async with SimulatorServer(rate=3000.0) as sim:
        sink = RecordingSink()
        handler = Handler(config(sim.url), sink)

        async def inject() -> None:
            await sim.wait_for_connections(1)
            for _ in range(3):
                await asyncio.sleep(0.05)
                sim.faults.malformed()

        injector = asyncio.create_task(inject())
        await run_until(handler, lambda: len(sink.dead) >= 3 and sink.rows("trade") > 50)
        await injector
    assert len(sink.dead) >= 3
    reason, _field, _stream, frame = sink.dead[0]
    assert reason == "malformed_json" and frame
    assert handler.stats.errors["malformed_json"] == len(sink.dead)
    trades = np.concatenate([r for k, r, _ in sink.batches if k == "trade"])
    ids = trades["trade_id"][trades["symbol"] == b"BTCUSDT"]
    assert (np.diff(ids) == 1).all(), "no good trade lost around the bad frames"


@sync
async def test_sequence_gap_becomes_a_control_event() -> None:
    async with SimulatorServer(rate=2000.0) as sim:
        sink = RecordingSink()
        handler = Handler(config(sim.url), sink)

        async def skip() -> None:
            # A gap is only visible after an id: dropping a connection's first trades is not one.
            while not sink.rows("trade"):
                await asyncio.sleep(0.005)
            sim.faults.gap("btcusdt@trade", n=3)

        skipper = asyncio.create_task(skip())
        await run_until(handler, lambda: any(e["type"] == "gap" for e in sink.events))
        await skipper
    gap = next(e for e in sink.events if e["type"] == "gap")
    assert gap["kind"] == "trade" and gap["symbol"] == "BTCUSDT" and gap["reason"] == "missing"
    assert gap["received"] - gap["expected"] == 3
    # tied to the connection, as the records around it are by their fh.epoch
    connected = next(e for e in sink.events if e["type"] == "connected")
    assert (gap["shard"], gap["epoch"]) == (connected["shard"], connected["epoch"]) == (0, 1)
    assert [epoch for k, _, epoch in sink.batches if k == "trade"][-1] == 1


@sync
async def test_a_failing_task_stops_the_handler_and_is_reported() -> None:
    class BrokenSink(RecordingSink):
        def service(self) -> None:
            raise RuntimeError("sink bug")

    async with SimulatorServer(rate=500.0) as sim:
        sink = BrokenSink()
        handler = Handler(config(sim.url), sink)
        async with asyncio.timeout(10):
            await handler.run()  # returns by itself: no stop() from the test
    assert isinstance(handler.error, RuntimeError) and str(handler.error) == "sink bug"
    assert sink.closed, "what was read is still flushed"


@sync
async def test_a_run_in_process_gives_the_signal_handlers_back() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM,
                                                      signal.SIGHUP)}
    async with SimulatorServer(rate=500.0) as sim:
        handler = Handler(config(sim.url), RecordingSink())
        await run_until(handler, lambda: handler.frames > 0)
    assert {sig: signal.getsignal(sig) for sig in before} == before


@sync
async def test_backpressure_pause_holds_for_a_connection_made_while_paused() -> None:
    async with SimulatorServer(rate=2000.0) as sim:
        handler = Handler(config(sim.url), RecordingSink())
        (shard,) = handler.shards
        shard.pause_reading()  # before any connection exists
        task = asyncio.create_task(handler.run())
        try:
            async with asyncio.timeout(10):
                while shard.listener is None:
                    await asyncio.sleep(0.01)
            assert shard.listener.transport is not None
            transport = shard.listener.transport.underlying_transport
            assert not transport.is_reading()
            shard.resume_reading()
            assert transport.is_reading()
        finally:
            handler.stop()
            await task


class HoldAllSink(RecordingSink):
    """Holds every record it is given until caught_up() (or for ever)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = 0
        self.releases: list[int] = []  # records released by each caught_up()

    @property
    def holding(self) -> bool:
        return self.held > 0

    def publish_batch(self, kind: str, records: np.ndarray, epoch: int,
                      frames: Any = None) -> None:
        super().publish_batch(kind, records, epoch, frames)
        self.held += len(records)

    def caught_up(self) -> None:
        self.releases.append(self.held)
        self.held = 0


@sync
async def test_held_records_go_once_the_handler_has_read_what_was_sent() -> None:
    async with SimulatorServer(rate=2000.0) as sim:
        sink = HoldAllSink()
        handler = Handler(config(sim.url), sink)
        # (far below what the handler reads: most bursts end with nothing unread; a sink
        # never told so would hold everything until close)
        await run_until(handler, lambda: len(sink.releases) >= 20)
    assert sum(sink.releases) + sink.held == sum(len(r) for _, r, _ in sink.batches)


def test_held_records_stay_while_a_connection_has_data_unread() -> None:
    sink = HoldAllSink()
    handler = Handler(config("ws://127.0.0.1:9"), sink)

    class Feed:
        caught_up = False

    feed = Feed()
    sink.held = 5
    handler._after_burst(feed)  # type: ignore[arg-type]
    assert sink.releases == []
    feed.caught_up = True
    handler._after_burst(feed)  # type: ignore[arg-type]
    assert sink.releases == [5]


@sync
async def test_a_connection_with_data_not_read_yet_has_not_caught_up() -> None:
    async with SimulatorServer(rate=2000.0) as sim:
        handler = Handler(config(sim.url), RecordingSink())
        (feed,) = handler.shards
        assert not feed.caught_up  # no connection yet: not known
        task = asyncio.create_task(handler.run())
        try:
            async with asyncio.timeout(10):
                while feed.frames < 10:
                    await asyncio.sleep(0.01)
                listener = feed.listener
                assert listener is not None and listener.unread() >= 0
                feed.pause_reading()  # the simulator sends on; the kernel keeps it
                while feed.caught_up:
                    await asyncio.sleep(0.01)
                assert listener.unread() > 0
                feed.resume_reading()
        finally:
            handler.stop()
            await task
    assert listener.unread() == -1  # (closed: no socket)


@sync
async def test_runs_on_uvloop_as_production_does() -> None:
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)


def test_server_shutdown_is_recognised_raw_and_combined() -> None:
    assert _is_server_shutdown(b'{"e":"serverShutdown","E":1770123456789}')
    assert _is_server_shutdown(
        b'{"stream":"!serverShutdown","data":{"e":"serverShutdown","E":1770123456789}}')
    assert not _is_server_shutdown(b'{"result":["!serverShutdown"],"id":3}')
    assert not _is_server_shutdown(b'{"code":2,"msg":"Invalid request"}')
    assert not _is_server_shutdown(b'[1,2]') and not _is_server_shutdown(b'{"e":')


def test_a_wrapped_sink_still_reports_its_acks_to_the_latency_histograms(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, Any] = {}

    def make_sink(config: Any, on_ack_latency: Any = None) -> NullSink:
        made["on_ack_latency"] = on_ack_latency
        made["inner"] = NullSink()
        return made["inner"]

    monkeypatch.setattr(handler_module, "make_sink", make_sink)
    outer = NullSink()

    def recorder(inner: Sink) -> Sink:
        made["wrapped"] = inner
        return outer

    handler = Handler(config("ws://127.0.0.1:1"), wrap_sink=recorder)
    # the recorder wraps the configured sink: that sink feeds produce -> ack
    assert handler.sink is outer and made["wrapped"] is made["inner"]
    assert made["on_ack_latency"] == handler.latency.observe_acks


def test_a_rejected_frame_is_logged_with_its_shard_and_a_bounded_stream_name(
        caplog: pytest.LogCaptureFixture) -> None:
    sink = RecordingSink()
    handler = Handler(config("ws://127.0.0.1:1"), sink)
    name = "a" * 400_000  # a hostile peer's stream name: the frame itself stays whole
    frame = b'{"stream":"%s","data":{"e":"trade"}}' % name.encode()
    handler.shards[0].decoder.decode(frame, 1)
    ((reason, _, stream, dead),) = sink.dead
    assert reason == "unknown_stream" and stream == name[:256] and dead == frame
    (line,) = [r.getMessage() for r in caplog.records if "rejected frame" in r.getMessage()]
    assert line.startswith("shard 0: rejected frame: unknown_stream") and len(line) < 1000


def test_rejected_frames_are_logged_per_reason_and_stream_at_most_every_interval(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(handler_module.time, "monotonic", lambda: now[0])
    sink = RecordingSink()
    handler = Handler(config("ws://127.0.0.1:1"), sink)
    decode = handler.shards[0].decoder.decode
    bad = (b'{"stream":"%s@trade","data":{"e":"trade","E":1,"s":"X","t":1,"p":"x","q":"1",'
           b'"T":1,"m":true,"M":true}}')
    for stream in (b"btcusdt", b"btcusdt", b"btcusdt", b"ethusdt"):
        decode(bad % stream, 1)
    now[0] += handler_module.ERROR_LINE_S
    decode(bad % b"btcusdt", 1)
    lines = [r.getMessage() for r in caplog.records if "rejected frame" in r.getMessage()]
    assert [(line.split("of stream ")[1][:15], "since its last line" in line)
            for line in lines] == [("'btcusdt@trade'", False), ("'ethusdt@trade'", False),
                                   ("'btcusdt@trade'", True)]
    assert "(2 more of this reason and stream" in lines[-1]
    assert len(sink.dead) == 5 and handler.stats.errors["bad_decimal"] == 5


def test_a_url_that_names_its_streams_is_one_connection_of_those_streams() -> None:
    url = "wss://stream.binance.com:9443/stream?streams=ethusdt@trade/btcusdt@depth"
    handler = Handler(load_config(None, {"url": url, "sink": "null"}, environ={}))
    ((streams, shard_url),) = [(feed.shard.streams, feed.shard.url) for feed in handler.shards]
    assert streams == ("btcusdt@depth", "ethusdt@trade") and shard_url == url


def test_a_lost_stream_connection_makes_its_books_lost_and_the_ws_apis_does_not() -> None:
    handler = Handler(load_config(None, {
        "url": "ws://127.0.0.1:9", "streams": "btcusdt@depth,ethusdt@trade", "sink": "null",
        "book.snapshots": True, "wsapi.url": "ws://127.0.0.1:9/ws-api/v3"}, environ={}))
    assert handler.book_sync is not None
    handler.book_sync.symbols["BTCUSDT"] = SymbolSync(last_update_id=5, snapshot_id=5)
    # the WS API client's own (no shard: it fed no book), then the stream connection's
    handler._publish_event({"type": "disconnected", "source": "wsapi", "ts_ns": 1})
    assert not handler.book_sync.disconnected
    handler._publish_event({"type": "disconnected", "shard": 0, "epoch": 1, "ts_ns": 2})
    assert handler.book_sync.disconnected == {"BTCUSDT"}
