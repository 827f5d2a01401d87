"""`feedhandler run`: connect to the exchange (or the simulator) and publish records."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

import orjson
import uvloop

from feedhandler.app.handler import Handler, HandlerStats
from feedhandler.app.status_view import StatusView, report
from feedhandler.argtypes import number
from feedhandler.config import ConfigError, HandlerConfig, load_config
from feedhandler.contract import ENCODINGS
from feedhandler.signals import SavedHandlers

log = logging.getLogger(__name__)

EXAMPLES = """\
examples:
  feedhandler run --config examples/binance.yaml
  feedhandler run --url wss://stream.binance.com:9443 \\
      --streams btcusdt@trade,btcusdt@depth@100ms --kafka-bootstrap kafka:9092
  feedhandler run --config examples/simulator.yaml --sink null --duration 30 --summary-json
  FEEDHANDLER_KAFKA__PRODUCER__SASL_PASSWORD=... feedhandler run --config prod.yaml

Every config key can also be set as FEEDHANDLER_<KEY> (nested keys: double underscore,
e.g. FEEDHANDLER_KAFKA__BOOTSTRAP); precedence: file < environment < flags.
On a terminal a live status table is shown; otherwise a stats line is logged every
--stats-interval seconds. Exit: 0 stopped, 1 failed, 2 bad configuration.
"""

# flag -> (config key, metavar, help); the default shown is the config's
CONFIG_FLAGS: dict[str, tuple[str, str, str]] = {
    "--url": ("url", "URL", "exchange base URL (ws:// or wss://)"),
    "--streams": ("streams", "A,B", "comma-separated stream names, e.g. btcusdt@trade"),
    "--sink": ("sink", "{kafka,null}", "where records go"),
    "--kafka-bootstrap": ("kafka.bootstrap", "HOST:PORT", "Kafka bootstrap servers"),
    "--encoding": ("kafka.encoding", "{" + ",".join(ENCODINGS) + "}", "Kafka message values"),
    "--topic-template": ("kafka.topic_template", "TEMPLATE", "data topic names"),
    "--batch-rows": ("batch.rows", "N", "records per batch before it is handed over"),
    "--linger-ms": ("batch.linger_ms", "MS", "max age of a batch's first record"),
    "--time-unit": ("connection.time_unit", "{ms,us}", "exchange timestamp unit"),
    "--streams-per-connection": ("connection.streams_per_connection", "N",
                                 "streams per connection (shard size, <= 1024)"),
    "--instance": ("instance", "NAME", "instance name in headers and events (empty: host)"),
    "--max-messages": ("max_messages", "N", "stop after N exchange messages (0: never)"),
    "--duration": ("duration_s", "S", "stop after S seconds (0: never)"),
    "--health-port": ("health_port", "PORT", "serve /livez /readyz /metrics (0: off)"),
    "--health-host": ("health_host", "ADDR", "address of the health endpoints"),
}


def _default(key: str) -> str:
    value: Any = HandlerConfig()
    for part in key.split("."):
        value = getattr(value, part)
    return ",".join(value) if isinstance(value, list) else str(value)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE",
                   help="YAML config file (see examples/); environment and flags override it")
    config = p.add_argument_group("config keys (values are validated with the config file's "
                                  "rules; defaults are the config's)")
    for flag, (key, metavar, help_text) in CONFIG_FLAGS.items():
        # None: an absent flag leaves the key to the file, the environment or the default
        config.add_argument(flag, dest=key, metavar=metavar,
                            help=f"{help_text} [{key}; default: {_default(key)}]")
    p.add_argument("--summary-json", action="store_true",
                   help="print the final counters as one JSON line on stdout")
    p.add_argument("--live", choices=["auto", "on", "off"], default="auto",
                   help="live status table on stderr; auto: when stderr is a terminal")
    p.add_argument("--stats-interval", type=number(float, zero=True), default=10.0, metavar="S",
                   help="without the live table: log a stats line every S seconds (0: never)")


async def _run(handler: Handler, live: bool, interval_s: float) -> HandlerStats:
    running = asyncio.create_task(handler.run())
    await report(StatusView(handler), running, interval_s, live)
    return await running


OVERRIDE_KEYS = tuple(key for key, _, _ in CONFIG_FLAGS.values())
FLAG_NAMES = {key: flag for flag, (key, _, _) in CONFIG_FLAGS.items()}


def load_from_args(args: argparse.Namespace, fill_source: str = "", **fill: Any) -> HandlerConfig:
    """The config of `run`'s flags (file < environment < flags); `fill`: dotted keys for flags
    not given, from `fill_source` (e.g. `replay`'s recording). Raises ConfigError naming the
    flag, or the source, at fault."""
    overrides = {key: getattr(args, key) for key in OVERRIDE_KEYS}
    names = dict(FLAG_NAMES)
    for key, value in fill.items():
        if overrides.get(key) is None:
            overrides[key] = value
            if fill_source:
                names[key] = fill_source
    return load_config(args.config, overrides, flag_names=names)


def run(args: argparse.Namespace) -> int:
    def make_handler() -> Handler:
        # creates or checks the Kafka topics; SIGHUP reads the flags' configuration again
        return Handler(load_from_args(args), reload=lambda: load_from_args(args))

    return run_handler("run", args, make_handler)


def settle_heap() -> None:
    """What start-up built (modules, the plan, the sink) lives as long as the process: moved out
    of the garbage collector's reach, so that a full collection, which would walk all of it
    on the event loop (~8 ms with a 400-stream handler; bench/BENCHMARKS.md), walks only what
    came since. Called again (a benchmark's next handler in one process), it first gives back
    what it froze before, so that what has become garbage since is collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def run_handler(command: str, args: argparse.Namespace, make_handler: Callable[[], Handler],
                report: Callable[[], tuple[dict[str, Any], int]] | None = None) -> int:
    """`run`, `record` and `replay`: build the handler (a configuration error: one line, exit
    2), run it with the live table or stats lines, print the summary; exit 1 if a task
    failed, 3 if it stopped with messages its sink could not deliver in time. `report()`:
    the command's own part of the summary, and its exit code when nothing above applies."""
    try:
        handler = make_handler()
    except (ConfigError, OSError) as exc:
        print(f"feedhandler {command}: configuration error: {exc}", file=sys.stderr)
        return 2
    settle_heap()
    live = args.live == "on" or (args.live == "auto" and sys.stderr.isatty())
    # Around the loop's own handlers (before it starts them, after it gives them back) SIGINT
    # and SIGTERM stop the handler too, never the default: the caller's come back at the end.
    previous = SavedHandlers()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda sig, _: handler.on_signal(sig))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        stats = uvloop.run(_run(handler, live, args.stats_interval))
    except ConfigError as exc:  # the health port is taken: raised before anything was read
        print(f"feedhandler {command}: configuration error: {exc}", file=sys.stderr)
        return 2
    finally:
        previous.restore()
    summary = stats.summary()
    own, code = report() if report is not None else ({}, 0)
    summary.update(own)
    if args.summary_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        log.info("summary: %s", summary, extra={"stats": summary})
    if handler.error is not None:
        return 1
    # (a clean 0 would hide the loss from whatever runs the process: a supervisor, a job, CI)
    return 3 if stats.sink.get("undelivered") else code
