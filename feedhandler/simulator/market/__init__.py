"""Synthetic Binance spot market: symbol universe, per-symbol matching-engine model, and the
frames a stream connection receives (`Feed`)."""

from feedhandler.simulator.market.feed import Feed
from feedhandler.simulator.market.universe import SymbolSpec, Universe

__all__ = ["Feed", "SymbolSpec", "Universe"]
