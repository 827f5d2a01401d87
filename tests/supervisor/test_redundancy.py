"""A/B redundancy on a virtual clock with a fake connector: two legs per shard, each with its
own connection and backoff; losing one costs nothing, a leg that rejoins waits until in step,
and lifetime rollovers hand over one leg at a time."""

from __future__ import annotations

import asyncio
from typing import Any

from feedhandler.config import ConnectionConfig
from feedhandler.supervisor.failures import refused
from feedhandler.supervisor.feed import ShardFeed
from feedhandler.supervisor.legs import LegPair
from feedhandler.supervisor.plan import leg_url, plan
from feedhandler.supervisor.transport import LinkFailed
from feedhandler.supervisor.tree import Supervisor
from tests.parsing.test_parse_gaps import trade
from tests.supervisor.test_rollover import CONFIG, FakeLink, Setup

REDUNDANT = CONFIG.model_copy(update={"redundancy": 2, "url_b": "wss://b.invalid:9443"})


class Legs(Setup):
    def __init__(self, config: ConnectionConfig = REDUNDANT) -> None:
        super().__init__()
        (shard,) = plan("ws://exchange.invalid:1", ["btcusdt@trade"], 200)
        self.feed = ShardFeed(shard, self.decoder, self.events.append, redundant=True)
        self.sup = Supervisor([self.feed], config, clock=self.clock,
                              connect=self.exchange.connect)

    async def both(self) -> tuple[FakeLink, FakeLink]:
        self.sup.start(lambda task: None)
        await self.until(lambda: len(self.feed.listeners) == 2)
        a, b = sorted(self.exchange.links[:2], key=lambda link: link.listener.leg)
        return a, b

    def open_leg(self, leg: int) -> FakeLink:
        return next(link for link in reversed(self.exchange.links)
                    if link.listener.leg == leg)


def test_a_leg_lost_costs_nothing_and_rejoins_once_in_step() -> None:
    async def main() -> None:
        s = Legs()
        a, b = await s.both()
        assert isinstance(s.sup.children[0], LegPair)
        s.exchange.send(a, range(1, 4), s.decoder)
        s.exchange.send(b, range(1, 3), s.decoder)  # leg B a little behind
        await s.until(lambda: s.feed.trusted == {0, 1})
        s.exchange.send(b, range(3, 6), s.decoder)  # B wins 4, 5
        s.exchange.send(a, range(4, 6), s.decoder)
        a.abort()  # leg A lost: B carries on alone
        await s.until(lambda: s.feed.trusted == {1} and len(s.feed.listeners) == 1)
        s.exchange.send(b, range(6, 9), s.decoder)
        await s.until(lambda: len(s.feed.listeners) == 2)  # A back, after its backoff
        a2 = s.open_leg(0)
        assert s.feed.trusted == {1}  # A joins: its ids past a hole are B's to deliver
        s.exchange.send(a2, range(10, 12), s.decoder)  # 9 is in flight on B
        s.exchange.send(b, range(9, 12), s.decoder)
        s.exchange.send(a2, range(12, 13), s.decoder)  # A in step: next to B's 11
        await s.until(lambda: s.feed.trusted == {0, 1})
        status = s.sup.status().connections[0]
        await s.stop()

        assert s.trades == list(range(1, 13))
        assert "gap" not in s.types()
        assert [e["leg"] for e in s.events if e["type"] == "disconnected"] == [0]
        connected = [(e["leg"], e["url"]) for e in s.events if e["type"] == "connected"]
        assert sorted(set(connected)) == [(0, s.feed.shard.url),
                                          (1, leg_url(s.feed.shard.url, REDUNDANT.url_b))]
        assert [leg.leg for leg in status.legs] == [0, 1]
        assert [leg.state for leg in status.legs] == ["open", "open"]
        assert [leg.url.split("/stream")[0] for leg in status.legs] == \
            ["ws://exchange.invalid:1", "wss://b.invalid:9443"]
        # wins while two legs ran: B 4, 5, 9-11 (A was joining), A 3 and 12
        assert status.legs[1].won >= 4 and status.legs[0].won >= 1
        assert sum(leg.lead_count for leg in status.legs) >= 1

    asyncio.run(main())


def test_the_first_leg_up_leads_when_both_were_connecting_at_once() -> None:
    """The later attempt was trusted while neither was open: the first leg to come up must
    not hold its records past a hole for a leg that is not there (they were then dropped as
    owed once it was trusted)."""
    async def main() -> None:
        s = Legs()
        gates = {0: asyncio.Event(), 1: asyncio.Event()}
        connect = s.exchange.connect

        async def gated(url: str, *args: Any) -> FakeLink:
            await gates[1 if url.startswith("wss://b.invalid") else 0].wait()
            return await connect(url, *args)

        s.sup = Supervisor([s.feed], REDUNDANT, clock=s.clock, connect=gated)
        s.sup.start(lambda task: None)
        await asyncio.sleep(0.01)  # both handshakes under way
        gates[0].set()  # leg A's ends first
        await s.until(lambda: len(s.feed.listeners) == 1)
        (a,) = s.exchange.links
        assert s.feed.trusted == {0}
        s.exchange.send(a, [1, 2, 3, 5, 6, 7], s.decoder)  # 4: never sent by the exchange
        s.decoder.flush()
        assert s.trades == [1, 2, 3, 5, 6, 7]
        gates[1].set()
        await s.until(lambda: len(s.feed.listeners) == 2)
        await s.stop()

    asyncio.run(main())


def test_a_leg_up_but_not_yet_served_keeps_the_lead_from_a_later_attempt() -> None:
    """Leg A's handshake is done (its first frames may decode) before the supervisor serves it,
    and leg B's attempt starts meanwhile: A, the one that is up, still leads."""
    s = Legs()
    s.feed.attempting(leg=0)
    a = s.feed.new_listener(leg=0)
    a.on_ws_connected(None)
    s.feed.attempting(leg=1)
    assert s.feed.trusted == {0}
    s.feed.opened(a)
    b = s.feed.new_listener(leg=1)
    b.on_ws_connected(None)  # B joins, untrusted until in step
    assert s.feed.trusted == {0}


def test_lifetime_hands_over_one_leg_at_a_time() -> None:
    async def main() -> None:
        s = Legs()
        a, b = await s.both()
        s.exchange.send(a, range(1, 3), s.decoder)
        s.exchange.send(b, range(1, 3), s.decoder)
        await s.until(lambda: s.feed.trusted == {0, 1})
        # both reach the lifetime together: one closes and reconnects at once, the other
        # waits until it is back in step
        await s.until(lambda: len(s.exchange.links) == 3)
        first = next(link for link in (a, b) if link.closed_at is not None)
        other = b if first is a else a
        assert first.close_reason == "rollover" and other.closed_at is None
        new = s.exchange.links[2]
        assert new.listener.leg == first.listener.leg and new.opened_at == first.closed_at
        s.exchange.send(other, range(3, 5), s.decoder)
        s.exchange.send(new, range(4, 6), s.decoder)  # in step with what other emitted
        await s.until(lambda: other.closed_at is not None)
        assert other.closed_at >= new.opened_at
        await s.until(lambda: len(s.exchange.links) == 4)
        s.exchange.send(new, range(6, 8), s.decoder)
        s.exchange.send(s.exchange.links[3], range(7, 9), s.decoder)
        await s.until(lambda: len([e for e in s.events if e["type"] == "rollover"]) == 2)
        await s.stop()

        assert s.trades == list(range(1, 9)) and "gap" not in s.types()
        rollovers = [e for e in s.events if e["type"] == "rollover"]
        assert [e["leg"] for e in rollovers] == [first.listener.leg, other.listener.leg]
        assert all(e["cause"] == "lifetime" and e["in_step"] for e in rollovers)
        assert "disconnected" not in s.types()  # (a lost connection: the reconnects metric)

    asyncio.run(main())


def test_a_rejoining_leg_is_judged_on_its_new_connection_only() -> None:
    s = Legs()
    s.feed.attempting(leg=0)
    s.feed.opened(s.feed.new_listener(0))
    s.decoder.decode_many([trade(1), trade(2)], leg=0)
    s.feed.attempting(leg=1)  # B joins A
    assert s.feed.trusted == {0}
    s.decoder.decode_many([trade(2), trade(3)], leg=1)
    assert s.decoder.overlap_counts(1) == (2, 0)
    s.feed.attempting(leg=1)  # B's connection ended before it was in step: it tries again
    assert s.decoder.overlap_counts(1) == (0, 0) and s.feed.trusted == {0}


def test_a_leg_refused_at_start_stops_the_handler_as_any_refusal_does() -> None:
    async def main() -> None:
        s = Legs()

        async def b_refused(url: str, factory: Any, config: ConnectionConfig,
                            context: Any) -> Any:
            if url.startswith("wss://b.invalid"):
                raise LinkFailed(refused(403, b"forbidden"))
            return await s.exchange.connect(url, factory, config, context)

        s.sup = Supervisor([s.feed], REDUNDANT, clock=s.clock, connect=b_refused)
        refusals: list[str] = []
        s.sup.on_start_refusal = lambda: refusals.append(s.sup.start_refusal)
        s.sup.start(lambda task: None)
        await s.until(lambda: bool(refusals))
        await s.stop()
        assert refusals == [f"shard 0: {s.feed.shard.url} refused: HTTP 403: forbidden"]
        assert [e["status"] for e in s.events if e["type"] == "refused"] == [403]
        assert s.exchange.links[0].close_reason == "shutdown"  # leg A closed on the way out

    asyncio.run(main())


def test_a_leg_refused_for_good_later_shows_as_quarantined_while_the_other_serves() -> None:
    async def main() -> None:
        s = Legs()
        refuse_b = False

        async def b_refused_later(url: str, factory: Any, config: ConnectionConfig,
                                  context: Any) -> Any:
            if refuse_b and url.startswith("wss://b.invalid"):
                raise LinkFailed(refused(403, b"forbidden"))
            return await s.exchange.connect(url, factory, config, context)

        s.sup = Supervisor([s.feed], REDUNDANT, clock=s.clock, connect=b_refused_later)
        a, b = await s.both()
        refuse_b = True
        b.abort()
        await s.until(lambda: "quarantined" in s.types())
        status = s.sup.status()
        (shard,) = status.connections
        await s.stop()
        assert shard.state == "open" and shard.quarantined == ("leg 1",)
        assert status.quarantined == 1 and a.closed_at is not None
        assert [leg.state for leg in shard.legs] == ["open", "quarantined"]

    asyncio.run(main())


def test_server_shutdown_on_one_leg_rolls_over_that_leg_alone() -> None:
    async def main() -> None:
        s = Legs(REDUNDANT.model_copy(update={"max_lifetime_s": 1e6}))  # no lifetime rollover
        a, b = await s.both()
        s.exchange.send(a, range(1, 3), s.decoder)
        s.exchange.send(b, range(1, 3), s.decoder)
        await s.until(lambda: s.feed.trusted == {0, 1})
        s.feed.shutdown_notices[b.listener.leg].set()  # what the handler does on B's notice
        await s.until(lambda: len(s.exchange.links) == 3)
        new = s.exchange.links[2]
        assert b.close_reason == "rollover" and new.listener.leg == b.listener.leg
        s.exchange.send(a, range(3, 5), s.decoder)
        s.exchange.send(new, range(4, 6), s.decoder)
        await s.until(lambda: [e["type"] for e in s.events].count("rollover") == 1)
        for _ in range(100):  # time for a wrong hand-over of A to show
            await asyncio.sleep(0.001)
        await s.stop()
        assert a.close_reason == "shutdown" and len(s.exchange.links) == 3
        (rollover,) = [e for e in s.events if e["type"] == "rollover"]
        assert rollover["cause"] == "server_shutdown" and rollover["leg"] == b.listener.leg
        assert s.trades == list(range(1, 6)) and "gap" not in s.types()

    asyncio.run(main())
