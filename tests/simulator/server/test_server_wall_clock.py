"""`--wall-clock`: paced events carry their send time in `E`, in the connection's time unit."""

from __future__ import annotations

import time

from feedhandler.simulator.server.stamping import stamp_send_time
from feedhandler.simulator.testing import SimulatorServer
from tests.simulator.server.simhelpers import StubFactory, connect, recv_json


def test_stamp_replaces_every_event_time_and_nothing_else() -> None:
    events = [
        ("btcusdt@trade", b'{"e":"trade","E":1767225600123,"t":5,"T":1767225600000}'),
        ("!miniTicker@arr", b'[{"e":"24hrMiniTicker","E":1},{"e":"24hrMiniTicker","E":2}]'),
        ("btcusdt@bookTicker", b'{"u":7,"s":"BTCUSDT"}'),
    ]
    before = time.time_ns() // 1000
    stamped = stamp_send_time(events, "us")
    after = time.time_ns() // 1000
    trade = stamped[0][1]
    stamp = int(trade.split(b'"E":')[1].split(b",")[0])
    assert before <= stamp <= after
    assert trade == b'{"e":"trade","E":%d,"t":5,"T":1767225600000}' % stamp
    assert stamped[1][1].count(b'"E":%d' % stamp) == 2
    assert stamped[2] == events[2]
    millis = int(stamp_send_time(events[:1], "ms")[0][1].split(b'"E":')[1].split(b",")[0])
    assert abs(millis - stamp // 1000) <= 1000 and len(str(millis)) == 13


async def test_paced_events_carry_their_send_time(stub: StubFactory) -> None:
    async with SimulatorServer(source=stub, rate=2000, wall_clock=True) as sim:
        for query, per_second in (("?timeUnit=MICROSECOND", 1_000_000), ("", 1000)):
            async with connect(sim.url + "/ws/btcusdt@trade" + query) as ws:
                lags = []
                for _ in range(200):
                    event = await recv_json(ws)
                    lags.append(time.time_ns() * per_second // 1_000_000_000 - event["E"])
            # received after it was sent, within a second (noisy machine), never in the future
            assert all(0 <= lag < per_second for lag in lags), lags[:10]


async def test_without_the_flag_event_time_is_the_market_s(stub: StubFactory) -> None:
    async with (
        SimulatorServer(source=stub, rate=2000) as sim,
        connect(sim.url + "/ws/btcusdt@trade?timeUnit=MICROSECOND") as ws,
    ):
        event = await recv_json(ws)
        assert event["E"] == (stub.opened[0].EPOCH_MS + event["t"]) * 1000
