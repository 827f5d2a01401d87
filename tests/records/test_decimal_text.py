"""Exact text of decimal columns: to_str (no exponent, 8 places) and its inverse from_str."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

import feedhandler
from feedhandler.records import from_str, to_decimal, to_str

INT128 = st.integers(-(2**127), 2**127 - 1)


def test_plain_text_without_exponent() -> None:
    assert str(feedhandler.to_decimal(0)) == "0E-8"  # why to_str exists
    assert to_str(0) == "0.00000000"
    assert to_str(1) == "0.00000001"
    assert to_str(-10_000) == "-0.00010000"
    assert to_str(9_824_971_000_000) == "98249.71000000"
    assert to_str(-(2**127)) == "-1701411834604692317316873037158.84105728"


@given(INT128)
def test_to_str_is_exact_and_from_str_inverts_it(units: int) -> None:
    text = to_str(units)
    assert "E" not in text and len(text.partition(".")[2]) == 8
    assert Decimal(text) == to_decimal(units)
    assert from_str(text) == units


@pytest.mark.parametrize(("text", "units"), [
    ("1", 10**8), ("-0.5", -(5 * 10**7)), ("0.00000001", 1), ("25.35190000", 2_535_190_000),
    ("109576294318.00000000", 10_957_629_431_800_000_000), ("-0", 0),
])
def test_from_str_reads_binance_decimals(text: str, units: int) -> None:
    assert from_str(text) == units


@pytest.mark.parametrize("text", ["", "-", ".5", "1.", "1e5", "0.000000001", "1.2.3", "+1",
                                  " 1", "1_0", "\u0661"])  # (an Arabic-Indic digit)
def test_from_str_rejects_what_is_not_an_exact_decimal(text: str) -> None:
    with pytest.raises(ValueError, match="not an exact decimal"):
        from_str(text)
