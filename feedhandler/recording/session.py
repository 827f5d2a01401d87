"""What `record` and `replay` share with `run`: the configuration from run's flags, and a
Handler run to its summary, printed as `run` prints it."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

import orjson
import uvloop

from feedhandler.app.handler import Handler
from feedhandler.config import ConfigError, HandlerConfig, load_config

log = logging.getLogger(__name__)


def load(args: argparse.Namespace, **overrides: Any) -> HandlerConfig:
    """run's configuration (file < environment < flags); `overrides` fill flags not given.
    run's flags store under their config key ("kafka.bootstrap"): those are the flags."""
    defaults = HandlerConfig()
    flags = {k: v for k, v in vars(args).items()
             if v is not None and hasattr(defaults, k.split(".")[0])}
    for key, value in overrides.items():
        if flags.get(key) is None:
            flags[key] = value
    return load_config(getattr(args, "config", None), flags)


def run_to_summary(command: str, args: argparse.Namespace,
                   make_handler: Callable[[], Handler]) -> int:
    """Build the handler (a configuration error: one line, exit 2), run it, print the summary
    (`--summary-json`: one JSON line on stdout); exit 1 if a task failed."""
    try:
        handler = make_handler()
        stats = uvloop.run(handler.run())
    except (ConfigError, OSError, ValueError) as exc:
        print(f"feedhandler {command}: {exc}", file=sys.stderr)
        return 2
    summary = stats.summary()
    if args.summary_json:
        sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    else:
        log.info("summary: %s", summary)
    return 1 if handler.error is not None else 0
