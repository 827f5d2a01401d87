"""The stream grammar, from the kind declarations: which stream names exist and what they carry.

The decoder extension runs the same grammar (generated into ext/cpp/decoder_gen.h from the same
declarations; `feedhandler._ext.decoder.classify_stream` exposes it and a test holds the two
equal). Config validation uses `normalize_streams` so a bad name fails at start, naming it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from feedhandler.contract.kinds import (
    KIND_BY_NAME,
    KINDS,
    MAX_STREAMS_PER_CONNECTION,
    SYMBOL_WIDTH,
    Kind,
    Suffix,
)

# suffix after `<symbol>@`, or a whole market-wide `!…` name -> (kind, what the name says)
GRAMMAR: dict[str, tuple[Kind, Suffix]] = {s.text: (k, s) for k in KINDS for s in k.streams}


@dataclass(frozen=True)
class Stream:
    name: str
    kind: str
    symbol: str  # upper case as in payloads; "" for market-wide streams
    levels: int = 0  # partial depth 5/10/20
    utc_offset_min: int = 0  # kline `@+08:00`: 480
    array: bool = False  # payloads are JSON arrays of events


def parse_stream(name: str) -> Stream | None:
    """A stream name as Binance spells it (lower-case symbol) -> what it carries; None if it
    is not a stream the decoder understands."""
    if name.startswith("!"):
        entry = GRAMMAR.get(name)
        if entry is None or not entry[1].market:
            return None
        kind, sfx = entry
        return Stream(name, kind.name, "", sfx.levels, sfx.utc_offset_min, sfx.array)
    symbol, at, suffix = name.partition("@")
    entry = GRAMMAR.get(suffix)
    if (not at or entry is None or entry[1].market or not symbol.isalnum()
            or symbol != symbol.lower() or len(symbol.encode()) > SYMBOL_WIDTH):
        return None
    kind, sfx = entry
    return Stream(name, kind.name, symbol.upper(), sfx.levels, sfx.utc_offset_min, sfx.array)


def normalize_stream(name: str) -> str:
    """Lower-cases the symbol (`BTCUSDT@trade` -> `btcusdt@trade`); suffixes are
    case-sensitive (`kline_1M` is a month, `kline_1m` a minute)."""
    name = name.strip()
    if name.startswith("!"):
        return name
    symbol, at, suffix = name.partition("@")
    return f"{symbol.lower()}{at}{suffix}"


def normalize_streams(names: Iterable[str],
                      per_connection: int | None = MAX_STREAMS_PER_CONNECTION) -> list[str]:
    """Stream names as Binance wants them, in the given order; ValueError (one line, naming
    the stream) for an unknown stream, a duplicate, or more than `per_connection` streams
    (None: no limit, the list is split into connections later). A set to subscribe is also
    checked by `clash`."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in names:
        name = normalize_stream(raw)
        if parse_stream(name) is None:
            raise ValueError(f"unknown stream {raw!r} (e.g. btcusdt@trade, btcusdt@depth@100ms, "
                             "btcusdt@kline_1m, !miniTicker@arr)")
        if name in seen:
            raise ValueError(f"duplicate stream {raw!r}")
        seen.add(name)
        out.append(name)
    if per_connection is not None and len(out) > per_connection:
        raise ValueError(f"{len(out)} streams on one connection, more than {per_connection}: "
                         f"{out[per_connection]!r} is the first beyond the limit")
    return out


def clash(names: Iterable[str]) -> str | None:
    """Why two of these streams cannot be taken together, or None. A kind's sequence ids hold
    per symbol (one message key), so two streams of one kind with ids for one symbol
    (`btcusdt@depth` and `btcusdt@depth@100ms`, `btcusdt@depth5` and `btcusdt@depth20`, or
    `!bookTicker` and `btcusdt@bookTicker`) would interleave them: each would look like a step
    back of the other, to the handler's checks and to consumers'."""
    for other, name, kind, symbol in _clashes(names):
        return (f"{other} and {name} both carry {kind} ids of {symbol or 'the same symbols'}, "
                "which would interleave: take one of them")
    return None


def suffix_clash(suffixes: Iterable[str]) -> str | None:
    """`clash` for per-symbol stream suffixes taken for every symbol (`universe.kinds`):
    `depth` and `depth@100ms` would interleave every symbol's ids."""
    for other, name, kind, _ in _clashes(f"x@{suffix}" for suffix in suffixes):
        return (f"{other[2:]} and {name[2:]} both carry {kind} ids of a symbol, which would "
                "interleave: take one of them")
    return None


def apart(names: Iterable[str]) -> list[str]:
    """`names` less each stream that clashes with one before it (see `clash`)."""
    names = list(names)
    dropped = {name for _, name, _, _ in _clashes(names)}
    return [name for name in names if name not in dropped]


def _clashes(names: Iterable[str]) -> Iterator[tuple[str, str, str, str]]:
    """(a stream taken, a later one that clashes with it, their kind, the symbol: "" when
    one is market-wide)."""
    taken: dict[tuple[str, str], str] = {}  # (kind, symbol: "" market-wide) -> its stream
    for name in names:
        stream = parse_stream(name)
        if stream is None or KIND_BY_NAME[stream.kind].sequence is None:
            continue
        if stream.symbol:  # the same symbol's stream, or a market-wide one, came before
            other = taken.get((stream.kind, stream.symbol)) or taken.get((stream.kind, ""))
        else:  # a market-wide stream carries every symbol's
            other = next((n for (kind, _), n in taken.items() if kind == stream.kind), None)
        if other is not None and other != name:
            yield other, name, stream.kind, stream.symbol
        else:
            taken[(stream.kind, stream.symbol)] = name


def url_time_unit(url: str) -> tuple[str, str]:
    """(`ms` or `us`, the `timeUnit` text as given, "" for none) of a URL: what its streams'
    times are in."""
    given = _query(urlsplit(url).query).get("timeUnit", "")
    return ("us" if given.upper() == "MICROSECOND" else "ms"), given


def _query(query: str) -> dict[str, str]:
    # not parse_qs: it would read the `+` of `kline_1h@+08:00` as a space
    return dict(p.partition("=")[::2] for p in query.split("&"))


def url_streams(url: str) -> list[str] | None:
    """The streams a URL with a path names (`/ws/<a>/<b>`, `/stream?streams=a/b`); None for a
    base URL (streams come from the configuration). ValueError if it has a path but no stream."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return None
    path = unquote(parts.path)
    if path.startswith("/ws/"):
        names = path[len("/ws/"):].split("/")
    elif path.rstrip("/") == "/stream":
        names = unquote(_query(parts.query).get("streams", "")).split("/")
    else:
        names = []
    names = [n for n in names if n]
    if not names:
        raise ValueError(f"url {url!r} has a path but names no stream (use a base URL such as "
                         "wss://stream.binance.com:9443, or /ws/<stream>, "
                         "/stream?streams=<a>/<b>)")
    return names
