"""The symbol universe from `exchangeInfo`: which symbols to follow (`symbols`), the live plan
that follows listings and delistings (`tracker`), and the per-batch check that decimals lie on
each symbol's tick and step grid (`precision`)."""

from feedhandler.universe.precision import PrecisionCheck
from feedhandler.universe.symbols import SymbolInfo, parse_exchange_info, select, streams_for
from feedhandler.universe.tracker import UniverseTracker

__all__ = ["PrecisionCheck", "SymbolInfo", "UniverseTracker", "parse_exchange_info", "select",
           "streams_for"]
