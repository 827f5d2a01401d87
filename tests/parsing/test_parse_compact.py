"""Frames of the plain kinds and diff depth in Binance's compact form are read straight from
their text (Decoder::Impl::flat_frame), anything else through simdjson. Whitespace after the
first '{' means nothing to JSON and sends a frame the generic way: every frame, good or bad,
must decode exactly as its spaced copy does, rows, errors and sequence state alike."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.parsing.helpers import (
    CORPUS,
    all_spot_frames,
    corpus_lines,
    examples,
    run_decoder,
    spaced,
)
from tests.parsing.strategies import ANCHOR_AFTER, ANCHOR_BEFORE, mutated

# One event of each kind the text readers take, with the stream it comes on.
EVENTS = {
    "trade": ("btcusdt@trade", {"e": "trade", "E": 1672515782136, "s": "BTCUSDT",
                                "t": 3000000000, "p": "16500.12000000", "q": "0.00100000",
                                "T": 1672515782135, "m": True, "M": True}),
    "aggTrade": ("ethusdt@aggTrade", {"e": "aggTrade", "E": 1672515782136, "s": "ETHUSDT",
                                      "a": 26129, "p": "0.01633102", "q": "4.70443515",
                                      "f": 27781, "l": 27781, "T": 1498793709153, "m": True,
                                      "M": True}),
    "bookTicker": ("bnbusdt@bookTicker", {"u": 400900217, "s": "BNBUSDT", "b": "25.35190000",
                                          "B": "31.21000000", "a": "25.36520000",
                                          "A": "40.66000000"}),
    "avgPrice": ("btcusdt@avgPrice", {"e": "avgPrice", "E": 1693907033000, "s": "BTCUSDT",
                                      "i": "5m", "w": "25776.86000000", "T": 1693907032213}),
    "referencePrice": ("bazusd@referencePrice", {"e": "referencePrice", "s": "BAZUSD",
                                                 "r": None, "t": 1770313263917}),
    "depth": ("btcusdt@depth@100ms", {"e": "depthUpdate", "E": 1672515782136, "s": "BTCUSDT",
                                      "U": 157, "u": 160, "b": [["0.0024", "10"]],
                                      "a": [["0.0026", "100"], ["0.0027", "0"]]}),
}
# Sides of a depth event: none, Binance's levels, and levels the text readers leave to simdjson.
SIDES = ["[]", '[["0.0024","10"]]', '[["1.00000000","0.00100000"],["2","3"]]',
         '[["1.0000000000","1"]]', '[["1","2","3"]]', '[["1"]]', '[[1,2]]', '[["1","2"],]',
         '[ ["1","2"] ]', '[["-1","2"]]', '[["1","2"]', "null", '"x"']

# Values the compact readers take, and neighbours of them that they leave to simdjson.
TRICKY = [
    "0", "-0", "01", "-1", "7", "1.5", "1e3", "1E3", "999999999999999999", "1000000000000000000",
    "9223372036854775807", "9223372036854775808", "12345678", "123456789", "1234567890123456",
    '"1"', '"1.00000000"', '"0.000000001"', '"1.000000000"', '"1.0000000000000"', '"-1.5"',
    '"01.5"', '".5"', '"1."', '""', '"abc"', '"A\\u0042C"', '"\u00e9T\u00e9"', '"x\\"y"',
    '"' + "S" * 32 + '"', '"' + "S" * 33 + '"', '"\t"',
    "true", "false", "null", "tru", "nul", "[]", "{}", '{"a":1}', "[1,2]",
]


def assert_same_decoding(frames: list[bytes], **options: Any) -> None:
    compact = run_decoder(frames, **options)
    generic = run_decoder([spaced(f) for f in frames], **options)
    assert compact.kinds() == generic.kinds(), frames
    for kind in compact.kinds():
        assert compact.raw(kind) == generic.raw(kind), (frames, kind)
    assert [e[:3] for e in compact.errors] == [e[:3] for e in generic.errors], frames
    assert compact.error_counts == generic.error_counts, frames


def wrapped(stream: str, fields: list[tuple[str, str]]) -> bytes:
    body = ",".join(f'"{key}":{value}' for key, value in fields)
    return f'{{"stream":"{stream}","data":{{{body}}}}}'.encode()


def bare(fields: list[tuple[str, str]]) -> bytes:
    return ("{" + ",".join(f'"{key}":{value}' for key, value in fields) + "}").encode()


@st.composite
def events(draw: st.DrawFn) -> bytes:
    """A plain-kind event, wrapped or bare, with its fields reordered, dropped, repeated,
    added or given tricky values."""
    kind = draw(st.sampled_from(sorted(EVENTS)))
    stream, event = EVENTS[kind]
    fields = [(key, json.dumps(value, separators=(",", ":"))) for key, value in event.items()]
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(fields) - 1))
        key = fields[at][0]
        op = draw(st.sampled_from(["value", "value", "drop", "repeat", "add", "swap"]))
        if op == "value":
            tricky = SIDES if key in ("a", "b") and kind == "depth" else TRICKY
            fields[at] = (key, draw(st.sampled_from(tricky)))
        elif op == "drop" and len(fields) > 1:
            del fields[at]
        elif op == "repeat":
            fields.insert(draw(st.integers(0, len(fields))), (key, draw(st.sampled_from(TRICKY))))
        elif op == "add":
            extra = draw(st.sampled_from(["M", "x", "", "ee", "E\\u0045"]))
            fields.insert(at, (extra, draw(st.sampled_from(TRICKY))))
        elif op == "swap":
            other = draw(st.integers(0, len(fields) - 1))
            fields[at], fields[other] = fields[other], fields[at]
    return wrapped(stream, fields) if draw(st.booleans()) else bare(fields)


def test_every_corpus_frame_decodes_as_its_spaced_copy() -> None:
    futures = [f for p in sorted(CORPUS.glob("futures_*.jsonl")) if "rest_" not in p.name
               for f in corpus_lines(p.name)]  # fmt: skip
    assert_same_decoding(all_spot_frames() + futures)


def test_the_compact_events_decode_exactly() -> None:
    frames = [wrapped(stream, [(k, json.dumps(v)) for k, v in event.items()])
              for stream, event in EVENTS.values()]
    decoded = run_decoder(frames)
    assert not decoded.errors
    assert decoded.array("trade")["price"].tolist() == [1_650_012_000_000]
    assert decoded.array("aggTrade")["first_trade_id"].tolist() == [27781]
    assert decoded.array("bookTicker")["ask_qty"]["lo"].tolist() == [4_066_000_000]
    assert decoded.array("avgPrice")["ts_trade"].tolist() == [1693907032213 * 10**6]
    assert decoded.array("referencePrice")["price_known"].tolist() == [0]
    assert decoded.array("depth")["qty"]["lo"].tolist() == [10**9, 10**10, 0]
    assert decoded.array("depth")["flags"].tolist() == [1, 0, 2]
    assert_same_decoding(frames)


@given(st.lists(events(), min_size=1, max_size=6))
@examples(400)
def test_generated_events_decode_as_their_spaced_copies(frames: list[bytes]) -> None:
    assert_same_decoding([ANCHOR_BEFORE, *frames, ANCHOR_AFTER])


@given(st.lists(events(), min_size=1, max_size=3))
@examples(100)
def test_microsecond_events_decode_as_their_spaced_copies(frames: list[bytes]) -> None:
    frames = [f.replace(b"1672515782", b"1672515782000") for f in frames]
    assert_same_decoding(frames, time_unit="us")


@given(mutated())
@examples(300)
def test_mutated_corpus_frames_decode_as_their_spaced_copies(frame: bytes) -> None:
    assert_same_decoding([ANCHOR_BEFORE, frame, ANCHOR_AFTER])


DEPTH_HEAD = b'{"e":"depthUpdate","E":1672515782136,"s":"BTCUSDT","U":157,"u":160,'


def test_a_key_that_shares_the_code_of_e_is_an_unknown_key_on_both_paths() -> None:
    stream, event = EVENTS["trade"]
    fields = [(k, json.dumps(v)) for k, v in event.items()]
    # '<X)`F,p0' hashes to key_code("e") (ext/cpp/key_code.h)
    frames = [wrapped(stream, [*fields, ("<X)`F,p0", value)]) for value in ("1", '"aggTrade"')]
    assert_same_decoding(frames)
    assert not run_decoder(frames).errors


def test_depth_forms_decode_as_their_spaced_copies() -> None:
    frames = [DEPTH_HEAD + sides for sides in (
        b'"b":[],"a":[]}', b'"b":[["1","2"]],"a":[]}', b'"b":[],"a":[["1","2"]]}',
        b'"b":[["1","2"]],"a":[["3","4"]],"x":1}', b'"b":[["1","2"]]}',
        b'"b":[["1","2"]],"a":[["3","4"]]}}', b'"b":[["1","2"]],"a":[["3","4"]]} ',
        b'"a":[["3","4"]],"b":[["1","2"]]}', b'"b":[["1","2"]],"a":[["3","4"]]',
    )]  # fmt: skip
    frames.append(b'{"stream":"btcusdt@depth","data":' + frames[1] + b"}")
    frames.append(frames[1].replace(b"BTCUSDT", b"B" * 33))
    frames.append(frames[1].replace(b'"U":157', b'"U":-157'))
    assert_same_decoding(frames)
    rows = run_decoder(frames[:3]).array("depth")
    assert rows["side"].tolist() == [2, 0, 1] and rows["flags"].tolist() == [3, 3, 3]
