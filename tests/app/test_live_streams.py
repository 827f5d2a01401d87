"""Streams changed while the handler runs, against the in-process simulator: `POST
/subscriptions` and SIGHUP add and remove streams on the connections with room, open a new
connection when none has room and close one left without streams; no other connection
reconnects (epochs unchanged, no gap)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvloop

from feedhandler.app.handler import Handler
from feedhandler.app.health import _stream_lists
from feedhandler.app.live import ChangeRejected, changed_keys
from feedhandler.config import load_config
from feedhandler.simulator.testing import SimulatorServer
from feedhandler.supervisor.plan import replica_part
from tests.app.recording_sink import RecordingSink
from tests.app.test_health import config, exchange, get, running, until
from tests.app.uvloop_run import sync

SEED, SYMBOLS = 5, 1200
START = "btcusdt@trade,ethusdt@trade,bnbusdt@trade,xrpusdt@trade"  # [bnb btc eth] [xrp]


async def post(handler: Handler, body: bytes) -> tuple[int, str]:
    head = f"POST /subscriptions HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n\r\n"
    status, _, text = await exchange(handler.config.health_port, head.encode() + body)
    return status, text


async def change(handler: Handler, **lists: list[str]) -> dict[str, Any]:
    status, text = await post(handler, orjson.dumps(lists))
    assert status == 200, text
    result: dict[str, Any] = orjson.loads(text)
    return result


def symbols_since(sink: RecordingSink, mark: int) -> set[str]:
    return {bytes(s).decode() for kind, rows, _ in sink.batches[mark:] if kind == "trade"
            for s in rows["symbol"]}


def events(sink: RecordingSink, kind: str) -> list[dict[str, Any]]:
    return [e for e in sink.events if e["type"] == kind]


def streams_of(events: list[dict[str, Any]]) -> dict[int, list[str]]:
    return {e["shard"]: e["streams"] for e in events}


async def stops(sink: RecordingSink, symbol: str) -> None:
    """`symbol` was unsubscribed: after what was in flight, none of its records come."""
    await asyncio.sleep(0.2)
    mark = len(sink.batches)
    await asyncio.sleep(0.8)
    assert symbol not in symbols_since(sink, mark)


def open_shards(handler: Handler) -> dict[int, int]:
    """shard -> epoch, of the connections that are open."""
    return {c.index: c.feed.epoch for c in handler.supervisor.children if c.state == "open"}


@sync
async def test_post_adds_removes_and_opens_a_connection_without_touching_the_others() -> None:
    async with SimulatorServer(rate=4000.0) as sim:
        sink = RecordingSink()
        handler = Handler(config(sim.url, streams=START,
                                 **{"connection.streams_per_connection": 3}), sink)
        async with running(handler):
            await until(lambda: len(open_shards(handler)) == 2)
            epochs = open_shards(handler)

            # room on both connections: one stream each, the removal first makes room
            mark = len(sink.batches)
            result = await change(handler, add=["SOLUSDT@trade", "adausdt@trade"],
                                  remove=["ethusdt@trade"])
            assert result == {
                "added": ["adausdt@trade", "solusdt@trade"], "removed": ["ethusdt@trade"],
                "ignored": [], "errors": [],
                "shards": {"0": {"add": ["solusdt@trade"], "remove": ["ethusdt@trade"],
                                 "state": "applied"},
                           "1": {"add": ["adausdt@trade"], "remove": [], "state": "applied"}}}
            assert streams_of(events(sink, "subscribed")) == {0: ["solusdt@trade"],
                                                              1: ["adausdt@trade"]}
            assert streams_of(events(sink, "unsubscribed")) == {0: ["ethusdt@trade"]}
            await until(lambda: {"SOLUSDT", "ADAUSDT"} <= symbols_since(sink, mark))
            await stops(sink, "ETHUSDT")
            exchange_view = {c.id: set(c.subscriptions()) for c in sim.connections}
            assert sorted(exchange_view.values(), key=len) == [
                {"adausdt@trade", "xrpusdt@trade"},
                {"bnbusdt@trade", "btcusdt@trade", "solusdt@trade"}]

            # room for one more: the rest on a new connection, announced once it is up
            mark = len(sink.batches)
            result = await change(handler,
                                  add=["dogeusdt@trade", "trxusdt@trade", "linkusdt@trade"],
                                  remove=["nosuchsymbol@trade"])  # not there: ignored
            assert result["ignored"] == ["nosuchsymbol@trade"]
            assert result["shards"] == {
                "1": {"add": ["dogeusdt@trade"], "remove": [], "state": "applied"},
                "2": {"add": ["linkusdt@trade", "trxusdt@trade"], "remove": [],
                      "state": "new connection"}}
            await until(lambda: {"DOGEUSDT", "TRXUSDT", "LINKUSDT"}
                        <= symbols_since(sink, mark))
            await until(lambda: 2 in streams_of(events(sink, "subscribed")))
            (new,) = (e for e in events(sink, "subscribed") if e["shard"] == 2)
            assert new["streams"] == ["linkusdt@trade", "trxusdt@trade"] and new["id"] is None

            # a connection left without streams is closed
            result = await change(handler,
                                  remove=["xrpusdt@trade", "adausdt@trade", "dogeusdt@trade"])
            assert result["shards"]["1"]["state"] == "closed"
            frames = handler.frames
            await stops(sink, "XRPUSDT")
            # once closed, its feed is let go; what it decoded stays counted
            await until(lambda: [f.shard.index for f in handler.shards] == [0, 2])
            assert handler.frames >= frames
            status, body = await get(handler, "/readyz")
            assert (status, body) == (200, "ready: 2 connections open\n")
            status, body = await get(handler, "/subscriptions")
            assert orjson.loads(body) == {"shards": {
                "0": ["bnbusdt@trade", "btcusdt@trade", "solusdt@trade"],
                "2": ["linkusdt@trade", "trxusdt@trade"]}}

            # no connection but the closed one was restarted, and nothing was lost
            # (the new connection's epoch is the instance's next: one no other connection had)
            assert open_shards(handler) == {0: epochs[0], 2: max(epochs.values()) + 1}
            assert not events(sink, "gap") and not events(sink, "disconnected")
            assert not events(sink, "subscription_error")


@sync
async def test_bad_requests_are_400_with_one_line_and_change_nothing() -> None:
    async with SimulatorServer(rate=500.0) as sim:
        sink = RecordingSink()
        handler = Handler(config(sim.url), sink)
        async with running(handler):
            bad = {
                b"{": "body is not JSON",
                b"[]": "expected a JSON object",
                b'{"add": "btcusdt@trade"}': "'add' must be a list",
                b'{"add": ["btcusdt@nonsense"]}': "unknown stream 'btcusdt@nonsense'",
                b'{"add": ["a@trade", "A@trade"]}': "duplicate stream 'A@trade'",
                # ids that would interleave: with each other, or with a stream already taken
                b'{"add": ["btcusdt@depth", "btcusdt@depth@100ms"]}':
                    "btcusdt@depth and btcusdt@depth@100ms both carry depth ids of BTCUSDT",
                b'{"add": ["!bookTicker"]}':
                    "ethusdt@bookTicker and !bookTicker both carry bookTicker ids",
                b'{"add": ["solusdt@trade"], "remove": ["solusdt@trade"]}':
                    "both added and removed: solusdt@trade",
                b'{"streams": []}': "unknown key 'streams'",
            }
            for body, why in bad.items():
                status, text = await post(handler, body)
                assert status == 400 and why in text, (body, text)
                assert text.count("\n") == 1 and text.startswith("bad request: ")
            status, _, text = await exchange(
                handler.config.health_port,
                b"POST /subscriptions HTTP/1.1\r\nHost: test\r\n\r\n")
            assert status == 411
            status, _, _ = await exchange(handler.config.health_port,
                                          b"POST /readyz HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            assert status == 405
            assert handler.live.streams() == {"btcusdt@trade", "ethusdt@bookTicker"}
            assert not events(sink, "subscribed") and not events(sink, "unsubscribed")


class SlowTopicsSink(RecordingSink):
    def add_streams(self, streams: Any) -> None:
        time.sleep(0.3)  # as the Kafka sink's topic check, while the change holds the lock


@sync
async def test_two_changes_at_once_cannot_add_streams_that_clash() -> None:
    """Each is checked against the streams as the one before it left them."""
    async with SimulatorServer(rate=500.0) as sim:
        handler = Handler(config(sim.url, streams="ethusdt@trade"), SlowTopicsSink())
        async with running(handler):
            answers = await asyncio.gather(
                post(handler, orjson.dumps({"add": ["btcusdt@depth"]})),
                post(handler, orjson.dumps({"add": ["btcusdt@depth@100ms"]})))
            (taken,), (refused,) = [[i for i, (status, _) in enumerate(answers)
                                     if status == code] for code in (200, 400)]
            assert "both carry depth ids of BTCUSDT" in answers[refused][1]
            assert handler.live.streams() == {
                "ethusdt@trade", ("btcusdt@depth", "btcusdt@depth@100ms")[taken]}


def test_a_connection_left_without_streams_closes_as_retired_not_shut_down(
        caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with SimulatorServer(rate=200.0) as sim:
            handler = Handler(config(sim.url, streams=START,
                                     **{"connection.streams_per_connection": 3}))
            async with running(handler):
                await until(lambda: len(open_shards(handler)) == 2)
                result = await change(handler, remove=["xrpusdt@trade"])
                assert result["shards"]["1"]["state"] == "closed"
                await until(lambda: [f.shard.index for f in handler.shards] == [0])

    with caplog.at_level(logging.INFO, logger="feedhandler.supervisor.connection"):
        uvloop.run(scenario())
    closes = [r.getMessage() for r in caplog.records if "closed (" in r.getMessage()]
    assert closes == ["shard 1: closed (code 1000, reason 'retired', by us)",
                      "shard 0: closed (code 1000, reason 'shutdown', by us)"]


def test_sighup_with_replicas_changes_nothing_and_says_so_without_an_error(
        caplog: pytest.LogCaptureFixture) -> None:
    """Replicas split `streams` among them, so the file's list applies at a restart: an
    unchanged file is no error (each pod holds only its share of the list)."""
    files = {"streams": "btcusdt@trade,ethusdt@trade,solusdt@trade"}

    def load() -> Any:
        return load_config(None, {"url": "ws://127.0.0.1:9", "sink": "null", "shard_count": 2,
                                  **files}, environ={})

    handler = Handler(load(), reload=load)
    mine = set(replica_part(files["streams"].split(","), 0, 2))
    assert handler.live.streams() == mine and len(mine) in (1, 2)
    with caplog.at_level(logging.INFO, logger="feedhandler.app.live"):
        asyncio.run(handler.live.reload())
        files["streams"] = "btcusdt@trade,ethusdt@trade"
        asyncio.run(handler.live.reload())
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "SIGHUP: streams unchanged"),
        ("WARNING", "SIGHUP: streams changed: with shard_count 2 (replicas) they apply at the "
                    "next restart (a rollout), not live")]
    assert handler.live.streams() == mine


def test_sighup_applies_the_files_streams_and_logs_the_other_changes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "handler.yaml"

    def write(url: str, streams: list[str], rows: int) -> None:
        path.write_text(f"url: {url}\nstreams: {orjson.dumps(streams).decode()}\n"
                        f"batch:\n  rows: {rows}\n")

    async def main() -> None:
        async with SimulatorServer(rate=4000.0) as sim:
            write(sim.url, ["btcusdt@trade", "ethusdt@trade"], 64)
            overrides = {"sink": "null", "batch.linger_ms": 1.0}

            def load() -> Any:
                return load_config(path, overrides, environ={})

            sink = RecordingSink()
            handler = Handler(load(), sink, reload=load)
            task = asyncio.create_task(handler.run())
            try:
                await until(lambda: len(open_shards(handler)) == 1)
                (epoch,) = open_shards(handler).values()
                write(sim.url, ["btcusdt@trade", "solusdt@trade"], 128)
                mark = len(sink.batches)
                os.kill(os.getpid(), signal.SIGHUP)
                # (the first SOLUSDT records may be handed over at the end of the read that
                # brought the exchange's reply, before the supervisor reports the change)
                await until(lambda: "SOLUSDT" in symbols_since(sink, mark)
                            and bool(events(sink, "subscribed"))
                            and bool(events(sink, "unsubscribed")))
                assert streams_of(events(sink, "subscribed")) == {0: ["solusdt@trade"]}
                assert streams_of(events(sink, "unsubscribed")) == {0: ["ethusdt@trade"]}
                await stops(sink, "ETHUSDT")
                assert open_shards(handler) == {0: epoch}
                assert not events(sink, "gap") and not events(sink, "disconnected")

                path.write_text("streams: [nonsense]\n")  # a bad file changes nothing
                os.kill(os.getpid(), signal.SIGHUP)
                await until(lambda: "configuration not reloaded" in caplog.text)
                assert handler.live.streams() == {"btcusdt@trade", "solusdt@trade"}

                # a universe section (no streams: they would come from exchangeInfo) waits for
                # the restart, and the running streams stay
                path.write_text(f"url: {sim.url}\nuniverse:\n  kinds: [trade]\n"
                                f"wsapi:\n  url: {sim.url}/ws-api/v3\n")
                os.kill(os.getpid(), signal.SIGHUP)
                await until(lambda: "makes the streams from the next restart" in caplog.text)
                assert handler.live.streams() == {"btcusdt@trade", "solusdt@trade"}
            finally:
                handler.stop()
                await task

    with caplog.at_level(logging.INFO, logger="feedhandler.app.live"):
        uvloop.run(main())
    assert "SIGHUP: changed batch.rows: applied at the next restart" in caplog.text


def test_changed_keys_are_dotted_and_only_the_changed_ones() -> None:
    old = {"streams": ["a"], "batch": {"rows": 1, "linger_ms": 2.0}, "url": "ws://x"}
    new = {"streams": ["b"], "batch": {"rows": 1, "linger_ms": 3.0}, "url": "ws://x"}
    assert changed_keys(old, new) == ["batch.linger_ms", "streams"]


def test_request_body_shapes() -> None:
    assert _stream_lists({"add": ["a"]}) == (["a"], [])
    assert _stream_lists({"remove": ["a"]}) == ([], ["a"])
    with pytest.raises(ChangeRejected, match="'remove' must be a list of stream names"):
        _stream_lists({"remove": [1]})


@sync
async def test_what_the_exchange_refuses_is_reverted_and_reported() -> None:
    async with SimulatorServer(rate=2000.0) as sim:
        sink = RecordingSink()
        handler = Handler(config(sim.url, streams="btcusdt@trade",
                                 **{"connection.streams_per_connection": 2}), sink)
        async with running(handler):
            await until(lambda: len(open_shards(handler)) == 1)
            # the simulator has no such market: the exchange answers SUBSCRIBE with an error
            status, text = await post(handler, b'{"add": ["nosuchsymbol@trade"]}')
            assert status == 502
            result = orjson.loads(text)
            assert result["shards"]["0"]["state"] == "reverted"
            assert result["errors"] == ["shard 0: SUBSCRIBE failed: code 2: Invalid request: "
                                        "invalid stream"]
            assert result["added"] == []  # (what it was to get did not happen)
            (error,) = events(sink, "subscription_error")
            assert (error["shard"], error["method"], error["code"]) == (0, "SUBSCRIBE", 2)
            assert handler.live.streams() == {"btcusdt@trade"}
            assert sim.connections[0].subscriptions() == ["btcusdt@trade"]

            # an error reply no request of ours claims is reported all the same
            sim.connections[0].send_raw(1, b'{"code":3,"msg":"Invalid JSON","id":null}')
            await until(lambda: len(events(sink, "subscription_error")) == 2)
            unclaimed = events(sink, "subscription_error")[1]
            assert (unclaimed["shard"], unclaimed["method"], unclaimed["id"]) == (0, None, None)
            assert not events(sink, "exchange_control")

            # on a new connection it is the handshake that is refused: that connection is
            # quarantined, the handler runs on; removing the refused stream revives it for
            # the others, removing them too closes it
            added = ["ethusdt@trade", "nosuch@trade", "xrpusdt@trade"]
            status, text = await post(handler, orjson.dumps({"add": added}))
            assert status == 200, text
            await until(lambda: bool(events(sink, "quarantined")))
            assert events(sink, "quarantined")[0]["shard"] == 1
            status, body = await get(handler, "/readyz")
            assert status == 503 and body.startswith("shard 1: quarantined")
            (other,) = set(handler.supervisor.children[1].feed.shard.streams) - {"nosuch@trade"}
            result = await change(handler, remove=["nosuch@trade"])
            assert result["shards"]["1"]["state"] == "reconnecting"
            await until(lambda: 1 in open_shards(handler))
            mark = len(sink.batches)
            await until(lambda: other.split("@")[0].upper() in symbols_since(sink, mark))
            assert (await get(handler, "/readyz"))[0] == 200
            await change(handler, remove=["ethusdt@trade", "xrpusdt@trade"])
            assert open_shards(handler) == {0: 1}

            # a handler left with no stream at all is not ready: it serves nothing
            await change(handler, remove=sorted(handler.live.streams()))
            assert await get(handler, "/readyz") == (503, "no streams: nothing to serve\n")


@sync
async def test_with_two_legs_streams_change_only_by_a_restart() -> None:
    async with SimulatorServer(rate=500.0) as sim:
        handler = Handler(config(sim.url, **{"connection.redundancy": 2}), RecordingSink())
        async with running(handler):
            status, text = await post(handler, b'{"add": ["solusdt@trade"]}')
    assert status == 400 and "connection.redundancy 1" in text, text
    assert handler.live.streams() == {"btcusdt@trade", "ethusdt@bookTicker"}


@sync
async def test_an_all_market_stream_under_symbol_topics_is_refused_live_as_at_start() -> None:
    handler = Handler(config("ws://127.0.0.1:9", sink="kafka",
                             **{"kafka.topic_template": "x.{kind}.{symbol}"}), RecordingSink())
    with pytest.raises(ChangeRejected, match=r"all-market stream \(!miniTicker@arr\)"):
        await handler.live.change(["!miniTicker@arr"], [])
    assert handler.live.streams() == {"btcusdt@trade", "ethusdt@bookTicker"}
