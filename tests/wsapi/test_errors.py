"""Every error response maps to one exception class."""

from __future__ import annotations

import pytest

from feedhandler.wsapi import errors


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, -1021, errors.InvalidTimestamp),
        (400, -1022, errors.InvalidSignature),
        (401, -2015, errors.Unauthorized),
        (400, -2014, errors.Unauthorized),
        (400, -1121, errors.BadSymbol),
        (400, -1220, errors.SymbolStatusMismatch),
        (400, -1102, errors.BadRequest),
        (400, -1100, errors.BadRequest),
        (403, 0, errors.WafRejected),
        (401, 0, errors.Unauthorized),
        (503, -1007, errors.ExecutionUnknown),
        (500, 0, errors.ExecutionUnknown),
        (503, -1008, errors.ServerBusy),
        (429, -1003, errors.RateLimited),
        (418, -1003, errors.IpBanned),
    ],
)
def test_mapping(status: int, code: int, cls: type[errors.WsApiError]) -> None:
    error = errors.from_response(status, {"code": code, "msg": "text"})
    assert type(error) is cls
    assert (error.status, error.code, error.msg) == (status, code, "text")


def test_retry_after_is_read_from_the_error_data() -> None:
    error = errors.from_response(
        418,
        {"code": -1003, "msg": "banned", "data": {"serverTime": 1, "retryAfter": 1659146400000}},
    )
    assert isinstance(error, errors.IpBanned)
    assert error.retry_after_ms == 1659146400000
    # a ban is not waited out by a request (2 minutes to 3 days): the caller hears of it
    assert isinstance(error, errors.RateLimited) and not error.retryable
    assert errors.from_response(429, {"code": -1003, "msg": "too many"}).retryable


@pytest.mark.parametrize("error", [
    "boom", ["x"], {"code": "x", "msg": "text"}, {"code": None}, None, 5])
def test_an_error_of_any_shape_maps_to_an_exception(error: object) -> None:
    mapped = errors.from_response(400, error)  # type: ignore[arg-type]
    assert isinstance(mapped, errors.BadRequest) and mapped.code == 0 and mapped.msg


def test_only_transient_failures_are_retryable() -> None:
    assert errors.RequestTimeout("t").retryable and errors.ConnectionLost("c").retryable
    assert not errors.from_response(400, {"code": -1022, "msg": "x"}).retryable
    assert not errors.BadSymbol("x").retryable
