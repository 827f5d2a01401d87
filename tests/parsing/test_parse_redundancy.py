"""A/B redundancy on one decoder (set_overlap(BOTH_LEGS)): the first arrival of each record
wins, from either leg; each record is emitted once and only a hole both legs have is a gap."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedhandler._ext.decoder import (
    BOTH_LEGS,
    COPY_DIGESTS,
    COPY_WINDOW_NS,
    LEAD_BOUNDS_NS,
)
from tests.parsing.helpers import examples
from tests.parsing.strategies import encode
from tests.parsing.test_parse_gaps import depth, trade
from tests.parsing.test_parse_overlap import Run

T = TypeVar("T")


def mini(event_ms: int, close: str = "1", s: str = "BTCUSDT") -> bytes:
    return encode({"e": "24hrMiniTicker", "E": event_ms, "s": s, "c": close, "o": "1",
                   "h": "2", "l": "1", "v": "10", "q": "10"})


class Legs(Run):
    def __init__(self, on_error: Any = None) -> None:
        super().__init__(on_error)
        self.decoder.set_overlap(BOTH_LEGS)

    def at(self, frame: bytes, leg: int, ts: int = 1) -> None:
        self.decoder.decode_many([frame], ts_recv=ts, leg=leg)


def _interleave(legs: list[list[T]], order: list[bool]) -> list[tuple[T, int]]:
    """The two legs' frames, each in its own order, merged as `order` picks (then the rest)."""
    merged, queues, picks = [], [list(legs[0]), list(legs[1])], iter(order)
    while queues[0] or queues[1]:
        leg = (1 if next(picks, False) else 0) if queues[0] and queues[1] else \
            (0 if queues[0] else 1)
        merged.append((queues[leg].pop(0), leg))
    return merged


def _frames(ids: list[int]) -> list[bytes]:
    """A trade and a depth event per id, as a leg carries them."""
    return [f for i in ids for f in (trade(i), depth(2 * i - 1, 2 * i))]


def _once_in_order(legs: list[list[bytes]], order: list[bool], n: int) -> Legs:
    """The legs interleaved as `order` picks: ids 1..n come out once, in order, gap-free."""
    run = Legs()
    for frame, leg in _interleave(legs, order):
        run.at(frame, leg)
    run.decoder.flush()
    assert run.column("trade", "trade_id") == list(range(1, n + 1))
    assert run.column("depth", "last_update_id") == [2 * i for i in range(1, n + 1)]
    assert run.gaps() == []
    return run


@examples(200)
@given(n=st.integers(1, 60), cut=st.integers(0, 60), lost=st.integers(0, 1),
       order=st.lists(st.booleans(), max_size=140))
def test_any_interleaving_of_two_copies_is_the_sequence_once(n: int, cut: int, lost: int,
                                                             order: list[bool]) -> None:
    """Both legs carry trades 1..n and depth events; one of them may be lost after `cut`
    records (it died): whatever the arrival order, each record comes out once, in order, and
    no gap is reported."""
    frames = _frames(list(range(1, n + 1)))
    legs = [frames, frames]
    legs[lost] = frames[:cut]
    run = _once_in_order(legs, order, n)
    assert run.decoder.duplicates == min(cut, 2 * n)


@examples(200)
@given(n=st.integers(2, 50), k=st.integers(0, 50), start=st.integers(1, 50),
       order=st.lists(st.booleans(), max_size=140))
def test_a_leg_that_reconnects_anywhere_costs_nothing(n: int, k: int, start: int,
                                                      order: list[bool]) -> None:
    """Leg 0 carries trades 1..n (its first one comes first); leg 1 carries 1..k, then its
    connection is replaced and the new one starts at `start`, behind or ahead of leg 0, in
    any interleaving: each id comes out once, in order, and no gap is reported."""
    run = Legs()
    run.at(trade(1), 0)
    leg1: list[bytes | None] = [trade(i) for i in range(1, min(k, n) + 1)]
    leg1 += [None] + [trade(i) for i in range(min(start, n), n + 1)]  # None: reconnect
    for frame, leg in _interleave([[trade(i) for i in range(2, n + 1)], leg1], order):
        if frame is None:
            run.decoder.leg_connected(1)
        else:
            run.at(frame, leg)
    assert run.column("trade", "trade_id") == list(range(1, n + 1))
    assert run.gaps() == []


def test_a_leg_ahead_waits_per_stream_until_it_meets_the_ids() -> None:
    run = Legs()
    for symbol in ("AAA", "BBB"):
        run.at(trade(1, symbol), 0)
        run.at(trade(1, symbol), 1)
    run.decoder.leg_connected(1)  # leg 1 reconnects
    run.at(trade(4, "AAA"), 1)  # 2 and 3 are in flight on leg 0: dropped
    run.at(trade(2, "BBB"), 1)  # in step on BBB: emitted
    for t in (2, 3, 4):
        run.at(trade(t, "AAA"), 0)
    run.at(trade(5, "AAA"), 1)  # next to 4: leg 1 meets AAA
    run.at(trade(7, "BBB"), 1)  # a hole on leg 1 that leg 0 may still fill: held
    run.decoder.leg_connected(0)
    run.decoder.leg_connected(1)  # both reconnect: neither has met a stream
    run.at(trade(9, "AAA"), 0)  # 6..8 may come on leg 1: held
    run.decoder.flush()  # what is held is decoded (streams in the order they were first
    # held, each in id order): the holes are real
    symbols = [bytes(s).decode() for b in run.batches["trade"] for s in b["symbol"]]
    assert list(zip(symbols, run.column("trade", "trade_id"), strict=True)) == [
        ("AAA", 1), ("BBB", 1), ("BBB", 2), ("AAA", 2), ("AAA", 3), ("AAA", 4), ("AAA", 5),
        ("BBB", 7), ("AAA", 9)]
    assert run.gaps() == [("trade", 3, 7, 1), ("trade", 6, 9, 1)]


@examples(200)
@given(n=st.integers(2, 60), holes=st.sets(st.integers(2, 60)), swaps=st.sets(st.integers(2, 59)),
       holed=st.integers(0, 1), order=st.lists(st.booleans(), max_size=160))
def test_a_hole_or_a_swap_on_one_leg_is_filled_by_the_other(
        n: int, holes: set[int], swaps: set[int], holed: int, order: list[bool]) -> None:
    """One leg loses some trades and depth events and swaps some neighbours; the other
    carries all. Whichever leg is ahead, each record comes out once, in order, gap-free."""
    ids = [i for i in range(1, n + 1) if i not in holes]
    for i in sorted(swaps):  # neighbours in the holed leg's order, swapped
        if i in ids and i + 1 in ids:
            at = ids.index(i)
            ids[at], ids[at + 1] = ids[at + 1], ids[at]
    full = _frames(list(range(1, n + 1)))
    legs = [full, full]
    legs[holed] = _frames(ids)
    _once_in_order(legs, order, n)


@examples(200)
@given(n=st.integers(2, 30), lost=st.lists(st.tuples(st.integers(0, 3), st.integers(2, 30))),
       order=st.lists(st.booleans(), max_size=250))
def test_holes_in_several_streams_are_filled_stream_by_stream(
        n: int, lost: list[tuple[int, int]], order: list[bool]) -> None:
    """Four symbols' trades interleaved on both legs; leg 0 loses any of them. Each stream's
    held frames are decoded again when that stream advances, not when another does: whatever
    the arrival order, every stream comes out whole, in order, gap-free, and nothing stays
    held."""
    symbols = ["AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT"]
    full = [(s, i) for i in range(1, n + 1) for s in symbols]
    holed = [(s, i) for s, i in full if (symbols.index(s), i) not in set(lost)]
    run = Legs()
    for (symbol, i), leg in _interleave([holed, full], order):
        run.at(trade(i, symbol), leg)
    assert run.decoder.held == 0  # (the other leg's copies filled every hole as they came)
    run.decoder.flush()
    emitted = [(bytes(s).decode(), int(t)) for b in run.batches["trade"]
               for s, t in zip(b["symbol"], b["trade_id"], strict=True)]
    for symbol in symbols:
        assert [t for s, t in emitted if s == symbol] == list(range(1, n + 1))
    assert run.gaps() == []


def test_a_release_decodes_again_only_the_stream_that_advanced() -> None:
    run = Legs()
    for symbol in ("AAAUSDT", "BBBUSDT"):
        for leg in (0, 1):
            run.at(trade(1, symbol), leg)
        for t in (3, 4, 5):  # leg 0 misses 2 of each: held for leg 1
            run.at(trade(t, symbol), 0)
    assert (run.decoder.held, run.decoder.redecoded) == (6, 0)
    run.at(trade(2, "AAAUSDT"), 1)  # fills AAA's hole: its 3 held frames go, BBB's stay
    assert (run.decoder.held, run.decoder.redecoded) == (3, 3)
    run.at(trade(2, "BBBUSDT"), 1)
    assert (run.decoder.held, run.decoder.redecoded) == (0, 6)
    assert run.column("trade", "trade_id") == [1, 1, 2, 3, 4, 5, 2, 3, 4, 5]
    assert run.gaps() == []


def test_a_batch_callback_that_raises_mid_release_leaves_the_rest_held() -> None:
    """What was not decoded again stays held and counted (a miscount would reach HOLD_BYTES
    and end the hold-back for good)."""

    class Failing(Legs):
        fail = False

        def _on_batch(self, kind: str, records: np.ndarray, *rest: Any) -> None:
            if self.fail and kind == "trade":
                raise RuntimeError("sink down")
            super()._on_batch(kind, records, *rest)

    run = Failing()  # (a batch a record: the release's first hand-over raises)
    run.at(trade(1), 0)
    run.at(trade(1), 1)
    for t in (3, 4, 5):
        run.at(trade(t), 0)
    assert run.decoder.held == 3
    run.fail = True
    with pytest.raises(RuntimeError, match="sink down"):
        run.at(trade(2), 1)  # fills the hole, then its own hand-over raises: no release yet
    assert (run.decoder.held, run.decoder.redecoded) == (3, 0)
    with pytest.raises(RuntimeError, match="sink down"):
        run.decoder.flush()  # the release: 3 is decoded again, its hand-over raises
    assert (run.decoder.held, run.decoder.redecoded) == (2, 1)  # 4 and 5 still held
    run.fail = False
    run.decoder.flush()
    assert (run.decoder.held, run.decoder.redecoded) == (0, 3)
    assert run.column("trade", "trade_id") == [1, 4, 5]  # (2 and 3 went to the failed sink)


def test_a_hole_both_legs_carry_is_one_gap_whichever_leg_comes_first() -> None:
    for first in (0, 1):
        run = Legs()
        run.at(trade(1), first)
        run.at(trade(1), 1 - first)
        run.at(trade(4), first)  # 2 and 3 may still come on the other leg: held
        run.at(trade(4), 1 - first)  # they did not: a gap, 4 emitted; the held copy dropped
        run.at(trade(5), first)
        assert run.column("trade", "trade_id") == [1, 4, 5]
        assert run.gaps() == [("trade", 2, 4, 1)]


def test_a_hole_on_the_leading_leg_is_filled_and_it_leads_again() -> None:
    """The leading leg (3 ms ahead) misses id 10; the other leg fills it 3 ms later, the
    records held meanwhile follow, and the leading leg leads again: when the other leg then
    stalls for 2 s, nothing is lost or late."""
    ms = 1_000_000
    arrivals = []
    for i in range(1, 3001):
        if i != 10:
            arrivals.append((i * ms, 0, i))
        arrivals.append((max(i * ms + 3 * ms, 2500 * ms if i >= 500 else 0), 1, i))
    run = Legs()
    for ts, leg, i in sorted(arrivals):
        run.at(trade(i), leg, ts)
    assert run.column("trade", "trade_id") == list(range(1, 3001))
    assert run.gaps() == []
    assert run.decoder.held == 0
    won = [run.decoder.leg_counts(leg)[0] for leg in (0, 1)]
    assert won[0] > 2900, won  # (leg 1 won 10, and what was held until it came)


def test_holes_on_both_legs_keep_each_stream_in_id_order() -> None:
    """Frames held on both legs are decoded again in id order, and a later frame of a stream
    that has some held waits behind them: no id one leg carried is lost or reordered."""
    run = Legs()
    run.at(trade(1), 0)
    run.at(trade(1), 1)
    run.at(trade(3), 0)  # held: 2 may come on leg 1
    run.at(trade(5), 1)  # held: 2..4 may come on leg 0 (it has 3)
    run.at(trade(4), 0)  # leg 1 passed 4, but 3 is held: behind it, then all in order
    run.decoder.flush()
    assert run.column("trade", "trade_id") == [1, 3, 4, 5]
    assert run.gaps() == [("trade", 2, 3, 1)]
    late = Legs()
    for t, leg in ((1, 0), (1, 1), (3, 0), (4, 1), (2, 1)):  # leg 1's 2 comes late
        late.at(trade(t), leg)
    assert late.column("trade", "trade_id") == [1, 2, 3, 4] and late.gaps() == []
    assert late.decoder.held == 0


def test_a_clock_stepped_back_ends_the_wait() -> None:
    second = 1_000_000_000
    run = Legs()
    run.at(trade(1), 0, ts=10 * second)
    run.at(trade(1), 1, ts=10 * second)
    run.at(trade(3), 0, ts=10 * second)  # held
    run.at(trade(4), 0, ts=second)  # the wall clock stepped back 9 s: the hole is real
    assert run.column("trade", "trade_id") == [1, 3, 4] and run.decoder.held == 0


def test_a_stalled_leg_holds_a_hole_for_a_second_at_most() -> None:
    """A hole on the leg that serves waits for the other leg (open, but delivering nothing)
    no longer than a second: then it is a gap, and the records held meanwhile are emitted."""
    second = 1_000_000_000
    run = Legs()
    run.at(trade(1), 0, ts=1)
    run.at(trade(1), 1, ts=1)  # leg 1 met the stream, then stalls
    run.at(trade(3), 0, ts=second)  # 2 may still come on leg 1: held
    run.at(trade(4), 0, ts=second + second // 2)
    assert run.column("trade", "trade_id") == [1] and run.decoder.held == 2
    run.at(trade(5), 0, ts=2 * second + 1)  # more than a second since 3 was held
    assert run.column("trade", "trade_id") == [1, 3, 4, 5]
    assert run.gaps() == [("trade", 2, 3, 1)] and run.decoder.held == 0
    run.at(trade(7), 0, ts=3 * second)  # held; then nothing comes on either leg
    run.decoder.flush_expired(3 * second + second // 2)
    assert run.decoder.held == 1
    run.decoder.flush_expired(4 * second + 1)  # the service tick: a second is up
    assert run.column("trade", "trade_id") == [1, 3, 4, 5, 7] and run.decoder.held == 0


@examples(100)
@given(n=st.integers(1, 40), order=st.lists(st.booleans(), max_size=100))
def test_records_without_ids_are_told_apart_by_event_time_and_content(
        n: int, order: list[bool]) -> None:
    """miniTicker has no id: the same event time and content from the other leg is a copy;
    a changed value with the same event time is a record of its own."""
    frames = [mini(i // 2, close=str(1 + i % 2)) for i in range(n)]
    run = Legs()
    for frame, leg in _interleave([frames, frames], order):
        run.at(frame, leg)
    got = [(int(e), int(c)) for b in run.batches["miniTicker"]
           for e, c in zip(b["ts_event"], b["close"], strict=True)]
    assert got == [(i // 2 * 1_000_000, (1 + i % 2) * 10**8) for i in range(n)]
    assert run.decoder.duplicates == n


def test_a_hole_on_both_legs_is_one_gap() -> None:
    run = Legs()
    run.at(trade(1), 0)
    run.at(trade(1), 1)
    run.at(trade(3), 1)  # 2 never came on either leg
    run.at(trade(3), 0)
    assert run.column("trade", "trade_id") == [1, 3]
    assert run.gaps() == [("trade", 2, 3, 1)]


def test_a_joining_leg_waits_for_the_primary_then_both_win() -> None:
    """A leg (re)connects while the other serves: under the other as primary its ids past a
    hole wait for the primary (held, then emitted in step); once in step, both are peers;
    then the old one dies."""
    run = Run()
    run.feed([trade(t) for t in range(1, 5)], leg=0)
    run.decoder.set_overlap(0)  # leg 1 joins
    run.feed([trade(7), trade(8)], leg=1)  # 5, 6 are still in flight on leg 0: ahead
    run.feed([trade(5), trade(6), trade(7)], leg=0)
    run.feed([trade(8)], leg=1)
    assert run.decoder.overlap_counts(1) == (3, 2)  # 7 and 8 released, then 8 again
    run.decoder.set_overlap(BOTH_LEGS)  # in step: peers
    run.feed([trade(9), trade(10), trade(11)], leg=1)
    run.feed([trade(8), trade(9), trade(10)], leg=0)  # then leg 0 is lost
    run.feed([trade(12)], leg=1)
    assert run.column("trade", "trade_id") == list(range(1, 13))
    assert run.gaps() == []


def test_the_winning_leg_and_its_lead_are_counted() -> None:
    run = Legs()
    run.at(trade(1), 0, ts=1_000)
    run.at(trade(1), 1, ts=1_000 + 300_000)  # leg 0 won by 300 us
    run.at(trade(2), 1, ts=2_000)
    run.at(trade(3), 1, ts=3_000)
    run.at(trade(2), 0, ts=4_000)  # older than the last emitted: no lead measured
    run.at(trade(3), 0, ts=3_000 + 2_000_000_000)  # leg 1 won by 2 s: the overflow bucket
    run.at(mini(5), 0, ts=10)
    run.at(mini(5), 1, ts=10 + 40_000)  # leg 0 won by 40 us
    won0, count0, sum0, buckets0, behind = run.decoder.leg_counts(0)
    won1, count1, sum1, buckets1, _ = run.decoder.leg_counts(1)
    assert (won0, won1) == (2, 2)
    assert (count0, sum0, count1, sum1) == (2, 340_000, 1, 2_000_000_000)
    assert behind == 1
    expected0 = np.zeros(len(LEAD_BOUNDS_NS) + 1, dtype=int)
    expected0[0] += 1  # 40 us <= 50 us
    expected0[LEAD_BOUNDS_NS.index(500_000)] += 1  # 300 us <= 500 us
    assert list(buckets0) == list(expected0)
    assert list(buckets1) == [0] * len(LEAD_BOUNDS_NS) + [1]


def test_one_connection_counts_no_leg() -> None:
    run = Run()
    run.feed([trade(1), trade(2), mini(1), mini(1)], leg=0)
    assert run.decoder.leg_counts(0)[:3] == (0, 0, 0)
    assert len(run.batches["miniTicker"]) == 2  # no de-duplication without an overlap



class Rejecting(Legs):
    """Legs whose rejected frames are kept, as the handler gets them."""

    def __init__(self) -> None:
        super().__init__(self._on_error)
        self.rejected: list[tuple[str, bytes]] = []

    def _on_error(self, reason: str, field: str, stream: str, frame: bytes) -> None:
        self.rejected.append((reason, frame))


BAD = b'{"e":"trade","E":1,"s":"BTCUSDT","t":9,"p":"1.0","q":"x"}'


def test_a_bad_frame_both_legs_deliver_is_rejected_once() -> None:
    run = Rejecting()
    run.at(trade(1), 0)
    run.at(BAD, 0, ts=10)
    run.at(trade(1), 1)
    run.at(BAD, 1, ts=20)  # its copy: not a second rejection, dead letter or log line
    run.at(trade(2), 1)
    run.decoder.flush()
    assert [frame for _, frame in run.rejected] == [BAD]
    assert run.decoder.error_counts == {"bad_decimal": 1}
    assert run.decoder.rejected_copies == 1
    assert run.column("trade", "trade_id") == [1, 2]  # the good ones around it go on


def test_a_bad_frame_sent_twice_is_two_rejections_matched_by_two_copies() -> None:
    """Twice on each leg, in any order of the legs: two rejections, two copies."""
    for order in ([0, 0, 1, 1], [0, 1, 1, 0], [1, 0, 0, 1], [1, 1, 0, 0]):
        run = Rejecting()
        for ts, leg in enumerate(order, 1):
            run.at(BAD, leg, ts)
        assert len(run.rejected) == 2 and run.decoder.rejected_copies == 2, order


def test_a_copy_later_than_the_window_or_different_by_a_byte_is_rejected_again() -> None:
    other = BAD.replace(b'"t":9', b'"t":8')
    run = Rejecting()
    run.at(BAD, 0, ts=1)
    run.at(other, 1, ts=2)  # not the same frame
    run.at(other, 0, ts=3)  # (its copy)
    run.at(BAD, 1, ts=1 + COPY_WINDOW_NS + 1)  # too late to be the first one's copy
    run.at(BAD, 0, ts=100)  # the clock stepped back: nothing before it can be matched
    assert [frame for _, frame in run.rejected] == [BAD, other, BAD, BAD]
    assert run.decoder.rejected_copies == 1


def test_a_flood_of_different_bad_frames_keeps_a_bounded_memory() -> None:
    run = Rejecting()
    for i in range(COPY_DIGESTS + 100):
        run.at(BAD.replace(b'"t":9', b'"t":%d' % i), 0, ts=i + 1)
    run.at(BAD.replace(b'"t":9', b'"t":0'), 1, ts=COPY_DIGESTS + 101)  # forgotten: rejected
    last = BAD.replace(b'"t":9', b'"t":%d' % (COPY_DIGESTS + 99))
    run.at(last, 1, ts=COPY_DIGESTS + 102)  # remembered: a copy
    assert len(run.rejected) == COPY_DIGESTS + 101
    assert run.decoder.rejected_copies == 1


def test_a_bad_frame_repeated_on_one_leg_keeps_each_arrivals_own_window() -> None:
    """Leg 0 repeats X every 5 s for a minute: its copies on leg 1 match arrivals of the last
    10 s only, and a Y rejected before all that is forgotten in time."""
    second = 1_000_000_000
    x, y = BAD, BAD.replace(b'"t":9', b'"t":8')
    run = Rejecting()
    run.at(x, 0, ts=1)
    run.at(y, 0, ts=second)
    for t in range(5, 65, 5):
        run.at(x, 0, ts=t * second)
    run.at(y, 1, ts=61 * second)  # Y of 60 s ago: rejected again
    run.at(x, 1, ts=62 * second)  # copies of the last two X (55 s, 60 s), oldest first
    run.at(x, 1, ts=63 * second)
    run.at(x, 1, ts=64 * second)  # no X of leg 0's left within 10 s: rejected
    assert len(run.rejected) == 2 + 12 + 2 and run.decoder.rejected_copies == 2


def test_the_same_bytes_rejected_for_another_reason_are_not_a_copy() -> None:
    run = Rejecting()
    run.at(BAD, 0, ts=1)
    run.decoder.decode_many([BAD], ts_recv=2, leg=1, is_text=False)  # a binary frame
    assert [reason for reason, _ in run.rejected] == ["bad_decimal", "binary_frame"]
    assert run.decoder.rejected_copies == 0


def test_one_connection_rejects_every_bad_frame() -> None:
    run = Rejecting()
    run.decoder.set_overlap(None)
    run.at(BAD, 0, ts=1)
    run.at(BAD, 1, ts=2)  # (a leg number without an overlap: the one connection's frame)
    assert len(run.rejected) == 2 and run.decoder.rejected_copies == 0


def test_a_rollovers_two_connections_reject_a_bad_frame_once() -> None:
    run = Rejecting()
    run.decoder.set_overlap(0)  # the old connection (0) being replaced by a new one
    run.at(BAD, 1, ts=1)
    run.at(BAD, 0, ts=2)
    run.at(BAD, 1, ts=3)  # (again: unmatched when the overlap ends)
    run.decoder.set_overlap(None)  # the old one gone: what the overlap left is forgotten
    run.decoder.set_overlap(0)  # the next rollover
    run.at(BAD, 0, ts=4)  # not a copy of the last one's
    assert len(run.rejected) == 3 and run.decoder.rejected_copies == 1
