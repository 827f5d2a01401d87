"""The `feedhandler` command line: help on every flag, examples, --version, common options."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize(("command", "flag", "value", "wanted"), [
    ("run", "--stats-interval", "-1", "of 0 or more"),
    ("run", "--stats-interval", "nan", "of 0 or more"),
    ("replay", "--speed", "0", "above 0"),
    ("replay", "--speed", "nan", "above 0"),
    ("record", "--rotate-s", "inf", "above 0"),
    ("record", "--rotate-mb", "soon", "above 0"),
    ("bench", "--duration", "-1", "above 0"),
    ("bench", "--symbols", "0", "above 0"),
])
def test_a_number_out_of_range_is_a_usage_error(command: str, flag: str, value: str, wanted: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    words = {"bench": ["bench", "latency"], "replay": ["replay", "x.fhrec"]}.get(command, [command])
    with pytest.raises(SystemExit) as stopped:
        build_parser(command).parse_args([*words, flag, value])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert f"{flag}: expected a number {wanted}, not '{value}'" in err
    assert err.count("\n") == 1 and err.endswith(" --help)\n")  # one line, not the usage
    assert build_parser("run").parse_args(["run", "--stats-interval", "0"]).stats_interval == 0


@pytest.mark.parametrize("rates", ["-1000", ",", "0.5", "fast"])
def test_bench_rates_are_events_per_second_or_max(rates: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser("bench").parse_args(["bench", "latency", "--rates", rates])
    assert "events/s of 1 or more, or 'max'" in capsys.readouterr().err
    assert build_parser("bench").parse_args(
        ["bench", "latency", "--rates", "1000,max"]).rates == [1000, 0]


def test_a_bench_setting_is_checked_before_anything_starts(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "latency", "--set", "batch.linger_ms=abc", "--no-plots"]) == 2
    assert capsys.readouterr().err == ('feedhandler bench: batch.linger_ms: expected a number, '
                                       'got "abc" (flag --set batch.linger_ms)\n')


@pytest.mark.parametrize(("args", "error"), [
    (["--profiles", ",", "--no-null", "--no-floor"], "nothing to run"),
    (["--url", "http://x", "--rates", "1000"], "--url 'http://x': expected ws://HOST:PORT"),
    (["--url", "ws://x:9443/stream?streams=btcusdt@trade", "--rates", "1000"],
     "(the benchmark names the streams)"),
    (["--url", "ws://127.0.0.1:1", "--rates", "1000"],  # at once, not after the round trips
     "cannot reach ws://127.0.0.1:1: Connection refused"),
])
def test_a_bench_that_cannot_run_says_why_in_one_line(
        args: list[str], error: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "latency", *args, "--no-plots", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and error in err, err
    assert not (tmp_path / "results.json").exists()


def test_bench_kinds_are_stream_kinds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "latency", "--kinds", "trade,foo", "--no-plots"]) == 2
    assert "--kinds: unknown stream 'btcusdt@foo'" in capsys.readouterr().err


def test_output_piped_into_a_reader_that_left_is_no_traceback() -> None:
    # `feedhandler config show | head -1`: the reader goes before the output is written
    example = Path(__file__).parents[1] / "examples" / "simulator.yaml"
    proc = subprocess.Popen([sys.executable, "-m", "feedhandler", "config", "show", example],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and b"Traceback" not in err, err
