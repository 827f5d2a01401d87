"""JSON payloads byte-for-byte as Binance spot sends them on a raw `/ws/` connection.

Field order, string/number choice and padding follow captured frames (binance-protocol.md §4):
prices and quantities padded to the asset precision, percentages to 3 places, `"M":true`,
kline `"B":"0"`. Payloads are built with f-strings from integers; nothing here needs escaping
(symbols are alphanumeric). Times are passed already in the connection's unit (ms or µs).
"""

from __future__ import annotations

from collections.abc import Sequence

from feedhandler.simulator.market.fixedpoint import SCALE, fmt_fixed
from feedhandler.simulator.market.stats import Agg
from feedhandler.simulator.market.universe import SymbolSpec

Levels = Sequence[tuple[int, int]]  # (price, qty) pairs, best first


class SymbolFormat:
    """Per-symbol rendering of amounts. Trade and book prices repeat from frame to frame,
    so their strings are cached (bounded by the price range the book visits)."""

    __slots__ = ("_prices", "price_decimals", "qty_decimals", "symbol")

    def __init__(self, spec: SymbolSpec) -> None:
        self.symbol = spec.symbol
        self.price_decimals = spec.price_decimals
        self.qty_decimals = spec.qty_decimals
        self._prices: dict[int, str] = {}

    def price(self, units: int) -> str:
        text = self._prices.get(units)
        if text is None:
            text = self._prices[units] = fmt_fixed(units, self.price_decimals)
        return text

    def qty(self, units: int) -> str:
        return fmt_fixed(units, self.qty_decimals)

    def quote(self, units16: int) -> str:
        """A quote-asset amount given in 1e-16 units (a sum of price * qty)."""
        return fmt_fixed(units16 // SCALE, self.price_decimals)

    def levels(self, levels: Levels) -> str:
        price, qty = self.price, self.qty
        return ",".join([f'["{price(p)}","{qty(q)}"]' for p, q in levels])


def _bool(value: bool) -> str:
    return "true" if value else "false"


def trade(
    f: SymbolFormat, e: int, trade_id: int, price: int, qty: int, t: int, maker_buy: bool
) -> str:
    return (
        f'{{"e":"trade","E":{e},"s":"{f.symbol}","t":{trade_id},"p":"{f.price(price)}",'
        f'"q":"{f.qty(qty)}","T":{t},"m":{_bool(maker_buy)},"M":true}}'
    )


def agg_trade(
    f: SymbolFormat,
    e: int,
    agg_id: int,
    price: int,
    qty: int,
    first_id: int,
    last_id: int,
    t: int,
    maker_buy: bool,
) -> str:
    return (
        f'{{"e":"aggTrade","E":{e},"s":"{f.symbol}","a":{agg_id},"p":"{f.price(price)}",'
        f'"q":"{f.qty(qty)}","f":{first_id},"l":{last_id},"T":{t},"m":{_bool(maker_buy)},'
        f'"M":true}}'
    )


class BookTicker:
    """`<symbol>@bookTicker` payloads. Consecutive ones usually differ on one side only, so
    the rendered text of each side is kept and re-rendered only when that side changed."""

    __slots__ = ("_ask", "_ask_text", "_bid", "_bid_text", "_fmt")

    def __init__(self, fmt: SymbolFormat) -> None:
        self._fmt = fmt
        self._bid = self._ask = (0, 0)
        self._bid_text = self._ask_text = ""

    def render(self, update_id: int, bid: int, bid_qty: int, ask: int, ask_qty: int) -> str:
        f = self._fmt
        if (bid, bid_qty) != self._bid:
            self._bid = (bid, bid_qty)
            self._bid_text = f'"b":"{f.price(bid)}","B":"{f.qty(bid_qty)}"'
        if (ask, ask_qty) != self._ask:
            self._ask = (ask, ask_qty)
            self._ask_text = f'"a":"{f.price(ask)}","A":"{f.qty(ask_qty)}"'
        return f'{{"u":{update_id},"s":"{f.symbol}",{self._bid_text},{self._ask_text}}}'


def depth_update(
    f: SymbolFormat, e: int, first_id: int, last_id: int, bids: Levels, asks: Levels
) -> str:
    return (
        f'{{"e":"depthUpdate","E":{e},"s":"{f.symbol}","U":{first_id},"u":{last_id},'
        f'"b":[{f.levels(bids)}],"a":[{f.levels(asks)}]}}'
    )


def book_depth(f: SymbolFormat, last_update_id: int, bids: Levels, asks: Levels) -> str:
    """Partial depth payload; also the REST / WS API `depth` result."""
    return (
        f'{{"lastUpdateId":{last_update_id},"bids":[{f.levels(bids)}],"asks":[{f.levels(asks)}]}}'
    )


def kline(
    f: SymbolFormat,
    e: int,
    interval: str,
    start: int,
    close_time: int,
    bar: Agg | None,
    closed: bool,
    idle_price: int,
) -> str:
    """A kline event; a bar without trades has ids -1 and flat prices at `idle_price`."""
    if bar is None:
        price = f.price(idle_price)
        zero_qty, zero_quote = f.qty(0), f.quote(0)
        body = (
            f'"f":-1,"L":-1,"o":"{price}","c":"{price}","h":"{price}","l":"{price}",'
            f'"v":"{zero_qty}","n":0,"x":{_bool(closed)},"q":"{zero_quote}",'
            f'"V":"{zero_qty}","Q":"{zero_quote}"'
        )
    else:
        body = (
            f'"f":{bar.first_id},"L":{bar.last_id},"o":"{f.price(bar.open)}",'
            f'"c":"{f.price(bar.close)}","h":"{f.price(bar.high)}","l":"{f.price(bar.low)}",'
            f'"v":"{f.qty(bar.volume)}","n":{bar.count},"x":{_bool(closed)},'
            f'"q":"{f.quote(bar.quote)}","V":"{f.qty(bar.buy_volume)}",'
            f'"Q":"{f.quote(bar.buy_quote)}"'
        )
    return (
        f'{{"e":"kline","E":{e},"s":"{f.symbol}","k":{{"t":{start},"T":{close_time},'
        f'"s":"{f.symbol}","i":"{interval}",{body},"B":"0"}}}}'
    )


def mini_ticker(f: SymbolFormat, e: int, window: Agg) -> str:
    return (
        f'{{"e":"24hrMiniTicker","E":{e},"s":"{f.symbol}","c":"{f.price(window.close)}",'
        f'"o":"{f.price(window.open)}","h":"{f.price(window.high)}",'
        f'"l":"{f.price(window.low)}","v":"{f.qty(window.volume)}","q":"{f.quote(window.quote)}"}}'
    )


def _change(f: SymbolFormat, window: Agg) -> tuple[str, str, str]:
    """`p`, `P` (percent, 3 places, truncated) and `w` (volume-weighted average price)."""
    change = window.close - window.open
    percent = abs(change) * 100 * SCALE // window.open
    return (
        fmt_fixed(change, f.price_decimals),
        fmt_fixed(percent if change >= 0 else -percent, 3),
        fmt_fixed(window.quote // window.volume, f.price_decimals),
    )


def ticker_24h(
    f: SymbolFormat,
    e: int,
    window: Agg,
    open_time: int,
    close_time: int,
    last_qty: int,
    top: tuple[int, int, int, int],
) -> str:
    bid, bid_qty, ask, ask_qty = top
    change, percent, weighted = _change(f, window)
    return (
        f'{{"e":"24hrTicker","E":{e},"s":"{f.symbol}","p":"{change}","P":"{percent}",'
        f'"w":"{weighted}",'
        f'"x":"{f.price(window.prev_close)}","c":"{f.price(window.close)}",'
        f'"Q":"{f.qty(last_qty)}","b":"{f.price(bid)}","B":"{f.qty(bid_qty)}",'
        f'"a":"{f.price(ask)}","A":"{f.qty(ask_qty)}","o":"{f.price(window.open)}",'
        f'"h":"{f.price(window.high)}","l":"{f.price(window.low)}",'
        f'"v":"{f.qty(window.volume)}","q":"{f.quote(window.quote)}","O":{open_time},'
        f'"C":{close_time},"F":{window.first_id},"L":{window.last_id},"n":{window.count}}}'
    )


def window_ticker(
    f: SymbolFormat, e: int, name: str, window: Agg, open_time: int, close_time: int
) -> str:
    """`<w>Ticker` (w = 1h, 4h, 1d): the 24h ticker's statistics without x/Q/b/B/a/A."""
    change, percent, weighted = _change(f, window)
    return (
        f'{{"e":"{name}Ticker","E":{e},"s":"{f.symbol}","p":"{change}","P":"{percent}",'
        f'"o":"{f.price(window.open)}","h":"{f.price(window.high)}",'
        f'"l":"{f.price(window.low)}","c":"{f.price(window.close)}","w":"{weighted}",'
        f'"v":"{f.qty(window.volume)}","q":"{f.quote(window.quote)}","O":{open_time},'
        f'"C":{close_time},"F":{window.first_id},"L":{window.last_id},"n":{window.count}}}'
    )


def avg_price(f: SymbolFormat, e: int, price: int, last_trade_time: int) -> str:
    return (
        f'{{"e":"avgPrice","E":{e},"s":"{f.symbol}","i":"5m",'
        f'"w":"{fmt_fixed(price, f.price_decimals)}",'
        f'"T":{last_trade_time}}}'
    )


def block_trade(
    f: SymbolFormat, e: int, trade_id: int, price: int, qty: int, t: int, maker_buy: bool
) -> str:
    """§4.3: the trade fields without `M`."""
    return (
        f'{{"e":"blockTrade","E":{e},"s":"{f.symbol}","t":{trade_id},"p":"{f.price(price)}",'
        f'"q":"{f.qty(qty)}","T":{t},"m":{_bool(maker_buy)}}}'
    )


def reference_price(f: SymbolFormat, price: int | None, t: int) -> str:
    """§4.4: no `E`; `r` is null while there is no reference price."""
    r = "null" if price is None else f'"{f.price(price)}"'
    return f'{{"e":"referencePrice","s":"{f.symbol}","r":{r},"t":{t}}}'
