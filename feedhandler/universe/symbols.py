"""exchangeInfo -> per-symbol facts (status, assets, permissions, tick and step sizes) and the
selection the `universe` config asks for. Pure functions, no I/O.

Tick and step sizes are kept as integers of 1e-8 units, like every decimal in the records
(protocol doc §7); 0 means the exchange disabled that rule (or sent a size we cannot hold
exactly), and nothing is checked against it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from feedhandler.records import from_str

log = logging.getLogger(__name__)

TRADING = "TRADING"


@dataclass(frozen=True)
class SymbolInfo:
    symbol: str  # upper case, as in payloads: BTCUSDT
    status: str  # TRADING, BREAK, HALT, END_OF_DAY, CANCEL_ONLY
    quote: str
    permissions: frozenset[str]  # union of `permissionSets` (or the older flat `permissions`)
    tick: int  # PRICE_FILTER tickSize, 1e-8 units; 0: no price grid
    step: int  # LOT_SIZE stepSize, 1e-8 units; 0: no quantity grid


def _size(symbol: str, filters: Iterable[Mapping[str, Any]], kind: str, key: str) -> int:
    for f in filters:
        if f.get("filterType") == kind:
            try:
                return from_str(str(f.get(key, "0")))
            except ValueError:
                log.warning("exchangeInfo: %s %s %s=%r is not an exact 8-decimal value: not "
                            "checked", symbol, kind, key, f.get(key))
                return 0
    return 0


def parse_exchange_info(info: Mapping[str, Any]) -> dict[str, SymbolInfo]:
    """symbol -> SymbolInfo for every symbol of an exchangeInfo result (any status)."""
    out: dict[str, SymbolInfo] = {}
    for entry in info.get("symbols", []):
        symbol, filters = str(entry["symbol"]), entry.get("filters", [])
        permissions = {str(p) for group in entry.get("permissionSets", []) for p in group}
        permissions.update(str(p) for p in entry.get("permissions", []))
        out[symbol] = SymbolInfo(symbol, str(entry.get("status", "")),
                                 str(entry.get("quoteAsset", "")), frozenset(permissions),
                                 _size(symbol, filters, "PRICE_FILTER", "tickSize"),
                                 _size(symbol, filters, "LOT_SIZE", "stepSize"))
    return out


def select(symbols: Mapping[str, SymbolInfo], wanted: str | Iterable[str] = "all",
           quote_assets: Iterable[str] = (), permissions: Iterable[str] = ()) -> list[str]:
    """The TRADING symbols the config asks for, sorted: `wanted` ("all" or a list), quoted in
    one of `quote_assets` (any if empty), with one of `permissions` (any if empty)."""
    names = set(symbols) if wanted == "all" else set(wanted) & symbols.keys()
    quotes, perms = set(quote_assets), set(permissions)
    return sorted(s for s in names
                  if symbols[s].status == TRADING
                  and (not quotes or symbols[s].quote in quotes)
                  and (not perms or symbols[s].permissions & perms))


def streams_for(symbols: Iterable[str], kinds: Iterable[str]) -> list[str]:
    """Stream names, symbol x kind suffix: `btcusdt@trade`."""
    suffixes = list(kinds)
    return [f"{s.lower()}@{k}" for s in symbols for k in suffixes]
