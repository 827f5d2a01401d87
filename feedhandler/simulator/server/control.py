"""Live JSON control messages on a stream connection (protocol doc §3).

`handle(payload, session)` parses one request, applies it and returns the reply bytes:
`{"result":<value>,"id":<id>}` on success, `{"code":<n>,"msg":<text>,"id":<id>}` on error.

Assumptions (the docs leave them open):
- `id` is echoed on every error reply, `null` when the request had no usable id or failed
  before it was read (a bad `method`: the exchange's parse of the whole request fails there).
- Checks run in this order: JSON syntax (3), object shape and `method` (2), `id` (2), then the
  method's params (0/1/2). Texts follow the documented ones; serde's "at line/column" suffix is
  kept only for syntax errors, where orjson reports the position.
- Accepted ids: a 64-bit signed integer, an alphanumeric string of 1..36 chars, or null.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import orjson

from feedhandler.simulator.server.subscriptions import SubscriptionError

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
PROPERTIES = ("combined",)

_ID_STRING = re.compile(r"[A-Za-z0-9]{1,36}")
_INT64 = range(-(2**63), 2**63)
_VARIANTS = ", ".join(f"`{m}`" for m in METHODS)


class Session(Protocol):
    """What a control message can see and change on its connection."""

    combined: bool

    def subscribe(self, streams: list[str]) -> None: ...  # raises SubscriptionError
    def unsubscribe(self, streams: list[str]) -> None: ...
    def subscriptions(self) -> list[str]: ...


class ControlError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


def _valid_id(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value in _INT64
    return isinstance(value, str) and _ID_STRING.fullmatch(value) is not None


def _stream_list(params: Any) -> list[str]:
    if params is None:
        raise ControlError(2, "Invalid request: missing field `params`")
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise ControlError(2, "Invalid request: params must be an array of stream names")
    return params


def _property(params: Any, max_params: int) -> str:
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        raise ControlError(2, "Invalid request: property name must be a string")
    if len(params) > max_params:
        raise ControlError(2, "Invalid request: too many parameters")
    if params[0] not in PROPERTIES:
        raise ControlError(0, "Unknown property")
    return params[0]


def _apply(method: str, params: Any, session: Session) -> Any:
    if method == "SUBSCRIBE":
        try:
            session.subscribe(_stream_list(params))
        except SubscriptionError as exc:
            raise ControlError(2, str(exc)) from exc
        return None
    if method == "UNSUBSCRIBE":
        session.unsubscribe(_stream_list(params))
        return None
    if method == "LIST_SUBSCRIPTIONS":
        if params:
            raise ControlError(2, "Invalid request: too many parameters")
        return session.subscriptions()
    if method == "SET_PROPERTY":
        _property(params, max_params=2)
        if len(params) < 2 or not isinstance(params[1], bool):
            raise ControlError(1, "Invalid value type: expected Boolean")
        session.combined = params[1]
        return None
    _property(params, max_params=1)  # GET_PROPERTY
    return session.combined


def handle(payload: bytes, session: Session) -> bytes:
    """Apply one control request to `session`; returns the JSON reply."""
    request_id: Any = None
    try:
        try:
            request = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ControlError(
                3, f"Invalid JSON: expected value at line {exc.lineno} column {exc.colno}"
            ) from exc
        if not isinstance(request, dict):
            raise ControlError(2, "Invalid request: expected a JSON object")
        method = request.get("method")
        if method is None:
            raise ControlError(2, "Invalid request: missing field `method`")
        if method not in METHODS:
            raise ControlError(
                2, f"Invalid request: unknown variant `{method}`, expected one of {_VARIANTS}"
            )
        if "id" not in request or not _valid_id(request["id"]):
            raise ControlError(2, "Invalid request: request ID must be an unsigned integer")
        request_id = request["id"]
        result = _apply(method, request.get("params"), session)
    except ControlError as exc:
        return orjson.dumps({"code": exc.code, "msg": exc.msg, "id": request_id})
    return orjson.dumps({"result": result, "id": request_id})
