"""A small pure-Python reference decoder for Binance Spot frames (json + Decimal).

Written from the protocol summary (shared/binance-protocol.md §1-§4) and the record layouts in
ext/cpp/records.h, not from the C++ parser: the differential tests hold the C++ decoder to it.
It is slow and obvious on purpose. Rows are dicts keyed by the dtype field names, in the same
units as the records:

- prices/quantities: int counts of 1e-8 (exact; book-level quantities and volumes 128-bit)
- timestamps: ns (exchange ms x 1e6, or us x 1e3 for timeUnit=MICROSECOND)
- text: UTF-8 bytes (the numpy `S` view drops the NUL padding)
- partial depth: 20-slot lists padded with zeros, plus bid_count/ask_count

Besides rows it names the error a frame must be rejected with, as (reason, field). Objects are
walked in document order and the first defect found wins, then missing required fields in
protocol order, which is the order a streaming parser meets them.

Known, deliberate limit: decimals and keys are taken as written, so a frame that spells them
with backslash escapes (Binance never does) is outside what this reference decides; see
`decides()`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Context, Decimal, localcontext
from typing import Any

import numpy as np

from feedhandler._ext.decoder import KIND_NAMES
from feedhandler.records import SCHEMAS

SCALE = 10**8
SYMBOL_WIDTH = 32
PARTIAL_LEVELS = 20
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT128_MIN, INT128_MAX = -(2**127), 2**127 - 1

KIND = {name: index for index, name in enumerate(KIND_NAMES)}  # enum Kind, the wire contract
SIDE_BID, SIDE_ASK, SIDE_NONE = 0, 1, 2
DEPTH_FIRST, DEPTH_LAST = 1, 2
CONTROL_RESULT, CONTROL_ERROR, CONTROL_SERVER_SHUTDOWN = 1, 2, 3
GAP_MISSING, GAP_BACKWARDS = 1, 2

# ASCII digits only: Decimal() would take any Unicode digit.
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_EXACT = Context(prec=1000)
WINDOWS = ("1h", "4h", "1d")
KLINE_INTERVALS = (
    "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
    "1d", "3d", "1w", "1M",
)  # fmt: skip

EVENT_KINDS = {
    "trade": "trade",
    "aggTrade": "aggTrade",
    "depthUpdate": "depth",
    "kline": "kline",
    "24hrMiniTicker": "miniTicker",
    "24hrTicker": "ticker",
    "avgPrice": "avgPrice",
    "blockTrade": "blockTrade",
    "referencePrice": "referencePrice",
    "serverShutdown": "control",
    **{f"{w}Ticker": "windowTicker" for w in WINDOWS},
}


# A payload without "e" told apart by its first key (Binance's order)
FIRST_KEYS = {"u": "bookTicker", "lastUpdateId": "depthPartial",
              **dict.fromkeys(("result", "id", "code", "msg"), "control")}


class RefError(Exception):
    """The frame is rejected: `reason` is one of the decoder's ERROR_NAMES."""

    def __init__(self, reason: str, field: str = "") -> None:
        super().__init__(f"{reason} ({field})" if field else reason)
        self.reason = reason
        self.field = field


class Obj(list):  # type: ignore[type-arg]
    """A JSON object as its (key, value) pairs in document order (duplicates kept)."""

    def get(self, key: str, default: Any = None) -> Any:
        for k, v in reversed(self):
            if k == key:
                return v
        return default


# --- scalar conversions ------------------------------------------------------------------------


def fixed8(text: Any, field: str = "", *, wide: bool = False) -> int:
    """Decimal string -> exact count of 1e-8 units; RefError like the decoder's parser."""
    if not isinstance(text, str):
        raise RefError("wrong_type", field)
    if not _DECIMAL.fullmatch(text):
        raise RefError("bad_decimal", field)
    with localcontext(_EXACT):
        units = Decimal(text).scaleb(8)
    if units != units.to_integral_value():
        raise RefError("too_many_decimals", field)
    value = int(units)
    low, high = (INT128_MIN, INT128_MAX) if wide else (INT64_MIN, INT64_MAX)
    if not low <= value <= high:
        raise RefError("overflow", field)
    return value


def integer(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RefError("wrong_type", field)
    if not INT64_MIN <= value <= INT64_MAX:
        raise RefError("overflow", field)
    return value


def boolean(value: Any, field: str) -> int:
    if not isinstance(value, bool):
        raise RefError("wrong_type", field)
    return int(value)


def text(value: Any, field: str, width: int, too_long: str = "wrong_type") -> bytes:
    if not isinstance(value, str):
        raise RefError("wrong_type", field)
    data = value.encode("utf-8", "surrogatepass")
    if len(data) > width:
        raise RefError(too_long, field)
    return data


def symbol(value: Any) -> bytes:
    data = text(value, "s", SYMBOL_WIDTH, "symbol_too_long")
    if data.rstrip(b"\0").find(b"\0") >= 0:  # a NUL inside: not a symbol
        raise RefError("wrong_type", "s")
    return data


# --- stream names ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    kind: str
    is_array: bool = False
    levels: int = 0  # partial depth 5/10/20
    utc_offset_min: int = 0
    symbol: bytes = b""  # ASCII-upper-cased from the name; empty for "!" streams


def classify_stream(name: str) -> Stream | None:
    """A stream name -> what its payloads are, or None for a stream we do not decode."""
    if name == "!serverShutdown":
        return Stream("control")
    if name == "!bookTicker":
        return Stream("bookTicker")
    if name == "!miniTicker@arr":
        return Stream("miniTicker", is_array=True)
    if name == "!ticker@arr":
        return Stream("ticker", is_array=True)
    m = re.fullmatch(r"!ticker_(1h|4h|1d)@arr", name)
    if m:
        return Stream("windowTicker", is_array=True)
    sym, at, rest = name.partition("@")
    raw = sym.encode("utf-8", "surrogatepass")
    if not at or not raw or len(raw) > SYMBOL_WIDTH:
        return None
    upper = bytes(c - 32 if 0x61 <= c <= 0x7A else c for c in raw)  # ASCII letters only
    simple = {
        "trade": "trade",
        "aggTrade": "aggTrade",
        "bookTicker": "bookTicker",
        "miniTicker": "miniTicker",
        "ticker": "ticker",
        "avgPrice": "avgPrice",
        "blockTrade": "blockTrade",
        "referencePrice": "referencePrice",
        **{f"ticker_{w}": "windowTicker" for w in WINDOWS},
    }
    if rest in simple:
        return Stream(simple[rest], symbol=upper)
    m = re.fullmatch(r"depth(5|10|20)?(@100ms|@1000ms)?", rest)
    if m:
        if m.group(1):
            return Stream("depthPartial", levels=int(m.group(1)), symbol=upper)
        return Stream("depth", symbol=upper)
    m = re.fullmatch(r"kline_([0-9]+[smhdwM])(@\+08:00)?", rest)
    if m and m.group(1) in KLINE_INTERVALS:
        return Stream("kline", utc_offset_min=480 if m.group(2) else 0, symbol=upper)
    return None


# --- the decoder -------------------------------------------------------------------------------


def loads(frame: bytes) -> Any:
    """Strict JSON (RFC 8259): invalid UTF-8, NaN/Infinity and numbers beyond a double are
    errors; a leading byte order mark may be ignored, and is; objects keep their order."""
    try:
        doc = frame.decode("utf-8")
    except UnicodeDecodeError:
        raise RefError("invalid_utf8") from None

    def no_constants(name: str) -> Any:
        raise ValueError(name)

    def finite(text: str) -> float:
        value = float(text)
        if math.isinf(value):
            raise ValueError(text)
        return value

    try:
        return json.loads(
            doc.removeprefix("\ufeff"),
            object_pairs_hook=Obj,
            parse_constant=no_constants,
            parse_float=finite,
        )
    except (ValueError, RecursionError):  # JSONDecodeError too
        raise RefError("malformed_json") from None


def decides(frame: bytes) -> bool:
    """Whether this reference's verdict on `frame` is authoritative (see the module doc)."""
    return b"\\" not in frame


@dataclass
class Reference:
    """Stateful like one decoder: per (kind, symbol) sequence marks, a stream hint, time unit."""

    stream: str | None = None
    time_unit: str = "ms"
    max_frame: int = 1 << 20
    last_seq: dict[tuple[str, bytes], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scale = {"ms": 1_000_000, "us": 1_000}[self.time_unit]
        self.hint = None if self.stream is None else classify_stream(self.stream)

    # Per frame: rows by kind and the pending sequence update, committed only on success.
    def decode(self, frame: bytes, ts_recv: int = 0, *, is_text: bool = True) -> dict[str, list]:
        """Rows the frame yields, by kind (gap rows under "gap"); RefError if rejected."""
        if not is_text:
            raise RefError("binary_frame")
        if len(frame) > self.max_frame:
            raise RefError("oversized")
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._seq: tuple[tuple[str, bytes], int] | None = None
        self._ts_recv = ts_recv
        self._root(loads(frame))
        if self._seq is not None:
            key, value = self._seq
            self.last_seq[key] = value
        return self._rows

    def _emit(self, kind: str, row: dict[str, Any]) -> None:
        self._rows.setdefault(kind, []).append(row)

    def ts(self, value: Any, field: str) -> int:
        ns = integer(value, field) * self.scale
        if not INT64_MIN <= ns <= INT64_MAX:
            raise RefError("overflow", field)
        return ns

    # --- dispatch ---

    def _root(self, doc: Any) -> None:
        """Binance puts the key that tells a message apart first; in another order, a
        "stream" anywhere makes it a wrapper, else an "e" an event, else the first key that
        names a kind."""
        if isinstance(doc, Obj):
            keys = [key for key, _ in doc]
            first = keys[0] if keys else ""
            if first in FIRST_KEYS or first == "e":
                keys = [first]
            if "stream" in keys:
                at = keys.index("stream")
                if "data" in keys[:at]:  # the stream is read first, then the rest in order
                    doc = Obj([doc[at], *doc[:at], *doc[at + 1 :]])
                return self._combined(doc)
            if "e" in keys:
                e = doc[keys.index("e")][1]
                if not isinstance(e, str):
                    raise RefError("wrong_type", "e")
                if e not in EVENT_KINDS:
                    raise RefError("unknown_event", "e")
                return self._by_kind(doc, EVENT_KINDS[e], self.hint, event=e)
            kind = next((FIRST_KEYS[key] for key in keys if key in FIRST_KEYS), None)
            if kind is None:
                raise RefError("unknown_event")
            return self._by_kind(doc, kind, self.hint)
        if isinstance(doc, list):
            return self._array(doc, None, self.hint)
        raise RefError("unknown_event")

    def _combined(self, doc: Obj) -> None:
        stream = None
        have_data = False
        for key, value in doc:
            if key == "stream":
                if stream is not None:  # (met twice: which one?)
                    raise RefError("malformed_json", "stream")
                if not isinstance(value, str):
                    raise RefError("wrong_type", "stream")
                stream = classify_stream(value)
                if stream is None:
                    raise RefError("unknown_stream", "stream")
            elif key == "data":
                if stream is None:
                    raise RefError("missing_field", "stream")
                if have_data:
                    raise RefError("malformed_json", "data")
                have_data = True
                if stream.is_array:
                    if isinstance(value, Obj) or not isinstance(value, list):
                        raise RefError("wrong_type", "data")
                    self._array(value, stream.kind, stream)
                else:
                    if not isinstance(value, Obj):
                        raise RefError("wrong_type", "data")
                    self._by_kind(value, stream.kind, stream)
        if not have_data:
            raise RefError("missing_field", "data")

    def _array(self, items: list, expected: str | None, stream: Stream | None) -> None:
        """Ticker arrays: each element names its own event in "e", the first one's for all."""
        first = None
        for item in items:
            if not isinstance(item, Obj):
                raise RefError("wrong_type")
            if expected is not None:
                self._by_kind(item, expected, stream)
                continue
            e = next((v for k, v in item if k == "e"), _MISSING)  # the first "e"
            if e is _MISSING:
                raise RefError("missing_field", "e")
            if not isinstance(e, str):
                raise RefError("wrong_type", "e")
            kind = EVENT_KINDS.get(e)
            if kind not in ("miniTicker", "ticker", "windowTicker") or first not in (None, kind):
                raise RefError("unknown_event", "e")
            first = kind
            self._by_kind(item, kind, stream, event=e)

    def _by_kind(self, obj: Obj, kind: str, stream: Stream | None, event: str | None = None):
        """`event`: the "e" the dispatcher already read (then "e" keys are not checked again)."""
        parser = getattr(self, f"_{kind}")
        return parser(obj, stream, event)

    def _fields(self, obj: Obj, kind: str, event: str | None, readers: dict[str, Any]):
        """Walks `obj` in order: "e" must match `kind` (unless already read), known keys are
        read by their reader, then required (= every reader's key) must all have been seen."""
        seen = set()
        for key, value in obj:
            if key in seen:  # (which value would be the one?)
                raise RefError("malformed_json", key)
            if key == "e":
                seen.add("e")
                if event is None:
                    if not isinstance(value, str):
                        raise RefError("wrong_type", "e")
                    if EVENT_KINDS.get(value) != kind:
                        raise RefError("unknown_event", "e")
                continue
            if key in readers:
                seen.add(key)
                readers[key](value)
        for key in readers:
            if key not in seen:
                raise RefError("missing_field", key)

    def _sequence(self, kind: str, sym: bytes, first: int, last: int, contiguous: bool) -> None:
        key = (kind, sym)
        prev = self.last_seq.get(key)
        if prev is not None:
            reason = 0
            if last <= prev:
                reason = GAP_BACKWARDS
            elif contiguous and first > prev + 1:
                reason = GAP_MISSING
            if reason:
                expected = (prev + 1 + 2**63) % 2**64 - 2**63  # int64 wrap at the very edge
                self._emit("gap", {
                    "ts_recv": self._ts_recv, "expected": expected, "received": first,
                    "kind": KIND[kind], "reason": reason, "symbol": sym,
                })  # fmt: skip
            if last <= prev:
                return  # the high-water mark stays
        self._seq = (key, last)

    # --- one parser per kind ---

    def _trade(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        self._trades("trade", obj, event)

    def _trades(self, kind: str, obj: Obj, event: str | None) -> None:
        """trade, and blockTrade (§4.3: the same fields without `M`; its own `t` sequence;
        a block's quantity is 128-bit, one trade's int64)."""
        wide = kind == "blockTrade"
        r: dict[str, Any] = {"ts_recv": self._ts_recv}
        self._fields(obj, kind, event, {
            "E": lambda v: r.__setitem__("ts_event", self.ts(v, "E")),
            "s": lambda v: r.__setitem__("symbol", symbol(v)),
            "t": lambda v: r.__setitem__("trade_id", integer(v, "t")),
            "p": lambda v: r.__setitem__("price", fixed8(v, "p")),
            "q": lambda v: r.__setitem__("qty", fixed8(v, "q", wide=wide)),
            "T": lambda v: r.__setitem__("ts_trade", self.ts(v, "T")),
            "m": lambda v: r.__setitem__("buyer_is_maker", boolean(v, "m")),
        })  # fmt: skip
        self._emit(kind, r)
        self._sequence(kind, r["symbol"], r["trade_id"], r["trade_id"], True)

    def _aggTrade(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        r: dict[str, Any] = {"ts_recv": self._ts_recv}
        self._fields(obj, "aggTrade", event, {
            "E": lambda v: r.__setitem__("ts_event", self.ts(v, "E")),
            "s": lambda v: r.__setitem__("symbol", symbol(v)),
            "a": lambda v: r.__setitem__("agg_id", integer(v, "a")),
            "p": lambda v: r.__setitem__("price", fixed8(v, "p")),
            "q": lambda v: r.__setitem__("qty", fixed8(v, "q")),
            "f": lambda v: r.__setitem__("first_trade_id", integer(v, "f")),
            "l": lambda v: r.__setitem__("last_trade_id", integer(v, "l")),
            "T": lambda v: r.__setitem__("ts_trade", self.ts(v, "T")),
            "m": lambda v: r.__setitem__("buyer_is_maker", boolean(v, "m")),
        })  # fmt: skip
        self._emit("aggTrade", r)
        self._sequence("aggTrade", r["symbol"], r["agg_id"], r["agg_id"], True)

    def _bookTicker(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        r: dict[str, Any] = {"ts_recv": self._ts_recv}
        self._fields(obj, "bookTicker", event, {
            "u": lambda v: r.__setitem__("update_id", integer(v, "u")),
            "s": lambda v: r.__setitem__("symbol", symbol(v)),
            "b": lambda v: r.__setitem__("bid_price", fixed8(v, "b")),
            "B": lambda v: r.__setitem__("bid_qty", fixed8(v, "B", wide=True)),
            "a": lambda v: r.__setitem__("ask_price", fixed8(v, "a")),
            "A": lambda v: r.__setitem__("ask_qty", fixed8(v, "A", wide=True)),
        })  # fmt: skip
        self._emit("bookTicker", r)
        self._sequence("bookTicker", r["symbol"], r["update_id"], r["update_id"], False)

    @staticmethod
    def _levels(value: Any, name: str, limit: int | None) -> list[tuple[int, int]]:
        """[[price, qty], ...]; each pair exactly two decimal strings."""
        if isinstance(value, Obj) or not isinstance(value, list):
            raise RefError("wrong_type", name)
        levels = []
        for pair in value:
            if limit is not None and len(levels) == limit:
                raise RefError("too_many_levels", name)
            if isinstance(pair, Obj) or not isinstance(pair, list):
                raise RefError("wrong_type", name)
            parsed = []
            for i, x in enumerate(pair):
                if i > 1:
                    raise RefError("wrong_type", name)
                parsed.append(fixed8(x, name, wide=i == 1))  # quantities are 128-bit
            if len(parsed) != 2:
                raise RefError("wrong_type", name)
            levels.append((parsed[0], parsed[1]))
        return levels

    def _depth(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        head: dict[str, Any] = {}
        levels: list[tuple[int, int, int]] = []  # (side, price, qty) in document order

        def side(value: Any, name: str, code: int) -> None:
            levels.extend((code, p, q) for p, q in self._levels(value, name, None))

        self._fields(obj, "depth", event, {
            "E": lambda v: head.__setitem__("ts_event", self.ts(v, "E")),
            "s": lambda v: head.__setitem__("symbol", symbol(v)),
            "U": lambda v: head.__setitem__("first_update_id", integer(v, "U")),
            "u": lambda v: head.__setitem__("last_update_id", integer(v, "u")),
            "b": lambda v: side(v, "b", SIDE_BID),
            "a": lambda v: side(v, "a", SIDE_ASK),
        })  # fmt: skip
        if head["first_update_id"] > head["last_update_id"]:
            raise RefError("bad_range", "U")
        if not levels:  # an empty event still carries U/u: one SIDE_NONE row
            levels = [(SIDE_NONE, 0, 0)]
        for i, (code, price, qty) in enumerate(levels):
            flags = (DEPTH_FIRST if i == 0 else 0) | (DEPTH_LAST if i == len(levels) - 1 else 0)
            self._emit("depth", {
                "ts_recv": self._ts_recv, **head, "price": price, "qty": qty,
                "side": code, "flags": flags,
            })  # fmt: skip
        self._sequence(
            "depth", head["symbol"], head["first_update_id"], head["last_update_id"], True
        )

    def _depthPartial(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        r: dict[str, Any] = {
            "ts_recv": self._ts_recv,
            "levels": stream.levels if stream else 0,
            "symbol": stream.symbol if stream else b"",
        }
        bids: list[tuple[int, int]] = []
        asks: list[tuple[int, int]] = []

        room = r["levels"] or PARTIAL_LEVELS  # the stream's 5/10/20, else the table's 20

        def book(value: Any, name: str, out: list[tuple[int, int]]) -> None:
            # A repeated key continues the same slots.
            out.extend(self._levels(value, name, room - len(out)))

        self._fields(obj, "depthPartial", event, {
            "lastUpdateId": lambda v: r.__setitem__("last_update_id", integer(v, "lastUpdateId")),
            "bids": lambda v: book(v, "bids", bids),
            "asks": lambda v: book(v, "asks", asks),
        })  # fmt: skip
        pad = [(0, 0)] * PARTIAL_LEVELS
        r["bid_price"] = [p for p, _ in (bids + pad)[:PARTIAL_LEVELS]]
        r["bid_qty"] = [q for _, q in (bids + pad)[:PARTIAL_LEVELS]]
        r["ask_price"] = [p for p, _ in (asks + pad)[:PARTIAL_LEVELS]]
        r["ask_qty"] = [q for _, q in (asks + pad)[:PARTIAL_LEVELS]]
        r["bid_count"], r["ask_count"] = len(bids), len(asks)
        self._emit("depthPartial", r)

    def _kline(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        r: dict[str, Any] = {
            "ts_recv": self._ts_recv,
            "utc_offset_min": stream.utc_offset_min if stream else 0,
        }
        bar_fields = {
            "t": ("ts_open", lambda v: self.ts(v, "k.t")),
            "T": ("ts_close", lambda v: self.ts(v, "k.T")),
            "i": ("interval", lambda v: text(v, "k.i", 4)),
            "f": ("first_trade_id", lambda v: integer(v, "k.f")),
            "L": ("last_trade_id", lambda v: integer(v, "k.L")),
            "o": ("open", lambda v: fixed8(v, "k.o")),
            "c": ("close", lambda v: fixed8(v, "k.c")),
            "h": ("high", lambda v: fixed8(v, "k.h")),
            "l": ("low", lambda v: fixed8(v, "k.l")),
            "v": ("volume", lambda v: fixed8(v, "k.v", wide=True)),
            "n": ("n_trades", lambda v: integer(v, "k.n")),
            "x": ("closed", lambda v: boolean(v, "k.x")),
            "q": ("quote_volume", lambda v: fixed8(v, "k.q", wide=True)),
            "V": ("taker_buy_volume", lambda v: fixed8(v, "k.V", wide=True)),
            "Q": ("taker_buy_quote_volume", lambda v: fixed8(v, "k.Q", wide=True)),
        }
        seen_bar: set[str] = set()

        def bar(value: Any) -> None:
            if not isinstance(value, Obj):
                raise RefError("wrong_type", "k")
            for key, v in value:
                if key in bar_fields:
                    if key in seen_bar:
                        raise RefError("malformed_json", f"k.{key}")
                    seen_bar.add(key)
                    name, read = bar_fields[key]
                    r[name] = read(v)

        self._fields(obj, "kline", event, {
            "E": lambda v: r.__setitem__("ts_event", self.ts(v, "E")),
            "s": lambda v: r.__setitem__("symbol", symbol(v)),
            "k": bar,
        })  # fmt: skip
        for key in bar_fields:
            if key not in seen_bar:
                raise RefError("missing_field", f"k.{key}")
        self._emit("kline", r)

    def _miniTicker(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        r: dict[str, Any] = {"ts_recv": self._ts_recv}
        readers = {
            "E": lambda v: r.__setitem__("ts_event", self.ts(v, "E")),
            "s": lambda v: r.__setitem__("symbol", symbol(v)),
        }
        readers.update(_decimals(r, {"c": "close", "o": "open", "h": "high", "l": "low"}))
        readers.update(_decimals(r, {"v": "volume", "q": "quote_volume"}, wide=True))
        self._fields(obj, "miniTicker", event, readers)
        self._emit("miniTicker", r)

    def _ticker(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        r: dict[str, Any] = {"ts_recv": self._ts_recv}
        readers = {
            "E": lambda v: r.__setitem__("ts_event", self.ts(v, "E")),
            "s": lambda v: r.__setitem__("symbol", symbol(v)),
        }
        readers.update(_decimals(r, {
            "p": "price_change", "P": "price_change_pct", "w": "weighted_avg_price",
            "x": "prev_close", "c": "last_price", "Q": "last_qty", "b": "bid_price",
            "a": "ask_price", "o": "open", "h": "high", "l": "low",
        }))  # fmt: skip
        readers.update(_decimals(r, {"B": "bid_qty", "A": "ask_qty",
                                     "v": "volume", "q": "quote_volume"}, wide=True))
        readers.update(self._window_stats(r))
        self._fields(obj, "ticker", event, readers)
        self._emit("ticker", r)

    def _windowTicker(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        # The window is the "<w>" of "e":"<w>Ticker" (absent "e" leaves it empty).
        r: dict[str, Any] = {"ts_recv": self._ts_recv, "window": (event or "")[:2].encode()}
        readers = {
            "E": lambda v: r.__setitem__("ts_event", self.ts(v, "E")),
            "s": lambda v: r.__setitem__("symbol", symbol(v)),
        }
        readers.update(_decimals(r, {
            "p": "price_change", "P": "price_change_pct", "o": "open", "h": "high", "l": "low",
            "c": "last_price", "w": "weighted_avg_price",
        }))  # fmt: skip
        readers.update(_decimals(r, {"v": "volume", "q": "quote_volume"}, wide=True))
        readers.update(self._window_stats(r))
        if event is None:
            e = obj.get("e")
            if isinstance(e, str) and EVENT_KINDS.get(e) == "windowTicker":
                r["window"] = e[:2].encode()
        self._fields(obj, "windowTicker", event, readers)
        self._emit("windowTicker", r)

    def _window_stats(self, r: dict[str, Any]) -> dict[str, Any]:
        return {
            "O": lambda v: r.__setitem__("ts_open", self.ts(v, "O")),
            "C": lambda v: r.__setitem__("ts_close", self.ts(v, "C")),
            "F": lambda v: r.__setitem__("first_trade_id", integer(v, "F")),
            "L": lambda v: r.__setitem__("last_trade_id", integer(v, "L")),
            "n": lambda v: r.__setitem__("n_trades", integer(v, "n")),
        }

    def _avgPrice(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        r: dict[str, Any] = {"ts_recv": self._ts_recv}
        self._fields(obj, "avgPrice", event, {
            "E": lambda v: r.__setitem__("ts_event", self.ts(v, "E")),
            "s": lambda v: r.__setitem__("symbol", symbol(v)),
            "i": lambda v: r.__setitem__("interval", text(v, "i", 8)),
            "w": lambda v: r.__setitem__("price", fixed8(v, "w")),
            "T": lambda v: r.__setitem__("ts_trade", self.ts(v, "T")),
        })  # fmt: skip
        self._emit("avgPrice", r)

    def _blockTrade(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        self._trades("blockTrade", obj, event)

    def _referencePrice(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        """§4.4: no `E`; `r` is a decimal string or null (price 0, price_known 0)."""
        r: dict[str, Any] = {"ts_recv": self._ts_recv}

        def reference(value: Any) -> None:
            r["price"], r["price_known"] = (0, 0) if value is None else (fixed8(value, "r"), 1)

        self._fields(obj, "referencePrice", event, {
            "s": lambda v: r.__setitem__("symbol", symbol(v)),
            "r": reference,
            "t": lambda v: r.__setitem__("ts_engine", self.ts(v, "t")),
        })  # fmt: skip
        self._emit("referencePrice", r)

    def _control(self, obj: Obj, stream: Stream | None, event: str | None) -> None:
        """{"result":…,"id":…}, {"code":…,"msg":…}, {"e":"serverShutdown","E":…}"""
        shutdown = event is not None or (stream is not None and stream.kind == "control")
        r: dict[str, Any] = {
            "ts_recv": self._ts_recv, "ts_event": 0, "id": -1, "code": 0,
            "type": CONTROL_SERVER_SHUTDOWN if shutdown else CONTROL_RESULT,
        }  # fmt: skip
        seen_e = False
        for key, value in obj:
            if key == "e" and seen_e:
                raise RefError("malformed_json", "e")
            seen_e = seen_e or key == "e"
            if key == "e" and event is None:
                if not isinstance(value, str):
                    raise RefError("wrong_type", "e")
                if EVENT_KINDS.get(value) != "control":
                    raise RefError("unknown_event", "e")
            elif key == "E":
                r["ts_event"] = self.ts(value, "E")
            elif key == "code":
                r["type"] = CONTROL_ERROR
                r["code"] = integer(value, "code")
            elif key == "id" and isinstance(value, int | float) and not isinstance(value, bool):
                r["id"] = integer(value, "id")  # a string or null id is "absent": -1
        self._emit("control", r)


_MISSING = object()


def _decimals(r: dict[str, Any], names: dict[str, str], *, wide: bool = False) -> dict[str, Any]:
    def reader(key: str, name: str) -> Any:
        return lambda v: r.__setitem__(name, fixed8(v, key, wide=wide))

    return {key: reader(key, name) for key, name in names.items()}


# --- rows <-> numpy ----------------------------------------------------------------------------


def to_array(kind: str, rows: list[dict[str, Any]]) -> np.ndarray:
    """Reference rows as the record array the decoder should have written (zeros elsewhere)."""
    schema = SCHEMAS[kind]
    out = np.zeros(len(rows), schema.dtype)
    for i, row in enumerate(rows):
        for f in schema.fields:
            value = row.get(f.name, 0 if f.type != "bytes" else b"")
            if f.type == "int128":
                values = value if f.count > 1 else [value]
                lo = [v & (2**64 - 1) for v in values]
                hi = [v >> 64 for v in values]
                out[f.name]["lo"][i] = lo if f.count > 1 else lo[0]
                out[f.name]["hi"][i] = hi if f.count > 1 else hi[0]
            else:
                out[f.name][i] = value
    return out


def from_array(kind: str, records: np.ndarray) -> list[dict[str, Any]]:
    """Decoder records as reference-style dicts (Python ints, bytes, lists), for diffs."""
    schema = SCHEMAS[kind]
    rows = []
    for rec in records:
        row: dict[str, Any] = {}
        for f in schema.fields:
            value = rec[f.name]
            if f.type == "int128" and f.count > 1:
                row[f.name] = [(int(h) << 64) | int(lo) for h, lo in zip(
                    value["hi"], value["lo"], strict=True)]
            elif f.type == "int128":
                row[f.name] = (int(value["hi"]) << 64) | int(value["lo"])
            elif f.type == "bytes":
                row[f.name] = bytes(value)
            elif f.count > 1:
                row[f.name] = [int(x) for x in value]
            else:
                row[f.name] = int(value)
        rows.append(row)
    return rows


def normalize(kind: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reference rows with every dtype field present (defaults as the decoder zero-fills)."""
    return from_array(kind, to_array(kind, rows))
