"""The round-trip clock offset `feedhandler bench latency --url` measures against a simulator
on another host: here the simulator runs in this process (or a child), on our clock or ahead of
it; and which offset and note the benchmark then applies."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
import uvloop
from picows import WSMsgType

from feedhandler.bench import latency
from feedhandler.bench.clock import RoundTripClock, api_url, round_trip_offset
from feedhandler.bench.latency import GIVEN_OFFSET, SAME_CLOCK, Bench, Options
from feedhandler.simulator.testing import SimulatorProcess, SimulatorServer
from feedhandler.sinks.null import NullSink


def measure(clock_offset_ms: int) -> RoundTripClock:
    async def run() -> RoundTripClock:
        async with SimulatorServer(api_clock_offset_ms=clock_offset_ms) as sim:
            return await round_trip_offset(sim.url, samples=16)

    return uvloop.run(run())


@pytest.mark.parametrize("clock_offset_ms", [0, 5_000, -250])
def test_the_offset_is_found_within_its_stated_error(clock_offset_ms: int) -> None:
    clock = measure(clock_offset_ms)
    assert clock.samples == 16
    assert 0 < clock.error_us < 5_000  # half the shortest round trip, in this process
    assert abs(clock.offset_us - clock_offset_ms * 1_000) <= clock.error_us
    note = clock.note()
    assert f"{clock.offset_us:+,.0f} µs ± {clock.error_us:,.0f} µs" in note
    assert "shortest of 16" in note


@pytest.mark.parametrize("url", ["ws://10.0.0.1:9443", "ws://10.0.0.1:9443/",
                                 "ws://10.0.0.1:9443/stream?streams=btcusdt@trade"])
def test_the_ws_api_url_of_a_stream_url_asks_for_microseconds(url: str) -> None:
    assert api_url(url) == "ws://10.0.0.1:9443/ws-api/v3?timeUnit=MICROSECOND"


def bench(tmp_path: Path, **options: object) -> Bench:
    return Bench(Options(rates=[1000], profiles=["latency"], **options),  # type: ignore[arg-type]
                 tmp_path)


def test_the_bench_applies_a_measured_offset_unless_one_is_given(tmp_path: Path) -> None:

    local = bench(tmp_path)
    assert (local.align_clocks(), local.clock_offset_us, local.round_trip) == (SAME_CLOCK, 0, None)
    with SimulatorProcess(["--api-clock-offset-ms", "3000", "--wall-clock"]) as sim:
        measured = bench(tmp_path, url=sim.url)
        note = measured.align_clocks()
        assert measured.round_trip is not None and note == measured.round_trip.note()
        assert abs(measured.clock_offset_us - 3_000_000) <= measured.round_trip.error_us
        assert measured.meta()["clock_round_trip"]["samples"] == 64
        given = bench(tmp_path, url=sim.url, clock_offset_us=2_999_990.0)
        assert given.align_clocks() == GIVEN_OFFSET and given.clock_offset_us == 2_999_990.0
        assert given.round_trip is not None  # measured anyway: the output shows both

        assert given.tick(1000) == given.tick(100_000) == 1000  # its default: the floor's too


def test_a_failed_round_trip_stops_the_bench_unless_an_offset_was_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(url: str, **_: object) -> RoundTripClock:
        raise ConnectionRefusedError(111, "refused")

    async def sent_now(url: str, timeout: float, **_: object) -> int:
        return time.time_ns() // 1000 + 12

    monkeypatch.setattr(latency, "round_trip_offset", refused)
    monkeypatch.setattr(latency, "first_event", sent_now)
    monkeypatch.setattr(latency, "reachable", lambda url: None)  # (it listens, then refuses)
    with pytest.raises(latency.BenchError,
                       match=r"could not be measured.*simulate`\? Or give --clock-offset-us"):
        bench(tmp_path, url="ws://127.0.0.1:9").align_clocks()
    given = bench(tmp_path, url="ws://127.0.0.1:9", clock_offset_us=12.0)
    assert given.align_clocks() == GIVEN_OFFSET
    assert (given.clock_offset_us, given.round_trip) == (12.0, None)


def test_the_round_trip_gives_up_after_its_timeout() -> None:
    async def run() -> None:
        async with SimulatorServer() as sim:
            sim.api.faults.drop = 1_000  # type: ignore[union-attr]  # (no answer at all)
            await round_trip_offset(sim.url, timeout_s=0.3)

    with pytest.raises(TimeoutError):
        uvloop.run(run())


def test_stages_from_e_are_corrected_into_our_clock(tmp_path: Path) -> None:
    # the simulator host runs 1 ms ahead: an event sent at our 0 ns says E = 1,000,000 ns;
    # received at 100 µs, produced at 150, acknowledged at 300, consumed at 400 (ours)
    ahead = bench(tmp_path, clock_offset_us=1000.0)
    sink = latency.TimedSink(NullSink())
    sink.batches = [("trade", np.array([100_000]), 150_000)]
    tables = {"topics": np.array(["x.trade"]), "messages": np.array([[0, 0, 0, 400_000]]),
              "events": np.array([[0, 1_000_000, 100_000]])}
    samples: dict[str, np.ndarray] = {}
    ahead._kafka_stages(sink, [("x.trade", 0, 0, 300_000)], tables, 0, True, samples)
    assert {name: values.tolist() for name, values in samples.items()} == {
        "exchange_to_receive": [100_000], "produce_to_ack": [150_000],
        "ack_to_consumer": [100_000], "end_to_end": [400_000]}


@pytest.mark.parametrize("wall_clock", [True, False])
def test_a_remote_simulator_must_stamp_its_send_times(wall_clock: bool, tmp_path: Path) -> None:
    """Without --wall-clock a simulator's E is its market's own clock: every stage from E would
    be nonsense, so the bench stops before the runs, saying how to start it."""
    with SimulatorProcess(["--wall-clock"] * wall_clock) as sim:
        remote = bench(tmp_path, url=sim.url)
        if wall_clock:
            remote.align_clocks()
        else:
            with pytest.raises(latency.BenchError,
                               match=r"E is .* s off the send time: start the simulator with "
                                     r"--wall-clock"):
                remote.align_clocks()


def test_a_wss_simulator_is_verified_with_the_handlers_ca_file(tmp_path: Path) -> None:
    cert, key = tmp_path / "sim.pem", tmp_path / "sim.key"
    with SimulatorProcess(["--wall-clock", "--tls-self-signed", "--cert", str(cert),
                           "--key", str(key)]) as sim:
        assert sim.url.startswith("wss://")
        trusted = bench(tmp_path, url=sim.url, settings={"connection.ca_file": str(cert)})
        trusted.align_clocks()
        assert trusted.round_trip is not None
        with pytest.raises(latency.BenchError, match="CERTIFICATE_VERIFY_FAILED"):
            bench(tmp_path, url=sim.url).align_clocks()


class _Frame:
    def __init__(self, payload: bytes) -> None:
        self.msg_type, self.payload = WSMsgType.TEXT, payload

    def get_payload_as_bytes(self) -> bytes:
        return self.payload


@pytest.mark.parametrize(("frames", "timed", "result"), [
    ([b'{"result":null,"id":1}', b'{"e":"trade","E":5}', b"[1]", b"nope",
      b'{"data":{"E":true}}', b'{"data":{"u":1}}', b'{"data":{"E":7}}'], True, 7),
    ([b'{"result":null,"id":1}', b'{"data":{"u":1}}', b'{"data":{"E":7}}'], False, None),
])
def test_the_first_event_is_read_from_any_payload(frames: list[bytes], timed: bool,
                                                  result: int | None) -> None:
    async def run() -> tuple[bool, int | None]:
        arrived: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        listener = latency._FirstEvent(arrived, timed)
        for payload in frames:
            listener.on_ws_frame(None, _Frame(payload))  # type: ignore[arg-type]
        return arrived.done(), arrived.result() if arrived.done() else None

    assert uvloop.run(run()) == (True, result)


def test_a_mix_without_event_times_skips_the_send_time_check(tmp_path: Path) -> None:
    with SimulatorProcess(["--wall-clock"]) as sim:
        remote = bench(tmp_path, url=sim.url, kinds=["bookTicker"])
        assert not latency.timed(remote.streams)
        remote.align_clocks()  # (the first event, with no E, is waited for; no check)
        assert remote.round_trip is not None
