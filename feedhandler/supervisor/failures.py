"""Why a connection attempt or a connection failed, and what the supervisor does about it.

Every failed upgrade becomes a `Failure`, whatever its shape (HTTP refusal, TCP reset, TLS
error, timeout, a peer that closes mid-upgrade, garbage instead of HTTP): nothing escapes the
connection child. The class decides the restart policy:

- `permanent`: 400 (the plan was validated, so the exchange means it), 401, 403. At start the
  handler exits 2; later only that connection is quarantined.
- `throttled`: 429 and 418. Every attempt of the process waits `Retry-After` seconds, or the
  documented ban length when the header is missing.
- `transient`: anything else; capped backoff with full jitter, for ever.
"""

from __future__ import annotations

import ssl
import time
from contextlib import suppress
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

from picows import WSHandshakeError

FailureClass = Literal["permanent", "throttled", "transient"]

PERMANENT_STATUSES = frozenset({400, 401, 403})
THROTTLED_STATUSES = frozenset({418, 429})
# Without Retry-After: REST documents bans "from 2 minutes"; a plain 429 gets one minute.
DEFAULT_RETRY_AFTER_S = {429: 60.0, 418: 120.0}
MAX_BODY_CHARS = 300  # of an error body, in logs and events


@dataclass(frozen=True)
class Failure:
    kind: FailureClass
    reason: str  # one line, for logs, events and /readyz
    status: int | None = None  # HTTP status of a refused handshake
    body: str = ""
    retry_after_s: float = 0.0  # for `throttled`


def _one_line(text: str, limit: int = MAX_BODY_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def retry_after_s(value: str | None, default: float) -> float:
    """A `Retry-After` header (RFC 9110): seconds, or an HTTP date still to come; `default`
    when absent, unreadable or past."""
    if value is not None:
        try:
            return max(0.0, float(value.strip()))
        except ValueError:
            pass
        with suppress(TypeError, ValueError):
            wait = parsedate_to_datetime(value).timestamp() - time.time()
            if wait > 0:
                return wait
    return default


def refused(status: int, body: bytes | None, retry_after: str | None = None) -> Failure:
    """A handshake answered with an HTTP status other than 101."""
    text = _one_line((body or b"").decode("utf-8", "replace"))
    reason = f"HTTP {status}" + (f": {text}" if text else "")
    if status in PERMANENT_STATUSES:
        return Failure("permanent", reason, status, text)
    if status in THROTTLED_STATUSES:
        delay = retry_after_s(retry_after, DEFAULT_RETRY_AFTER_S[status])
        return Failure("throttled", f"{reason} (retry after {delay:g} s)", status, text, delay)
    return Failure("transient", reason, status, text)


def classify(exc: BaseException) -> Failure:
    """A failed connection attempt, from what ws_connect raised."""
    if isinstance(exc, WSHandshakeError) and exc.response is not None:
        response = exc.response
        return refused(int(response.status), exc.raw_body,
                       response.headers.get("Retry-After"))
    if isinstance(exc, TimeoutError):
        return Failure("transient", "handshake timed out")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Failure("transient", f"TLS certificate not trusted: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return Failure("transient", f"TLS error: {_one_line(exc.reason or str(exc))}")
    detail = _one_line(str(exc)) or "no detail"
    return Failure("transient", f"{type(exc).__name__}: {detail}")


CLOSED_DURING_UPGRADE = Failure("transient", "peer closed the connection during the upgrade")
