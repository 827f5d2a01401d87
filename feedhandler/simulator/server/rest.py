"""Plain HTTP requests on the stream port: Binance's REST depth snapshot and the true books.

    GET /api/v3/depth?symbol=BTCUSDT[&limit=100]   REST snapshot, limit 1..5000 (more: 5000)
    GET /sim/books[?symbols=BTCUSDT,ETHUSDT]       simulator only: every level of every book

Both read the shared market (`SharedMarket.depth_json`), so a REST snapshot sits on the same
update-id sequence as every paced connection's diff depth. Errors follow the REST API: HTTP 400
with `{"code","msg"}` (-1102 missing symbol, -1121 unknown symbol, -1100 bad limit). These
requests are not WebSocket connection attempts: the attempt limit does not count them. A depth
snapshot's weight counts against the IP's REQUEST_WEIGHT with the WebSocket API's (the
exchange counts both together), reported in `X-MBX-USED-WEIGHT-1M`; over it, 429 (then 418)
with `Retry-After` seconds.
"""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import orjson
from picows import WSUpgradeRequest, WSUpgradeResponse
from picows import WSUpgradeResponseWithListener as Answer

from feedhandler.simulator.server.market import MarketBusy, SharedMarket
from feedhandler.simulator.server.wsapi import ApiError, WeightLimiter
from feedhandler.wsapi.methods import depth_weight

PATHS = ("/api/v3/depth", "/sim/books")
MAX_DEPTH = 5000
_DEFAULT_DEPTH = 100
_ALL_LEVELS = 1 << 30


def is_http(request: WSUpgradeRequest) -> bool:
    """True for a request these endpoints answer (by path; no WebSocket upgrade)."""
    return urlsplit(request.path.decode("latin-1")).path in PATHS


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Answer:
    # picows builds only error responses; a 200 is the same object with its status changed
    response = WSUpgradeResponse.create_error_response(
        HTTPStatus.BAD_REQUEST, body, {"Content-Type": "application/json", **(headers or {})}
    )
    response.status = HTTPStatus(status)
    return Answer(response, None)


def _error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> Answer:
    return _response(status, orjson.dumps({"code": code, "msg": msg}), headers)


def answer(request: WSUpgradeRequest, market: SharedMarket | None,
           limiter: WeightLimiter | None = None, peer: str = "", now_ms: int = 0) -> Answer:
    """The answer to a plain HTTP request; a depth snapshot is charged to `peer` on `limiter`
    (the WebSocket API's, when it runs) at `now_ms`."""
    url = urlsplit(request.path.decode("latin-1"))
    if request.method != b"GET":
        return _error(405, -1000, "Only GET is supported.")
    if market is None:
        return _error(404, -1000, "No order books: the simulator is replaying a recording.")
    query = {key: values[-1] for key, values in parse_qs(url.query).items()}
    if url.path == "/sim/books":
        symbols = query["symbols"].split(",") if query.get("symbols") else None
        try:
            books = market.true_books_json(symbols)
        except KeyError as exc:
            return _error(400, -1121, f"Invalid symbol: {exc.args[0]}.")
        except MarketBusy as busy:
            return _error(busy.status, busy.code, busy.msg)
        return _response(200, books)
    symbol = query.get("symbol", "")
    if not symbol:
        return _error(
            400,
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        )
    text = query.get("limit", str(_DEFAULT_DEPTH))
    if not text.isdigit() or int(text) < 1:
        return _error(400, -1100, "Illegal characters found in parameter 'limit'.")
    limit = min(int(text), MAX_DEPTH)
    headers: dict[str, str] = {}
    if limiter is not None:
        try:
            limiter.charge(peer, depth_weight(limit), now_ms)
        except ApiError as refused:
            retry_ms = (refused.data or {}).get("retryAfter", now_ms)
            return _error(refused.status, refused.code, refused.msg,
                          {"Retry-After": str(max(1, -(-(retry_ms - now_ms) // 1000)))})
        headers = dict([limiter.used_weight_header(peer, now_ms)])
    try:
        return _response(200, market.depth_json(symbol, limit), headers)
    except KeyError:
        return _error(400, -1121, "Invalid symbol.")
    except MarketBusy as busy:
        return _error(busy.status, busy.code, busy.msg)
