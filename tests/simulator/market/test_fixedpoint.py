"""Fixed-point parsing and rendering: exact, padded, truncating."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedhandler.simulator.market.fixedpoint import SCALE, fmt_fixed, to_units


@pytest.mark.parametrize(
    ("units", "decimals", "text"),
    [
        (0, 8, "0.00000000"),
        (1, 8, "0.00000001"),
        (2_535_190_000, 8, "25.35190000"),
        (9_712_345_678_901, 8, "97123.45678901"),
        (123_456_789, 2, "1.23"),  # truncated, not rounded
        (199_999_999, 0, "1"),
        (-123_456_789, 3, "-1.234"),
        (-99_999, 3, "0.000"),  # rounds to zero: no sign
        (-100_000, 3, "-0.001"),
        (9_223_372_036_854_775_807, 8, "92233720368.54775807"),
    ],
)
def test_fmt_fixed(units: int, decimals: int, text: str) -> None:
    assert fmt_fixed(units, decimals) == text


@pytest.mark.parametrize(
    ("text", "units"),
    [("0.01", 1_000_000), ("100", 100 * SCALE), ("25.3519", 2_535_190_000), (".5", SCALE // 2)],
)
def test_to_units(text: str, units: int) -> None:
    assert to_units(text) == units


@pytest.mark.parametrize("text", ["", ".", "1.000000001", "-1", "1e5", "abc", "1.2.3"])
def test_to_units_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="decimal"):
        to_units(text)


@given(st.integers(min_value=0, max_value=2**70), st.integers(min_value=0, max_value=8))
def test_render_parse_round_trip(units: int, decimals: int) -> None:
    text = fmt_fixed(units, decimals)
    assert len(text.partition(".")[2]) == decimals
    assert to_units(text) == units - units % 10 ** (8 - decimals)
