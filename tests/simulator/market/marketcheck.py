"""Independent checks for the market-model tests: the protocol's field sets and decimals,
a client-side local order book (binance-protocol.md §5), and cross-stream sequence rules."""

from __future__ import annotations

from typing import Any

from feedhandler.simulator.market.fixedpoint import to_units
from feedhandler.simulator.market.universe import SymbolSpec, Universe

# Field order of each payload, from binance-protocol.md §4 and the captured corpus.
FIELDS: dict[str, tuple[str, ...]] = {
    "trade": ("e", "E", "s", "t", "p", "q", "T", "m", "M"),
    "aggTrade": ("e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"),
    "bookTicker": ("u", "s", "b", "B", "a", "A"),
    "depthUpdate": ("e", "E", "s", "U", "u", "b", "a"),
    "partialDepth": ("lastUpdateId", "bids", "asks"),
    "kline": ("e", "E", "s", "k"),
    "kline.k": (
        "t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B",
    ),
    "24hrMiniTicker": ("e", "E", "s", "c", "o", "h", "l", "v", "q"),
    "24hrTicker": (
        "e", "E", "s", "p", "P", "w", "x", "c", "Q", "b", "B", "a", "A",
        "o", "h", "l", "v", "q", "O", "C", "F", "L", "n",
    ),
    "windowTicker": (
        "e", "E", "s", "p", "P", "o", "h", "l", "c", "w", "v", "q", "O", "C", "F", "L", "n",
    ),
    "avgPrice": ("e", "E", "s", "i", "w", "T"),
}  # fmt: skip

# decimal-string fields -> precision: quote asset ("p"), base asset ("q"), percent ("%")
_DECIMALS: dict[str, dict[str, str]] = {
    "trade": {"p": "p", "q": "q"},
    "aggTrade": {"p": "p", "q": "q"},
    "bookTicker": {"b": "p", "B": "q", "a": "p", "A": "q"},
    "kline.k": {"o": "p", "c": "p", "h": "p", "l": "p", "v": "q", "q": "p", "V": "q", "Q": "p"},
    "24hrMiniTicker": {"c": "p", "o": "p", "h": "p", "l": "p", "v": "q", "q": "p"},
    "24hrTicker": {
        **{key: "p" for key in ("p", "w", "x", "c", "b", "a", "o", "h", "l", "q")},
        **{key: "q" for key in ("Q", "B", "A", "v")},
        "P": "%",
    },
    "windowTicker": {
        **{key: "p" for key in ("p", "o", "h", "l", "c", "w", "q")},
        "v": "q",
        "P": "%",
    },
    "avgPrice": {"w": "p"},
}


def payload_kind(obj: Any) -> str:
    """Which FIELDS entry a decoded payload (object, not array) should match."""
    if "e" not in obj:
        return "partialDepth" if "lastUpdateId" in obj else "bookTicker"
    event = obj["e"]
    if event in ("1hTicker", "4hTicker", "1dTicker"):
        return "windowTicker"
    return str(event)


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


def _check_decimals(kind: str, obj: dict[str, Any], spec: SymbolSpec) -> None:
    places = {"p": spec.price_decimals, "q": spec.qty_decimals, "%": 3}
    for key, precision in _DECIMALS.get(kind, {}).items():
        value = obj[key]
        assert isinstance(value, str), (kind, key, value)
        assert _decimals(value) == places[precision], (kind, key, value, spec.symbol)
        assert value.lstrip("-").replace(".", "").isdigit(), (kind, key, value)


def check_payload(obj: Any, universe: Universe, symbol: str | None = None) -> None:
    """Assert an event has exactly the protocol's fields, in order, with the symbol's decimals.

    `symbol` is needed for partial depth, the one payload that does not name its symbol."""
    items = obj if isinstance(obj, list) else [obj]
    for item in items:
        kind = payload_kind(item)
        assert tuple(item) == FIELDS[kind], (kind, tuple(item))
        spec = universe[item.get("s", symbol)]
        if kind in ("depthUpdate", "partialDepth"):
            bids, asks = (
                (item["b"], item["a"])
                if kind == "depthUpdate"
                else (
                    item["bids"],
                    item["asks"],
                )
            )
            for price, qty in bids + asks:
                assert _decimals(price) == spec.price_decimals, (price, spec.symbol)
                assert _decimals(qty) == spec.qty_decimals, (qty, spec.symbol)
        elif kind == "kline":
            assert tuple(item["k"]) == FIELDS["kline.k"]
            _check_decimals("kline.k", item["k"], spec)
        else:
            _check_decimals(kind, item, spec)


class GapError(Exception):
    """The diff-depth stream skipped update ids: the local book must be rebuilt."""


class LocalBook:
    """A client's order book kept by the documented procedure (binance-protocol.md §5).

    Prices and quantities are converted to 1e-8 integers independently of the simulator."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.update_id: int = snapshot["lastUpdateId"]
        self.bids = {to_units(p): to_units(q) for p, q in snapshot["bids"]}
        self.asks = {to_units(p): to_units(q) for p, q in snapshot["asks"]}
        self._first = True

    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one depthUpdate; False if it is older than the book. Raises GapError."""
        first_id, last_id = event["U"], event["u"]
        if last_id <= self.update_id:
            return False
        if self._first:  # first event after the snapshot must straddle lastUpdateId + 1
            if not first_id <= self.update_id + 1 <= last_id:
                raise GapError(f"first event {first_id}..{last_id} vs {self.update_id}")
            self._first = False
        elif first_id > self.update_id + 1:
            raise GapError(f"event starts at {first_id}, book is at {self.update_id}")
        for side, levels in ((self.bids, event["b"]), (self.asks, event["a"])):
            for price, qty in levels:
                if to_units(qty):
                    side[to_units(price)] = to_units(qty)
                else:
                    side.pop(to_units(price), None)
        self.update_id = last_id
        return True

    def sorted_levels(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


class SequenceChecker:
    """Per-symbol id rules across streams of one connection, in delivery order:
    trade ids continuous; aggTrade ids continuous with `f..l` tiling the trade ids; diff
    depth `U == previous u + 1`; diff-depth `u`, partial `lastUpdateId` and bookTicker `u`
    one monotonic sequence."""

    def __init__(self) -> None:
        self.last_trade: dict[str, int] = {}
        self.last_agg: dict[str, tuple[int, int]] = {}  # symbol -> (agg id, last trade id)
        self.last_depth: dict[str, int] = {}
        self.last_update: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def check(self, stream: str, obj: dict[str, Any]) -> None:
        symbol, _, suffix = stream.partition("@")
        kind = suffix.partition("@")[0]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "trade":
            previous = self.last_trade.get(symbol)
            assert previous is None or obj["t"] == previous + 1, (stream, previous, obj)
            self.last_trade[symbol] = obj["t"]
        elif kind == "aggTrade":
            assert obj["f"] <= obj["l"], obj
            if symbol in self.last_agg:
                agg_id, last_trade = self.last_agg[symbol]
                assert obj["a"] == agg_id + 1, (stream, agg_id, obj)
                assert obj["f"] == last_trade + 1, (stream, last_trade, obj)
            self.last_agg[symbol] = (obj["a"], obj["l"])
        elif kind == "depth":
            previous = self.last_depth.get(symbol)
            assert previous is None or obj["U"] == previous + 1, (stream, previous, obj)
            assert obj["U"] <= obj["u"], obj
            self.last_depth[symbol] = obj["u"]
            self._update_id(symbol, obj["u"])
        elif kind == "bookTicker":
            self._update_id(symbol, obj["u"])
        elif kind.startswith("depth"):
            self._update_id(symbol, obj["lastUpdateId"])

    def _update_id(self, symbol: str, update_id: int) -> None:
        previous = self.last_update.get(symbol, 0)
        assert update_id >= previous, (symbol, previous, update_id)
        self.last_update[symbol] = update_id
