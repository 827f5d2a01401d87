"""parse_decimal (the decoder's own exact decimal parser) against Decimal."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from feedhandler._ext.decoder import parse_decimal
from tests.parsing.helpers import examples
from tests.parsing.reference import INT64_MAX, INT64_MIN, INT128_MAX, INT128_MIN, RefError, fixed8
from tests.parsing.strategies import decimal_strings, render


@given(decimal_strings())
@example("0.00000000")
@example("-0")
@example("00000.1")
@example("92233720368.54775807")
@example("-92233720368.54775808")
@example("0.00000001")
@example("-0.00000001")
@examples(500)
def test_valid_strings_equal_decimal(text: str) -> None:
    expected = Decimal(text) * 10**8
    assert parse_decimal(text.encode()) == expected
    assert parse_decimal(text.encode(), wide=True) == expected


@given(st.integers(INT64_MIN, INT64_MAX), st.integers(0, 8))
@examples(400)
def test_every_int64_round_trips(units: int, decimals: int) -> None:
    step = 10 ** (8 - decimals)
    units -= units % step if units >= 0 else -(-units % step)
    assert parse_decimal(render(units, decimals).encode()) == units


@given(st.integers(INT128_MIN, INT128_MAX))
@example(INT128_MAX)
@example(INT128_MIN)
@examples(300)
def test_wide_mode_covers_int128(units: int) -> None:
    text = render(units).encode()
    assert parse_decimal(text, wide=True) == units
    if INT64_MIN <= units <= INT64_MAX:
        assert parse_decimal(text) == units
    else:
        with pytest.raises(ValueError, match=r"^overflow$"):
            parse_decimal(text)


@pytest.mark.parametrize(
    ("text", "wide"),
    [
        ("92233720368.54775808", False),  # int64 max + 1e-8
        ("-92233720368.54775809", False),  # int64 min - 1e-8
        ("92233720369", False),
        ("18446744073709551616", False),  # would wrap a uint64 mantissa
        ("99999999999999999999999999999999999999.5", False),
        (render(INT128_MAX + 1), True),  # int128 max + 1e-8
        (render(INT128_MIN - 1), True),
        ("1" + "0" * 60, True),
    ],
)
def test_just_past_the_range_is_overflow(text: str, wide: bool) -> None:
    with pytest.raises(ValueError, match=r"^overflow$"):
        parse_decimal(text.encode(), wide)


@given(st.integers(1, 10**9), st.integers(1, 9), st.integers(0, 99))
@examples(300)
def test_more_than_8_decimals_only_when_zeros(whole: int, extra: int, nonzero: int) -> None:
    exact = f"{whole}.12345678{'0' * extra}"
    assert parse_decimal(exact.encode()) == whole * 10**8 + 12345678
    inexact = f"{whole}.12345678{'0' * (extra - 1)}{nonzero % 9 + 1}"
    with pytest.raises(ValueError, match=r"^too_many_decimals$"):
        parse_decimal(inexact.encode())


MALFORMED = [
    "", "-", "1.", ".5", "-.5", "1e5", "1E5", "+1", " 1", "1 ", "1.2.3", "--1", "-+1",
    "\u0661", "1\u0661", "\u0660.5", "0x10", "1_000", "1,5", "inf", "NaN", "-inf", "1.-5",
    "1..2", "1-",
    "\x001", "1\x00", "\uff11", "1.123456789x", "1.000000000x", "9" * 30 + "x",
]  # fmt: skip


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_is_bad_decimal(text: str) -> None:
    with pytest.raises(ValueError, match=r"^bad_decimal$"):
        parse_decimal(text.encode())
    with pytest.raises(ValueError, match=r"^bad_decimal$"):
        parse_decimal(text.encode(), wide=True)


@given(
    st.one_of(
        st.text(alphabet="0123456789.-+eE x", max_size=40),
        st.text(max_size=40),
        decimal_strings(),
        decimal_strings().map(lambda s: s + "5"),  # a 9th decimal, or a longer integer
    ),
    st.booleans(),
)
@examples(600)
def test_any_text_agrees_with_the_reference(text: str, wide: bool) -> None:
    """Value or reason (bad_decimal / too_many_decimals / overflow) equal to Decimal's verdict
    through the reference: syntax first, then precision, then range."""
    data = text.encode("utf-8", "surrogatepass")
    try:
        expected: int | str = fixed8(text, wide=wide)
    except RefError as e:
        expected = e.reason
    try:
        got: int | str = parse_decimal(data, wide)
    except ValueError as e:
        got = str(e)
    assert got == expected


def test_reason_precedence() -> None:
    # Syntax beats precision beats range: the reason names the first thing wrong.
    for text, reason in [
        ("1.123456789x", "bad_decimal"),
        ("99999999999999999999.123456789", "too_many_decimals"),
        ("99999999999999999999.100000000", "overflow"),
    ]:
        with pytest.raises(ValueError, match=rf"^{reason}$"):
            parse_decimal(text.encode())
