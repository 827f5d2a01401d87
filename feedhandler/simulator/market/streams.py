"""Binance spot stream names, as the shared grammar declares them (feedhandler.contract).

A name is `<lowercase symbol>@<suffix>` or one of the all-market `!…` names. Only naming
comes from the declaration: which streams the simulator serves, and how often it pushes
them, is the publisher registry's business (`publishers.publishes`).

Each name gets a fixed rank, its position in the grammar: kinds in wire order (new kinds are
appended, never inserted), then their streams in declared order. The feed orders simultaneous
pushes by it, so adding a kind leaves the order of the existing streams, and their bytes, as
they were.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from feedhandler.contract.streams import GRAMMAR


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """A parsed stream name. `symbol` is None for all-market (`!…`) streams."""

    name: str
    symbol: str | None
    kind: str  # the declared kind: "trade", "depthPartial", "windowTicker", …
    rank: int
    levels: int = 0  # partial depth
    interval: str = ""  # kline interval or rolling-ticker window
    utc8: bool = False  # kline @+08:00


def _templates() -> dict[str, StreamSpec]:
    """Every suffix or all-market name -> its StreamSpec (per-symbol ones: symbol unset)."""
    table: dict[str, StreamSpec] = {}
    for rank, (text, (kind, suffix)) in enumerate(GRAMMAR.items()):
        # the part after `_` names the kline interval (`kline_1h@+08:00`) or the rolling
        # window (`ticker_4h`, `!ticker_4h@arr`)
        interval = text.lstrip("!").partition("@")[0].partition("_")[2]
        utc8 = suffix.utc_offset_min == 480
        table[text] = StreamSpec(text, None, kind.name, rank, suffix.levels, interval, utc8)
    return table


_TEMPLATES = _templates()
_MARKET = frozenset(text for text, (_, suffix) in GRAMMAR.items() if suffix.market)
RANKS = len(_TEMPLATES)


def parse_stream(name: str) -> StreamSpec | None:
    """Parse a stream name as Binance spells it; None if the grammar has no such stream.

    Only the syntax is checked here: whether the symbol is listed is the universe's business,
    whether the kind is simulated the publisher registry's.
    """
    if name in _MARKET:
        return _TEMPLATES[name]
    symbol, at, suffix = name.partition("@")
    template = _TEMPLATES.get(suffix)
    if not at or template is None or suffix in _MARKET or not symbol:
        return None
    if symbol != symbol.lower() or not symbol.isalnum():
        return None
    return replace(template, name=name, symbol=symbol)
