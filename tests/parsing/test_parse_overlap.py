"""Two connections on one decoder (make-before-break rollover): each id is emitted once."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from feedhandler._ext.decoder import KIND_NAMES, Decoder
from tests.parsing.test_parse_gaps import agg, book, depth, trade


class Run:
    """A decoder with every batch kept: records per kind, gap rows as tuples."""

    def __init__(self) -> None:
        self.batches: dict[str, list[np.ndarray]] = {}
        self.decoder = Decoder(self._on_batch, batch_rows=1)

    def _on_batch(self, kind: str, records: np.ndarray, *_: Any) -> None:
        self.batches.setdefault(kind, []).append(records.copy())

    def feed(self, frames: list[bytes], leg: int) -> None:
        self.decoder.decode_many(frames, ts_recv=1, leg=leg)

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


def test_the_replacement_ahead_of_the_old_waits_for_the_old_one() -> None:
    """Ids the new connection brings past a hole are the old one's to deliver: dropped, and
    the new one is not in step until its ids meet the ones emitted."""
    run = Run()
    run.feed([trade(1), trade(2)], leg=0)
    run.decoder.set_overlap(0)
    run.feed([trade(5), trade(6)], leg=1)  # subscribed later; 3 and 4 are in flight on leg 0
    run.feed([trade(3), trade(4), trade(5)], leg=0)
    run.feed([trade(7)], leg=1)  # still past the old one's 5
    assert run.decoder.overlap_counts(1) == (0, 3)
    run.feed([trade(6), trade(7)], leg=0)
    run.feed([trade(8)], leg=1)  # in step from here
    assert run.decoder.overlap_counts(1) == (1, 3)
    assert run.column("trade", "trade_id") == list(range(1, 9))
    assert run.gaps() == [] and run.decoder.duplicates == 0


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
    assert run.decoder.duplicates == 1  # 6 of leg 1 (its 5 was dropped as ahead)
    assert run.decoder.overlap_counts(1) == (2, 1)  # 6 (duplicate) and 7 in step; 5 ahead


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
