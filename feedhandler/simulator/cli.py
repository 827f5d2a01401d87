"""`feedhandler simulate`: run the Binance-compatible stream server until SIGTERM/SIGINT.

Each `SimulatorConfig` field is a flag of the same name (`ping_interval` -> `--ping-interval`)
with the same default. On start it prints `listening on ws://HOST:PORT` and, with
`--ready-file`, writes `{"url","host","port","pid","tls","cert"}` there (removed at exit).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from feedhandler.simulator.server import FaultSpec, Simulator, SimulatorConfig
from feedhandler.simulator.server.tls import write_self_signed

_DEFAULTS = SimulatorConfig()

# group -> (field, type, metavar, help); each default is the SimulatorConfig field's
_FLAGS: dict[str, list[tuple[str, type, str, str]]] = {
    "listening": [
        ("host", str, "ADDR", "address to listen on; 0.0.0.0 or :: for every interface"),
        ("port", int, "PORT", "TCP port; 0 picks a free one (see --ready-file)"),
    ],
    "events": [
        ("seed", int, "N", "market seed: same seed, same events"),
        ("symbols", int, "N", "symbols in the simulated universe (default: the market's)"),
        ("rate", float, "N", "paced mode: the market's events/s, spread evenly (shared by "
         "every connection: each gets the events of the streams it subscribed)"),
        ("tick_us", int, "US", "paced mode: release the events due every US µs (below 1000: "
         "a timerfd, finer than the loop's timers; smaller bursts, more CPU)"),
        ("batch", int, "N", "events encoded into one write"),
        (
            "pregenerate",
            int,
            "N",
            "generate N events before sending the first (paced: the "
            "market's, at its first subscription; --fast: each connection's)",
        ),
        ("max_messages", int, "N", "events per connection; then only pings/control replies"),
        ("write_buffer", int, "BYTES", "per-connection send buffer high-water mark"),
        ("replay", Path, "FILE", "replay this recording instead of the synthetic market"),
        ("replay_speed", float, "X", "replay pace: 1 = as recorded, 2 = twice as fast, 0 = max"),
    ],
    "protocol timings and limits": [
        ("ping_interval", float, "S", "seconds between server pings"),
        ("pong_timeout", float, "S", "close when a ping is unanswered this long"),
        ("max_incoming", int, "N", "client messages (ping/pong/control) allowed per window"),
        ("incoming_window", float, "S", "window of --max-incoming"),
        ("max_streams", int, "N", "streams per connection"),
        ("lifetime", float, "S", "close each connection after this long"),
        ("max_attempts", int, "N", "connection attempts per client IP per window (then 429)"),
        ("attempt_window", float, "S", "window of --max-attempts"),
        ("ban_after", int, "N", "refused attempts per window before a 418 ban (0: never)"),
        ("ban_duration", float, "S", "length of a 418 ban"),
        ("handshake_timeout", float, "S", "drop clients that do not finish the HTTP upgrade"),
        ("close_timeout", float, "S", "wait this long for the client's close frame"),
        ("shutdown_grace", float, "S", "at shutdown: serverShutdown event, wait, then close"),
        ("max_frame_size", int, "BYTES", "largest client frame accepted"),
    ],
    "WebSocket API (/ws-api/v3)": [
        ("api_weight_limit", int, "N", "REQUEST_WEIGHT per client IP per window (then 429)"),
        ("api_weight_interval", int, "S", "window of --api-weight-limit, aligned to the clock"),
        ("api_ban_after", int, "N", "429s in one window before a 418 ban (0: never)"),
        ("api_clock_offset_ms", int, "MS", "the WS API clock's lead over the host's"),
    ],
}


def _api_key(text: str) -> tuple[str, Path]:
    key, sep, path = text.partition("=")
    if not (sep and key and path):
        raise argparse.ArgumentTypeError(f"expected API_KEY=PUBLIC_KEY_PEM, not {text!r}")
    return key, Path(path)


def _fault(text: str) -> FaultSpec:
    try:
        return FaultSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    groups: dict[str, argparse._ArgumentGroup] = {}
    for title, flags in _FLAGS.items():
        group = groups[title] = parser.add_argument_group(title)
        for name, kind, metavar, text in flags:
            default = getattr(_DEFAULTS, name)
            shown = "" if default is None else " (default: %(default)s)"
            group.add_argument(
                "--" + name.replace("_", "-"), type=kind, default=default, metavar=metavar,
                help=text + shown,
            )  # fmt: skip
    groups["listening"].add_argument(
        "--ready-file", type=Path, metavar="FILE", help="write url/port/pid/cert here when ready"
    )
    groups["events"].add_argument(
        "--fast", action="store_true", help="send as fast as the client reads (no --rate)"
    )
    groups["events"].add_argument(
        "--wall-clock", action="store_true",
        help="paced latency runs: stamp each event's E with its send time on the wall clock "
        "(CLOCK_REALTIME; µs with timeUnit=MICROSECOND, else ms), so ts_recv - E is the "
        "wire + parse latency (not with --fast)",
    )  # fmt: skip
    groups["WebSocket API (/ws-api/v3)"].add_argument(
        "--api-key", action="append", default=[], metavar="KEY=PEM", type=_api_key,
        dest="api_keys", help="an API key session.logon accepts, with its Ed25519 public key "
        "(a PEM file; repeatable)",
    )  # fmt: skip
    parser.add_argument_group("faults").add_argument(
        "--fault", action="append", default=[], metavar="SPEC", type=_fault,
        help="scheduled fault, e.g. malformed:every=1000 or stall:after=500,seconds=2 "
        "(repeatable; see the README)",
    )  # fmt: skip
    tls = parser.add_argument_group("TLS (wss://)")
    tls.add_argument("--tls", action="store_true", help="serve wss:// with --cert/--key")
    tls.add_argument("--cert", type=Path, metavar="PEM", help="certificate chain")
    tls.add_argument("--key", type=Path, metavar="PEM", help="private key")
    tls.add_argument(
        "--tls-self-signed", action="store_true",
        help="generate a self-signed pair (into --cert/--key if given, else a temp dir)",
    )  # fmt: skip


def _config(args: argparse.Namespace, scratch: Callable[[], Path]) -> SimulatorConfig:
    """The simulator's configuration; `scratch()`: a temporary directory, asked for only when
    a self-signed pair has nowhere else to go (a read-only root needs none otherwise)."""
    values: dict[str, Any] = {
        name: getattr(args, name) for flags in _FLAGS.values() for name, *_ in flags
    }
    cert, key = args.cert, args.key
    if args.tls_self_signed:
        if not (cert and key):
            folder = scratch()
            cert, key = cert or folder / "cert.pem", key or folder / "key.pem"
        write_self_signed(cert, key, args.host)
    elif args.tls and not (cert and key):
        raise ValueError("--tls needs --cert and --key (or use --tls-self-signed)")
    if args.tls or args.tls_self_signed:
        values.update(tls_cert=cert, tls_key=key)
    return SimulatorConfig(
        fast=args.fast, wall_clock=args.wall_clock, faults=tuple(args.fault),
        api_keys=tuple(args.api_keys), **values
    )


def _write_ready(path: Path, sim: Simulator) -> None:
    ready = {
        "url": sim.url,
        "host": sim.config.host,
        "port": sim.port,
        "pid": os.getpid(),
        "tls": sim.config.tls,
        "cert": str(sim.config.tls_cert) if sim.config.tls_cert else None,
    }
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(ready))
    partial.replace(path)  # atomic: a poller never reads half a file


async def _serve(config: SimulatorConfig, ready_file: Path | None) -> None:
    sim = Simulator(config)
    await sim.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready_file is not None:
        _write_ready(ready_file, sim)
    print(f"listening on {sim.url}", flush=True)  # after the ready file: both mean "ready"
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):  # a repeated signal must not cut the
            loop.remove_signal_handler(sig)  # graceful shutdown short (it is bounded anyway)
            signal.signal(sig, signal.SIG_IGN)
        await sim.stop()
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)


def run(args: argparse.Namespace) -> int:
    with contextlib.ExitStack() as stack:
        def scratch() -> Path:
            return Path(stack.enter_context(
                tempfile.TemporaryDirectory(prefix="feedhandler-sim-")))

        try:
            config = _config(args, scratch)
        except (OSError, ValueError) as exc:  # a bad value, or --cert/--key not writable
            print(f"feedhandler simulate: {exc}", file=sys.stderr)
            return 2
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(_serve(config, args.ready_file))
        except (OSError, ValueError) as exc:  # port in use, bad certificate or recording, ...
            print(f"feedhandler simulate: {exc}", file=sys.stderr)
            return 1
    return 0
