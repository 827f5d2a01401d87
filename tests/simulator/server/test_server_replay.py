"""Replay of recorded events: filtering, sequence faults, recorded pace and full speed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest

from feedhandler.recording.format import RecordingWriter
from feedhandler.simulator.server.frames import unwrap_combined, wrap_combined
from feedhandler.simulator.server.replay import ReplayFactory, ReplaySource, TimedEvent, read_events
from feedhandler.simulator.server.source import FrameSource
from feedhandler.simulator.server.urls import TimeUnit
from feedhandler.simulator.testing import SimulatorServer
from tests.simulator.server.simhelpers import connect, recv_json, request

T0 = 1_767_225_600_000_000_000  # capture clock, ns


def recording(count: int, spacing_ns: int, streams: tuple[str, ...]) -> list[TimedEvent]:
    out = []
    for i in range(count):
        stream = streams[i % len(streams)]
        out.append((T0 + i * spacing_ns, stream, orjson.dumps({"s": stream, "i": i})))
    return out


def indices(events: list[tuple[str, bytes]]) -> list[int]:
    return [orjson.loads(payload)["i"] for _, payload in events]


def test_only_subscribed_streams_in_file_order() -> None:
    source = ReplaySource(iter(recording(9, 1, ("a@trade", "b@trade", "c@trade"))))
    assert source.next_frames(5) == []  # nothing subscribed: nothing read
    source.subscribe(["c@trade", "a@trade"])
    assert indices(source.next_frames(3)) == [0, 2, 3]
    source.unsubscribe(["a@trade"])
    assert indices(source.next_frames(10)) == [5, 8]
    assert source.next_frames(10) == []
    assert source.peek_ns() is None


def test_timing_queries() -> None:
    source = ReplaySource(iter(recording(6, 1000, ("a@trade", "b@trade"))))
    source.subscribe(["a@trade"])
    assert source.first_ns() == T0
    assert source.peek_ns() == T0
    assert source.count_due(T0 + 2500, limit=10) == 2  # i=0 and i=2 (i=1 is b@trade)
    assert source.count_due(T0 + 2500, limit=1) == 1
    assert source.peek_ns() == T0
    assert indices(source.next_frames(2)) == [0, 2]
    assert source.peek_ns() == T0 + 3000  # the next file record, even one that is skipped
    assert source.count_due(T0 + 10_000, limit=10) == 1


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ("gap", [0, 1, 4, 5, 6, 7]),
        ("duplicate", [0, 1, 2, 2, 3, 4]),
        ("reorder", [0, 1, 3, 2, 4, 5]),
    ],
)
def test_sequence_faults_act_on_records(fault: str, expected: list[int]) -> None:
    source = ReplaySource(iter(recording(8, 1, ("a@trade",))))
    source.subscribe(["a@trade"])
    first = source.next_frames(2)
    {"gap": lambda: source.inject_gap("a@trade", 2), "duplicate": lambda: source.inject_duplicate(
        "a@trade"), "reorder": lambda: source.inject_reorder("a@trade")}[fault]()  # fmt: skip
    assert indices(first + source.next_frames(len(expected) - 2)) == expected


class Recorded:
    """A source factory replaying an in-memory recording (what --replay does with a file)."""

    def __init__(self, records: list[TimedEvent]) -> None:
        self.records = records

    def is_valid_stream(self, name: str) -> bool:
        return name.endswith("@trade")

    def open(self, time_unit: TimeUnit) -> FrameSource:
        return ReplaySource(iter(self.records))


@pytest.mark.parametrize(("speed", "expected_span"), [(1.0, 0.45), (2.0, 0.225), (0.0, 0.0)])
async def test_replay_pace(speed: float, expected_span: float) -> None:
    records = recording(20, 25_000_000, ("a@trade", "b@trade"))  # b@trade: every 50 ms
    factory = Recorded(records)
    async with (
        SimulatorServer(source=factory, replay_speed=speed) as sim,
        connect(sim.url + "/stream?streams=b@trade") as ws,
    ):
        arrivals, seen = [], []
        for _ in range(10):
            event = await recv_json(ws)
            arrivals.append(time.monotonic())
            seen.append(event["data"]["i"])
        assert seen == list(range(1, 20, 2))
        span = arrivals[-1] - arrivals[0]
        assert expected_span * 0.9 - 0.01 <= span <= expected_span * 1.2 + 0.03, span
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.2)  # the recording has ended
        listing = await request(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1})
        assert listing == {"result": ["b@trade"], "id": 1}
        assert sim.connections[0].sent == 10


def test_unwrap_combined_is_the_exact_inverse() -> None:
    payload = '{"e":"trade","s":"币安USDT","p":"0.10000000"}'.encode()
    assert unwrap_combined(wrap_combined("币安usdt@trade", payload)) == ("币安usdt@trade", payload)
    assert unwrap_combined(b'{"result":null,"id":1}') is None
    assert unwrap_combined(b'{"stream":"x@trade"}') is None


def test_read_events_from_a_recording_file(tmp_path: Path) -> None:
    path = tmp_path / "capture.rec"
    trade = b'{"e":"trade","E":1,"s":"BTCUSDT","t":7}'
    book = b'{"u":5,"s":"ETHUSDT","b":"1.00","B":"2.00","a":"1.01","A":"3.00"}'
    with RecordingWriter(path, {"time_unit": "ms"}) as writer:
        writer.write(T0, "btcusdt@trade", trade)
        writer.write(T0 + 1, "conn-1", wrap_combined("ethusdt@bookTicker", book))
        writer.write(T0 + 2, "conn-1", b'{"result":null,"id":1}')  # a control reply
        writer.write(T0 + 3, "", b"")
    with path.open("ab") as tail:
        tail.write(b"\x01\x02\x03")  # the recorder crashed mid-record
    events = list(read_events(path, ReplayFactory(path).is_valid_stream))
    assert events == [(T0, "btcusdt@trade", trade), (T0 + 1, "ethusdt@bookTicker", book)]


def test_a_bad_recording_fails_at_start(tmp_path: Path) -> None:
    path = tmp_path / "not-a-recording"
    path.write_bytes(b"hello world, this is not it")
    with pytest.raises(ValueError, match="not a recording"):
        ReplayFactory(path)
