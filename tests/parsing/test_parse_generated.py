"""Whole frames generated from random valid field values, per kind: the decoder's rows equal the
reference's, raw and in the combined wrapper, with unknown keys and any key order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.parsing import strategies as gen
from tests.parsing.helpers import assert_same, examples, run_decoder, run_reference


@pytest.mark.parametrize("event", gen.EVENTS, ids=lambda e: e.__name__)
@given(data=st.data())
@examples(30)
def test_generated_frames_round_trip(event, data: st.DataObject) -> None:
    # Several frames through one decoder, so sequence state (and gap rows) is compared too.
    frames = data.draw(st.lists(gen.frames_of(event), min_size=1, max_size=4), "frames")
    decoded = run_decoder(frames)
    expected = run_reference(frames)
    assert [e[:2] for e in decoded.errors] == expected.errors
    assert not expected.errors
    assert_same(decoded, expected)


@given(data=st.data())
@examples(40)
def test_mixed_kinds_on_one_connection(data: st.DataObject) -> None:
    events = st.sampled_from(gen.EVENTS).flatmap(gen.frames_of)
    frames = data.draw(st.lists(events, min_size=1, max_size=12), "frames")
    assert_same(run_decoder(frames), run_reference(frames))


@given(gen.depth_partial(), st.booleans())
@examples(40)
def test_raw_partial_depth_with_stream_hint(case, us: bool) -> None:
    stream, payload = case
    frames = [gen.encode(payload)]
    unit = "us" if us else "ms"
    decoded = run_decoder(frames, stream=stream, time_unit=unit)
    expected = run_reference(frames, stream=stream, time_unit=unit)
    assert_same(decoded, expected)
    (row,) = expected.rows["depthPartial"]
    assert row["levels"] == int(stream.split("@")[1][5:])
    assert row["bid_count"] == len(payload["bids"]) and row["ask_count"] == len(payload["asks"])


@given(gen.kline())
@examples(30)
def test_kline_utc_offset_comes_from_the_stream_name(case) -> None:
    stream, payload = case
    frames = [gen.encode({"stream": stream, "data": payload})]
    (row,) = run_reference(frames).rows["kline"]
    assert row["utc_offset_min"] == (480 if stream.endswith("@+08:00") else 0)
    assert row["interval"] == payload["k"]["i"].encode()
    assert_same(run_decoder(frames), run_reference(frames))
