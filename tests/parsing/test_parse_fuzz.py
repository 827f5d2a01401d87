"""Fuzz: real corpus frames with bytes flipped, inserted, deleted or cut. The decoder never
crashes, each frame is either rejected (exactly one counted error, no rows, neighbours intact)
or accepted with exactly the reference's rows; and it accepts precisely what strict JSON plus
the protocol accept.

For longer coverage-guided runs see tests/parsing/fuzz_decoder.py (atheris, run by hand).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.parsing.helpers import assert_same, examples, run_decoder, run_reference
from tests.parsing.reference import decides
from tests.parsing.strategies import ANCHOR_AFTER, ANCHOR_BEFORE, mutated


@given(mutated())
@examples(300)
def test_mutated_frames_are_rejected_or_decoded_exactly(bad: bytes) -> None:
    frames = [ANCHOR_BEFORE, bad, ANCHOR_AFTER]
    decoded = run_decoder(frames)
    assert len(decoded.errors) <= 1
    assert sum(decoded.error_counts.values()) == len(decoded.errors)
    if decoded.errors:
        # Rejected: nothing of it remains, the neighbours are whole, nothing else is counted.
        assert decoded.errors[0][3] == bad
        assert_same(decoded, run_reference([ANCHOR_BEFORE, ANCHOR_AFTER]))
    if not decides(bad):
        return  # escapes in decimals or keys: the reference does not judge those (see there)
    expected = run_reference(frames)
    assert bool(decoded.errors) == bool(expected.errors), (bad, decoded.errors, expected.errors)
    if not decoded.errors:
        assert_same(decoded, expected, repr(bad))


@given(st.binary(max_size=300))
@examples(200)
def test_random_bytes_never_crash(data: bytes) -> None:
    decoded = run_decoder([data, ANCHOR_BEFORE])
    assert len(decoded.errors) <= 1
    assert len(decoded.array("bookTicker")) == 1
