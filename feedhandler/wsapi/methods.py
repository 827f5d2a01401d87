"""Request weights and retry safety of the WebSocket API methods we use (protocol doc §6.3,
§6.4). The simulator charges the same weights, so the budget test measures the budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEPTH_LIMIT_MAX = 5000
CONNECT_WEIGHT = 2  # opening a connection costs weight too (§6.1)

# reads: safe to send again after a timeout, a drop or a 5xx
IDEMPOTENT = frozenset({"ping", "time", "exchangeInfo", "depth", "ticker.book", "session.status"})


def depth_weight(limit: int) -> int:
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def request_weight(method: str, params: Mapping[str, Any] | None) -> int:
    """Weight the exchange charges for one request."""
    params = params or {}
    if method == "depth":
        return depth_weight(int(params.get("limit", 100)))
    if method == "ticker.book":
        return 2 if "symbol" in params else 4
    if method == "exchangeInfo":
        return 20
    if method.startswith("session."):
        return 2
    return 1  # ping, time


def used_weight_header(interval_s: float) -> str:
    """The REST response header that reports the weight used in a window of `interval_s`,
    as Binance names it: X-MBX-USED-WEIGHT-1M for a minute."""
    for seconds, letter in ((86400, "D"), (3600, "H"), (60, "M")):
        if interval_s % seconds == 0:
            return f"X-MBX-USED-WEIGHT-{int(interval_s // seconds)}{letter}"
    return f"X-MBX-USED-WEIGHT-{int(interval_s)}S"
