"""Diff-depth levels: the decoder reads `[["price","qty"],…]` straight from the array's text and
hands anything else back to the value-by-value pass. Both must give the same rows and errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.parsing.helpers import run_decoder

LEVELS = [[f"{20000 + i}.{i:08d}", f"{i}.{(7 * i) % 10**8:08d}"] for i in range(300)]
EVENT: dict[str, Any] = {"e": "depthUpdate", "E": 1672515782136, "s": "BTCUSDT", "U": 100,
                         "u": 109, "b": LEVELS, "a": LEVELS[::-1]}  # fmt: skip


def compact(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()


def test_heavy_event_rows() -> None:
    rows = run_decoder([compact(EVENT)]).array("depth")
    assert len(rows) == 600
    assert rows["price"][0] == 20000 * 10**8 and rows["price"][299] == 20299 * 10**8 + 299
    assert rows["qty"]["lo"][299] == 299 * 10**8 + 2093 and rows["qty"]["hi"][299] == 0
    assert rows["side"].tolist() == [0] * 300 + [1] * 300
    assert rows["flags"].tolist() == [1] + [0] * 598 + [2]
    assert set(rows["last_update_id"].tolist()) == {109}
    assert set(rows["symbol"].tolist()) == {b"BTCUSDT"}


@pytest.mark.parametrize("indent", [0, 1, "\t", "\r\n  "])
def test_whitespace_anywhere_gives_the_same_rows(indent: int | str) -> None:
    expected = run_decoder([compact(EVENT)]).raw("depth")
    spaced = json.dumps(EVENT, indent=indent, separators=(" , ", " : ")).encode()
    assert run_decoder([spaced]).raw("depth") == expected


def test_header_after_the_levels_and_repeated() -> None:
    late = {"e": "depthUpdate", "b": LEVELS, "a": LEVELS[::-1], "E": 1, "s": "XRPUSDT",
            "U": 100, "u": 109}  # fmt: skip
    rows = run_decoder([compact(late)]).array("depth")
    assert set(rows["symbol"].tolist()) == {b"XRPUSDT"} and set(rows["ts_event"]) == {10**6}
    # a key met twice is refused, whichever reader met it first (which value is the one?)
    for again, field in [(compact(late)[:-1] + b',"E":1672515782136}', "E"),
                         (compact(late)[:-1] + b',"a":[]}', "a"),
                         (compact(EVENT)[:-1] + b',"b":[]}', "b")]:
        decoded = run_decoder([again])
        assert [e[:2] for e in decoded.errors] == [("malformed_json", field)], again[-40:]
        assert not decoded.kinds()


def test_an_event_across_a_full_batch_is_decoded_whole() -> None:
    expected = run_decoder([compact(EVENT)] * 3).raw("depth")
    # 800 rows a batch: a table has room for 1,000, so the second 600-row event does not fit
    # and is decoded again into the next batch
    decoded = run_decoder([compact(EVENT)] * 3, batch_rows=800)
    assert [len(b) for b in decoded.batches["depth"]] == [600, 600, 600]
    assert decoded.raw("depth") == expected and not decoded.errors
    # 1,000 rows: room for 1,250, so the event that reaches 1,000 completes its batch
    decoded = run_decoder([compact(EVENT)] * 3, batch_rows=1000)
    assert [len(b) for b in decoded.batches["depth"]] == [1200, 600]
    assert decoded.raw("depth") == expected and not decoded.errors


@pytest.mark.parametrize(
    ("level", "reason"),
    [
        ('["1.5",2]', "wrong_type"),  # a number, not a decimal string
        ('["1.5","2","3"]', "wrong_type"),
        ('["1.5"]', "wrong_type"),
        ('"1.5"', "wrong_type"),
        ('["1\\u002e5","2"]', "bad_decimal"),  # an escape: not a plain decimal
        ('["1.5","2.123456789"]', "too_many_decimals"),
        # one past the 128-bit range: rejected, never rounded
        ('["1.5","1701411834604692317316873037158.84105728"]', "overflow"),
        ('["99999999999.5","1"]', "overflow"),  # price past 64 bits
        ('["1.5" "2"]', "malformed_json"),
    ],
)
def test_a_bad_level_after_many_good_ones(level: str, reason: str) -> None:
    frame = compact(EVENT).replace(b'"a":[', b'"a":[' + level.encode() + b",", 1)
    frame = frame.replace(b"]]}", b"]," + level.encode() + b"]}")
    decoded = run_decoder([frame, compact({**EVENT, "U": 110, "u": 119})])
    assert [(e[0], e[1]) for e in decoded.errors] == [(reason, "a")]
    assert len(decoded.array("depth")) == 600  # the next event, whole; nothing of the bad one


def wrapped(data: bytes, stream: bytes = b"btcusdt@depth@100ms") -> bytes:
    return b'{"stream":"' + stream + b'","data":' + data + b"}"


def reordered(**fields: Any) -> bytes:
    return compact({"e": "depthUpdate", **fields})


HEADER = {k: EVENT[k] for k in ("E", "s", "U", "u")}


@pytest.mark.parametrize(
    "frame",
    [
        # Binance's shape: the levels, to the frame's end, read by hand
        pytest.param(wrapped(compact(EVENT)), id="wrapped"),
        pytest.param(compact(EVENT) + b" \r\n", id="trailing-space"),
        pytest.param(wrapped(compact(EVENT)) + b"\n", id="wrapped-space"),
        # other shapes: field by field
        pytest.param(wrapped(compact(EVENT))[:-1] + b',"extra":[1,{"b":[]}]}', id="wrapper-more"),
        pytest.param(reordered(**HEADER, b=LEVELS, a=LEVELS[::-1], x=[["1", "2"]]), id="more"),
        pytest.param(reordered(b=LEVELS, **HEADER, a=LEVELS[::-1]), id="header-between"),
        pytest.param(compact(EVENT).replace(b'"a":', b'"\\u0061":[],"a":', 1), id="escaped-key"),
    ],
)
def test_any_order_around_the_levels_gives_the_same_rows(frame: bytes) -> None:
    decoded = run_decoder([frame])
    assert not decoded.errors
    assert decoded.raw("depth") == run_decoder([compact(EVENT)]).raw("depth")


def test_asks_first_are_rows_first() -> None:
    rows = run_decoder([reordered(**HEADER, a=LEVELS[::-1], b=LEVELS)]).array("depth")
    expected = run_decoder([compact(EVENT)]).array("depth")
    assert rows["side"].tolist() == [1] * 300 + [0] * 300
    prices = expected["price"].tolist()
    assert rows["price"].tolist() == prices[300:] + prices[:300]


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(compact(EVENT) + b"x", id="garbage"),
        pytest.param(compact(EVENT) + b"}", id="brace-too-many"),
        pytest.param(wrapped(compact(EVENT)) + b"}", id="wrapped-brace-too-many"),
        pytest.param(wrapped(compact(EVENT))[:-1], id="wrapper-unclosed"),
        pytest.param(compact(EVENT)[:-1] + b"]", id="bracket-for-brace"),
        pytest.param(compact(EVENT).replace(b'"a":', b'"a" ', 1), id="no-colon"),
    ],
)
def test_a_broken_frame_end_is_an_error_with_no_rows(frame: bytes) -> None:
    decoded = run_decoder([frame, compact({**EVENT, "U": 110, "u": 119})])
    assert len(decoded.errors) == 1 and decoded.errors[0][3] == frame
    assert len(decoded.array("depth")) == 600  # the next event only



@pytest.mark.parametrize("levels", [b"[[}}", b'[["1.00000000",]}', b"[[]]}", b"[[]}}"])
def test_levels_closed_by_the_wrong_brackets_are_an_error_with_no_rows(levels: bytes) -> None:
    # (stage 1 rejects unbalanced brackets; these balance, so the hand reader meets them)
    frame = reordered(**HEADER, b=[], a=[]).split(b'"b":')[0] + b'"b":' + levels
    decoded = run_decoder([frame, compact(EVENT)])
    assert [(e[0], e[1], e[3]) for e in decoded.errors] == [("wrong_type", "b", frame)]
    assert len(decoded.array("depth")) == 600


def indexed_whole(frame: bytes) -> bytes:
    """`frame` with a space before the bids' '[': simdjson's stage 1 then indexes all of it."""
    return frame.replace(b'"b":[', b'"b": [', 1)


NEXT = compact({**EVENT, "U": 110, "u": 119})


@pytest.mark.parametrize("frame", [
    pytest.param(compact(EVENT), id="event"),
    pytest.param(wrapped(compact(EVENT)), id="wrapped"),
    pytest.param(compact({**EVENT, "b": LEVELS[:4], "a": LEVELS[:4]}), id="small"),
    pytest.param(compact({**EVENT, "b": [], "a": LEVELS[:9]}), id="no-bids"),
    pytest.param(compact(EVENT) + b" \r\n", id="trailing-space"),
])  # fmt: skip
def test_a_header_only_index_gives_the_rows_of_a_whole_one(frame: bytes) -> None:
    decoded = run_decoder([frame])
    assert not decoded.errors and len(decoded.array("depth"))
    assert decoded.raw("depth") == run_decoder([indexed_whole(frame)]).raw("depth")


@pytest.mark.parametrize("old, new", [
    pytest.param(b'"20007.', b'"2\xff007.', id="invalid-utf8-in-a-price"),
    pytest.param(b'"20007.', b'"2\xc3\xa9007.', id="non-ascii-in-a-price"),
    pytest.param(b'"20007.', b'"2\x01007.', id="control-byte-in-a-price"),
    pytest.param(b'],["20007.', b']],["20007.', id="unbalanced-in-the-bids"),
    pytest.param(b'],"a":', b'],"a":[]]],"a":', id="unbalanced-between-the-sides"),
    pytest.param(b'"a":[[', b'"a":[[[', id="unbalanced-in-the-asks"),
    pytest.param(b']]}', b']]\x01}', id="control-byte-before-the-end"),
    pytest.param(b']]}', b']]\xff}', id="invalid-utf8-before-the-end"),
    pytest.param(b']]}', b']]}\xff', id="invalid-utf8-after-the-end"),
    # the first '[' after "b": is not this event's bids
    pytest.param(b'"b":[', b'"b":"x","b":[', id="bids-after-another-b"),
    pytest.param(b'"b":[', b'"b":0,"z":{"b":[', id="nested-b-first"),
    # a string that never closes: the hand reader must not look for its quote past the frame
    pytest.param(b'"0.00000000"]]}', b'"0.0]]}', id="unclosed-last-string"),
    pytest.param(b'"0.00000000"]]}', b'"0.0', id="unclosed-at-the-end"),
])  # fmt: skip
def test_what_a_whole_index_rejects_a_header_only_one_rejects_alike(old: bytes,
                                                                     new: bytes) -> None:
    """Stage 1 indexes a Binance-shaped event's header only; the hand reader then meets every
    level byte, and must reject what stage 1 would have, with the same error."""
    frame = compact(EVENT).replace(old, new, 1)
    assert frame != compact(EVENT)
    decoded = run_decoder([frame, NEXT])
    expected = run_decoder([indexed_whole(frame), NEXT])
    assert [e[:2] for e in decoded.errors] == [e[:2] for e in expected.errors]
    assert len(decoded.errors) == 1 and decoded.errors[0][3] == frame
    assert decoded.raw("depth") == expected.raw("depth") and len(decoded.array("depth")) == 600


@pytest.mark.parametrize("cut", [5, 16, 40, 100])
def test_a_cut_frame_is_not_completed_by_the_bytes_of_a_longer_one_before_it(cut: int) -> None:
    """The reader finds a level's quotes 64 bytes at a time, past the frame's end too; there the
    copy of a frame read before still holds the rest of the same event, quotes included."""
    frame = compact(EVENT)[:-cut]
    decoded = run_decoder([compact(EVENT), frame])
    assert len(decoded.errors) == 1 and decoded.errors[0][3] == frame
    assert len(decoded.array("depth")) == 600  # the first event only
