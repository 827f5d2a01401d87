"""argparse types shared by the commands: a bad value is a usage error (exit 2), never a
traceback or a silent NaN."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from feedhandler.config import check_topic_template


def number(kind: type[int] | type[float] = float, *, zero: bool = False) -> Callable[[str], float]:
    """A finite number above 0 (or 0 itself, with `zero`)."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = -1
        if not (value >= 0 if zero else value > 0) or value == math.inf:
            raise argparse.ArgumentTypeError(
                f"expected a number {'of 0 or more' if zero else 'above 0'}, not {text!r}")
        return value
    return parse


def topic_template(text: str) -> str:
    """A topic template as `kafka.topic_template` takes it: its placeholders only."""
    try:
        return check_topic_template(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def key_value(text: str) -> str:
    """KEY=VALUE (the value may hold commas)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return text


def key_values(text: str) -> str:
    """KEY=VALUE[,KEY=VALUE...]."""
    for item in text.split(","):
        key_value(item)
    return text


def counts(text: str) -> list[int]:
    """Comma-separated integers above 0, e.g. 1,1000,3000."""
    parse = number(int)
    return [int(parse(item)) for item in text.split(",")]
