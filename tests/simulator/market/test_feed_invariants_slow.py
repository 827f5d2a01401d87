"""A million frames of a mixed subscription: id sequences, payload shape and decimals."""

from __future__ import annotations

import orjson
import pytest

from feedhandler.simulator.market import Feed, Universe
from feedhandler.simulator.market.fixedpoint import to_units
from tests.simulator.market.marketcheck import SequenceChecker, check_payload

SYMBOLS = ["btcusdt", "ethusdt", "shibusdt", "ethbtc", "pepeusdt"]
SUFFIXES = ["trade", "aggTrade", "bookTicker", "depth@100ms", "depth5@100ms"]
FRAMES = 1_000_000


@pytest.mark.slow
def test_million_frames_keep_every_invariant() -> None:
    universe = Universe.generate(51, 500)
    feed = Feed(51, universe)
    feed.subscribe([f"{symbol}@{suffix}" for symbol in SYMBOLS for suffix in SUFFIXES])
    checker = SequenceChecker()
    touch: dict[str, dict[str, str]] = {}
    symbols = {s: universe.by_stream_symbol(s).symbol for s in SYMBOLS}  # type: ignore[union-attr]
    produced = 0
    while produced < FRAMES:
        for stream, payload in feed.next_frames(8192):
            obj = orjson.loads(payload)
            symbol, _, kind = stream.partition("@")
            check_payload(obj, universe, symbols[symbol])
            checker.check(stream, obj)
            if kind == "bookTicker":
                touch[symbol] = obj
            elif kind == "trade" and symbol in touch:  # takers trade at or through the touch
                best = touch[symbol]
                if obj["m"]:
                    assert to_units(obj["p"]) <= to_units(best["b"])
                else:
                    assert to_units(obj["p"]) >= to_units(best["a"])
        produced += 8192
    assert set(checker.counts) == {"trade", "aggTrade", "bookTicker", "depth", "depth5"}
    assert min(checker.counts.values()) > 5000
