"""`feedhandler` command line: one subcommand per module, each exposing
`add_arguments(parser)`, `run(args) -> int` and optionally `EXAMPLES` (shown in its --help).

Exit codes: 0 done, 1 failed while running, 2 bad usage or configuration (one line on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from feedhandler import __version__
from feedhandler.logs import LOG_FORMATS, setup_logging

# subcommand -> module implementing it (imported lazily: `consume` must not pay for the simulator)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("feedhandler.app.run", "run the feed handler: exchange -> parser -> sink"),
    "simulate": ("feedhandler.simulator.cli", "run the Binance-compatible exchange simulator"),
    "consume": ("feedhandler.consume.cli", "read and decode records from Kafka"),
    "config": ("feedhandler.config_cli", "check, show or describe a handler configuration"),
    "bench": ("feedhandler.bench.cli", "measure latency: exchange -> handler -> Kafka consumer"),
    "record": ("feedhandler.recording.record", "run, and record every frame to rotating files"),
    "replay": ("feedhandler.recording.replay", "replay recordings or captures into a sink"),
}

EXAMPLES = """\
examples:
  feedhandler run --config examples/binance.yaml
  feedhandler run --url ws://127.0.0.1:9001 --streams btcusdt@trade --sink null --duration 10
  feedhandler config check examples/binance.yaml
  feedhandler consume --from-beginning --format summary
  feedhandler <command> --help
"""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults on every flag (but "None", which says nothing); examples (epilogs) kept as
    written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """A usage error is one line too (`feedhandler run: error: ... (see --help)`), not the usage
    block: the exit codes' contract above. Subcommands' parsers are of this class as well."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def common_options(after_command: bool = True) -> Parser:
    """--log-level/--log-format: a parent parser for the top level and for every (sub)command,
    so they are accepted after the subcommand too (there, SUPPRESS keeps an absent flag from
    resetting one given before)."""
    p = Parser(add_help=False)
    shown = " (default: %s)" if after_command else ""
    p.add_argument("--log-level", default=argparse.SUPPRESS if after_command else "INFO",
                   type=str.upper, choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                   help="log threshold" + (shown % "INFO" if shown else ""))
    p.add_argument("--log-format", default=argparse.SUPPRESS if after_command else "auto",
                   choices=LOG_FORMATS,
                   help="log lines on stderr: text, json (one object per line), or auto: "
                        "text on a terminal, json otherwise" + (shown % "auto" if shown else ""))
    return p


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `chosen`'s module is imported to add its flags."""
    parser = Parser(
        prog="feedhandler", formatter_class=HelpFormatter,
        parents=[common_options(after_command=False)], epilog=EXAMPLES,
        description="Binance market data -> exact typed records -> Kafka.")
    parser.add_argument("--version", action="version", version=f"feedhandler {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=HelpFormatter, parents=[common_options()])
        if name == chosen:
            impl = importlib.import_module(module)
            p.epilog = getattr(impl, "EXAMPLES", None)
            impl.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The program (`argv` None: sys.argv's), or one command run in-process."""
    program = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if a in COMMANDS), None)
    args = build_parser(chosen).parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return int(importlib.import_module(COMMANDS[args.command][0]).run(args))
    except BrokenPipeError:  # piped into `head`, which has left: no traceback for that
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (for the exit flush)
        return 1
    finally:
        if program:  # done: a late SIGINT/SIGTERM must not turn the exit code into 130/143
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
