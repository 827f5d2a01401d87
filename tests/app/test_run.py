"""`feedhandler run` as an operator sees it: a live table on a terminal, JSON lines when piped."""

from __future__ import annotations

import gc
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import weakref
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from feedhandler.app.run import settle_heap
from feedhandler.simulator.testing import SimulatorProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorProcess]:
    with SimulatorProcess(["--rate", "200"]) as proc:
        yield proc


def run_args(url: str) -> list[str]:
    return [sys.executable, "-m", "feedhandler", "run", "--url", url, "--streams",
            "btcusdt@trade,ethusdt@bookTicker", "--sink", "null", "--duration", "3"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FEEDHANDLER_")}


def test_on_a_terminal_run_shows_the_live_table(simulator: SimulatorProcess) -> None:
    # util-linux `script` runs the command on a pseudo-terminal and copies what it shows
    command = shlex.join(run_args(simulator.url))
    result = subprocess.run(["script", "-qfec", command, "/dev/null"], capture_output=True,
                            timeout=60, env={**clean_env(), "COLUMNS": "120", "TERM": "xterm"})
    screen = result.stdout.decode(errors="replace")
    assert result.returncode == 0, screen[-3000:]
    for text in ("records/s", "bookTicker", "trade", "shards", "open", "reconnects 0",
                 "gaps 0", "kafka", "backlog"):
        assert text in screen, text
    assert '{"ts"' not in screen  # text logs on a terminal


def test_piped_run_logs_json_lines_with_periodic_stats(simulator: SimulatorProcess) -> None:
    result = subprocess.run([*run_args(simulator.url), "--stats-interval", "0.5",
                             "--summary-json"], capture_output=True, timeout=60, env=clean_env())
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [orjson.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    assert {line["level"] for line in lines} <= {"INFO", "WARNING"}
    stats = [line["stats"] for line in lines if line["msg"].startswith("stats ")]
    assert 3 <= len(stats) <= 7  # every 0.5 s of 3 s, none per message
    # (the last line may come as the run stops, its connection closing)
    assert stats[-2]["shards"][0]["state"] == "open"
    assert stats[-1]["records"]["bookTicker"] > 0 and stats[-1]["frames_per_s"] > 0
    summary = orjson.loads(result.stdout)
    assert summary["frames"] >= stats[-1]["frames"] > 0
    assert len(lines) < 20


def test_sighup_rereads_the_config_file_of_run(simulator: SimulatorProcess,
                                               tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def write(streams: str) -> None:
        config.write_text(f"url: {simulator.url}\nstreams: {streams}\nsink: 'null'\n"
                          f"health_port: {port}\nhealth_host: 127.0.0.1\n")

    def subscriptions() -> dict[str, list[str]] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/subscriptions",
                                        timeout=1) as answer:
                shards: dict[str, list[str]] = orjson.loads(answer.read())["shards"]
                return shards
        except OSError:
            return None

    def wait_for(shards: dict[str, list[str]]) -> None:
        deadline = time.monotonic() + 10
        while subscriptions() != shards:
            assert time.monotonic() < deadline, subscriptions()
            time.sleep(0.05)

    write("btcusdt@trade")
    command = [sys.executable, "-m", "feedhandler", "run", "--config", str(config),
               "--summary-json", "--log-format", "json"]
    with subprocess.Popen(command, env=clean_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE) as handler:
        try:
            wait_for({"0": ["btcusdt@trade"]})
            write("btcusdt@trade,ethusdt@trade")
            handler.send_signal(signal.SIGHUP)
            wait_for({"0": ["btcusdt@trade", "ethusdt@trade"]})
        finally:
            handler.send_signal(signal.SIGTERM)
            out, err = handler.communicate(timeout=20)
    assert handler.returncode == 0, err
    assert orjson.loads(out)["connections"]["attempts"] == 1  # no reconnect for it


def test_record_ignores_sighup_and_a_late_signal_keeps_exit_0(simulator: SimulatorProcess,
                                                               tmp_path: Path) -> None:
    # SIGHUP's default would end `record` unflushed; after the flush a second SIGTERM must
    # not turn exit 0 into 143
    proc = subprocess.Popen(
        [sys.executable, "-m", "feedhandler", "record", "--url", simulator.url, "--streams",
         "btcusdt@trade", "--out", str(tmp_path), "--sink", "null", "--live", "off",
         "--stats-interval", "0"],
        stderr=subprocess.PIPE, env=clean_env())
    try:
        for _ in range(300):  # until it records
            if list(tmp_path.glob("*.fhrec.gz")):
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        for _ in range(200):  # a second SIGTERM while it shuts down, whenever that is
            time.sleep(0.01)
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert b"SIGHUP ignored" in err
    (recording,) = tmp_path.glob("*.fhrec.gz")
    assert recording.stat().st_size > 100


def test_what_start_up_built_is_out_of_the_collectors_reach() -> None:
    class Node:
        loop: Node

    before: list[str] = ["built at start-up"]  # (a list is always tracked)
    node = Node()
    node.loop = node  # a cycle: only the collector frees it
    try:
        settle_heap()
        after: list[str] = ["built later"]
        tracked = {id(o) for o in gc.get_objects()}
        assert id(before) not in tracked and id(node) not in tracked and id(after) in tracked
        # called again, what it froze and has become garbage since is collected
        gone = weakref.ref(node)
        del node
        settle_heap()
        assert gone() is None
    finally:
        gc.unfreeze()


def test_a_taken_health_port_is_the_one_line_on_stderr() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "feedhandler", "run", "--url", "ws://127.0.0.1:9",
             "--streams", "btcusdt@trade", "--sink", "null", "--health-port", str(port),
             "--health-host", "127.0.0.1"], capture_output=True, timeout=60, env=clean_env())
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        f"feedhandler run: configuration error: health_host/health_port: cannot listen on "
        f"127.0.0.1:{port}: Address already in use"]
