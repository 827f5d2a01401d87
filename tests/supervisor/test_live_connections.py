"""Connections whose streams change at runtime, against the in-process simulator: the change
goes out as SUBSCRIBE / UNSUBSCRIBE on the open link, a reconnect reconciles the streams
against LIST_SUBSCRIPTIONS, and the supervisor adds and retires children one at a time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

from feedhandler._ext.decoder import Decoder
from feedhandler._ext.listener import FeedListener
from feedhandler.config import ConnectionConfig
from feedhandler.simulator.testing import SimulatorServer
from feedhandler.supervisor.connection import Connection
from feedhandler.supervisor.feed import ShardFeed
from feedhandler.supervisor.plan import Shard, plan, shard_url
from feedhandler.supervisor.subscriptions import route_control
from feedhandler.supervisor.transport import Link, open_link
from feedhandler.supervisor.tree import Supervisor

CONFIG = ConnectionConfig(backoff_initial_s=0.01, backoff_max_s=0.05)


@contextlib.asynccontextmanager
async def running(sup: Supervisor) -> AsyncIterator[Supervisor]:
    sup.start(lambda task: None)
    try:
        yield sup
    finally:
        sup.stop()
        await sup.wait_stopped()


def only_connection(sup: Supervisor) -> Connection:
    (conn,) = sup.children
    assert isinstance(conn, Connection)
    return conn


def shard_of(base_url: str, streams: tuple[str, ...]) -> Shard:
    """Shard 0 with these streams, named in its URL (what a live change makes)."""
    return Shard(0, streams, shard_url(base_url, streams, "ms"))


def feed_of(shard: Shard, events: list[dict[str, Any]], seen: set[str]) -> ShardFeed:
    holder: list[ShardFeed] = []

    def on_batch(kind: str, records: np.ndarray, *_: Any) -> None:
        if kind == "trade":
            seen.update(bytes(s).decode() for s in records["symbol"])

    def on_control(frame: bytes, leg: int) -> None:
        assert route_control(frame, holder[0].subscriptions, holder[0].report), frame

    holder.append(ShardFeed(shard, Decoder(on_batch, None, on_control, batch_rows=1),
                            events.append))
    return holder[0]


def typed(events: list[dict[str, Any]], kind: str) -> list[tuple[int, list[str], bool]]:
    """(shard, streams, sent as a request) of each event of `kind`."""
    return [(e["shard"], e["streams"], e["id"] is not None) for e in events if e["type"] == kind]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def test_a_reconnect_reconciles_the_streams_against_the_exchanges_list() -> None:
    async def scenario() -> None:
        async with SimulatorServer(rate=2000.0) as sim:
            events: list[dict[str, Any]] = []
            seen: set[str] = set()
            (shard,) = plan(sim.url, ["btcusdt@trade", "ethusdt@trade"], 10)

            # always the start's URL: what a change made while connecting would meet
            async def stale_url(url: str, factory: Callable[[], FeedListener],
                                config: ConnectionConfig, context: Any) -> Link:
                return await open_link(shard.url, factory, config, context)

            sup = Supervisor([feed_of(shard, events, seen)], CONFIG, connect=stale_url)
            conn = only_connection(sup)
            async with running(sup):
                await until(lambda: conn.state == "open")
                streams = ("btcusdt@trade", "solusdt@trade")
                assert await conn.set_streams(shard_of(sim.url, streams))
                assert sim.connections[-1].subscriptions() == ["btcusdt@trade", "solusdt@trade"]
                assert typed(events, "subscribed") == [(0, ["solusdt@trade"], True)]
                assert typed(events, "unsubscribed") == [(0, ["ethusdt@trade"], True)]

                sim.faults.drop()
                await until(lambda: conn.feed.epoch == 2 and conn.state == "open")
                await until(lambda: sorted(sim.connections[-1].subscriptions()) == list(streams))
                # the reconnect's requests put back what was there: no news to report
                assert len(typed(events, "subscribed")) == len(typed(events, "unsubscribed")) == 1
                seen.clear()
                await until(lambda: "SOLUSDT" in seen)
                await asyncio.sleep(0.3)
                assert "ETHUSDT" not in seen

    asyncio.run(scenario())


def test_a_change_before_the_connect_is_reported_once_the_connection_is_up() -> None:
    async def scenario() -> None:
        async with SimulatorServer(rate=2000.0) as sim:
            events: list[dict[str, Any]] = []
            (shard,) = plan(sim.url, ["btcusdt@trade"], 10)
            sup = Supervisor([feed_of(shard, events, set())], CONFIG)
            conn = only_connection(sup)
            streams = ("ethusdt@trade",)
            # not connected: pending, the connect's URL carries it
            assert not await conn.set_streams(shard_of(sim.url, streams))
            async with running(sup):
                await until(lambda: len(typed(events, "unsubscribed")) == 1)
                assert sim.connections[-1].subscriptions() == ["ethusdt@trade"]
                assert typed(events, "subscribed") == [(0, ["ethusdt@trade"], False)]
                assert typed(events, "unsubscribed") == [(0, ["btcusdt@trade"], False)]

    asyncio.run(scenario())


def test_children_are_added_and_retired_one_at_a_time() -> None:
    async def scenario() -> None:
        async with SimulatorServer(rate=2000.0) as sim:
            events: list[dict[str, Any]] = []
            first, second = plan(sim.url, ["btcusdt@trade", "ethusdt@trade"], 1)
            sup = Supervisor([feed_of(first, events, set())], CONFIG)
            async with running(sup):
                await until(lambda: sup.children[0].state == "open")
                added = sup.add(feed_of(second, events, set()))
                await until(lambda: added.state == "open")
                assert [c.shard for c in sup.status().connections] == [0, 1]
                sup.retire(sup.children[0])
                await until(lambda: len(sim.connections) == 1)
                assert [c.shard for c in sup.status().connections] == [1]
                assert added.state == "open" and added.feed.epoch == 1
                assert [e["type"] for e in events].count("disconnected") == 0
            assert added.state == "stopped"

    asyncio.run(scenario())


def test_a_rollover_keeps_the_streams_changed_live() -> None:
    async def scenario() -> None:
        async with SimulatorServer(rate=2000.0) as sim:
            events: list[dict[str, Any]] = []
            seen: set[str] = set()
            (shard,) = plan(sim.url, ["btcusdt@trade", "ethusdt@trade"], 10)
            config = ConnectionConfig(backoff_initial_s=0.01, backoff_max_s=0.05,
                                      max_lifetime_s=1.5, rollover_lead_s=0.5,
                                      rollover_overlap_s=1.0)
            sup = Supervisor([feed_of(shard, events, seen)], config)
            conn = only_connection(sup)
            async with running(sup):
                await until(lambda: conn.state == "open")
                streams = ("btcusdt@trade", "solusdt@trade")
                assert await conn.set_streams(shard_of(sim.url, streams))
                await until(lambda: any(e["type"] == "rollover" for e in events))
                await until(lambda: len(sim.connections) == 1)  # the old one closed
                await asyncio.sleep(0.2)  # the successor's reconcile
                assert sorted(sim.connections[0].subscriptions()) == list(streams)
                seen.clear()
                await until(lambda: "SOLUSDT" in seen)
                assert "ETHUSDT" not in seen
                types = [e["type"] for e in events]
                assert "gap" not in types and "disconnected" not in types
                assert types.count("subscribed") == types.count("unsubscribed") == 1

    asyncio.run(scenario())
