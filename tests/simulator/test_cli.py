"""`feedhandler simulate` as a process: ready file, exact output, TLS, signals, bad flags."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import uvloop
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from feedhandler.cli import build_parser
from feedhandler.recording.format import RecordingWriter
from feedhandler.simulator.cli import _config
from feedhandler.simulator.market import Feed, Universe
from feedhandler.simulator.server.faults import MALFORMED
from feedhandler.simulator.testing import SimulatorProcess
from feedhandler.wsapi import Credentials, WeightBudget, WsApiClient

STREAMS = ["btcusdt@bookTicker", "ethusdt@trade", "solusdt@depth@100ms"]


def run(coro: object) -> object:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


async def collect(url: str, count: int, **options: object) -> list[bytes]:
    async with websockets.connect(url, proxy=None, ping_interval=None, **options) as ws:  # type: ignore[arg-type]
        frames = [await asyncio.wait_for(ws.recv(decode=False), 5) for _ in range(count)]
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        return frames


def test_fast_max_messages_are_exactly_the_market_model() -> None:
    args = ["--seed", "11", "--symbols", "30", "--fast", "--max-messages", "3000"]
    with SimulatorProcess(args) as proc:
        assert proc.url == f"ws://127.0.0.1:{proc.port}"
        assert proc.ready["pid"] == proc.pid and proc.ready["tls"] is False
        assert f"listening on {proc.url}\n" in proc.output("stdout")
        frames = run(collect(proc.url + "/ws/" + "/".join(STREAMS), 3000))
    feed = Feed(11, Universe.generate(11, 30))
    feed.subscribe(STREAMS)
    assert frames == [payload for _, payload in feed.next_frames(3000)]


def test_combined_stream_and_periodic_faults() -> None:
    args = ["--seed", "2", "--symbols", "20", "--rate", "2000", "--max-messages", "250",
            "--fault", "malformed:every=100"]  # fmt: skip
    with SimulatorProcess(args) as proc:
        frames = run(collect(proc.url + "/stream?streams=btcusdt%40trade", 252))
    assert [i for i, frame in enumerate(frames) if frame == MALFORMED] == [100, 201]
    events = [orjson.loads(frame) for frame in frames if frame != MALFORMED]
    assert {event["stream"] for event in events} == {"btcusdt@trade"}
    ids = [event["data"]["t"] for event in events]
    assert ids == list(range(ids[0], ids[0] + 250))


def test_replay_a_recording_at_full_speed(tmp_path: Path) -> None:
    feed = Feed(5, Universe.generate(5, 20))
    feed.subscribe(STREAMS)
    frames = feed.next_frames(500)
    path = tmp_path / "market.rec"
    with RecordingWriter(path) as writer:
        for i, (stream, payload) in enumerate(frames):
            writer.write(1_700_000_000_000_000_000 + i * 1000, stream, payload)
    expected = [payload for stream, payload in frames if stream in STREAMS[:2]]
    with SimulatorProcess(["--replay", str(path), "--replay-speed", "0"]) as proc:
        got = run(collect(proc.url + "/ws/" + "/".join(STREAMS[:2]), len(expected)))
    assert got == expected and len(expected) > 100


def test_a_bad_recording_exits_with_1(tmp_path: Path) -> None:
    path = tmp_path / "empty.rec"
    path.write_bytes(b"")
    command = [
        sys.executable,
        "-m",
        "feedhandler",
        "simulate",
        "--port",
        "0",
        "--replay",
        str(path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "too short for a recording header" in done.stderr


def test_tls_self_signed_and_any_interface() -> None:
    args = ["--host", "0.0.0.0", "--tls-self-signed", "--symbols", "10", "--max-messages", "1"]
    with SimulatorProcess(args) as proc:
        assert proc.url == f"wss://0.0.0.0:{proc.port}"
        cert = Path(proc.ready["cert"])
        assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        context = ssl.create_default_context(cafile=cert)
        url = f"wss://127.0.0.1:{proc.port}/ws/btcusdt@bookTicker"
        (frame,) = run(collect(url, 1, ssl=context, open_timeout=5))  # type: ignore[misc]
        assert orjson.loads(frame)["s"] == "BTCUSDT"


def test_sigterm_sends_server_shutdown_then_closes() -> None:
    async def scenario(proc: SimulatorProcess) -> tuple[dict[str, object], int]:
        async with websockets.connect(proc.url + "/ws/btcusdt@trade", proxy=None) as ws:
            await ws.recv()
            os.kill(proc.pid, signal.SIGTERM)
            while (event := orjson.loads(await ws.recv()))["e"] != "serverShutdown":
                pass
            with pytest.raises(websockets.ConnectionClosedOK) as closed:
                while True:
                    await ws.recv()
            assert closed.value.rcvd is not None
            return event, closed.value.rcvd.code

    with SimulatorProcess(["--symbols", "10", "--rate", "50", "--shutdown-grace", "0.1"]) as proc:
        event, code = run(scenario(proc))  # type: ignore[misc]
        assert code == 1001 and set(event) == {"e", "E"}
        proc_file = Path(f"/proc/{proc.pid}")
    assert not proc_file.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "explode:every=1"], "unknown fault 'explode'"),
        (["--fault", "malformed"], "exactly one of every=N or after=N"),
        (["--tls"], "--tls needs --cert and --key"),
        (["--rate", "0"], "rate must be > 0"),
        (["--tick-us", "1500"], "tick_us must be 1..1000, got 1500"),
        (["--fast", "--wall-clock"], "does not combine with fast"),
        (["--ping-interval", "-1"], "ping_interval must be > 0"),
        (["--ping-interval", "nan"], "ping_interval must be > 0, got nan"),
        (["--rate", "inf"], "rate must be > 0, got inf"),
        (["--port", "70000"], "port must be 0..65535, got 70000"),
        (["--tls-self-signed", "--cert", "/nonexistent/d/c.pem"], "No such file or directory"),
        (["--api-key", "nokey"], "expected API_KEY=PUBLIC_KEY_PEM, not 'nokey'"),
    ],
)
def test_bad_arguments_exit_with_2(args: list[str], message: str) -> None:
    command = [sys.executable, "-m", "feedhandler", "simulate", "--port", "0", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr


def test_port_in_use_exits_with_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "feedhandler", "simulate", "--port", str(port)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert "address already in use" in done.stderr.lower()


def test_ready_file_is_removed_at_exit(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    command = [sys.executable, "-m", "feedhandler", "simulate", "--port", "0", "--symbols",
               "5", "--ready-file", str(ready)]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        info = json.loads(ready.read_text())
        assert line == f"listening on {info['url']}\n" and info["port"] > 0
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    assert not ready.exists()


def test_help_documents_the_wall_clock_mode() -> None:
    command = [sys.executable, "-m", "feedhandler", "simulate", "--help"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--wall-clock" in text and "CLOCK_REALTIME" in text and "timeUnit=MICROSECOND" in text


def test_no_temporary_directory_unless_a_self_signed_pair_needs_one(tmp_path: Path) -> None:
    # (a read-only root, as in the Kubernetes demo, has no usable /tmp)
    def no_scratch() -> Path:
        raise AssertionError("asked for a temporary directory")

    parser = build_parser("simulate")
    plain = parser.parse_args(["simulate", "--port", "0"])
    assert _config(plain, no_scratch).tls_cert is None
    given = parser.parse_args(["simulate", "--tls-self-signed", "--cert",
                               str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem")])
    assert _config(given, no_scratch).tls_cert == tmp_path / "c.pem"
    anywhere = parser.parse_args(["simulate", "--tls-self-signed"])
    assert _config(anywhere, lambda: tmp_path).tls_key == tmp_path / "key.pem"


def test_an_api_key_given_on_the_command_line_logs_on(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    public = tmp_path / "public.pem"
    public.write_bytes(key.public_key().public_bytes(Encoding.PEM,
                                                     PublicFormat.SubjectPublicKeyInfo))

    async def logon(url: str) -> dict[str, object]:
        async with WsApiClient(url + "/ws-api/v3", WeightBudget(6000, 60.0),
                               credentials=Credentials("cliKey", key)) as api:
            return await api.logon()

    with SimulatorProcess(["--symbols", "5", "--api-key", f"cliKey={public}"]) as proc:
        assert asyncio.run(logon(proc.url))["apiKey"] == "cliKey"


def test_the_readme_table_has_every_flag() -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    table = readme.read_text().split("### Every flag", 1)[1].split("\n### ", 1)[0]
    (simulate,) = (action for action in build_parser()._subparsers._group_actions  # type: ignore[union-attr]
                   if action.dest == "command")
    flags = {option for action in simulate.choices["simulate"]._actions  # type: ignore[attr-defined]
             for option in action.option_strings if option.startswith("--")}
    common = {"--help", "--log-level", "--log-format"}  # every command's, documented once
    assert {flag for flag in flags - common if f"`{flag}" not in table} == set()
