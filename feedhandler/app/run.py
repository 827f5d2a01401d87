"""`feedhandler run`: connect to the exchange (or the simulator) and publish records."""

from __future__ import annotations

import argparse
import logging
import sys

import orjson
import uvloop

from feedhandler._ext.decoder import SIMD_KERNEL
from feedhandler.app.handler import Handler
from feedhandler.config import ConfigError, load_config
from feedhandler.contract import ENCODINGS

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (flags and FEEDHANDLER_* env override it)")
    p.add_argument("--url", help="exchange base URL, e.g. wss://stream.binance.com:9443")
    p.add_argument("--streams", help="comma-separated stream names: btcusdt@trade,ethusdt@depth")
    p.add_argument("--sink", choices=["kafka", "null"])
    p.add_argument("--kafka-bootstrap", dest="kafka.bootstrap")
    p.add_argument("--encoding", dest="kafka.encoding", choices=ENCODINGS)
    p.add_argument("--topic-template", dest="kafka.topic_template")
    p.add_argument("--batch-rows", dest="batch.rows", type=int)
    p.add_argument("--linger-ms", dest="batch.linger_ms", type=float)
    p.add_argument("--time-unit", dest="connection.time_unit", choices=["ms", "us"])
    p.add_argument("--streams-per-connection", dest="connection.streams_per_connection", type=int)
    p.add_argument("--instance", help="instance name in headers and events (default: host name)")
    p.add_argument("--max-messages", dest="max_messages", type=int,
                   help="stop after this many exchange messages")
    p.add_argument("--duration", dest="duration_s", type=float, help="stop after this many seconds")
    p.add_argument("--health-port", dest="health_port", type=int,
                   help="serve /livez /readyz /metrics on this port (0 = off)")
    p.add_argument("--health-host", dest="health_host", help="address to serve them on")
    p.add_argument("--summary-json", action="store_true", help="print the final summary as JSON")


OVERRIDE_KEYS = ("url", "streams", "sink", "kafka.bootstrap", "kafka.encoding",
                 "kafka.topic_template", "batch.rows", "batch.linger_ms", "connection.time_unit",
                 "connection.streams_per_connection", "instance", "max_messages", "duration_s",
                 "health_port", "health_host")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, {k: getattr(args, k) for k in OVERRIDE_KEYS})
        log.info("decoder SIMD kernel: %s; %d streams; sink=%s", SIMD_KERNEL,
                 len(config.streams), config.sink)
        handler = Handler(config)  # creates or checks the Kafka topics
    except (ConfigError, OSError) as exc:
        print(f"feedhandler run: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        stats = uvloop.run(handler.run())
    except ConfigError as exc:  # the health port is taken: raised before anything was read
        print(f"feedhandler run: configuration error: {exc}", file=sys.stderr)
        return 2
    summary = stats.summary()
    if args.summary_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        log.info("summary: %s", summary)
    return 1 if handler.error is not None else 0
