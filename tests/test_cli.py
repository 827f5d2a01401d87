"""The `feedhandler` command line: help on every flag, examples, --version, common options."""

from __future__ import annotations

import argparse

import pytest

from feedhandler import __version__
from feedhandler.cli import build_parser, main

OWN_COMMANDS = ["run", "consume", "config"]  # `simulate` documents its own flags


def parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += parsers(sub)
    return found


@pytest.mark.parametrize("command", OWN_COMMANDS)
def test_every_flag_has_help_and_the_command_has_examples(command: str) -> None:
    top = build_parser(command)
    (sub,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    chosen = sub.choices[command]
    assert chosen.epilog and chosen.epilog.startswith("examples:\n  feedhandler ")
    for parser in parsers(chosen):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, (parser.prog, action.dest)
        text = parser.format_help()
        assert "--log-level" in text and "(default: INFO)" in text


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"feedhandler {__version__}\n"


def test_log_options_before_or_after_the_subcommand() -> None:
    parse = build_parser("config").parse_args
    assert parse(["config", "schema"]).log_level == "INFO"
    assert parse(["--log-level", "warning", "config", "schema"]).log_level == "WARNING"
    args = parse(["config", "check", "x.yaml", "--log-level", "debug", "--log-format", "json"])
    assert (args.log_level, args.log_format) == ("DEBUG", "json")
    args = parse(["--log-format", "text", "config", "show", "--log-level", "error"])
    assert (args.log_level, args.log_format) == ("ERROR", "text")


def test_run_help_shows_the_config_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--batch-rows N records per batch before it is handed over [batch.rows; default: " \
        "4096]" in text
    assert "FEEDHANDLER_KAFKA__BOOTSTRAP" in text  # the epilog


@pytest.mark.parametrize("value", ["-1", "nan", "inf", "soon"])
def test_a_stats_interval_is_seconds_0_or_more(value: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser("run").parse_args(["run", "--stats-interval", value])
    assert stopped.value.code == 2
    assert f"--stats-interval: expected seconds, 0 or more, not '{value}'" in \
        capsys.readouterr().err
    assert build_parser("run").parse_args(["run", "--stats-interval", "0"]).stats_interval == 0
