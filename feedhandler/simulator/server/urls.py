"""Request-target parsing for the two stream endpoints (protocol doc §1).

    /ws                      raw, no streams yet (SUBSCRIBE later)
    /ws/<s1>[/<s2>...]       raw streams
    /stream?streams=a/b/c    combined streams
    ...&timeUnit=MICROSECOND on either path, and on the WS API's /ws-api/v3

Percent-encoding is decoded *after* splitting the query on `&`/`=` and *before* splitting the
stream list on `/`, because encoders commonly turn `/` into `%2F` inside a query value. `+` is
kept literally (never read as a space): Binance stream names contain it (`kline_1h@+08:00`).
Stream names are validated later by the subscription set, which SUBSCRIBE shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

TimeUnit = Literal["ms", "us"]

_TIME_UNITS: dict[str, TimeUnit] = {
    "MILLISECOND": "ms",
    "millisecond": "ms",
    "MICROSECOND": "us",
    "microsecond": "us",
}


class UrlError(ValueError):
    """The request target is not a stream endpoint; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class StreamRequest:
    streams: tuple[str, ...]
    combined: bool
    time_unit: TimeUnit


def _decode(text: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError as exc:
        raise UrlError(400, "invalid percent-encoding") from exc


def _split_streams(text: str) -> tuple[str, ...]:
    return tuple(name for name in _decode(text).split("/") if name)


def _split_target(target: bytes) -> tuple[str, dict[str, str], TimeUnit]:
    """(path, raw query values by decoded name, time unit) of an HTTP request target."""
    try:
        text = target.decode("ascii")
    except UnicodeDecodeError as exc:
        raise UrlError(400, "request target must be ASCII (percent-encode it)") from exc
    path, _, query = text.partition("?")
    params: dict[str, str] = {}
    for item in query.split("&") if query else ():
        key, _, value = item.partition("=")
        params[_decode(key)] = value  # values are decoded where they are used

    unit_text = _decode(params.get("timeUnit", "MILLISECOND"))
    if unit_text not in _TIME_UNITS:
        raise UrlError(400, f"invalid timeUnit {unit_text!r}")
    return path, params, _TIME_UNITS[unit_text]


@dataclass(frozen=True, slots=True)
class ApiOptions:
    time_unit: TimeUnit
    rate_limits: bool  # responses carry `rateLimits` unless a request says otherwise


def api_options(target: bytes) -> ApiOptions:
    """What a WS API connection asked for: `/ws-api/v3?timeUnit=MICROSECOND&returnRateLimits=
    false`."""
    _, params, unit = _split_target(target)
    rate_limits = _decode(params.get("returnRateLimits", "true"))
    if rate_limits not in ("true", "false"):
        raise UrlError(400, f"invalid returnRateLimits {rate_limits!r}")
    return ApiOptions(unit, rate_limits == "true")


def parse_target(target: bytes) -> StreamRequest:
    """Parse an HTTP request target such as `b"/stream?streams=btcusdt%40trade"`."""
    path, params, unit = _split_target(target)
    if path in ("/ws", "/ws/"):
        return StreamRequest((), False, unit)
    if path.startswith("/ws/"):
        return StreamRequest(_split_streams(path[len("/ws/") :]), False, unit)
    if path in ("/stream", "/stream/"):
        return StreamRequest(_split_streams(params.get("streams", "")), True, unit)
    raise UrlError(404, f"unknown path {_decode(path)!r}; use /ws/<stream> or /stream?streams=")
