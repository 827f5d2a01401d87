"""REST `GET /api/v3/depth`: the snapshot source when `book.snapshot_source: rest` (a
configured fallback; the WebSocket API is the default). Same weights and the same per-IP
budget as the WebSocket API (the exchange counts both together); a 429/418 `Retry-After`
(seconds) stops every request of the budget, and the weight the exchange reports used
(`X-MBX-USED-WEIGHT-1M`: other processes behind the same IP count too) is held as the WebSocket
API's `rateLimits` count is. One daemon-thread call per snapshot (stdlib urllib, certificates
verified), never per message.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from email.message import Message
from typing import Any
from urllib.parse import urlencode

import orjson

from feedhandler.blocking import in_daemon_thread
from feedhandler.supervisor.failures import DEFAULT_RETRY_AFTER_S, retry_after_s
from feedhandler.wsapi import errors
from feedhandler.wsapi.budget import NORMAL, WeightBudget
from feedhandler.wsapi.methods import DEPTH_LIMIT_MAX, depth_weight, used_weight_header


class RestDepth:
    def __init__(self, base_url: str, budget: WeightBudget, timeout_s: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.budget = budget
        self.timeout_s = timeout_s

    async def depth(self, symbol: str, limit: int = 100, *, priority: int = NORMAL) -> Any:
        if not 1 <= limit <= DEPTH_LIMIT_MAX:
            raise ValueError(f"depth limit must be within 1..{DEPTH_LIMIT_MAX}, not {limit}")
        url = f"{self.base_url}/api/v3/depth?{urlencode({'symbol': symbol, 'limit': limit})}"
        weight = depth_weight(limit)
        await self.budget.acquire(weight, priority)
        pending_s = self.timeout_s  # (as the WS API client: until answered)
        try:
            status, headers, body = await in_daemon_thread(self._get, url)
            pending_s = 0.0
        finally:
            # cancelled (its thread still sends it) or failed, the GET may be counted as late
            # as its timeout
            self.budget.complete(weight, pending_s)
        used = headers.get(used_weight_header(self.budget.interval_s)) or ""
        if used.isdigit():
            self.budget.observe(int(used))
        if status == 200:
            return orjson.loads(body)
        try:
            error = errors.from_response(status, orjson.loads(body))
        except orjson.JSONDecodeError:
            error = errors.from_response(status, {"msg": body[:200].decode(errors="replace")})
        if isinstance(error, errors.RateLimited):
            # without a date: as for connections, 60 s for a 429, 120 s (the shortest) a ban
            wait_s = retry_after_s(headers.get("Retry-After"), DEFAULT_RETRY_AFTER_S[status])
            error.retry_after_ms = int(time.time() * 1000 + wait_s * 1000)
            self.budget.block_until(asyncio.get_running_loop().time() + wait_s)
        raise error

    def _get(self, url: str) -> tuple[int, Message, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                return int(response.status), response.headers, response.read()
        except urllib.error.HTTPError as error:
            return int(error.code), error.headers, error.read()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise errors.ConnectionLost(f"GET {url}: {exc}") from None

