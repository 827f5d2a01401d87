"""Hypothesis strategies: decimal strings and whole Binance Spot frames from random valid values."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from tests.parsing.helpers import corpus_lines, require_corpus, spot_files
from tests.parsing.reference import (
    FIRST_KEYS,
    INT64_MAX,
    INT64_MIN,
    INT128_MAX,
    INT128_MIN,
    KLINE_INTERVALS,
)


def render(units: int, decimals: int = 8, *, lead: int = 0, trail: int = 0) -> str:
    """`units` of 1e-8 as decimal text with `decimals` places (exact at that precision), plus
    `lead` leading and `trail` trailing zeros."""
    sign = "-" if units < 0 else ""
    whole, frac = divmod(abs(units), 10**8)
    digits = f"{frac:08d}"
    if int(digits[decimals:] or 0):
        raise ValueError(f"{units} is not exact with {decimals} decimals")
    digits = digits[:decimals] + "0" * trail
    text = "0" * lead + str(whole)
    return f"{sign}{text}.{digits}" if digits else f"{sign}{text}"


def units_at(decimals: int, low: int, high: int) -> st.SearchStrategy[int]:
    """Multiples of 10^(8-decimals) within [low, high]."""
    step = 10 ** (8 - decimals)
    return st.integers(-(-low // step), high // step).map(lambda n: n * step)


@st.composite
def decimal_strings(
    draw: st.DrawFn, low: int = INT64_MIN, high: int = INT64_MAX, *, padding: bool = True
) -> str:
    """Any value in [low, high] (biased to everyday magnitudes), 0-8 decimals, and with
    `padding` some leading / trailing zeros."""
    decimals = draw(st.integers(0, 8))
    units = draw(
        st.one_of(
            units_at(decimals, low, high),
            units_at(decimals, max(low, -(10**16)), min(high, 10**16)),
        )
    )
    lead = draw(st.integers(0, 2)) if padding else 0
    trail = draw(st.integers(0, 3)) if padding else 0
    return render(units, decimals, lead=lead, trail=trail)


prices = decimal_strings()
volumes = decimal_strings(INT128_MIN, INT128_MAX)
ms = st.integers(0, INT64_MAX // 1_000_000)  # exchange ms whose ns still fit int64
ids = st.one_of(st.integers(0, 10**12), st.integers(INT64_MIN, INT64_MAX))
bools = st.booleans()
ascii_symbols = st.from_regex(r"[A-Z][A-Z0-9]{1,15}", fullmatch=True)
# UTF-8 symbols (Binance allows them since 2025-12) up to the 32-byte field width; quotes,
# backslashes and "@" are left out so every one can also appear in a stream name, and a
# leading "!" (it marks the all-market streams, `!miniTicker@arr`).
utf8_symbols = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), exclude_characters='"\\@'),
    min_size=1,
    max_size=32,
).filter(lambda s: len(s.encode()) <= 32 and not s.startswith("!"))
symbols = st.one_of(ascii_symbols, ascii_symbols, utf8_symbols)
# Unknown keys the decoder must skip, whatever their value.
extras = st.dictionaries(
    st.sampled_from(["M", "X", "ignore", "B", "zz", "nested"]),
    st.one_of(st.none(), bools, st.integers(), st.text(max_size=5), st.just({"a": [1, {}]})),
    max_size=2,
)


def stream_symbol(symbol: str) -> str:
    """Stream names use lowercase symbols (a case mapping that changes the UTF-8 length, as
    "İ" does, would push some past the 32-byte width: those keep their case)."""
    lower = symbol.lower()
    return lower if len(lower.encode()) == len(symbol.encode()) else symbol


@st.composite
def _shuffled(draw: st.DrawFn, fields: dict[str, Any], first: str | None) -> dict[str, Any]:
    """Fields plus unknown extras in a random order; `first` first (Binance's order: a raw
    frame is told apart by it) or anywhere (read after a second look through the keys), but
    first when the order drawn leads with a key that names a kind (a first "u" makes any
    frame a bookTicker)."""
    items = {**draw(extras), **fields}
    order = draw(st.permutations(list(items)))
    if first is not None and (draw(st.booleans()) or order[0] in FIRST_KEYS):
        order.remove(first)
        order.insert(0, first)
    return {k: items[k] for k in order}


@st.composite
def trade(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    sym = draw(symbols)
    fields = {
        "e": "trade", "E": draw(ms), "s": sym, "t": draw(ids), "p": draw(prices),
        "q": draw(prices), "T": draw(ms), "m": draw(bools),
    }  # fmt: skip
    return f"{stream_symbol(sym)}@trade", draw(_shuffled(fields, "e"))


@st.composite
def agg_trade(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    sym = draw(symbols)
    fields = {
        "e": "aggTrade", "E": draw(ms), "s": sym, "a": draw(ids), "p": draw(prices),
        "q": draw(prices), "f": draw(ids), "l": draw(ids), "T": draw(ms), "m": draw(bools),
    }  # fmt: skip
    return f"{stream_symbol(sym)}@aggTrade", draw(_shuffled(fields, "e"))


@st.composite
def book_ticker(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    sym = draw(symbols)
    fields = {
        "u": draw(ids), "s": sym, "b": draw(prices), "B": draw(prices), "a": draw(prices),
        "A": draw(prices),
    }  # fmt: skip
    return f"{stream_symbol(sym)}@bookTicker", draw(_shuffled(fields, "u"))


def levels(max_size: int) -> st.SearchStrategy[list[list[str]]]:
    return st.lists(st.tuples(prices, prices).map(list), max_size=max_size)


# Binance's own form, "<1-6 digits>.<8 digits>", which the decoder reads a level at a time
usual = st.integers(0, 10**14 - 1).map(render)
usual_levels = st.lists(st.tuples(usual | prices, usual | volumes).map(list), max_size=40)


def _depth_fields(draw: st.DrawFn, sides: st.SearchStrategy[list[list[str]]]
                  ) -> tuple[str, dict[str, Any]]:
    """(symbol, a diff-depth event in Binance's field order, "a" last)."""
    sym = draw(symbols)
    first, last = sorted((draw(ids), draw(ids)))  # U after u is rejected (`bad_range`)
    return sym, {"e": "depthUpdate", "E": draw(ms), "s": sym, "U": first, "u": last,
                 "b": draw(sides), "a": draw(sides)}


@st.composite
def depth(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    sym, fields = _depth_fields(draw, levels(25))
    cadence = draw(st.sampled_from(["", "@100ms", "@1000ms"]))
    return f"{stream_symbol(sym)}@depth{cadence}", draw(_shuffled(fields, "e"))


@st.composite
def depth_in_order(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """Diff depth in Binance's field order: read to the frame's end by hand."""
    sym, fields = _depth_fields(draw, usual_levels)
    return f"{stream_symbol(sym)}@depth@100ms", fields


@st.composite
def depth_partial(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    n = draw(st.sampled_from([5, 10, 20]))
    cadence = draw(st.sampled_from(["", "@100ms", "@1000ms"]))
    fields = {"lastUpdateId": draw(ids), "bids": draw(levels(n)), "asks": draw(levels(n))}
    stream = f"{stream_symbol(draw(symbols))}@depth{n}{cadence}"
    return stream, draw(_shuffled(fields, "lastUpdateId"))


@st.composite
def kline(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    sym = draw(symbols)
    interval = draw(st.sampled_from(KLINE_INTERVALS))
    bar = {
        "t": draw(ms), "T": draw(ms), "s": sym, "i": interval, "f": draw(ids), "L": draw(ids),
        "o": draw(prices), "c": draw(prices), "h": draw(prices), "l": draw(prices),
        "v": draw(volumes), "n": draw(ids), "x": draw(bools), "q": draw(volumes),
        "V": draw(volumes), "Q": draw(volumes), "B": "0",
    }  # fmt: skip
    fields = {"e": "kline", "E": draw(ms), "s": sym, "k": draw(_shuffled(bar, None))}
    tz = draw(st.sampled_from(["", "@+08:00"]))
    return f"{stream_symbol(sym)}@kline_{interval}{tz}", draw(_shuffled(fields, "e"))


def _mini_fields(draw: st.DrawFn, sym: str) -> dict[str, Any]:
    return {
        "e": "24hrMiniTicker", "E": draw(ms), "s": sym, "c": draw(prices), "o": draw(prices),
        "h": draw(prices), "l": draw(prices), "v": draw(volumes), "q": draw(volumes),
    }  # fmt: skip


def _window_stats(draw: st.DrawFn) -> dict[str, Any]:
    return {"O": draw(ms), "C": draw(ms), "F": draw(ids), "L": draw(ids), "n": draw(ids)}


def _ticker_fields(draw: st.DrawFn, sym: str) -> dict[str, Any]:
    decimals = {k: draw(prices) for k in "pPwxcQbBaAohl"}
    return {
        "e": "24hrTicker", "E": draw(ms), "s": sym, **decimals, "v": draw(volumes),
        "q": draw(volumes), **_window_stats(draw),
    }  # fmt: skip


def _window_fields(draw: st.DrawFn, sym: str, window: str) -> dict[str, Any]:
    decimals = {k: draw(prices) for k in "pPohlcw"}
    return {
        "e": f"{window}Ticker", "E": draw(ms), "s": sym, **decimals, "v": draw(volumes),
        "q": draw(volumes), **_window_stats(draw),
    }  # fmt: skip


@st.composite
def mini_ticker(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    sym = draw(symbols)
    return f"{stream_symbol(sym)}@miniTicker", draw(_shuffled(_mini_fields(draw, sym), "e"))


@st.composite
def ticker(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    sym = draw(symbols)
    return f"{stream_symbol(sym)}@ticker", draw(_shuffled(_ticker_fields(draw, sym), "e"))


@st.composite
def window_ticker(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    sym = draw(symbols)
    window = draw(st.sampled_from(["1h", "4h", "1d"]))
    payload = draw(_shuffled(_window_fields(draw, sym, window), "e"))
    return f"{stream_symbol(sym)}@ticker_{window}", payload


@st.composite
def avg_price(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    sym = draw(symbols)
    fields = {
        "e": "avgPrice", "E": draw(ms), "s": sym, "i": draw(st.sampled_from(["5m", "1m"])),
        "w": draw(prices), "T": draw(ms),
    }  # fmt: skip
    return f"{stream_symbol(sym)}@avgPrice", draw(_shuffled(fields, "e"))


@st.composite
def ticker_array(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    """!miniTicker@arr, !ticker@arr or !ticker_<w>@arr: arrays of changed symbols."""
    which = draw(st.sampled_from(["mini", "ticker", "1h", "4h", "1d"]))
    n = draw(st.integers(0, 6))
    items = []
    for _ in range(n):
        sym = draw(symbols)
        if which == "mini":
            fields = _mini_fields(draw, sym)
        elif which == "ticker":
            fields = _ticker_fields(draw, sym)
        else:
            fields = _window_fields(draw, sym, which)
        items.append(draw(_shuffled(fields, "e")))
    stream = {"mini": "!miniTicker@arr", "ticker": "!ticker@arr"}.get(which, f"!ticker_{which}@arr")
    return stream, items


@st.composite
def control(draw: st.DrawFn) -> tuple[str | None, dict[str, Any]]:
    """Subscription replies and errors (raw only) and serverShutdown (raw or combined)."""
    which = draw(st.sampled_from(["result", "error", "shutdown"]))
    if which == "result":
        result = draw(st.one_of(st.none(), st.just(["btcusdt@aggTrade"]), st.booleans()))
        an_id = draw(st.one_of(ids, st.none(), st.text("ab12", max_size=8)))
        first = draw(st.sampled_from(["result", "id"]))
        fields = {"result": result, "id": an_id}
        return None, {first: fields[first], **fields}
    if which == "error":
        return None, {"code": draw(st.integers(-5, 5)), "msg": draw(st.text(max_size=20))}
    return "!serverShutdown", {"e": "serverShutdown", "E": draw(ms)}


EVENTS = [trade, agg_trade, book_ticker, depth, depth_in_order, depth_partial, kline, mini_ticker,
          ticker, window_ticker, avg_price, ticker_array, control]  # fmt: skip


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@st.composite
def frames_of(draw: st.DrawFn, event: Any) -> bytes:
    """One frame of `event`'s kind, raw or in the combined wrapper. Partial depth goes in the
    wrapper (a raw one needs its stream as a hint: tested on its own)."""
    stream, payload = draw(event())
    combined = stream is not None and (event is depth_partial or draw(st.booleans()))
    if not combined:
        return encode(payload)
    if draw(st.booleans()):
        return encode({"stream": stream, "data": payload})
    return encode({"data": payload, "stream": stream})  # not Binance's order


# Fuzz: real corpus frames with bytes flipped, inserted, deleted or cut, between two anchors.
# Bytes that make mutations meaningful to a JSON parser more often than random ones.
STRUCTURAL = b'{}[]",:.-+eE019 \\\t\nntf\x00\xff\xc3'
FRAMES = [f for name in spot_files() for f in corpus_lines(name)]  # [] without the corpus
ANCHOR_BEFORE = b'{"u":1,"s":"FUZZ","b":"1","B":"1","a":"2","A":"1"}'
ANCHOR_AFTER = b'{"u":2,"s":"FUZZ","b":"1","B":"1","a":"2","A":"1"}'


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    require_corpus()
    frame = bytearray(draw(st.sampled_from(FRAMES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(frame)))
        byte = draw(st.one_of(st.sampled_from(list(STRUCTURAL)), st.integers(0, 255)))
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        if op == "flip" and at < len(frame):
            frame[at] = byte
        elif op == "insert":
            frame[at:at] = bytes([byte])
        elif op == "delete" and at < len(frame):
            del frame[at]
        elif op == "truncate":
            del frame[at:]
        elif op == "duplicate":
            end = draw(st.integers(at, min(len(frame), at + 40)))
            frame[at:at] = frame[at:end]
    return bytes(frame)
