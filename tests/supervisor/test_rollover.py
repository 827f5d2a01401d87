"""Make-before-break rollover on a virtual clock with a fake connector: the replacement opens
while the old connection still serves, both feed the one decoder, the old one closes once the
replacement is in step; no gap, each trade once."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from feedhandler._ext.decoder import Decoder
from feedhandler._ext.listener import FeedListener
from feedhandler.app.handler import stopped_by
from feedhandler.config import ConnectionConfig
from feedhandler.supervisor.failures import refused
from feedhandler.supervisor.feed import ShardFeed
from feedhandler.supervisor.plan import plan
from feedhandler.supervisor.transport import Link, LinkFailed
from feedhandler.supervisor.tree import Supervisor
from tests.parsing.test_parse_gaps import trade
from tests.supervisor.fake_clock import FakeClock

# no staleness in the way: only the lifetime ends a connection here
CONFIG = ConnectionConfig(max_lifetime_s=100.0, rollover_lead_s=10.0, rollover_overlap_s=5.0,
                          stale_after_s=1000.0, max_silence_s=1000.0)


class FakeTransport:
    close_handshake = None

    def __init__(self) -> None:
        self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def wait_disconnected(self) -> None:
        await self.gone

    def disconnect(self, graceful: bool = True) -> None:
        if not self.gone.done():
            self.gone.set_result(None)

    def send_ping(self) -> None:
        pass


class FakeLink(Link):
    def __init__(self, listener: FeedListener, clock: FakeClock) -> None:
        super().__init__(FakeTransport(), listener)
        self.clock = clock
        self.opened_at = clock.now()
        self.closed_at: float | None = None
        self.close_reason = ""

    async def close(self, timeout_s: float, code: int = 1000, reason: str = "") -> None:
        self.closed_at, self.close_reason = self.clock.now(), reason
        self.abort()


class Exchange:
    """The fake connector: every connect opens a FakeLink at once, unless `hold` is set; past
    `refusing_after` attempts, it refuses them for good (403)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.links: list[FakeLink] = []
        self.hold: asyncio.Event | None = None
        self.attempts = 0
        self.refusing_after: int | None = None

    async def connect(self, url: str, factory: Callable[[], FeedListener],
                      config: ConnectionConfig, context: Any) -> Link:
        self.attempts += 1
        if self.refusing_after is not None and self.attempts > self.refusing_after:
            raise LinkFailed(refused(403, b"forbidden"))
        if self.hold is not None:
            await self.hold.wait()
        listener = factory()
        listener.on_ws_connected(None)  # the handshake's end, as picows reports it
        link = FakeLink(listener, self.clock)
        self.links.append(link)
        return link

    def send(self, link: FakeLink, ids: range, decoder: Decoder) -> None:
        """Trades arriving on `link` (as its listener would feed them)."""
        decoder.decode_many([trade(t) for t in ids], leg=link.listener.leg)


class Setup:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.exchange = Exchange(self.clock)
        self.events: list[dict[str, Any]] = []
        self.trades: list[int] = []
        self.decoder = Decoder(self._on_batch, batch_rows=1)
        (shard,) = plan("ws://exchange.invalid:1", ["btcusdt@trade"], 200)
        self.feed = ShardFeed(shard, self.decoder, self.events.append)
        self.sup = Supervisor([self.feed], CONFIG, clock=self.clock,
                              connect=self.exchange.connect)

    def _on_batch(self, kind: str, records: np.ndarray, *_: Any) -> None:
        if kind == "trade":
            self.trades += records["trade_id"].tolist()

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    async def until(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.001)

    async def start(self) -> FakeLink:
        """The supervisor started; its first connection, open."""
        self.sup.start(lambda task: None)
        await self.until(lambda: len(self.exchange.links) == 1)
        return self.exchange.links[0]

    async def stop(self) -> None:
        self.sup.stop()
        await self.sup.wait_stopped()


def test_lifetime_rollover_opens_the_replacement_before_closing_the_old_one() -> None:
    async def main() -> None:
        s = Setup()
        old = await s.start()
        s.exchange.send(old, range(1, 6), s.decoder)
        await s.until(lambda: len(s.feed.listeners) == 2)  # the replacement is feeding too
        new = s.exchange.links[1]
        assert new.opened_at - old.opened_at == CONFIG.max_lifetime_s - CONFIG.rollover_lead_s
        assert old.closed_at is None and s.sup.children[0].state == "open"
        assert new.listener.leg != old.listener.leg
        # the replacement starts behind and catches up; each id reaches the sink once
        s.exchange.send(new, range(4, 7), s.decoder)
        s.exchange.send(old, range(6, 9), s.decoder)
        s.exchange.send(new, range(7, 10), s.decoder)
        await s.until(lambda: old.closed_at is not None)
        assert old.close_reason == "rollover" and new.closed_at is None
        assert s.feed.listeners == [new.listener]
        s.exchange.send(new, range(10, 12), s.decoder)
        status = s.sup.status().connections[0]
        await s.stop()

        assert s.trades == list(range(1, 12))
        assert "gap" not in s.types() and "disconnected" not in s.types()
        (rollover,) = [e for e in s.events if e["type"] == "rollover"]
        assert rollover["cause"] == "lifetime" and rollover["in_step"] is True
        assert rollover["duplicates"] == 2 + 1 + 2  # new 4, 5; old 6; new 7, 8
        assert rollover["epoch"] == 2 and 0 < rollover["overlap_s"] < CONFIG.rollover_overlap_s
        assert status.rollovers == {"lifetime": 1} and status.duplicates == 5
        assert s.sup.status().summary()["rollovers"] == 1

    asyncio.run(main())


def test_server_shutdown_rolls_over_at_once_and_a_silent_replacement_is_bounded() -> None:
    async def main() -> None:
        s = Setup()
        old = await s.start()
        s.exchange.send(old, range(1, 3), s.decoder)
        s.feed.shutdown_notices[0].set()  # what the handler does on `serverShutdown`
        await s.until(lambda: old.closed_at is not None)
        new = s.exchange.links[1]
        # nothing arrived on the replacement: the old one goes after rollover_overlap_s
        assert new.opened_at - old.opened_at < CONFIG.max_lifetime_s - CONFIG.rollover_lead_s
        assert old.closed_at - new.opened_at >= CONFIG.rollover_overlap_s
        s.exchange.send(new, range(3, 5), s.decoder)
        await s.stop()
        (rollover,) = [e for e in s.events if e["type"] == "rollover"]
        assert rollover["cause"] == "server_shutdown" and rollover["in_step"] is False
        assert s.trades == [1, 2, 3, 4] and "gap" not in s.types()

    asyncio.run(main())


def test_a_replacement_still_connecting_when_the_old_connection_ends_takes_over() -> None:
    """Binance may close at once after `serverShutdown`: the replacement's attempt under way
    is then the reconnect (no backoff, no second handshake), and the sequences carry on from
    the old connection's: ids that follow on are no gap (the ids between, if any, would be a
    `missing` gap, beside the reconnect gap of the time between)."""
    async def main() -> None:
        s = Setup()
        old = await s.start()
        s.exchange.send(old, range(1, 4), s.decoder)
        s.exchange.hold = asyncio.Event()  # the replacement's handshake hangs
        s.feed.shutdown_notices[0].set()
        await asyncio.sleep(0.05)
        old.abort()  # the exchange closes the old connection first
        await s.until(lambda: "disconnected" in s.types())
        closed = s.clock.now()
        # (still listed, yet gone: its books are lost now, not once the replacement is up)
        assert s.feed.listeners == [old.listener]
        assert stopped_by([s.feed], s.events[-1]) == [s.feed]
        s.exchange.hold.set()
        await s.until(lambda: len(s.feed.listeners) == 1 and s.feed.listeners[0].leg == 1)
        new = s.exchange.links[1]
        assert new.opened_at == closed  # no backoff in between
        s.exchange.send(new, range(4, 7), s.decoder)
        await s.stop()
        assert s.exchange.attempts == 2 and s.feed.epoch == 2
        assert s.trades == [1, 2, 3, 4, 5, 6]
        (rollover,) = [e for e in s.events if e["type"] == "rollover"]
        assert rollover["in_step"] is False
        assert s.types().index("disconnected") < s.types().index("rollover")
        assert not [e for e in s.events if e["type"] == "gap" and e["reason"] != "reconnect"]

    asyncio.run(main())


def test_a_replacement_that_waited_in_the_limiter_leads_once_its_predecessor_is_gone() -> None:
    async def main() -> None:
        s = Setup()
        old = await s.start()
        s.exchange.send(old, range(1, 4), s.decoder)
        # the replacement waits for room in the limiter (a 429 of another connection, say)
        room, wait_for_room = asyncio.Event(), s.sup.limiter._wait_for_room

        async def gated() -> None:
            await room.wait()
            await wait_for_room()

        s.sup.limiter._wait_for_room = gated  # type: ignore[method-assign]
        s.feed.shutdown_notices[0].set()
        await asyncio.sleep(0.05)
        old.abort()
        await s.until(lambda: "disconnected" in s.types())
        assert s.sup.children[0].state == "connecting"  # not ready while it waits
        room.set()
        await s.until(lambda: len(s.exchange.links) == 2 and len(s.feed.listeners) == 1)
        s.exchange.send(s.exchange.links[1], range(4, 7), s.decoder)
        await s.stop()
        assert s.trades == [1, 2, 3, 4, 5, 6]  # not dropped as owed by the dead connection

    asyncio.run(main())


def test_a_stop_during_the_overlap_closes_both_connections() -> None:
    async def main() -> None:
        s = Setup()
        await s.start()
        s.feed.shutdown_notices[0].set()
        await s.until(lambda: len(s.feed.listeners) == 2)  # nothing in step: it overlaps
        await s.stop()
        assert [link.close_reason for link in s.exchange.links] == ["shutdown", "shutdown"]
        assert s.feed.listeners == [] and s.sup.children[0].state == "stopped"
        assert "rollover" not in s.types()

    asyncio.run(main())


def test_streams_changed_during_the_overlap_open_a_fresh_replacement() -> None:
    """The replacement's URL names the streams of its attempt: after a change (which the old
    link, still serving, applied) it is dropped and a replacement with the new URL follows."""
    async def main() -> None:
        s = Setup()
        old = await s.start()
        s.exchange.send(old, range(1, 3), s.decoder)
        await s.until(lambda: len(s.feed.listeners) == 2)
        stale = s.exchange.links[1]
        (changed,) = plan("ws://exchange.invalid:1", ["btcusdt@trade", "ethusdt@trade"], 200)
        s.feed.shard = changed  # what Connection.set_streams does first
        await s.until(lambda: stale.closed_at is not None)
        await s.until(lambda: len(s.exchange.links) == 3 and len(s.feed.listeners) == 2)
        assert old.closed_at is None  # still serving: no hole
        fresh = s.exchange.links[2]
        s.exchange.send(fresh, range(2, 5), s.decoder)
        s.exchange.send(old, range(3, 4), s.decoder)
        await s.until(lambda: old.closed_at is not None)
        await s.stop()
        assert s.trades == list(range(1, 5))
        assert "gap" not in s.types()

    asyncio.run(main())


def test_a_shard_subscribed_after_connecting_reconnects_instead() -> None:
    """Its replacement's URL would name no stream: no make-before-break, a reconnect at once,
    with no backoff (its gap a real listener's receive times bound): a lost connection all the
    same, told as `disconnected` (what counts reconnects and invalidates its books)."""
    async def main() -> None:
        s = Setup()
        (shard,) = plan("ws://exchange.invalid:1", ["btcusdt@trade"], 200)
        s.feed.shard = replace(shard, by_url=False)
        old = await s.start()
        s.exchange.send(old, range(1, 3), s.decoder)
        await s.until(lambda: old.closed_at is not None)
        await s.until(lambda: len(s.exchange.links) == 2)
        await s.stop()
        assert old.close_reason == "rollover" and s.exchange.links[1].opened_at == old.closed_at
        assert "rollover" not in s.types()
        (lost,) = [e for e in s.events if e["type"] == "disconnected"]
        assert lost["shard"] == 0
        assert s.types().index("disconnected") < s.types().index("gap")

    asyncio.run(main())


def test_a_loss_is_published_again_by_the_next_connection_when_one_is_dropped_unserved() -> None:
    async def main() -> None:
        s = Setup()
        old = s.feed.new_listener()
        old.on_ws_connected(None)
        s.feed.opened(old)
        s.feed.closed(old)  # lost: the next connection owes a gap from here
        unserved = s.feed.new_listener()
        unserved.on_ws_connected(None)  # handshake done, then cancelled before `opened`
        served = s.feed.new_listener()
        served.on_ws_connected(None)
        s.feed.opened(served)
        again = s.feed.new_listener()
        again.on_ws_connected(None)  # a make-before-break replacement: nothing lost
        gaps = [e for e in s.events if e["type"] == "gap"]
        assert [(g["from_ns"], g["to_ns"]) for g in gaps] == [
            (old.connected_ns, unserved.connected_ns), (old.connected_ns, served.connected_ns)]

    asyncio.run(main())


def test_a_replacement_refused_for_good_keeps_the_connection_until_it_ends() -> None:
    """The refusal quarantines the shard only once the connection it would replace is lost
    (and the reconnect is refused too), not while that connection still serves."""
    async def main() -> None:
        s = Setup()
        s.exchange.refusing_after = 1
        s.sup.start(lambda task: None)
        await s.until(lambda: "connect_failed" in s.types())
        for _ in range(100):  # time for a wrong retry or close to show
            await asyncio.sleep(0.001)
        (old,) = s.exchange.links
        assert s.sup.children[0].state == "open" and old.closed_at is None
        assert s.exchange.attempts == 2 and "quarantined" not in s.types()
        old.abort()  # the exchange ends it (its 24 hours)
        await s.until(lambda: "quarantined" in s.types())
        for _ in range(100):
            await asyncio.sleep(0.001)
        state = s.sup.children[0].state
        await s.stop()
        assert state == "quarantined" and s.exchange.attempts == 3
        assert s.types().count("quarantined") == 1

    asyncio.run(main())


def test_a_stop_while_a_refused_replacement_leaves_the_connection_serving_closes_it() -> None:
    async def main() -> None:
        s = Setup()
        s.exchange.refusing_after = 1
        old = await s.start()
        s.feed.shutdown_notices[0].set()
        await s.until(lambda: "connect_failed" in s.types())
        s.exchange.send(old, range(1, 4), s.decoder)  # it still delivers, one connection's
        await s.stop()
        assert old.close_reason == "shutdown" and s.sup.children[0].state == "stopped"
        assert s.trades == [1, 2, 3] and s.decoder.duplicates == 0
        assert "disconnected" not in s.types()

    asyncio.run(main())


def test_a_replacement_that_closes_at_once_is_retried_after_a_backoff() -> None:
    async def main() -> None:
        s = Setup()
        old = await s.start()
        opened = len(s.exchange.links)

        async def closing(url: str, factory: Callable[[], FeedListener],
                          config: ConnectionConfig, context: Any) -> Link:
            link = await s.exchange.connect(url, factory, config, context)
            link.abort()  # accepted, then closed before it delivers
            return link

        s.sup.children[0]._connect = closing
        s.feed.shutdown_notices[0].set()
        await s.until(lambda: len(s.exchange.links) >= opened + 4)
        times = [link.opened_at for link in s.exchange.links[opened:opened + 4]]
        await s.stop()
        assert old.closed_at is not None and old.close_reason == "shutdown"
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap > 0 for gap in gaps)  # never at once (the delays: full jitter)

    asyncio.run(main())


def test_a_stop_while_the_replacement_waits_out_a_ban_does_not_wait_for_it() -> None:
    async def main() -> None:
        s = Setup()
        old = await s.start()
        s.sup.limiter.block_for(1e6)  # a 418 on another connection: every attempt waits

        async def ticking() -> None:  # the virtual clock moves a second at a time meanwhile
            while True:
                await s.clock.sleep(1.0)

        ticker = asyncio.ensure_future(ticking())
        s.feed.shutdown_notices[0].set()  # the replacement waits in the limiter
        # (for what is left of the block: the ticker may have moved the clock a few seconds
        # first; only the sleeps since the last look are scanned, as the ticker adds many)
        looked = 0

        def waiting_out_the_block() -> bool:
            nonlocal looked
            new, looked = s.clock.slept[looked:], len(s.clock.slept)
            return any(t > 1e6 - 3600 for t in new)

        await s.until(waiting_out_the_block)
        started = s.clock.now()
        async with asyncio.timeout(10):  # (it waited out the block: hours of virtual time)
            await s.stop()
        ticker.cancel()
        assert s.clock.now() - started < 10 and len(s.exchange.links) == 1
        assert old.close_reason == "shutdown" and s.sup.limiter.attempts == 1

    asyncio.run(main())
