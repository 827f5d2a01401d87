"""`feedhandler bench latency`, short: the real simulator (wall-clock paced), broker and
consumer; the JSON has every stage with ordered percentiles (never an absolute latency)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from feedhandler.bench import latency
from feedhandler.bench.latency import STAGES, tick_for
from feedhandler.cli import main
from feedhandler.simulator.testing import SimulatorProcess
from feedhandler.sinks.null import NullSink

ORDER = ("p50_us", "p90_us", "p99_us", "p99_9_us", "max_us")


@pytest.mark.parametrize(("rate", "tick_us"), [(1000, 1000), (10_000, 1000), (16_000, 625),
                                               (100_000, 100), (1_000_000, 100)])
def test_the_paced_simulator_ticks_about_ten_events(rate: int, tick_us: int) -> None:
    assert tick_for(rate) == tick_us


@pytest.mark.integration
@pytest.mark.slow
def test_a_short_run_reports_every_stage_and_the_floors(kafka_bootstrap: str,
                                                       tmp_path: Path) -> None:
    mask = os.sched_getaffinity(0)
    pin = ["--pin"] if len(mask) >= 2 else []  # simulator and consumer off the handler's CPU
    assert main(["bench", "latency", "--rates", "1000", "--duration", "3", "--warmup", "0",
                 "--profiles", "latency", "--symbols", "2", "--bootstrap", kafka_bootstrap,
                 "--floor-topics", "1,2", "--out", str(tmp_path), *pin]) == 0
    assert os.sched_getaffinity(0) == mask  # the session's CPUs back after the run
    result = json.loads((tmp_path / "results.json").read_text())
    assert {(r["sink"], r["profile"], r["offered"]) for r in result["runs"]} == {
        ("null", None, 1000), ("kafka", "latency", 1000), ("floor", None, 1000)}
    runs = {r["sink"]: r for r in result["runs"]}  # (the floor: the last, over 2 topics)
    assert [r.get("topics") for r in result["runs"] if r["sink"] == "floor"] == [1, 2]
    assert set(runs["kafka"]["stages"]) == set(STAGES)
    assert set(runs["null"]["stages"]) == {"receive_to_produce"}
    assert set(runs["floor"]["stages"]) == {"produce_to_ack", "end_to_end"}
    # stamped before produce() and once the consumer holds it, on one clock: never negative
    assert runs["floor"]["stages"]["end_to_end"]["negative"] == 0
    # The floor in two halves around the handler's runs, pooled
    halves = runs["floor"]["halves"]
    assert len(halves) == 2 and all(half["count"] > 250 for half in halves)
    assert sum(half["count"] for half in halves) == runs["floor"]["stages"]["end_to_end"]["count"]
    for run in result["runs"]:
        assert run["frames"] > 1000  # 3 s at 1k/s, the first second not counted below
        for stage in run["stages"].values():
            assert stage["count"] > 500
            values = [stage[k] for k in ORDER]
            assert values == sorted(values)
            assert stage["cdf"][-1][1] >= stage["p99_9_us"]
    kafka = runs["kafka"]["stages"]
    # Same events: the consumer got each one after the handler did.
    assert kafka["end_to_end"]["count"] == kafka["exchange_to_receive"]["count"]
    for key in ORDER:
        assert kafka["end_to_end"][key] >= kafka["exchange_to_receive"][key]
    assert runs["kafka"]["kafka"]["failed"] == 0
    # every acknowledged record reached the consumer, every floor message too
    assert runs["kafka"]["kafka"]["records_consumed"] == \
        runs["kafka"]["kafka"]["records_delivered"] == runs["kafka"]["records"]
    assert runs["floor"]["received"] == runs["floor"]["frames"]
    assert result["meta"]["clock"].startswith("one host")
    assert result["meta"]["simulator_tick_us"] == {"1000": 1000}  # (JSON keys)
    table = (tmp_path / "results.md").read_text()
    if pin:
        pinned = f"handler and floor producer on CPU {min(mask)};"
        assert result["meta"]["pinned"].startswith(pinned)
        assert f"- Pinned: {pinned}" in table
    assert "the paced simulator sends the events due every 1000 µs at 1,000/s" in table
    assert "| kafka latency | 1,000 |" in table and "| floor | 1,000 |" in table
    assert "| floor (2 topics) | 1,000 |" in table
    assert "The floor ran in two halves" in table and "floor (2 topics) at 1,000/s: " in table
    assert (tmp_path / "latency_cdf.png").stat().st_size > 10_000
    assert (tmp_path / "latency_rates.png").stat().st_size > 10_000


@pytest.mark.integration
def test_null_runs_alone_start_no_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_broker(bootstrap: str | None) -> None:
        raise AssertionError("a null-sink run started a broker")

    monkeypatch.setattr(latency, "broker", no_broker)
    assert main(["bench", "latency", "--rates", "1000,max", "--duration", "2", "--profiles", "",
                 "--no-floor", "--no-plots", "--symbols", "1", "--saturation-frames", "30000",
                 "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    paced, saturation = result["runs"]
    assert paced["sink"] == "null" and paced["stages"]["receive_to_produce"]["count"] > 500
    assert result["meta"]["simulator_tick_us"] == {"1000": 1000}
    assert saturation["offered"] == "saturation" and saturation["frames"] == 30_000
    # CPU counts from the first hand-over: not the simulator pre-generating the run's frames
    # once the handler subscribed (4.6-5.5 µs a frame here, against under 0.1 sending them)
    assert saturation["cpu_us_per_frame"]["simulator"] < 2.5


def test_the_watch_sees_each_stamped_hand_over_until_it_is_satisfied() -> None:
    sink = latency.TimedSink(NullSink())
    seen: list[int] = []

    def watch() -> bool:
        seen.append(len(sink.batches))
        return len(seen) == 2

    sink.watch = watch
    records = np.zeros(2, [("ts_recv", "<i8")])
    for _ in range(3):
        sink.publish_batch("trade", records, 0)
    assert seen == [1, 2] and sink.watch is None and len(sink.batches) == 3


@pytest.mark.parametrize("tick", ["0", "1001"])
def test_a_tick_outside_a_millisecond_is_refused(tick: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "latency", "--tick-us", tick, "--out", str(tmp_path)]) == 2
    assert f"--tick-us must be 1..1000, got {tick}" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "error"), [
    (["--duration", "1"], "--duration must be over the 1 s not counted"),
    (["--symbols", "3001"], "--symbols: the simulator's market has 3000, got 3001"),
])
def test_options_that_would_measure_nothing_are_refused(
        args: list[str], error: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "latency", *args, "--out", str(tmp_path)]) == 2
    assert error in capsys.readouterr().err


@pytest.mark.parametrize("rates", ["1.5", "1000,2.5"])
def test_rates_are_whole_events_per_second(rates: str, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "latency", "--rates", rates])
    assert exit_.value.code == 2
    assert "whole events/s of 1 or more" in capsys.readouterr().err


def test_an_out_directory_that_cannot_be_written_is_refused_before_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_run(options: object) -> None:
        raise AssertionError("the benchmark ran")

    monkeypatch.setattr(latency, "run_bench", no_run)
    (tmp_path / "afile").write_text("")
    assert main(["bench", "latency", "--out", str(tmp_path / "afile" / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"feedhandler bench: --out {tmp_path / 'afile' / 'sub'}: Not a directory"]


@pytest.mark.integration
def test_a_run_that_receives_nothing_stops_the_bench(tmp_path: Path) -> None:
    bench = latency.Bench(latency.Options(rates=[1000], profiles=[], symbols=1), tmp_path)
    with SimulatorProcess(["--wall-clock", "--max-messages", "0"]) as sim, \
            pytest.raises(latency.BenchError, match=r"no frames from .* a simulator serving"):
        bench.handler_run(sim.url, "null", None, 1000, "", {}, 1.5)


@pytest.mark.integration
@pytest.mark.parametrize("after_s", [0.1, 5.5])  # starting its simulator; in a handler run
def test_a_sigterm_unwinds_the_bench(after_s: float, tmp_path: Path) -> None:
    """Its simulator stops and its temporary directories go; exit 143, one line."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    bench = subprocess.Popen(
        [sys.executable, "-m", "feedhandler", "bench", "latency", "--rates", "1000",
         "--duration", "60", "--warmup", "0", "--profiles", "", "--no-floor", "--no-plots",
         "--symbols", "1", "--out", str(tmp_path / "out")],
        env={**os.environ, "TMPDIR": str(temp)}, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30  # its first directory: its signal handlers are in
    while not list(temp.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(after_s)
    bench.send_signal(signal.SIGTERM)
    _, err = bench.communicate(timeout=30)
    assert bench.returncode == 143, err
    assert err.strip().splitlines()[-1] == "feedhandler bench: stopped by SIGTERM"
    assert not list(temp.iterdir())


def test_the_symbol_limit_is_the_simulators_market() -> None:
    assert len(latency.Universe.generate(latency.SEED).symbols) == latency.MAX_SYMBOLS
