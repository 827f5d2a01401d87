"""Symbol universe: deterministic, realistic filters, unique names."""

from __future__ import annotations

import pytest

from feedhandler.simulator.market.fixedpoint import SCALE, to_units
from feedhandler.simulator.market.universe import SymbolSpec, Universe

MAJORS = [
    "BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "TRXUSDT",
    "LINKUSDT", "AVAXUSDT", "DOTUSDT", "LTCUSDT", "SHIBUSDT", "PEPEUSDT", "BTCFDUSD", "ETHBTC",
    "BNBBTC",
]  # fmt: skip


@pytest.fixture(scope="module")
def universe() -> Universe:
    return Universe.generate(11, 3000)


def test_same_seed_same_universe(universe: Universe) -> None:
    again = Universe.generate(11, 3000)
    assert again.symbols == universe.symbols


def test_seed_changes_prices_and_generated_names(universe: Universe) -> None:
    other = Universe.generate(12, 3000)
    assert other["BTCUSDT"].ref_price != universe["BTCUSDT"].ref_price
    assert other.symbols[100].symbol != universe.symbols[100].symbol


def test_majors_first_with_real_filters(universe: Universe) -> None:
    assert [spec.symbol for spec in universe.symbols[: len(MAJORS)]] == MAJORS
    btc = universe["BTCUSDT"]
    assert (btc.tick_size, btc.step_size) == (to_units("0.01"), to_units("0.00001"))
    assert (btc.price_decimals, btc.qty_decimals) == (8, 8)
    assert 85_000 * SCALE <= btc.ref_price <= 105_000 * SCALE
    shib = universe["SHIBUSDT"]  # base asset precision 2 on Binance: quantities "123.00"
    assert (shib.tick_size, shib.step_size, shib.qty_decimals) == (1, SCALE, 2)
    assert universe["ETHBTC"].tick_size == to_units("0.00001")
    assert universe.index("ETHUSDT") == 1


def test_generated_symbols(universe: Universe) -> None:
    assert len(universe) == 3000
    names = [spec.symbol for spec in universe]
    assert len(set(names)) == 3000
    assert all(name.isascii() and name.isalnum() and name == name.upper() for name in names)
    prices = [spec.ref_price for spec in universe.symbols[len(MAJORS) :]]
    assert min(prices) < 100  # below 0.000001
    assert max(prices) > 10_000 * SCALE
    for spec in universe:
        assert spec.ref_price % spec.tick_size == 0 and spec.ref_price >= 5 * spec.tick_size
        assert spec.tick_size % 10 ** (8 - spec.price_decimals) == 0
        assert spec.step_size % 10 ** (8 - spec.qty_decimals) == 0
        assert spec.mean_qty % spec.step_size == 0
        assert universe.by_stream_symbol(spec.symbol.lower()) is spec
    assert {spec.price_decimals for spec in universe} == {2, 8}  # BIDR quotes have 2


def test_small_count_takes_majors() -> None:
    assert [spec.symbol for spec in Universe.generate(1, 3)] == MAJORS[:3]


def test_utf8_symbols_behind_flag() -> None:
    plain = Universe.generate(5, 40)
    assert all(spec.symbol.isascii() for spec in plain)
    utf8 = Universe.generate(5, 40, utf8_symbols=True)
    non_ascii = [spec for spec in utf8 if not spec.symbol.isascii()]
    assert [spec.symbol for spec in non_ascii] == ["币安人生USDT", "哈基米USDT", "我踏马来了USDT"]
    assert utf8.by_stream_symbol("币安人生usdt") is non_ascii[0]


def test_spec_validation() -> None:
    good = dict(
        symbol="ABCUSDT", base="ABC", quote="USDT", tick_size=100, step_size=SCALE,
        price_decimals=8, qty_decimals=8, ref_price=10_000,
    )  # fmt: skip
    SymbolSpec(**good)  # type: ignore[arg-type]
    for bad in (
        {"symbol": "abcusdt"},
        {"ref_price": 10_050},  # not a multiple of the tick
        {"qty_decimals": 2, "step_size": 1},  # 0.00000001 cannot print with 2 decimals
        {"mean_qty": SCALE + 1},
    ):
        with pytest.raises(ValueError):
            SymbolSpec(**{**good, **bad})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duplicate"):
        Universe([SymbolSpec(**good), SymbolSpec(**good)])  # type: ignore[arg-type]
