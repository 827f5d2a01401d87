"""`feedhandler config`: check a handler configuration, show the effective one, or print its
JSON Schema. Checks apply the FEEDHANDLER_* environment, as `run` does."""

from __future__ import annotations

import argparse
import json
import sys

from feedhandler.config import HandlerConfig, load_config_with_origins
from feedhandler.config_layers import ConfigError, describe, json_schema

EXAMPLES = """\
examples:
  feedhandler config check examples/binance.yaml   # exit 0 if valid, else 2 and one line
  FEEDHANDLER_KAFKA__BOOTSTRAP=kafka:9092 feedhandler config show examples/binance.yaml
  feedhandler config schema > feedhandler.schema.json   # for editors (yaml-language-server)
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from feedhandler.cli import HelpFormatter, common_options

    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=description,
                              formatter_class=HelpFormatter, parents=[common_options()])

    check = action("check", "validate FILE (and the environment); exit 2 if bad",
                   "validate FILE and the FEEDHANDLER_* environment")
    check.add_argument("file", metavar="FILE", help="YAML config file")
    show = action("show", "the effective config, secrets redacted, with sources",
                  "every key's effective value (secrets redacted) and where it came from: "
                  "FILE:line, env VAR, or default")
    show.add_argument("file", metavar="FILE", nargs="?", help="YAML config file (optional)")
    show.add_argument("--json", action="store_true",
                      help="one JSON object: key -> {value, source}")
    action("schema", "the JSON Schema of config files", "the JSON Schema of config files")


def run(args: argparse.Namespace) -> int:
    if args.action == "schema":
        sys.stdout.write(json.dumps(json_schema(HandlerConfig), indent=2) + "\n")
        return 0
    try:
        config, origins = load_config_with_origins(args.file)
        if args.action == "check" and config.sink == "kafka":
            from feedhandler.sinks.kafka import check_producer  # (librdkafka: only here)

            check_producer(config.kafka, config.instance)
    except ConfigError as exc:
        print(f"feedhandler config: {exc}", file=sys.stderr)
        return 2
    if args.action == "check":
        plan = (f"universe {','.join(config.universe.kinds)}" if config.universe.kinds
                else f"{len(config.named_streams())} streams")
        print(f"{args.file}: OK ({plan}, sink {config.sink})")
        return 0
    rows = describe(config, origins)
    if args.json:
        sys.stdout.write(json.dumps({key: {"value": json.loads(value), "source": source}
                                     for key, value, source in rows}) + "\n")
        return 0
    width = max(len(key) for key, _, _ in rows)
    for key, value, source in rows:
        print(f"{key:<{width}}  {value}  # {source}")
    for var in origins.ignored_env:
        print(f"# ignored: {var} (names no configuration key)")
    return 0
