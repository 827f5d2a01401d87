"""Malformed variants of every kind of frame: each gives exactly one counted error with the right
reason and field, and never touches its neighbours (rows roll back, sequence state too).

Each case decodes [before, bad, after] on one decoder. `before` continues the same sequence
right up to the bad frame and `after` repeats the bad frame's ids, so a bad frame that leaked a
row, a gap row or its sequence update would show up as a difference or a "backwards" gap.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from feedhandler._ext.decoder import Decoder
from tests.parsing.helpers import assert_same, run_decoder, run_reference, spaced
from tests.parsing.reference import INT64_MAX, INT64_MIN, INT128_MAX, Reference, RefError
from tests.parsing.strategies import encode, render

# kind -> (valid payload, combined stream name, field types). Field paths are "k.x" for kline.
SAMPLES: dict[str, tuple[dict[str, Any], str, dict[str, str]]] = {
    "trade": (
        {"e": "trade", "E": 1672515782136, "s": "BNBBTC", "t": 12345, "p": "0.00100000",
         "q": "100.00000000", "T": 1672515782136, "m": True, "M": True},
        "bnbbtc@trade",
        {"E": "ts", "s": "sym", "t": "int", "p": "dec", "q": "dec", "T": "ts", "m": "bool"},
    ),
    "aggTrade": (
        {"e": "aggTrade", "E": 1672515782136, "s": "BNBBTC", "a": 12345, "p": "0.001",
         "q": "100", "f": 100, "l": 105, "T": 1672515782136, "m": True, "M": True},
        "bnbbtc@aggTrade",
        {"E": "ts", "s": "sym", "a": "int", "p": "dec", "q": "dec", "f": "int", "l": "int",
         "T": "ts", "m": "bool"},
    ),
    "bookTicker": (
        {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000", "B": "31.21000000",
         "a": "25.36520000", "A": "40.66000000"},
        "bnbusdt@bookTicker",
        {"u": "int", "s": "sym", "b": "dec", "B": "wide", "a": "dec", "A": "wide"},
    ),
    "depth": (
        {"e": "depthUpdate", "E": 1672515782136, "s": "BNBBTC", "U": 157, "u": 160,
         "b": [["0.0024", "10"], ["0.0023", "0.00000000"]], "a": [["0.0026", "100"]]},
        "bnbbtc@depth@100ms",
        {"E": "ts", "s": "sym", "U": "int", "u": "int", "b": "levels", "a": "levels"},
    ),
    "depthPartial": (
        {"lastUpdateId": 160, "bids": [["0.0024", "10"]], "asks": [["0.0026", "100"]]},
        "bnbbtc@depth20@100ms",
        {"lastUpdateId": "int", "bids": "levels", "asks": "levels"},
    ),
    "kline": (
        {"e": "kline", "E": 1672515782136, "s": "BNBBTC",
         "k": {"t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m", "f": 100,
               "L": 200, "o": "0.0010", "c": "0.0020", "h": "0.0025", "l": "0.0015",
               "v": "1000", "n": 100, "x": False, "q": "1.0000", "V": "500", "Q": "0.500",
               "B": "123456"}},
        "bnbbtc@kline_1m@+08:00",
        {"E": "ts", "s": "sym", "k": "obj", "k.t": "ts", "k.T": "ts", "k.i": "str",
         "k.f": "int", "k.L": "int", "k.o": "dec", "k.c": "dec", "k.h": "dec", "k.l": "dec",
         "k.v": "wide", "k.n": "int", "k.x": "bool", "k.q": "wide", "k.V": "wide",
         "k.Q": "wide"},
    ),
    "miniTicker": (
        {"e": "24hrMiniTicker", "E": 1672515782136, "s": "BNBBTC", "c": "0.0025",
         "o": "0.0010", "h": "0.0025", "l": "0.0010", "v": "10000", "q": "18"},
        "bnbbtc@miniTicker",
        {"E": "ts", "s": "sym", "c": "dec", "o": "dec", "h": "dec", "l": "dec", "v": "wide",
         "q": "wide"},
    ),
    "ticker": (
        {"e": "24hrTicker", "E": 1672515782136, "s": "BNBBTC", "p": "0.0015", "P": "250.00",
         "w": "0.0018", "x": "0.0009", "c": "0.0025", "Q": "10", "b": "0.0024", "B": "10",
         "a": "0.0026", "A": "100", "o": "0.0010", "h": "0.0025", "l": "0.0010",
         "v": "10000", "q": "18", "O": 0, "C": 86400000, "F": 0, "L": 18150, "n": 18151},
        "bnbbtc@ticker",
        {"E": "ts", "s": "sym", **dict.fromkeys("pPwxcQbaohl", "dec"), "B": "wide",
         "A": "wide", "v": "wide", "q": "wide", "O": "ts", "C": "ts", "F": "int", "L": "int",
         "n": "int"},
    ),
    "windowTicker": (
        {"e": "1hTicker", "E": 1672515782136, "s": "BNBBTC", "p": "0.0015", "P": "250.00",
         "o": "0.0010", "h": "0.0025", "l": "0.0010", "c": "0.0025", "w": "0.0018",
         "v": "10000", "q": "18", "O": 0, "C": 1675216573749, "F": 0, "L": 18150, "n": 18151},
        "bnbbtc@ticker_1h",
        {"E": "ts", "s": "sym", **dict.fromkeys("pPohlcw", "dec"), "v": "wide", "q": "wide",
         "O": "ts", "C": "ts", "F": "int", "L": "int", "n": "int"},
    ),
    "avgPrice": (
        {"e": "avgPrice", "E": 1693907033000, "s": "BTCUSDT", "i": "5m",
         "w": "25776.86000000", "T": 1693907032213},
        "btcusdt@avgPrice",
        {"E": "ts", "s": "sym", "i": "str", "w": "dec", "T": "ts"},
    ),
}  # fmt: skip

# Same type of field, wrong JSON type of value.
WRONG_TYPES: dict[str, list[Any]] = {
    "dec": [1.5, 25, True, None, {}, ["1"]],
    "wide": [1.5, 25, False, None, {}, []],
    "int": ["1", 1.5, 1e3, True, None, {}, [1]],
    "ts": ["1672515782136", 1672515782136.0, False, None, [], {}],
    "bool": ["true", 1, 0, None, [], {}],
    "sym": [1, True, None, ["BNBBTC"], {}],
    "str": [1, False, None, [], {}],
    "obj": [[], "k", 1, None, True],
    "levels": [{}, "x", 1, None, [["1"]], [["1", "2", "3"]], [[1, 2]], [{}], ["1"], [None]],
}
# (JSON value, reason) for values of the right type that must still be rejected.
BAD_VALUES: dict[str, list[tuple[Any, str]]] = {
    "dec": [
        ("1.123456789", "too_many_decimals"),
        ("1e5", "bad_decimal"),
        ("", "bad_decimal"),
        (" 1", "bad_decimal"),
        ("+1", "bad_decimal"),
        ("1.", "bad_decimal"),
        (render(INT64_MAX + 1), "overflow"),
        (render(INT64_MIN - 1), "overflow"),
    ],
    "wide": [
        ("0.000000001", "too_many_decimals"),
        ("1,5", "bad_decimal"),
        (render(INT128_MAX + 1), "overflow"),
    ],
    "int": [(2**63, "overflow"), (INT64_MIN - 1, "overflow"), (2**64, "overflow")],
    # ms -> ns overflows int64 one millisecond past 2262-04-11
    "ts": [(INT64_MAX // 10**6 + 1, "overflow"), (2**63, "overflow")],
    "sym": [("X" * 33, "symbol_too_long"), ("€" * 11, "symbol_too_long")],
    "str": [("1234567890", "wrong_type")],  # longer than the record's text field
    "levels": [
        ([["0.0024", "1.123456789"]], "too_many_decimals"),
        ([["0.0024", "1"], ["x", "1"]], "bad_decimal"),
        ([[render(INT64_MAX + 1), "1"]], "overflow"),  # prices are int64...
        ([["0.0024", render(INT128_MAX + 1)]], "overflow"),  # ...level quantities 128-bit
    ],
}

SEQUENCE_KEYS = {"trade": ("t",), "aggTrade": ("a",), "bookTicker": ("u",), "depth": ("U", "u")}


def _set(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    if path.startswith("k."):
        out["k"][path[2:]] = value
    else:
        out[path] = value
    return out


def _remove(payload: dict[str, Any], path: str) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    if path.startswith("k."):
        del out["k"][path[2:]]
    else:
        del out[path]
    return out


def _previous(kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The event right before `payload` in its sequence (same payload elsewhere)."""
    out = copy.deepcopy(payload)
    if kind == "depth":
        out["U"], out["u"] = payload["U"] - 10, payload["U"] - 1
    for key in SEQUENCE_KEYS.get(kind, ()):
        if kind != "depth":
            out[key] -= 1
    return out


def _wrap(payload: Any, stream: str, combined: bool) -> bytes:
    return encode({"stream": stream, "data": payload}) if combined else encode(payload)


def _check(
    kind: str, bad: bytes, reason: str, field: str, *, combined: bool, **options: Any
) -> None:
    payload, stream, _ = SAMPLES[kind]
    before = _wrap(_previous(kind, payload), stream, combined)
    after = _wrap(payload, stream, combined)
    hint = {} if combined or kind != "depthPartial" else {"stream": stream}
    decoded = run_decoder([before, bad, after], **hint, **options)
    assert [e[:2] for e in decoded.errors] == [(reason, field)], bad
    assert decoded.error_counts == {reason: 1}
    assert decoded.errors[0][3] == bad  # the dead letter is the frame exactly as received
    reference_options = {k: v for k, v in options.items() if k in ("time_unit", "max_frame")}
    expected = run_reference([before, after], **hint, **reference_options)
    assert not expected.errors
    assert_same(decoded, expected, repr(bad))
    assert expected.rows.get(kind) and "gap" not in expected.rows


def _reference_verdict(bad: bytes, combined: bool, kind: str, **options: Any) -> tuple[str, str]:
    hint = None if combined or kind != "depthPartial" else SAMPLES[kind][1]
    try:
        Reference(stream=hint, **options).decode(bad)
    except RefError as e:
        return e.reason, e.field
    raise AssertionError(f"reference accepts {bad!r}")


def _field_cases() -> Iterator[Any]:
    for kind, (payload, stream, types) in SAMPLES.items():
        for combined in (False, True):
            form = "combined" if combined else "raw"
            for path, ftype in types.items():
                yield pytest.param(
                    kind, combined, _wrap(_remove(payload, path), stream, combined),
                    "missing_field", path, id=f"{kind}-{form}-missing-{path}",
                )  # fmt: skip
                for i, value in enumerate(WRONG_TYPES[ftype]):
                    yield pytest.param(
                        kind, combined, _wrap(_set(payload, path, value), stream, combined),
                        "wrong_type", path, id=f"{kind}-{form}-type{i}-{path}",
                    )  # fmt: skip
                for i, (value, reason) in enumerate(BAD_VALUES.get(ftype, [])):
                    yield pytest.param(
                        kind, combined, _wrap(_set(payload, path, value), stream, combined),
                        reason, path, id=f"{kind}-{form}-{reason}{i}-{path}",
                    )  # fmt: skip


FIELD_CASES = list(_field_cases())


@pytest.mark.parametrize(("kind", "combined", "bad", "reason", "field"), FIELD_CASES)
def test_field_variants(kind: str, combined: bool, bad: bytes, reason: str, field: str) -> None:
    payload, _, _ = SAMPLES[kind]
    first = next(iter(payload))
    if not combined and reason == "missing_field" and field == first:
        # A raw frame is recognised by its first key; without it nothing names the kind.
        reason, field = "unknown_event", ""
    assert _reference_verdict(bad, combined, kind) == (reason, field)
    _check(kind, bad, reason, field, combined=combined)


@pytest.mark.parametrize("kind", SAMPLES)
@pytest.mark.parametrize("combined", [False, True], ids=["raw", "combined"])
def test_truncated_at_every_byte(kind: str, combined: bool) -> None:
    payload, stream, _ = SAMPLES[kind]
    frame = _wrap(payload, stream, combined)
    for end in range(len(frame)):
        _check(kind, frame[:end], "malformed_json", "", combined=combined)


@pytest.mark.parametrize("kind", SAMPLES)
@pytest.mark.parametrize(
    "bad_bytes",
    [b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"],
    ids=["ff", "bad-continuation", "overlong", "surrogate", "past-10ffff", "cut-short"],
)
def test_invalid_utf8_inside_a_string(kind: str, bad_bytes: bytes) -> None:
    payload, stream, _ = SAMPLES[kind]
    for combined in (False, True):
        frame = _wrap(payload, stream, combined)
        at = frame.rindex(b'"')  # inside the last string value, before its closing quote
        bad = frame[:at] + bad_bytes + frame[at:]
        assert _reference_verdict(bad, combined, kind) == ("invalid_utf8", "")
        _check(kind, bad, "invalid_utf8", "", combined=combined)


@pytest.mark.parametrize("kind", SAMPLES)
def test_invalid_json_where_nothing_is_stored(kind: str) -> None:
    """Values of unknown keys are not stored, but a frame is valid JSON as a whole or dead."""
    payload, stream, _ = SAMPLES[kind]
    for combined in (False, True):
        frame = _wrap(payload, stream, combined)
        for junk in [b"tru", b"nul", b"01", b"1.", b"-", b"1e", b'"\\x"', b"NaN", b"[1 2]",
                     b'{"a" 1}', b"[1,]", b'{"\\q":1}', b"1e999"]:  # fmt: skip
            bad = frame[:-1] + b',"zz":' + junk + b"}"
            assert _reference_verdict(bad, combined, kind) == ("malformed_json", ""), bad
            _check(kind, bad, "malformed_json", "", combined=combined)
        for tail in [b"x", b"{}", b",", b"]"]:
            _check(kind, frame + tail, "malformed_json", "", combined=combined)


@pytest.mark.parametrize("kind", SAMPLES)
def test_oversized_and_binary(kind: str) -> None:
    payload, stream, _ = SAMPLES[kind]
    frame = _wrap(payload, stream, True)
    _check(kind, frame + b" ", "oversized", "", combined=True, max_frame=len(frame))
    decoded = run_decoder([frame], max_frame=len(frame))  # exactly max_frame is fine
    assert not decoded.errors and decoded.kinds() == {kind}
    decoded = run_decoder([frame], is_text=False)
    assert [e[:2] for e in decoded.errors] == [("binary_frame", "")]
    assert decoded.errors[0][3] == frame and not decoded.kinds()


def test_binary_frame_between_good_frames() -> None:
    from feedhandler._ext.decoder import Decoder

    payload, _, _ = SAMPLES["trade"]
    errors: list[tuple[str, str, str, bytes]] = []
    rows: list[int] = []
    decoder = Decoder(lambda k, r: rows.extend(r["trade_id"]), lambda *e: errors.append(e),
                      linger_ms=None)  # fmt: skip
    decoder.decode(encode(_previous("trade", payload)), 1)
    decoder.decode(encode(payload), 1, is_text=False)
    decoder.decode(encode(payload), 1)
    decoder.flush()
    assert rows == [12344, 12345]
    assert [e[:2] for e in errors] == [("binary_frame", "")]


@pytest.mark.parametrize(
    "stream",
    ["btcusdt@trades", "btcusdt@depth7", "btcusdt@depth@250ms", "btcusdt@depth20@10ms",
     "btcusdt@kline_2m", "btcusdt@kline_1m@+09:00", "btcusdt@ticker_2h", "@trade", "trade",
     "x" * 33 + "@trade", "!ticker_1w@arr", "!miniTicker", "btcusdt@blocktrade",
     "btcusdt@referenceprice", "btcusdt@markPrice", "BTCUSDT@aggtrade", ""],
)  # fmt: skip
def test_unknown_stream(stream: str) -> None:
    payload = SAMPLES["trade"][0]
    bad = encode({"stream": stream, "data": payload})
    assert _reference_verdict(bad, True, "trade") == ("unknown_stream", "stream")
    _check("trade", bad, "unknown_stream", "stream", combined=True)
    decoded = run_decoder([bad])
    assert decoded.errors[0][2] == stream  # dead letters carry the stream name


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"e": "foo", "E": 1}, "e"),
        ({"e": "1wTicker", "E": 1}, "e"),
        ({"e": "bookTicker", "u": 1}, "e"),
        ({"e": "markPriceUpdate", "E": 1, "s": "BNBBTC", "p": "1"}, "e"),
        ({"e": "", "E": 1}, "e"),
        ({"lastupdateid": 1}, ""),
        ({}, ""),
        ([{"e": "trade"}], "e"),  # arrays carry tickers only
        ([SAMPLES["miniTicker"][0], SAMPLES["windowTicker"][0]], "e"),  # of one kind a frame
        ([{"E": 1}], "e"),
        ([1], ""),
        ("trade", ""),
        (5, ""),
        (None, ""),
    ],
)
def test_unknown_event(bad: Any, field: str) -> None:
    frame = encode(bad)
    reason = "missing_field" if bad == [{"E": 1}] else "wrong_type" if bad == [1] else None
    reason = reason or "unknown_event"
    assert _reference_verdict(frame, False, "trade") == (reason, field)
    _check("trade", frame, reason, field, combined=False)


@pytest.mark.parametrize(
    ("kind", "where"),
    [(kind, where) for kind in ("trade", "windowTicker")
     for where in ("before", "after", "wrapped")]
    + [("windowTicker", "array")],  # arrays carry tickers only
)
def test_a_key_sharing_the_code_of_e_is_an_unknown_key(kind: str, where: str) -> None:
    """key_code("bpElNr") == key_code("e"): that key is skipped like any unknown one (its
    value checked), wherever it stands against the "e", and the "e" is read once."""
    payload, stream, _ = SAMPLES[kind]
    rest = {k: v for k, v in payload.items() if k != "e"}
    event = ({"bpElNr": 0, "e": payload["e"], **rest} if where == "before"
             else {"e": payload["e"], **rest, "bpElNr": 0})
    good = (encode([event]) if where == "array"
            else _wrap(event, stream, combined=where == "wrapped"))
    decoded = run_decoder([good])
    assert not decoded.errors
    assert_same(decoded, run_reference([good]))
    assert len(decoded.rows(kind)) == 1
    bad = good.replace(b'"bpElNr":0', b'"bpElNr":tru')
    assert [e[:2] for e in run_decoder([bad]).errors] == [("malformed_json", "")]
    assert run_reference([bad]).errors == [("malformed_json", "")]


def test_event_must_match_its_stream() -> None:
    payload, _, _ = SAMPLES["aggTrade"]
    bad = encode({"stream": "bnbbtc@trade", "data": payload})
    _check("trade", bad, "unknown_event", "e", combined=True)
    bad = encode({"stream": "bnbbtc@ticker_4h", "data": SAMPLES["windowTicker"][0] | {"e": "x"}})
    _check("windowTicker", bad, "unknown_event", "e", combined=True)


@pytest.mark.parametrize(
    ("frame", "reason", "field"),
    [
        ({"stream": "bnbbtc@trade"}, "missing_field", "data"),
        ({"stream": "bnbbtc@trade", "x": 1, "data": {}}, "missing_field", "E"),
        ({"stream": 5, "data": {}}, "wrong_type", "stream"),
        ({"stream": "bnbbtc@trade", "data": []}, "wrong_type", "data"),
        ({"stream": "!miniTicker@arr", "data": {}}, "wrong_type", "data"),
        ({"stream": "!miniTicker@arr", "data": [1]}, "wrong_type", ""),
        # The data before its stream: the stream is read first
        ({"data": {}, "stream": "bnbbtc@trade"}, "missing_field", "E"),
        ({"data": {}, "stream": "bnbbtc@nothing"}, "unknown_stream", "stream"),
        ({"data": {}, "stream": 5}, "wrong_type", "stream"),
        ({"data": {}, "x": "bnbbtc@trade"}, "unknown_event", ""),
    ],
)
def test_broken_combined_wrapper(frame: dict[str, Any], reason: str, field: str) -> None:
    bad = encode(frame)
    assert _reference_verdict(bad, True, "trade") == (reason, field)
    _check("trade", bad, reason, field, combined=True)


@pytest.mark.parametrize("side", ["bids", "asks"])
def test_partial_depth_more_than_20_levels(side: str) -> None:
    payload, stream, _ = SAMPLES["depthPartial"]
    levels = [[render(i * 100), "1"] for i in range(1, 22)]
    for combined in (False, True):
        ok = _wrap(_set(payload, side, levels[:20]), stream, combined)
        assert not run_decoder([ok], stream=stream).errors
        bad = _wrap(_set(payload, side, levels), stream, combined)
        assert _reference_verdict(bad, combined, "depthPartial") == ("too_many_levels", side)
        _check("depthPartial", bad, "too_many_levels", side, combined=combined)


@pytest.mark.parametrize("side", ["bids", "asks"])
def test_partial_depth_more_levels_than_its_stream_names(side: str) -> None:
    payload, _, _ = SAMPLES["depthPartial"]
    stream = "bnbbtc@depth5@100ms"
    levels = [[render(i * 100), "1"] for i in range(1, 7)]
    for combined in (False, True):
        ok = _wrap(_set(payload, side, levels[:5]), stream, combined)
        decoded = run_decoder([ok], stream=stream)
        assert not decoded.errors
        assert decoded.array("depthPartial")[f"{side[:3]}_count"].tolist() == [5]
        bad = _wrap(_set(payload, side, levels), stream, combined)
        hint = None if combined else stream
        with pytest.raises(RefError) as verdict:
            Reference(stream=hint).decode(bad)
        assert (verdict.value.reason, verdict.value.field) == ("too_many_levels", side)
        decoded = run_decoder([bad, ok], stream=stream)
        assert [e[:2] for e in decoded.errors] == [("too_many_levels", side)]
        assert len(decoded.array("depthPartial")) == 1  # the good frame after it decodes


def test_depth_event_whose_first_id_is_after_its_last() -> None:
    payload, _, _ = SAMPLES["depth"]
    bad_payload = {**payload, "U": payload["u"] + 1}
    for combined in (False, True):
        bad = _wrap(bad_payload, SAMPLES["depth"][1], combined)
        assert _reference_verdict(bad, combined, "depth") == ("bad_range", "U")
        _check("depth", bad, "bad_range", "U", combined=combined)


def test_symbol_width_is_32_bytes_never_cut() -> None:
    payload, _, _ = SAMPLES["trade"]
    for symbol in ["X" * 32, "€" * 10 + "AB"]:
        decoded = run_decoder([encode(_set(payload, "s", symbol))])
        assert decoded.array("trade")["symbol"].tolist() == [symbol.encode()]


def test_timestamp_overflow_in_microseconds() -> None:
    payload, _, _ = SAMPLES["trade"]
    fits = INT64_MAX // 1000
    decoded = run_decoder([encode(_set(payload, "E", fits))], time_unit="us")
    assert decoded.array("trade")["ts_event"].tolist() == [fits * 1000]
    bad = encode(_set(payload, "E", fits + 1))
    _check("trade", bad, "overflow", "E", combined=False, time_unit="us")


def test_failed_frames_roll_back_partial_rows() -> None:
    """Rows a frame already wrote (levels, array elements, gap rows) go when it fails late."""
    depth, _, _ = SAMPLES["depth"]
    levels = [[render(i * 10**6), "1"] for i in range(1, 30)]
    late = _set(depth, "a", [*levels, ["1", "x"]])  # 29 good ask rows, then a bad one
    _check("depth", encode(late), "bad_decimal", "a", combined=False)

    mini = SAMPLES["miniTicker"][0]
    array = [mini, mini, mini | {"s": "ETHBTC"}, _remove(mini, "q")]
    _check("miniTicker", encode({"stream": "!miniTicker@arr", "data": array}),
           "missing_field", "q", combined=True)  # fmt: skip

    # A trade that would open a gap, in a wrapper that turns out broken after its data:
    # neither the trade row nor the gap row nor the new sequence mark may survive.
    trade, _, _ = SAMPLES["trade"]
    data = encode(_set(trade, "t", 99999))
    for tail, reason, field in [(b',"x":tru}', "malformed_json", ""),
                                (b',"stream":5}', "malformed_json", "stream"),  # twice
                                (b"} []", "malformed_json", "")]:  # fmt: skip
        bad = b'{"stream":"bnbbtc@trade","data":' + data + tail
        _check("trade", bad, reason, field, combined=True)


def test_every_rejected_frame_is_counted_once() -> None:
    """A stream of only bad frames: the counters add up to the number of frames."""
    bad = [case.values[2] for case in FIELD_CASES]
    decoded = run_decoder(bad)
    assert sum(decoded.error_counts.values()) == len(bad) == len(decoded.errors)
    assert not decoded.kinds()


@pytest.mark.parametrize("kind", ["trade", "kline", "windowTicker", "miniTicker"])
def test_a_repeated_key_is_refused(kind: str) -> None:
    """A key met twice, "e" too, whatever its value: which one would be the event's?"""
    payload, stream, _ = SAMPLES[kind]
    for combined in (False, True):
        frame = _wrap(payload, stream, combined)
        for repeated in (b',"e":tru}', b',"e":"x"}', b',"e":"' + payload["e"].encode() + b'"}',
                         b',"E":1}'):
            bad = frame[:-2 if combined else -1] + repeated + (b"}" if combined else b"")
            field = repeated[2:3].decode()
            _check(kind, bad, "malformed_json", field, combined=combined)
            if b"tru}" not in repeated:  # (the reference reads the JSON whole first)
                assert _reference_verdict(bad, combined, kind) == ("malformed_json", field)


@pytest.mark.parametrize("kind", ["trade", "depth"])
def test_a_repeated_stream_or_data_of_the_wrapper_is_refused(kind: str) -> None:
    """Two events in one frame, or one event under two streams: which is the frame's?"""
    payload, stream, _ = SAMPLES[kind]
    data = encode(payload)
    other = encode(SAMPLES["bookTicker"][0])
    named = b'{"stream":"%s","data":' % stream.encode()
    for bad, field in ((named + data + b',"stream":"bnbusdt@bookTicker","data":' + other + b"}",
                        "stream"),
                       (named + data + b',"data":' + data + b"}", "data"),
                       (b'{"data":' + data + b',"stream":"%s","stream":"%s"}'
                        % (stream.encode(), stream.encode()), "stream")):
        _check(kind, bad, "malformed_json", field, combined=True)
        assert _reference_verdict(bad, True, kind) == ("malformed_json", field)


@pytest.mark.parametrize("kind", ["trade", "depth", "bookTicker"])
def test_a_symbol_with_a_nul_inside_is_refused(kind: str) -> None:
    """Cut at the NUL it would be one symbol (books, held frames), whole another (numpy, the
    Kafka key)."""
    payload, stream, _ = SAMPLES[kind]
    for combined in (False, True):
        bad = _wrap(payload, stream, combined).replace(
            b'"s":"%s"' % payload["s"].encode(), b'"s":"AB\\u0000C"')
        assert b"\\u0000" in bad
        _check(kind, bad, "wrong_type", "s", combined=combined)
        assert _reference_verdict(bad, combined, kind) == ("wrong_type", "s")


def _in_place_errors(frame: bytes, after: bytes) -> list[tuple[str, str, str, bytes]]:
    """The errors of `frame` read in place, with `after` behind it in the buffer."""
    errors = []

    def on_error(reason: str, field: str, stream: str, frame: bytes) -> None:
        errors.append((reason, field, stream, frame))

    Decoder(lambda kind, records: None, on_error).decode(frame, followed_by=after)
    return errors


@pytest.mark.parametrize("kind", SAMPLES)
@pytest.mark.parametrize("generic", [False, True], ids=["compact", "spaced"])
def test_a_rejected_frame_is_judged_on_its_own_bytes(kind: str, generic: bool) -> None:
    """simdjson may look past an unbalanced frame's end. There the copy of a frame held a longer
    frame decoded before it, and picows's buffer holds the next frames: a closing brace there
    once turned `"a":[["1","2"]}}`'s error at `a` into one with no field and no stream. Every
    frame missing one closing bracket or cut short must get the same error (reason, field,
    stream) whatever comes before it, or after it in the buffer (read in place)."""
    payload, stream, _ = SAMPLES[kind]
    frame = encode({"stream": stream, "data": payload})
    if generic:
        frame = spaced(frame)
    closers = [i for i, byte in enumerate(frame) if byte in b"]}"]
    bad = [frame[:i] + frame[i + 1:] for i in closers] + [frame[:end] for end in closers]
    fillers = [b"}" * 300, b"]" * 300, b'"' * 300, b"[" * 300, frame + b" " * 200]
    for case in bad:
        alone = run_decoder([case]).errors
        assert len(alone) == 1, case
        for filler in fillers:
            after = run_decoder([filler, case]).errors
            assert after[-1] == alone[0], (case, filler[:8])
            assert _in_place_errors(case, filler) == alone, (case, filler[:8])
