"""Binance spot stream names: which exist, what they carry, how often they push.

A name is `<lowercase symbol>@<suffix>` or one of the all-market `!…@arr` names. Every valid
suffix is enumerated once in `_SUFFIXES`, so parsing is a dict lookup and each suffix gets a
fixed rank, used to order simultaneous pushes deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from feedhandler.simulator.market.intervals import KLINE_SPANS_US

WINDOWS = ("1h", "4h", "1d")
DEPTH_LEVELS = (5, 10, 20)


class Kind(Enum):
    TRADE = "trade"
    AGG_TRADE = "aggTrade"
    BOOK_TICKER = "bookTicker"
    DEPTH = "depth"  # diff depth
    PARTIAL_DEPTH = "depthN"
    KLINE = "kline"
    MINI_TICKER = "miniTicker"
    TICKER = "ticker"  # 24 h rolling
    WINDOW_TICKER = "ticker_window"  # 1h / 4h / 1d rolling
    AVG_PRICE = "avgPrice"
    BLOCK_TRADE = "blockTrade"
    REFERENCE_PRICE = "referencePrice"


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A parsed stream name. `symbol` is None for all-market (`!…@arr`) streams."""

    name: str
    symbol: str | None
    kind: Kind
    cadence_ms: int  # 0 = pushed as events happen
    rank: int
    levels: int = 0  # partial depth
    interval: str = ""  # kline interval or rolling-ticker window
    utc8: bool = False  # kline @+08:00


def _suffix_table() -> dict[str, StreamSpec]:
    """Every per-symbol suffix, as a template StreamSpec (name = suffix, symbol unset)."""
    entries: list[tuple[str, Kind, int, int, str, bool]] = [
        ("trade", Kind.TRADE, 0, 0, "", False),
        ("aggTrade", Kind.AGG_TRADE, 0, 0, "", False),
        ("bookTicker", Kind.BOOK_TICKER, 0, 0, "", False),
        ("depth", Kind.DEPTH, 1000, 0, "", False),
        ("depth@100ms", Kind.DEPTH, 100, 0, "", False),
    ]
    for levels in DEPTH_LEVELS:
        entries.append((f"depth{levels}", Kind.PARTIAL_DEPTH, 1000, levels, "", False))
        entries.append((f"depth{levels}@100ms", Kind.PARTIAL_DEPTH, 100, levels, "", False))
    for interval in KLINE_SPANS_US:
        cadence = 1000 if interval == "1s" else 2000
        entries.append((f"kline_{interval}", Kind.KLINE, cadence, 0, interval, False))
        entries.append((f"kline_{interval}@+08:00", Kind.KLINE, cadence, 0, interval, True))
    entries.append(("miniTicker", Kind.MINI_TICKER, 1000, 0, "", False))
    entries.append(("ticker", Kind.TICKER, 1000, 0, "", False))
    entries += [(f"ticker_{w}", Kind.WINDOW_TICKER, 1000, 0, w, False) for w in WINDOWS]
    entries.append(("avgPrice", Kind.AVG_PRICE, 1000, 0, "", False))
    # real-time on Binance; simulated as at most one block per second
    entries.append(("blockTrade", Kind.BLOCK_TRADE, 1000, 0, "", False))
    entries.append(("referencePrice", Kind.REFERENCE_PRICE, 1000, 0, "", False))
    return {
        suffix: StreamSpec(suffix, None, kind, cadence, rank, levels, interval, utc8)
        for rank, (suffix, kind, cadence, levels, interval, utc8) in enumerate(entries)
    }


_SUFFIXES = _suffix_table()
# all-market streams rank after every per-symbol suffix
_ALL_MARKET: dict[str, StreamSpec] = {
    name: StreamSpec(name, None, kind, 1000, len(_SUFFIXES) + i, interval=interval)
    for i, (name, kind, interval) in enumerate(
        [("!miniTicker@arr", Kind.MINI_TICKER, "")]
        + [(f"!ticker_{w}@arr", Kind.WINDOW_TICKER, w) for w in WINDOWS]
    )
}
RANKS = len(_SUFFIXES) + len(_ALL_MARKET)


def parse_stream(name: str) -> StreamSpec | None:
    """Parse a stream name as Binance spells it; None if it is not a valid spot stream.

    Only the syntax is checked here: whether the symbol is listed is the universe's business.
    """
    spec = _ALL_MARKET.get(name)
    if spec is not None:
        return spec
    symbol, at, suffix = name.partition("@")
    template = _SUFFIXES.get(suffix)
    if not at or template is None or not symbol or symbol != symbol.lower():
        return None
    if not symbol.isalnum():
        return None
    return StreamSpec(
        name,
        symbol,
        template.kind,
        template.cadence_ms,
        template.rank,
        template.levels,
        template.interval,
        template.utc8,
    )
