"""Two connections on one decoder (make-before-break rollover): each id is emitted once."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedhandler._ext.decoder import HOLD_NS, KIND_NAMES, Decoder
from tests.parsing.helpers import examples
from tests.parsing.test_parse_gaps import agg, book, depth, trade


class Run:
    """A decoder with every batch kept: records per kind, gap rows as tuples."""

    def __init__(self, on_error: Any = None) -> None:
        self.batches: dict[str, list[np.ndarray]] = {}
        self.decoder = Decoder(self._on_batch, on_error, batch_rows=1)

    def _on_batch(self, kind: str, records: np.ndarray, *_: Any) -> None:
        self.batches.setdefault(kind, []).append(records.copy())

    def feed(self, frames: list[bytes], leg: int, ts: int = 1) -> None:
        self.decoder.decode_many(frames, ts_recv=ts, leg=leg)

    def column(self, kind: str, name: str) -> list[int]:
        return [int(v) for batch in self.batches.get(kind, []) for v in batch[name]]

    def gaps(self) -> list[tuple[str, int, int, int]]:
        return [(KIND_NAMES[r["kind"]], int(r["expected"]), int(r["received"]), int(r["reason"]))
                for batch in self.batches.get("gap", []) for r in batch]


def test_interleaved_legs_emit_each_trade_once_and_count_the_rest() -> None:
    run = Run()
    run.feed([trade(t) for t in range(1, 11)], leg=0)  # the old connection alone
    run.decoder.set_overlap(0)
    rng = random.Random(7)
    old, new = list(range(11, 41)), list(range(8, 41))  # the new one starts a little behind
    while old or new:  # arrival order across the two sockets is arbitrary; each is in order
        leg = rng.choice([leg for leg, ids in ((0, old), (1, new)) if ids])
        run.feed([trade((old, new)[leg].pop(0))], leg)
    run.decoder.set_overlap(None)
    run.feed([trade(t) for t in range(41, 44)], leg=1)  # the new connection alone
    assert run.column("trade", "trade_id") == list(range(1, 44))
    assert run.gaps() == []
    assert run.decoder.duplicates == 30 + 33 - 30  # every id of the overlap came twice


def test_the_replacement_ahead_of_the_old_is_held_until_the_old_one_fills_the_hole() -> None:
    """Ids the new connection brings past a hole are the old one's to deliver: held, emitted
    in step once the old one filled the hole, and the new one leads from there."""
    run = Run()
    run.feed([trade(1), trade(2)], leg=0)
    run.decoder.set_overlap(0)
    run.feed([trade(5), trade(6)], leg=1)  # subscribed later; 3 and 4 are in flight on leg 0
    assert run.decoder.held == 2 and run.decoder.overlap_counts(1) == (0, 2)
    run.feed([trade(3)], leg=0)
    assert run.decoder.held == 2  # 4 is still owed
    run.feed([trade(4), trade(5)], leg=0)
    assert run.decoder.held == 0 and run.decoder.overlap_counts(1) == (2, 2)
    run.feed([trade(7)], leg=1)  # in step: the new one leads
    run.feed([trade(6), trade(7)], leg=0)
    assert run.decoder.overlap_counts(1) == (3, 2)
    assert run.column("trade", "trade_id") == list(range(1, 8))
    assert run.gaps() == [] and run.decoder.duplicates == 3  # leg 0's 5, 6 and 7


def test_the_replacement_ahead_in_order() -> None:
    run = Run()
    run.feed([trade(1), trade(2)], leg=0)
    run.decoder.set_overlap(0)
    run.feed([trade(5)], leg=1)
    run.feed([trade(3), trade(4), trade(5), trade(6)], leg=0)
    run.feed([trade(6), trade(7)], leg=1)
    run.decoder.set_overlap(None)
    assert run.column("trade", "trade_id") == [1, 2, 3, 4, 5, 6, 7]
    assert run.gaps() == []
    assert run.decoder.duplicates == 2  # leg 0's 5 (leg 1's, held, came first) and leg 1's 6
    assert run.decoder.overlap_counts(1) == (3, 1)  # 5 once released, 6 and 7; 5 ahead


def test_what_waited_for_a_primary_that_stops_goes_out_past_the_exact_hole() -> None:
    """The old connection is stuck (or gone) with ids it owes: what the replacement brought
    past them is emitted once the old one is declared lost, after a `missing` gap of only the
    ids neither delivered; the old one's late copies are dropped as duplicates."""
    run = Run()
    run.feed([trade(1), trade(2), trade(3)], leg=0)
    run.decoder.set_overlap(0)
    run.feed([trade(6), trade(7), trade(8)], leg=1)
    assert run.decoder.held == 3 and run.column("trade", "trade_id") == [1, 2, 3]
    run.decoder.leg_lost(1)  # not the primary: nothing changes
    assert run.decoder.held == 3
    run.decoder.leg_lost(0)
    assert run.decoder.held == 0
    assert run.column("trade", "trade_id") == [1, 2, 3, 6, 7, 8]
    assert run.gaps() == [("trade", 4, 6, 1)]
    run.feed([trade(4), trade(9)], leg=0)  # the old one wakes up: it leads no more
    run.feed([trade(9), trade(10)], leg=1)
    assert run.column("trade", "trade_id") == [1, 2, 3, 6, 7, 8, 9, 10]
    assert run.gaps() == [("trade", 4, 6, 1)] and run.decoder.duplicates == 2


def test_what_waits_for_a_primary_that_serves_is_dropped_when_the_overlap_changes() -> None:
    """The overlap changes while the old connection serves (the replacement closed first):
    what the old one owes is dropped, not emitted past a gap, since its own copies follow."""
    run = Run()
    run.feed([trade(1), trade(2), trade(3)], leg=0)
    run.decoder.set_overlap(0)
    run.feed([trade(6), trade(7)], leg=1)
    run.decoder.set_overlap(None)
    assert run.decoder.held == 0 and run.column("trade", "trade_id") == [1, 2, 3]
    run.feed([trade(i) for i in range(4, 9)], leg=0)
    assert run.column("trade", "trade_id") == list(range(1, 9)) and run.gaps() == []


def test_what_waits_for_a_primary_has_no_time_limit() -> None:
    """The old connection lags past HOLD_NS, then stops: what the replacement brought is
    still there when the supervisor declares it lost (its stall check counts from the old
    one's last frame, which may come later than the first frame held)."""
    run = Run()
    run.feed([trade(1), trade(2)], leg=0, ts=1)
    run.decoder.set_overlap(0)
    run.feed([trade(5)], leg=1, ts=10)
    run.feed([trade(3)], leg=0, ts=600_000_000)  # lagging 0.6 s, then nothing more
    run.feed([trade(6)], leg=1, ts=HOLD_NS + 20)
    run.decoder.flush_expired(HOLD_NS + 30)
    assert run.decoder.held == 2
    run.decoder.leg_lost(0)
    run.feed([trade(7)], leg=1, ts=HOLD_NS + 40)
    assert run.column("trade", "trade_id") == [1, 2, 3, 5, 6, 7]
    assert run.gaps() == [("trade", 4, 5, 1)]


def test_a_hole_the_primary_passes_is_filled_from_what_waited_for_it() -> None:
    """The old connection skips ids the replacement brought: they are not its to deliver any
    more, so the replacement's copies are emitted and only what neither had is a gap."""
    run = Run()
    run.feed([trade(1), trade(2)], leg=0)
    run.decoder.set_overlap(0)
    run.feed([trade(4), trade(5)], leg=1)  # held: 3 is owed
    run.feed([trade(5)], leg=0)  # the old one skips 3 and 4
    assert run.column("trade", "trade_id") == [1, 2, 4, 5]
    assert run.gaps() == [("trade", 3, 4, 1)] and run.decoder.duplicates == 1
    run.feed([trade(7)], leg=1)  # the old one has not passed 6: owed, held
    assert run.decoder.held == 1


@examples(300)
@given(before=st.integers(1, 20), stop=st.integers(0, 40), start=st.integers(1, 60),
       more=st.integers(0, 20), seed=st.integers(0, 2**32 - 1))
def test_any_rollover_whose_old_connection_stops_keeps_what_either_delivered(
        before: int, stop: int, start: int, more: int, seed: int) -> None:
    """The old connection (leg 0) delivered trades 1..`before`, then `before`+1..`stop`
    while the replacement (leg 1) delivers `start`..: behind, in step or past what the old one
    will deliver, in any interleaving. Then the old one stops for good (leg_lost), and the
    replacement carries on: every id either delivered comes out once, in order, and only what
    neither delivered is a gap."""
    stop = max(stop, before)
    end = max(stop, start) + more
    run = Run()
    run.feed([trade(i) for i in range(1, before + 1)], leg=0)
    run.decoder.set_overlap(0)
    rng = random.Random(seed)
    lost_at = rng.randint(start, end + 1)  # the replacement's ids before the loss: start..
    legs = [list(range(before + 1, stop + 1)), list(range(start, lost_at))]
    while legs[0] or legs[1]:  # each connection in order, arrival order across them arbitrary
        leg = rng.choice([leg for leg in (0, 1) if legs[leg]])
        run.feed([trade(legs[leg].pop(0))], leg)
    run.decoder.leg_lost(0)
    run.feed([trade(i) for i in range(lost_at, end + 1)], leg=1)
    assert run.decoder.held == 0
    delivered = sorted(set(range(1, stop + 1)) | set(range(start, end + 1)))
    assert run.column("trade", "trade_id") == delivered
    assert run.gaps() == ([("trade", stop + 1, start, 1)] if start > stop + 1 else [])


def test_a_lagging_primary_costs_one_decode_per_advance() -> None:
    """While the old connection lags, the held frames are due only once its ids reach them
    (and a pass stops at the first still owed: the later ids are owed too), so a lagging
    primary costs nothing per step."""
    run = Run()
    run.feed([trade(1)], leg=0)
    run.decoder.set_overlap(0)
    run.feed([trade(i) for i in range(10, 110)], leg=1)
    for i in range(2, 10):
        run.feed([trade(i)], leg=0)
    assert run.decoder.redecoded == 100  # once, when 9 came
    assert run.column("trade", "trade_id") == list(range(1, 110)) and run.gaps() == []


def test_real_gaps_are_still_reported_during_an_overlap() -> None:
    run = Run()
    run.feed([trade(1)], leg=0)
    run.decoder.set_overlap(0)
    run.feed([trade(2), trade(4)], leg=0)  # the old (primary) connection skips 3: missing
    run.feed([trade(2), trade(4), trade(5)], leg=1)
    assert run.column("trade", "trade_id") == [1, 2, 4, 5]
    assert run.gaps() == [("trade", 3, 4, 1)]
    assert run.decoder.duplicates == 2


def test_without_an_overlap_repeats_are_backwards_gaps_as_before() -> None:
    run = Run()
    run.feed([trade(1), trade(2), trade(2)], leg=0)
    assert run.column("trade", "trade_id") == [1, 2, 2]
    assert run.gaps() == [("trade", 3, 2, 2)]
    assert run.decoder.duplicates == 0


@pytest.mark.parametrize(("make", "kind", "column"), [
    (agg, "aggTrade", "agg_id"),
    (book, "bookTicker", "update_id"),
])
def test_other_sequenced_kinds(make: Any, kind: str, column: str) -> None:
    run = Run()
    run.feed([make(i) for i in range(1, 4)], leg=0)
    run.decoder.set_overlap(0)
    run.feed([make(i) for i in range(2, 7)], leg=1)
    run.feed([make(i) for i in range(4, 7)], leg=0)
    assert run.column(kind, column) == list(range(1, 7))
    assert run.gaps() == [] and run.decoder.duplicates == 2 + 3


def test_depth_events_are_dropped_whole_by_u() -> None:
    run = Run()
    run.feed([depth(1, 3), depth(4, 6)], leg=0)
    run.decoder.set_overlap(1)  # legs are symmetric: here leg 1 is the primary
    run.feed([depth(4, 6), depth(7, 9)], leg=0)
    run.feed([depth(7, 9), depth(10, 12)], leg=1)
    ids = run.column("depth", "last_update_id")
    assert ids == [3, 6, 9, 12]  # one level per event: each event exactly once
    assert run.gaps() == [] and run.decoder.duplicates == 2


def test_symbols_are_independent() -> None:
    run = Run()
    run.feed([trade(1, "AAA"), trade(10, "BBB")], leg=0)
    run.decoder.set_overlap(0)
    run.feed([trade(1, "AAA"), trade(11, "BBB"), trade(2, "AAA")], leg=1)
    run.feed([trade(11, "BBB"), trade(2, "AAA")], leg=0)
    symbols = [bytes(s) for b in run.batches["trade"] for s in b["symbol"]]
    assert list(zip(symbols, run.column("trade", "trade_id"), strict=True)) == [
        (b"AAA", 1), (b"BBB", 10), (b"BBB", 11), (b"AAA", 2)]
    assert run.decoder.duplicates == 3
