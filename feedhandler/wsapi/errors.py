"""Every failure a WebSocket API request can end in, as one exception class each.

`from_response(status, error)` maps an error response (protocol doc §6.2) to its class by the
error code first, then by the HTTP-like status. Messages carry the exchange's code and text and
never any key material (the exchange never echoes keys; we never add them).
"""

from __future__ import annotations

from typing import Any


class WsApiError(Exception):
    """Base class: `status` (HTTP-like, 0 when the client itself failed), `code` (exchange
    error code, 0 when none) and `msg` (the exchange's text, or ours)."""

    retryable = False  # safe to send again, for idempotent reads

    def __init__(self, msg: str, *, status: int = 0, code: int = 0) -> None:
        super().__init__(f"{code} {msg}" if code else msg)
        self.status = status
        self.code = code
        self.msg = msg


class RequestTimeout(WsApiError):
    """No response within the request's timeout; for a write, execution status unknown."""

    retryable = True


class ConnectionLost(WsApiError):
    """The connection dropped with the request in flight (`sent`; for a write, status
    unknown), or there was none to send it on."""

    retryable = True

    def __init__(self, msg: str, *, sent: bool = True) -> None:
        super().__init__(msg)
        self.sent = sent


class ClientClosed(WsApiError):
    """The client was closed before the request could complete."""


class Refused(WsApiError):
    """The exchange refused the WebSocket API connection for good (HTTP 400/401/403 at the
    handshake): the client tries no more."""


class Malformed(WsApiError):
    """The exchange's answer is not in the documented shape (a field missing or of the wrong
    type): the request's outcome is unknown."""


class OverBudget(WsApiError):
    """The request's weight exceeds the whole weight budget: it can never be sent."""


class RateLimited(WsApiError):
    """429: request weight exceeded. `retry_after_ms`: exchange epoch ms when to retry."""

    retryable = True

    def __init__(self, msg: str, *, status: int, code: int, retry_after_ms: int | None) -> None:
        super().__init__(msg, status=status, code=code)
        self.retry_after_ms = retry_after_ms


class IpBanned(RateLimited):
    """418: the IP is banned until `retry_after_ms` for continuing past 429s. Not retried: a
    ban lasts 2 minutes to 3 days (the budget sends nothing until it ends, and says so)."""

    retryable = False


class WafRejected(WsApiError):
    """403: the web application firewall blocked the request."""


class ExecutionUnknown(WsApiError):
    """5xx or -1007: the exchange does not know whether the request executed."""

    retryable = True  # for reads only: the client never resends a write after this


class ServerBusy(WsApiError):
    """-1008: the exchange is overloaded; retry later."""

    retryable = True


class InvalidTimestamp(WsApiError):
    """-1021: `timestamp` outside `recvWindow` (clock offset wrong, or recvWindow too small)."""


class InvalidSignature(WsApiError):
    """-1022: the signature does not verify (the private key does not match the API key)."""


class Unauthorized(WsApiError):
    """-2015 / 401: API key invalid, revoked, IP not whitelisted or lacking permission."""


class BadSymbol(WsApiError):
    """-1121: unknown symbol."""


class SymbolStatusMismatch(WsApiError):
    """-1220: the symbol's status is not the requested `symbolStatus`."""


class BadRequest(WsApiError):
    """Any other 4xx: the request itself is wrong (-1100..-1199 parameter errors and others)."""


_BY_CODE: dict[int, type[WsApiError]] = {
    -1007: ExecutionUnknown,
    -1008: ServerBusy,
    -1021: InvalidTimestamp,
    -1022: InvalidSignature,
    -2015: Unauthorized,
    -2014: Unauthorized,  # API-key format invalid
    -1121: BadSymbol,
    -1220: SymbolStatusMismatch,
}


def from_response(status: int, error: dict[str, Any] | None) -> WsApiError:
    """The exception for an error response `{"status":…, "error":{code, msg, data?}}`."""
    if not isinstance(error, dict):  # (not the documented shape: its text, whatever it is)
        error = {"msg": str(error)} if error else {}
    try:
        code = int(error.get("code", 0) or 0)
    except (TypeError, ValueError):
        code = 0
    msg = str(error.get("msg", "")) or f"status {status}"
    if status in (418, 429):
        data = error.get("data") or {}
        retry_after = data.get("retryAfter") if isinstance(data, dict) else None
        limited = IpBanned if status == 418 else RateLimited
        return limited(
            msg,
            status=status,
            code=code,
            retry_after_ms=int(retry_after) if isinstance(retry_after, int) else None,
        )
    cls = _BY_CODE.get(code)
    if cls is None:
        if status >= 500:
            cls = ExecutionUnknown
        elif status == 401:
            cls = Unauthorized
        elif status == 403:
            cls = WafRejected
        else:
            cls = BadRequest
    return cls(msg, status=status, code=code)
