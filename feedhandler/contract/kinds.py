"""One declaration per record kind: the single source of every layout, parser table and grammar.

Plain Python data, importable without the compiled extension. From it follow:
- the record layouts and numpy dtypes (`feedhandler.records.SCHEMAS`: declared field order,
  natural C alignment);
- the C++ structs, field tables, key -> (offset, reader) tables and stream grammar tables
  (`python -m feedhandler.contract.codegen` writes ext/cpp/kinds_gen.h);
- the stream grammar used by config validation (`feedhandler.contract.streams`);
- the sequence rules (`SEQUENCE_FIELDS`) and the contract docs.

A field's `key` is its JSON key ("k.t" = key `t` of the object under `k`); a field without a
key is set by the decoder (`ts_recv`) or by the kind's hook. Kinds with `hook=True` (depth,
partial depth, kline, window tickers, control) have hand-written parsers in ext/cpp/decoder.cpp
that fill these same structs; every other market kind is decoded from its tables alone.

The position in `KINDS` is the kind's number on the wire (the `kind` column of gap records):
new kinds are appended, never inserted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Role(Enum):
    MARKET = "market"  # a Binance stream's payload
    CONTROL = "control"  # exchange control messages: responses, errors, serverShutdown
    GAP = "gap"  # sequence discontinuities the decoder found
    DERIVED = "derived"  # computed by the handler from other kinds (no stream carries it)


DATA_ROLES = (Role.MARKET, Role.DERIVED)  # published as records on data topics


class Read(Enum):
    """How a JSON value becomes its column."""

    INTEGER = "integer"  # JSON integer -> int64; beyond int64 is `overflow`
    TIMESTAMP = "timestamp"  # JSON integer in the connection's time unit -> int64 ns
    DECIMAL = "decimal"  # decimal string -> fixed8/int128 count of 1e-8 units, exact
    BOOL = "bool"  # JSON true/false -> uint8 1/0
    TEXT = "text"  # JSON string -> NUL-padded bytes; too long is `wrong_type`
    SYMBOL = "symbol"  # JSON string -> symbol bytes; too long is `symbol_too_long`
    NONE = "none"  # not read from a key: set by the decoder or the kind's hook


class Rule(Enum):
    """Sequence continuity per (kind, symbol) within one connection (epoch)."""

    CONTIGUOUS = "contiguous"  # each message's first id = the previous message's last id + 1
    INCREASING = "increasing"  # ids only increase; steps may skip (bookTicker `u`)
    NON_DECREASING = "non-decreasing"  # as INCREASING, but an equal id may restate (`book`)


# Storage types of a column (numpy/C++): the README's decimal64 is `fixed8`, decimal128 `int128`.
TYPES = ("int64", "int16", "uint8", "fixed8", "int128", "bytes")


@dataclass(frozen=True)
class Field:
    name: str  # column name
    type: str  # one of TYPES
    key: str | None = None  # JSON key; "k.t" = key t inside object k; None = not from a key
    read: Read = Read.NONE
    count: int = 1  # sub-array length, or byte width for `bytes`
    required: bool = True  # a frame without the key is `missing_field`
    null_flag: str | None = None  # nullable: the uint8 column set to 1 when a value came
    doc: str = ""
    # Earlier layouts, still decoded: ((version, type), ...) = the field had `type` up to and
    # including `version` of its kind's schema.
    was: tuple[tuple[int, str], ...] = ()
    # exchangeInfo's grid the value lies on: "tick" (PRICE_FILTER tickSize) or "step"
    # (LOT_SIZE stepSize); None: not bound to one (volumes, averages, percentages)
    grid: str | None = None

    def type_at(self, version: int) -> str:
        for until, type_ in sorted(self.was):
            if version <= until:
                return type_
        return self.type

    @property
    def nullable(self) -> bool:
        return self.null_flag is not None


@dataclass(frozen=True)
class Sequence:
    first: str  # column holding the first id a message covers
    last: str  # column holding the last id
    rule: Rule


@dataclass(frozen=True)
class Suffix:
    """A per-symbol stream suffix (after `<symbol>@`), or a whole market-wide stream name."""

    text: str
    levels: int = 0  # partial depth: 5, 10 or 20
    utc_offset_min: int = 0  # kline `@+08:00`: 480
    market: bool = False  # a market-wide `!…` name: no symbol, payload may be an array
    array: bool = False  # the payload is a JSON array of events


@dataclass(frozen=True)
class Kind:
    name: str  # table name, topic segment and the `kind` label: "trade"
    role: Role
    fields: tuple[Field, ...]
    version: int = 1
    namespace: str = "binance.spot"
    streams: tuple[Suffix, ...] = ()  # the stream names that carry this kind
    events: tuple[str, ...] = ()  # its `e` values
    first_keys: tuple[str, ...] = ()  # payloads without `e`: a first key that identifies it
    sequence: Sequence | None = None
    hook: bool = False  # decoded by hand-written code (ext/cpp/decoder.cpp)
    notes: str = ""
    example: str = ""  # a payload as Binance sends it (protocol doc or captured corpus)
    derived_from: str = ""  # Role.DERIVED: the kind whose streams' symbols it is made for

    @property
    def schema(self) -> str:
        return f"{self.namespace}.{self.name}"

    @property
    def old_versions(self) -> tuple[int, ...]:
        """Earlier schema versions whose layouts `feedhandler.decode` still reads."""
        return tuple(sorted({v for f in self.fields for v, _ in f.was}))

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")


# --- stream grammar values -------------------------------------------------------------------
KLINE_INTERVALS = ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
                   "1d", "3d", "1w", "1M")
WINDOWS = ("1h", "4h", "1d")
DEPTH_LEVELS = (5, 10, 20)
DEPTH_SPEEDS = ("", "@100ms", "@1000ms")  # "" = the default 1000 ms cadence
MAX_STREAMS_PER_CONNECTION = 1024
SYMBOL_WIDTH = 32
PARTIAL_DEPTH_LEVELS = 20
BOOK_LEVELS = 20  # slots per side of a `book` record (book.top_n fills the best N)


# --- field constructors ----------------------------------------------------------------------
V1_FIXED8 = ((1, "fixed8"),)  # int64 at 1e-8 in schema v1; int128 since v2
def recv() -> Field:
    return Field("ts_recv", "int64",
                 doc="local receive time, ns since the Unix epoch (CLOCK_REALTIME, one per frame)")


def ts(key: str, name: str, doc: str) -> Field:
    return Field(name, "int64", key, Read.TIMESTAMP, doc=doc)


def i64(key: str, name: str, doc: str) -> Field:
    return Field(name, "int64", key, Read.INTEGER, doc=doc)


def price(key: str, name: str, doc: str, null_flag: str | None = None,
          grid: str | None = "tick") -> Field:
    return Field(name, "fixed8", key, Read.DECIMAL, null_flag=null_flag, doc=doc, grid=grid)


def qty(key: str, name: str, doc: str) -> Field:
    """The quantity of one order or trade: int64 at 1e-8 holds it, since the engine refuses
    orders above LOT_SIZE maxQty (exchangeInfo's largest: 46 116 860 414 = int64 / 2 at 1e-8)."""
    return Field(name, "fixed8", key, Read.DECIMAL, doc=doc, grid="step")


def level_qty(key: str, name: str, doc: str, was: tuple[tuple[int, str], ...] = V1_FIXED8
              ) -> Field:
    """A quantity summed over orders (a book level): 128-bit, since a cheap token's level
    (PEPE, SHIB: 1e9-1e11 units) exceeds int64 at 1e-8 (9.2e10). Prices stay int64:
    exchangeInfo's largest maxPrice (1e10) is well inside it."""
    return Field(name, "int128", key, Read.DECIMAL, doc=doc, was=was, grid="step")


def wide(key: str, name: str, doc: str) -> Field:
    return Field(name, "int128", key, Read.DECIMAL, doc=doc)


def flag(key: str, name: str, doc: str) -> Field:
    return Field(name, "uint8", key, Read.BOOL, doc=doc)


def text(key: str, name: str, width: int, doc: str) -> Field:
    return Field(name, "bytes", key, Read.TEXT, width, doc=doc)


def symbol(key: str | None = "s") -> Field:
    if key is None:
        return Field("symbol", "bytes", count=SYMBOL_WIDTH,
                     doc="from the stream name (the payload has none), e.g. BTCUSDT")
    return Field("symbol", "bytes", key, Read.SYMBOL, SYMBOL_WIDTH,
                 doc="`s`, UTF-8, NUL-padded; a longer one is rejected, never cut")


def local(name: str, type_: str, doc: str, count: int = 1,
          was: tuple[tuple[int, str], ...] = (), grid: str | None = None) -> Field:
    """A column the decoder or the kind's hook sets (no JSON key of its own)."""
    return Field(name, type_, count=count, doc=doc, was=was, grid=grid)


E = ts("E", "ts_event", "event time `E`, ns since the Unix epoch")
BUYER_IS_MAKER = flag("m", "buyer_is_maker", "1 if the buyer is the maker (`m`)")
_TICKER_STATS = (
    ts("O", "ts_open", "statistics open time `O`, ns"),
    ts("C", "ts_close", "statistics close time `C`, ns (the update time)"),
    i64("F", "first_trade_id", "`F`"),
    i64("L", "last_trade_id", "`L`"),
    i64("n", "n_trades", "trade count `n`"),
)
_PCT = "`P`, percent (not a fraction): 250.00 percent is 25000000000"


def _trade_fields(id_doc: str, qty_field: Field) -> tuple[Field, ...]:
    """trade and blockTrade (§4.3: the same fields, without `M`)."""
    return (recv(), E, ts("T", "ts_trade", "trade time `T`, ns"), i64("t", "trade_id", id_doc),
            price("p", "price", "`p`"), qty_field, BUYER_IS_MAKER, symbol())


def _per_symbol(*texts: str) -> tuple[Suffix, ...]:
    return tuple(Suffix(t) for t in texts)


# --- the kinds, in wire order ----------------------------------------------------------------
KINDS: tuple[Kind, ...] = (
    Kind(
        "trade", Role.MARKET,
        _trade_fields("`t`", qty("q", "qty", "`q`")),
        streams=_per_symbol("trade"), events=("trade",),
        sequence=Sequence("trade_id", "trade_id", Rule.CONTIGUOUS),
        notes="One record per trade. `M` (ignore) is skipped.",
        example='{"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100",'
                '"T":1672515782136,"m":true,"M":true}',
    ),
    Kind(
        "aggTrade", Role.MARKET,
        (recv(), E, ts("T", "ts_trade", "trade time `T`, ns"), i64("a", "agg_id", "`a`"),
         i64("f", "first_trade_id", "`f`"), i64("l", "last_trade_id", "`l`"),
         price("p", "price", "`p`"), qty("q", "qty", "`q`"), BUYER_IS_MAKER, symbol()),
        streams=_per_symbol("aggTrade"), events=("aggTrade",),
        sequence=Sequence("agg_id", "agg_id", Rule.CONTIGUOUS),
        notes="One record per taker order aggregate.",
        example='{"e":"aggTrade","E":1672515782136,"s":"BNBBTC","a":12345,"p":"0.001",'
                '"q":"100","f":100,"l":105,"T":1672515782136,"m":true,"M":true}',
    ),
    Kind(
        "bookTicker", Role.MARKET,
        (recv(), i64("u", "update_id", "order book update id `u`"),
         price("b", "bid_price", "`b`"), level_qty("B", "bid_qty", "`B`"),
         price("a", "ask_price", "`a`"), level_qty("A", "ask_qty", "`A`"), symbol()),
        version=2,  # level quantities int128 (v1: int64)
        streams=(*_per_symbol("bookTicker"), Suffix("!bookTicker", market=True)),
        first_keys=("u",),
        sequence=Sequence("update_id", "update_id", Rule.INCREASING),
        notes="No `e`/`E` in spot: a payload is recognised by its key `u`, first as Binance "
              "sends it. `u` is on the depth update-id sequence, so it only increases (steps "
              "skip).",
        example='{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000",'
                '"a":"25.36520000","A":"40.66000000"}',
    ),
    Kind(
        "depth", Role.MARKET,
        (recv(), E, i64("U", "first_update_id", "`U`"), i64("u", "last_update_id", "`u`"),
         local("price", "fixed8", "level price (from `b`/`a`)", grid="tick"),
         local("qty", "int128", "level quantity, absolute; 0 removes the level",
               was=V1_FIXED8, grid="step"),
         local("side", "uint8", "0 bid, 1 ask, 2 none (an event without levels)"),
         local("flags", "uint8",
               "1 = first row of its event, 2 = last row (an event is rows FIRST..LAST), "
               "4 = a row of a depth snapshot (`book.snapshots`), 8 = a snapshot row of a "
               "side cut at the request's limit (levels beyond the side's last are unknown)"),
         symbol()),
        version=2,  # level quantities int128 (v1: int64)
        streams=tuple(Suffix(f"depth{speed}") for speed in DEPTH_SPEEDS),
        events=("depthUpdate",),
        sequence=Sequence("first_update_id", "last_update_id", Rule.CONTIGUOUS),
        hook=True,
        notes="One row per price level; an event without levels is one side-2 row, so U/u "
              "continuity stays checkable. A depth snapshot's rows (flag 4) have `ts_event` 0 "
              "(a snapshot has no event time) and U = u = its lastUpdateId.",
        example='{"e":"depthUpdate","E":1672515782136,"s":"BNBBTC","U":157,"u":160,'
                '"b":[["0.0024","10"]],"a":[["0.0026","100"]]}',
    ),
    Kind(
        "depthPartial", Role.MARKET,
        (recv(), i64("lastUpdateId", "last_update_id", "`lastUpdateId`"),
         local("bid_price", "fixed8", "bids, best first", PARTIAL_DEPTH_LEVELS, grid="tick"),
         local("bid_qty", "int128", "bids, best first", PARTIAL_DEPTH_LEVELS, V1_FIXED8, "step"),
         local("ask_price", "fixed8", "asks, best first", PARTIAL_DEPTH_LEVELS, grid="tick"),
         local("ask_qty", "int128", "asks, best first", PARTIAL_DEPTH_LEVELS, V1_FIXED8, "step"),
         local("levels", "uint8", "5, 10 or 20 from the stream name (0 if unknown)"),
         local("bid_count", "uint8", "bid levels filled; unused slots hold 0"),
         local("ask_count", "uint8", "ask levels filled; unused slots hold 0"),
         symbol(None)),
        version=2,  # level quantities int128 (v1: int64)
        streams=tuple(Suffix(f"depth{n}{speed}", levels=n)
                      for n in DEPTH_LEVELS for speed in DEPTH_SPEEDS),
        first_keys=("lastUpdateId",),
        sequence=Sequence("last_update_id", "last_update_id", Rule.INCREASING),
        hook=True,
        notes="A top-N snapshot, not a diff. No `e`, `E` or `s`: the symbol and level count "
              "come from the stream name.",
        example='{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}',
    ),
    Kind(
        "kline", Role.MARKET,
        (recv(), E, ts("k.t", "ts_open", "bar start `k.t`, ns"),
         ts("k.T", "ts_close",
            "bar close `k.T`, ns, inclusive (start + span - 1 ms; - 1 µs in time unit us)"),
         i64("k.f", "first_trade_id", "`k.f` (-1 when the bar has no trade)"),
         i64("k.L", "last_trade_id", "`k.L` (-1 when the bar has no trade)"),
         i64("k.n", "n_trades", "`k.n`"),
         price("k.o", "open", "`k.o`"), price("k.h", "high", "`k.h`"),
         price("k.l", "low", "`k.l`"), price("k.c", "close", "`k.c`"),
         wide("k.v", "volume", "base volume `k.v`"),
         wide("k.q", "quote_volume", "quote volume `k.q`"),
         wide("k.V", "taker_buy_volume", "taker-buy base volume `k.V`"),
         wide("k.Q", "taker_buy_quote_volume", "taker-buy quote volume `k.Q`"),
         flag("k.x", "closed", "1 if the bar is final (`k.x`)"),
         text("k.i", "interval", 4, "`k.i`, e.g. 1m"),
         local("utc_offset_min", "int16", "+480 for `@+08:00` streams, else 0"),
         symbol()),
        streams=tuple(Suffix(f"kline_{i}{tz}", utc_offset_min=480 if tz else 0)
                      for i in KLINE_INTERVALS for tz in ("", "@+08:00")),
        events=("kline",),
        hook=True,
        notes="Bars of the `@+08:00` streams open on UTC+8 boundaries; their times are still "
              "plain Unix time.",
        example='{"e":"kline","E":1672515782136,"s":"BNBBTC","k":{"t":1672515780000,'
                '"T":1672515839999,"s":"BNBBTC","i":"1m","f":100,"L":200,"o":"0.0010",'
                '"c":"0.0020","h":"0.0025","l":"0.0015","v":"1000","n":100,"x":false,'
                '"q":"1.0000","V":"500","Q":"0.500","B":"123456"}}',
    ),
    Kind(
        "miniTicker", Role.MARKET,
        (recv(), E, price("c", "close", "`c`"), price("o", "open", "`o`"),
         price("h", "high", "`h`"), price("l", "low", "`l`"),
         wide("v", "volume", "base volume `v`"), wide("q", "quote_volume", "quote volume `q`"),
         symbol()),
        streams=(*_per_symbol("miniTicker"),
                 Suffix("!miniTicker@arr", market=True, array=True)),
        events=("24hrMiniTicker",),
        notes="24 h rolling window. `!miniTicker@arr` carries an array of them (changed "
              "symbols only).",
        example='{"e":"24hrMiniTicker","E":1672515782136,"s":"BNBBTC","c":"0.0025",'
                '"o":"0.0010","h":"0.0025","l":"0.0010","v":"10000","q":"18"}',
    ),
    Kind(
        "ticker", Role.MARKET,
        (recv(), E, price("p", "price_change", "`p`"),
         price("P", "price_change_pct", _PCT, grid=None),
         price("w", "weighted_avg_price", "`w`", grid=None),
         price("x", "prev_close", "`x`, last price before the window"),
         price("c", "last_price", "`c`"), qty("Q", "last_qty", "`Q`"),
         price("b", "bid_price", "`b`"), level_qty("B", "bid_qty", "`B`"),
         price("a", "ask_price", "`a`"), level_qty("A", "ask_qty", "`A`"),
         price("o", "open", "`o`"), price("h", "high", "`h`"), price("l", "low", "`l`"),
         wide("v", "volume", "base volume `v`"), wide("q", "quote_volume", "quote volume `q`"),
         *_TICKER_STATS, symbol()),
        version=2,  # level quantities int128 (v1: int64)
        streams=(*_per_symbol("ticker"), Suffix("!ticker@arr", market=True, array=True)),
        events=("24hrTicker",),
        notes="24 h rolling window. `!ticker@arr` was retired 2026-03-26 (still decoded).",
        example='{"e":"24hrTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00",'
                '"w":"0.0018","x":"0.0009","c":"0.0025","Q":"10","b":"0.0024","B":"10",'
                '"a":"0.0026","A":"100","o":"0.0010","h":"0.0025","l":"0.0010","v":"10000",'
                '"q":"18","O":0,"C":86400000,"F":0,"L":18150,"n":18151}',
    ),
    Kind(
        "windowTicker", Role.MARKET,
        (recv(), E, price("p", "price_change", "`p`"),
         price("P", "price_change_pct", _PCT, grid=None),
         price("o", "open", "`o`"), price("h", "high", "`h`"), price("l", "low", "`l`"),
         price("c", "last_price", "`c`"),
         price("w", "weighted_avg_price", "`w`", grid=None),
         wide("v", "volume", "base volume `v`"), wide("q", "quote_volume", "quote volume `q`"),
         *_TICKER_STATS,
         local("window", "bytes", "1h, 4h or 1d, from `e` (\"1hTicker\")", 4),
         symbol()),
        streams=(*(Suffix(f"ticker_{w}") for w in WINDOWS),
                 *(Suffix(f"!ticker_{w}@arr", market=True, array=True) for w in WINDOWS)),
        events=tuple(f"{w}Ticker" for w in WINDOWS),
        hook=True,
        notes="Rolling 1h/4h/1d window; `O` is minute-aligned, so the effective window can be "
              "up to 59 999 ms wider than nominal.",
        example='{"e":"1hTicker","E":1672515782136,"s":"BNBBTC","p":"0.0015","P":"250.00",'
                '"o":"0.0010","h":"0.0025","l":"0.0010","c":"0.0025","w":"0.0018",'
                '"v":"10000","q":"18","O":0,"C":1675216573749,"F":0,"L":18150,"n":18151}',
    ),
    Kind(
        "avgPrice", Role.MARKET,
        (recv(), E, ts("T", "ts_trade", "last trade time `T`, ns"),
         price("w", "price", "average price `w`", grid=None),
         text("i", "interval", 8, "averaging interval `i`, e.g. 5m"), symbol()),
        streams=_per_symbol("avgPrice"), events=("avgPrice",),
        example='{"e":"avgPrice","E":1693907033000,"s":"BTCUSDT","i":"5m",'
                '"w":"25776.86000000","T":1693907032213}',
    ),
    Kind(
        "control", Role.CONTROL,
        (recv(), local("ts_event", "int64", "`E` of serverShutdown, ns; else 0"),
         local("id", "int64", "request id; -1 when absent, null or not an integer"),
         local("code", "int64", "error code of an error reply; else 0"),
         local("type", "uint8", "1 result, 2 error, 3 serverShutdown")),
        namespace="feedhandler",
        streams=(Suffix("!serverShutdown", market=True),),
        events=("serverShutdown",),
        first_keys=("result", "id", "code", "msg"),  # a reply: result or error, any order
        hook=True,
        notes="Exchange control messages; the raw frame is also published on the control topic.",
        example='{"result":null,"id":1}',
    ),
    Kind(
        "gap", Role.GAP,
        (recv(), local("expected", "int64", "the next id the stream owed us"),
         local("received", "int64", "the first id that came instead"),
         local("kind", "uint8", "the kind's number: its position in KINDS"),
         local("reason", "uint8", "1 missing (ids skipped), 2 backwards (old or repeated ids)"),
         local("symbol", "bytes", "the symbol whose sequence broke", SYMBOL_WIDTH)),
        namespace="feedhandler",
        notes="Written by the decoder's sequence checks, never by a stream.",
    ),
    Kind(
        "blockTrade", Role.MARKET,
        # a negotiated block is not bound by the order book's maxQty: 128-bit
        _trade_fields("block trade id `t`", level_qty("q", "qty", "`q`", was=())),
        streams=_per_symbol("blockTrade"), events=("blockTrade",),
        sequence=Sequence("trade_id", "trade_id", Rule.CONTIGUOUS),
        notes="Block trades (new 2026-05-12); their ids `t` are their own sequence, apart from "
              "the trade stream's.",
        example='{"e":"blockTrade","E":1772506983582,"s":"BNBBTC","t":582,"p":"0.052",'
                '"q":"5838","T":1772506983321,"m":true}',
    ),
    Kind(
        "referencePrice", Role.MARKET,
        (recv(), ts("t", "ts_engine", "engine time `t` at which the reference price was valid, ns"),
         price("r", "price", "reference price `r`; 0 when `r` is null (see price_known)",
               null_flag="price_known", grid=None),  # a computed price: no grid documented
         local("price_known", "uint8", "1 if `r` was a price, 0 if it was null (no reference "
               "price at that time)"),
         symbol()),
        streams=_per_symbol("referencePrice"), events=("referencePrice",),
        notes="Price Range Execution Rule (new 2026-03). The payload has no event time `E`: "
              "`ts_engine` is the only exchange time. `r` is null when the symbol has no "
              "reference price: the record is kept, with price 0 and price_known 0.",
        example='{"e":"referencePrice","s":"BAZUSD","r":"1.00","t":1770313263917}',
    ),
    Kind(
        "book", Role.DERIVED,
        (recv(), local("ts_event", "int64", "`E` of the last depth event applied, ns (0 when the "
               "book's last change was a snapshot)"),
         local("ts", "int64", "when the handler took this top-N, ns since the Unix epoch"),
         local("update_id", "int64", "the book's update id: `u` of the last depth event "
               "applied (or the snapshot's `lastUpdateId`)"),
         local("bid_price", "fixed8", "bids, best first", BOOK_LEVELS),
         local("bid_qty", "int128", "bids, best first", BOOK_LEVELS),
         local("ask_price", "fixed8", "asks, best first", BOOK_LEVELS),
         local("ask_qty", "int128", "asks, best first", BOOK_LEVELS),
         local("bid_count", "uint8", "bid levels filled; unused slots hold 0"),
         local("ask_count", "uint8", "ask levels filled; unused slots hold 0"),
         local("symbol", "bytes", "the book's symbol, e.g. BTCUSDT", SYMBOL_WIDTH)),
        sequence=Sequence("update_id", "update_id", Rule.NON_DECREASING),
        derived_from="depth",
        notes="Top-N of the handler's own book of a symbol (`book.publish`), every "
              "`book.interval_ms` when it changed, and only while it is valid (synced from a "
              "snapshot, no gap since): the state after update id `update_id`, as a "
              "`depthPartial` would show it. `ts_recv` is the receive time of that depth event.",
    ),
)

KIND_BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}


def kind_index(name: str) -> int:
    """The kind's number on the wire (gap records' `kind` column)."""
    return [k.name for k in KINDS].index(name)


def market_kinds() -> tuple[Kind, ...]:
    return tuple(k for k in KINDS if k.role is Role.MARKET)


def sequence_fields() -> dict[str, tuple[str, str]]:
    """kind -> (column of the first id, column of the last id), for kinds that have ids."""
    return {k.name: (k.sequence.first, k.sequence.last) for k in KINDS if k.sequence}


def kinds_by_rule(rule: Rule) -> frozenset[str]:
    """Kinds whose ids follow `rule`."""
    return frozenset(k.name for k in KINDS if k.sequence and k.sequence.rule is rule)
