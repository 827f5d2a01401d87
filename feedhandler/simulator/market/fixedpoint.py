"""Exact fixed-point numbers: integers in units of 1e-8, Binance spot's finest precision.

Every price, quantity and volume in the simulator is such an integer; floats never touch a
value that ends up on the wire. Products of two values (notional) are kept in 1e-16 units
and divided by `SCALE` only when rendered.
"""

from __future__ import annotations

SCALE = 100_000_000  # units per 1.0
DECIMALS = 8


def to_units(text: str) -> int:
    """Parse a non-negative decimal string ("0.01", "25.3519", "100") into 1e-8 units."""
    whole, _, frac = text.partition(".")
    if len(frac) > DECIMALS or not (whole or frac) or not (whole + frac).isdigit():
        raise ValueError(f"not a decimal with at most {DECIMALS} places: {text!r}")
    return int(whole or "0") * SCALE + int(frac.ljust(DECIMALS, "0"))


def fmt_fixed(units: int, decimals: int) -> str:
    """Render `units`·1e-8 with exactly `decimals` places, truncating toward zero.

    Binance pads to the asset precision ("0.00100000"); a value with more precision than
    `decimals` (a quote volume, a percentage) is cut, never rounded up.
    """
    if units < 0:
        text = fmt_fixed(-units, decimals)
        # a negative value that truncates to zero prints unsigned, as "0.000" not "-0.000"
        return text if -units < 10 ** (DECIMALS - decimals) else "-" + text
    digits = str(units).rjust(DECIMALS + 1, "0")  # at least one integer digit
    if decimals == 0:
        return digits[:-DECIMALS]
    return f"{digits[:-DECIMALS]}.{digits[-DECIMALS:][:decimals]}"
