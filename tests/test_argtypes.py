"""Flag value types: a bad value is argparse's one-line usage error, not a traceback later."""

from __future__ import annotations

import argparse

import pytest

from feedhandler.argtypes import counts, key_value, key_values, number


def test_numbers_counts_and_settings() -> None:
    assert number(int)("3") == 3 and number(zero=True)("0") == 0.0
    assert counts("1,1000,3000") == [1, 1000, 3000]
    assert key_value("streams=a@trade,b@trade") == "streams=a@trade,b@trade"
    assert key_values("a=1,b=2") == "a=1,b=2"
    for parse, text in ((number(int), "0"), (number(), "inf"), (counts, "1,abc"),
                        (counts, "5,0"), (key_value, "nokey"), (key_values, "a=1,b")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)
