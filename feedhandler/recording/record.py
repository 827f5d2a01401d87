"""`feedhandler record`: run's connections and configuration, every frame written with its
receive time to compressed rotating recording files (`feedhandler.recording.sink`); the
records still go to the configured sink (`--sink null` to only record)."""

from __future__ import annotations

import argparse
from pathlib import Path

from feedhandler import __version__
from feedhandler.app.handler import Handler
from feedhandler.app.run import add_arguments as add_run_arguments
from feedhandler.app.run import load_from_args, run_handler
from feedhandler.argtypes import number
from feedhandler.recording.sink import RecordingSink
from feedhandler.records import SCHEMAS
from feedhandler.sinks.base import Sink


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("recordings"),
                   help="directory for the recording files")
    p.add_argument("--rotate-s", type=number(float), default=3600.0,
                   help="start a new file after this many seconds")
    p.add_argument("--rotate-mb", type=number(float), default=1024.0,
                   help="start a new file after this many MiB before compression")
    p.add_argument("--prefix", default="feedhandler",
                   help="file name prefix: PREFIX-<UTC time>.fhrec.gz")
    add_run_arguments(p)


def run(args: argparse.Namespace) -> int:
    def make_handler() -> Handler:
        config = load_from_args(args)
        # (with universe.kinds the plan starts empty: the streams come as they are added)
        streams = [] if config.universe.kinds else sorted(set(config.named_streams()))
        meta = {"url": config.url, "streams": streams,
                "time_unit": config.connection.time_unit,
                "shard_index": config.shard_index, "shard_count": config.shard_count,
                "recorder": f"feedhandler {__version__}"}
        linger_ms = max(config.batch.linger_for(k) for k in SCHEMAS)

        def recorder(inner: Sink) -> Sink:
            sinks.append(RecordingSink(args.out, inner, meta, max_linger_ms=linger_ms,
                                       rotate_s=args.rotate_s, rotate_mb=args.rotate_mb,
                                       prefix=args.prefix))
            return sinks[-1]

        return Handler(config, wrap_sink=recorder)

    sinks: list[RecordingSink] = []
    # a disk error while closing (the last write) fails the recording as one while running does
    return run_handler("record", args, make_handler,
                       report=lambda: ({}, 1 if any(sink.failed for sink in sinks) else 0))
