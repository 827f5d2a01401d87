"""The simulated exchange's symbol list: deterministic from a seed.

`Universe.generate(seed, count)` returns the major spot pairs with their real tick and step
sizes first, then generated symbols (prices from 1e-8 to 1e5 with matching tick/step) up to
`count`. Everything is exact: prices and sizes are integers in 1e-8 units (`fixedpoint`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from feedhandler.simulator.market.fixedpoint import SCALE, to_units
from feedhandler.simulator.market.seeding import derive_rng

DEFAULT_COUNT = 3000


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One tradable pair. All amounts are integers in 1e-8 units.

    `price_decimals` / `qty_decimals` are the quote / base asset precisions: every price or
    quantity string on the wire carries exactly that many decimals ("0.01000000").
    `events_per_s` and `mean_qty` drive the order-flow model (activity, typical order size).
    """

    symbol: str
    base: str
    quote: str
    tick_size: int
    step_size: int
    price_decimals: int
    qty_decimals: int
    ref_price: int
    events_per_s: float = 100.0
    mean_qty: int = SCALE

    def __post_init__(self) -> None:
        if self.symbol != self.base + self.quote or self.symbol != self.symbol.upper():
            raise ValueError(f"symbol must be upper(base + quote): {self.symbol!r}")
        for name, decimals, size in (
            ("tick_size", self.price_decimals, self.tick_size),
            ("step_size", self.qty_decimals, self.step_size),
        ):
            if not 0 <= decimals <= 8 or size <= 0 or size % 10 ** (8 - decimals):
                raise ValueError(f"{self.symbol}: {name} {size} not representable in {decimals}dp")
        if self.ref_price <= 0 or self.ref_price % self.tick_size:
            raise ValueError(f"{self.symbol}: ref_price must be a positive multiple of tick_size")
        if self.mean_qty <= 0 or self.mean_qty % self.step_size or self.events_per_s <= 0:
            raise ValueError(f"{self.symbol}: bad order-flow parameters")


# (base, quote, tick, step, reference price, events/s, qty decimals): real Binance filters.
_MAJORS: tuple[tuple[str, str, str, str, str, float, int], ...] = (
    ("BTC", "USDT", "0.01", "0.00001", "95000", 1500.0, 8),
    ("ETH", "USDT", "0.01", "0.0001", "3300", 1200.0, 8),
    ("BNB", "USDT", "0.01", "0.001", "650", 500.0, 8),
    ("SOL", "USDT", "0.01", "0.001", "180", 800.0, 8),
    ("XRP", "USDT", "0.0001", "0.1", "2.3", 600.0, 8),
    ("DOGE", "USDT", "0.00001", "1", "0.32", 600.0, 8),
    ("ADA", "USDT", "0.0001", "0.1", "0.85", 300.0, 8),
    ("TRX", "USDT", "0.0001", "0.1", "0.25", 200.0, 8),
    ("LINK", "USDT", "0.01", "0.01", "20", 300.0, 8),
    ("AVAX", "USDT", "0.01", "0.01", "35", 250.0, 8),
    ("DOT", "USDT", "0.001", "0.01", "6.5", 200.0, 8),
    ("LTC", "USDT", "0.01", "0.001", "100", 200.0, 8),
    ("SHIB", "USDT", "0.00000001", "1", "0.00002", 400.0, 2),
    ("PEPE", "USDT", "0.00000001", "1", "0.000018", 600.0, 2),
    ("BTC", "FDUSD", "0.01", "0.00001", "95000", 1000.0, 8),
    ("ETH", "BTC", "0.00001", "0.0001", "0.035", 150.0, 8),
    ("BNB", "BTC", "0.000001", "0.001", "0.0068", 80.0, 8),
    ("BTC", "USDC", "0.01", "0.00001", "95000", 600.0, 8),
    ("ETH", "USDC", "0.01", "0.0001", "3300", 400.0, 8),
    ("SOL", "BTC", "0.000001", "0.001", "0.0019", 60.0, 8),
    ("XRP", "BTC", "0.00000001", "1", "0.0000242", 40.0, 8),
    ("BTC", "EUR", "0.01", "0.00001", "88000", 80.0, 8),
    ("BTC", "TRY", "1", "0.00001", "3300000", 100.0, 8),
    ("USDC", "USDT", "0.0001", "1", "1.0001", 300.0, 8),
    ("FDUSD", "USDT", "0.0001", "1", "0.999", 200.0, 8),
)

# quote asset -> (USD value, asset precision, weight when generating symbols)
_QUOTES: dict[str, tuple[float, int, int]] = {
    "USDT": (1.0, 8, 55),
    "USDC": (1.0, 8, 10),
    "FDUSD": (1.0, 8, 8),
    "BTC": (95000.0, 8, 10),
    "ETH": (3300.0, 8, 3),
    "BNB": (650.0, 8, 4),
    "TRY": (0.029, 8, 5),
    "EUR": (1.08, 8, 2),
    "BRL": (0.18, 8, 1),
    "BIDR": (0.000062, 2, 2),  # delisted, but real: a quote asset with precision 2
}

# Real Binance spot has a few non-ASCII symbols (since 2025-12); opt-in.
_UTF8_BASES = ("币安人生", "哈基米", "我踏马来了")

_TYPICAL_ORDER_USD = 500.0


def _pow10_units(exponent: int) -> int:
    """10**exponent in 1e-8 units, for exponent >= -8."""
    return int(10 ** (exponent + 8))


def _round_to(value: int, size: int) -> int:
    return max(size, (value + size // 2) // size * size)


def _mean_qty(price: int, step: int, quote_usd: float, notional_usd: float) -> int:
    qty = notional_usd / (price / SCALE * quote_usd) * SCALE
    return _round_to(min(int(qty), 10**18), step)


def _major_specs(seed: int) -> list[SymbolSpec]:
    rng = derive_rng(seed, "majors")
    specs = []
    for base, quote, tick, step, ref, rate, qty_decimals in _MAJORS:
        tick_units, step_units = to_units(tick), to_units(step)
        # the seed moves each reference price by up to ±10% so markets differ between seeds
        price = _round_to(int(to_units(ref) * (0.9 + 0.2 * rng.random())), tick_units)
        specs.append(
            SymbolSpec(
                symbol=base + quote,
                base=base,
                quote=quote,
                tick_size=tick_units,
                step_size=step_units,
                price_decimals=_QUOTES[quote][1],
                qty_decimals=qty_decimals,
                ref_price=price,
                events_per_s=rate,
                mean_qty=_mean_qty(price, step_units, _QUOTES[quote][0], _TYPICAL_ORDER_USD),
            )
        )
    return specs


def _generated_spec(rng: random.Random, base: str, quote: str) -> SymbolSpec:
    quote_usd, price_decimals, _ = _QUOTES[quote]
    min_tick_exp = -price_decimals
    # price magnitude 1e-8 .. 1e5 (at least 5 ticks of the finest tick for the quote)
    log_price = rng.uniform(math.log10(5) + min_tick_exp, 5.0)
    tick_exp = max(min_tick_exp, math.floor(log_price) - 3 - int(rng.random() * 2))
    tick = _pow10_units(tick_exp)
    price = _round_to(int(10**log_price * SCALE), tick)
    # smallest order worth about $0.001 .. $1, stepped in powers of ten up to 1 unit
    price_usd = price / SCALE * quote_usd
    step_exp = round(math.log10(10 ** rng.uniform(-3.0, 0.0) / price_usd))
    step_exp = min(0, max(-8, step_exp))
    qty_decimals = 2 if step_exp >= 0 and rng.random() < 0.5 else 8
    step = _pow10_units(step_exp)
    return SymbolSpec(
        symbol=base + quote,
        base=base,
        quote=quote,
        tick_size=tick,
        step_size=step,
        price_decimals=price_decimals,
        qty_decimals=qty_decimals,
        ref_price=price,
        events_per_s=10 ** rng.uniform(math.log10(0.05), math.log10(30.0)),
        mean_qty=_mean_qty(price, step, quote_usd, 10 ** rng.uniform(1.5, 3.0)),
    )


class Universe:
    """An ordered, immutable set of `SymbolSpec`s; the order defines each symbol's index."""

    def __init__(self, symbols: Iterable[SymbolSpec]) -> None:
        self._specs = tuple(symbols)
        self._by_symbol = {spec.symbol: spec for spec in self._specs}
        if len(self._by_symbol) != len(self._specs):
            raise ValueError("duplicate symbols in universe")
        self._index = {spec.symbol: i for i, spec in enumerate(self._specs)}
        # stream names carry the symbol in lowercase
        self._by_stream_symbol = {spec.symbol.lower(): spec for spec in self._specs}

    @classmethod
    def generate(
        cls, seed: int, count: int = DEFAULT_COUNT, *, utf8_symbols: bool = False
    ) -> Universe:
        """Majors first (real filters), then generated symbols, `count` in total."""
        specs = _major_specs(seed)
        rng = derive_rng(seed, "generated")
        if utf8_symbols:
            specs += [_generated_spec(rng, base, "USDT") for base in _UTF8_BASES]
        taken = {spec.symbol for spec in specs} | {spec.base for spec in specs}
        quotes = list(_QUOTES)
        weights = [weight for _, _, weight in _QUOTES.values()]
        while len(specs) < count:
            base = "".join(
                chr(65 + int(rng.random() * 26)) for _ in range(3 + int(rng.random() * 4))
            )
            quote = rng.choices(quotes, weights)[0]
            if base in taken or base in _QUOTES or base + quote in taken:
                continue
            taken.add(base + quote)
            specs.append(_generated_spec(rng, base, quote))
        return cls(specs[:count])

    @property
    def symbols(self) -> tuple[SymbolSpec, ...]:
        return self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def __iter__(self) -> Iterator[SymbolSpec]:
        return iter(self._specs)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def __getitem__(self, symbol: str) -> SymbolSpec:
        return self._by_symbol[symbol]

    def index(self, symbol: str) -> int:
        """Position of `symbol`: the deterministic tie-breaker between simultaneous events."""
        return self._index[symbol]

    def by_stream_symbol(self, name: str) -> SymbolSpec | None:
        """Look up the lowercase symbol of a stream name ("btcusdt" -> BTCUSDT)."""
        return self._by_stream_symbol.get(name)
