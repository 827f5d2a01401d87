"""`feedhandler` command line: one subcommand per module, each exposing
`add_arguments(parser)` and `run(args) -> int`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# subcommand -> module implementing it (imported lazily: `consume` must not pay for the simulator)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("feedhandler.app.run", "run the feed handler: exchange -> parser -> sink"),
    "simulate": ("feedhandler.simulator.cli", "run the Binance-compatible exchange simulator"),
    "consume": ("feedhandler.consume.cli", "read and decode records from Kafka"),
    "record": ("feedhandler.recording.record", "run, and record every frame to rotating files"),
    "replay": ("feedhandler.recording.replay", "replay recordings or captures into a sink"),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="feedhandler")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True)
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if a in COMMANDS), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(p)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return int(importlib.import_module(COMMANDS[args.command][0]).run(args))
