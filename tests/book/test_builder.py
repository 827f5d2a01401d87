"""BookBuilder / the C++ books on hand-made records: the §5 procedure, case by case."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from feedhandler.book import BookBuilder, snapshot_records
from feedhandler.book.snapshot import DEPTH, SnapshotError, decimal_units
from feedhandler.records import in_current_layout, wide_to_int
from feedhandler.records.schema import HISTORY

Levels = list[tuple[str, str]]


def diff(symbol: str, first: int, last: int, bids: Levels = (), asks: Levels = ()) -> np.ndarray:  # type: ignore[assignment]
    levels = [(0, p, q) for p, q in bids] + [(1, p, q) for p, q in asks]
    rows = np.zeros(max(1, len(levels)), DEPTH.dtype)
    rows["symbol"] = symbol.encode()
    rows["first_update_id"], rows["last_update_id"] = first, last
    rows["ts_recv"] = last
    if not levels:
        rows["side"] = 2
    for i, (side, price, qty) in enumerate(levels):
        rows[i]["side"] = side
        units = decimal_units(qty, wide=True)
        rows[i]["price"] = decimal_units(price)
        rows[i]["qty"] = (units & (2**64 - 1), units >> 64)
    rows["flags"][0] |= 1
    rows["flags"][-1] |= 2
    return rows


def snap(symbol: str, last: int, bids: Levels, asks: Levels) -> np.ndarray:
    return snapshot_records(symbol, {"lastUpdateId": last, "bids": bids, "asks": asks}, last)


def pairs(levels: np.ndarray) -> list[tuple[int, int]]:
    """(price, qty) in 1e-8 units of each level of a `LEVEL_DTYPE` array."""
    return [(int(level["price"]), wide_to_int(level["qty"])) for level in levels]


def book(builder: BookBuilder, symbol: str) -> tuple[list[list[int]], list[list[int]]]:
    """Both sides in whole units, for readable expectations."""
    bids, asks = builder.levels(symbol)
    return tuple(  # type: ignore[return-value]
        [[price // 10**8, qty // 10**8] for price, qty in pairs(side)] for side in (bids, asks)
    )


def test_diffs_are_buffered_until_a_snapshot_then_replayed_from_its_update_id() -> None:
    b = BookBuilder()
    b.apply(diff("X", 10, 12, bids=[("99", "1")]))  # in the snapshot already: dropped
    b.apply(diff("X", 13, 15, bids=[("98", "2")], asks=[("101", "0")]))  # U <= 15+1 <= u
    assert not b.valid("X") and b.why_not("X") == "no snapshot seen yet"
    assert b.status("X")["buffered"] == 3
    b.apply(snap("X", 14, [("99", "5"), ("97", "1")], [("101", "1"), ("102", "4")]))
    assert b.valid("X") and b.why_not("X") == ""
    assert b.status("X")["update_id"] == 15
    assert book(b, "X") == ([[99, 5], [98, 2], [97, 1]], [[102, 4]])
    b.apply(diff("X", 16, 16, asks=[("100", "3")]))
    assert book(b, "X")[1] == [[100, 3], [102, 4]]
    assert b.top("X", 1).asks == [(Decimal("100"), Decimal("3"))] and b.top("X").valid
    b.apply(diff("X", 20, 20, asks=[("100", "0")]))  # 17-19 skipped: the book is not valid
    assert not b.top("X").valid and b.top("X").update_id == 16


def test_a_gap_invalidates_that_symbol_only_until_its_next_snapshot() -> None:
    b = BookBuilder()
    for symbol in ("A", "B"):
        b.apply(snap(symbol, 100, [("10", "1")], [("11", "1")]))
    b.apply(diff("A", 101, 101, bids=[("10", "2")]))
    b.apply(diff("A", 103, 104, bids=[("9", "1")]))  # 102 is missing
    b.apply(diff("B", 101, 102, asks=[("12", "7")]))
    assert not b.valid("A") and b.valid("B")
    assert "expected U <= 102, got 103" in b.why_not("A")
    assert b.status("A")["gaps"] == 1
    b.apply(diff("A", 105, 106, bids=[("8", "1")]))
    b.apply(snap("A", 105, [("10", "3"), ("9", "1")], [("11", "1")]))  # after the gap
    assert b.valid("A")
    assert b.status("A")["update_id"] == 106
    assert book(b, "A") == ([[10, 3], [9, 1], [8, 1]], [[11, 1]])


def test_a_snapshot_older_than_the_buffered_diffs_is_not_used() -> None:
    b = BookBuilder()
    b.apply(diff("X", 50, 52, bids=[("1", "1")]))
    b.apply(snap("X", 48, [("1", "9")], [("2", "1")]))
    assert b.status("X")["state"] == "stale_snapshot"
    assert "first U is 50" in b.why_not("X")
    b.apply(snap("X", 51, [("1", "3")], [("2", "1")]))
    assert b.valid("X") and b.status("X")["update_id"] == 52
    assert book(b, "X") == ([[1, 1]], [[2, 1]])


def test_stale_events_are_ignored_and_a_snapshot_while_valid_changes_nothing() -> None:
    b = BookBuilder()
    b.apply(snap("X", 20, [("5", "1")], [("6", "1")]))
    b.apply(diff("X", 21, 22, bids=[("5", "2")]))
    b.apply(diff("X", 18, 21, bids=[("5", "9")]))  # u < local id: ignored
    b.apply(snap("X", 22, [("5", "100")], [("6", "1")]))
    assert b.valid("X") and book(b, "X") == ([[5, 2]], [[6, 1]])
    assert b.status("X")["snapshots"] == 2


def test_a_gap_right_after_the_snapshot_is_detected() -> None:
    b = BookBuilder()
    b.apply(snap("X", 20, [("5", "1")], [("6", "1")]))
    b.apply(diff("X", 22, 23, bids=[("5", "2")]))  # needs U <= 21
    assert b.status("X")["state"] == "gap"


def test_crossed_or_locked_books_are_counted() -> None:
    b = BookBuilder()
    b.apply(snap("X", 1, [("5", "1")], [("6", "1")]))
    b.apply(diff("X", 2, 2, bids=[("6", "1")]))  # locked: bid = ask
    b.apply(diff("X", 3, 3, asks=[("6", "0")]))  # fine again
    assert b.status("X")["crossed"] == 1 and b.valid("X")


def test_top_n_books_keep_only_the_best_levels() -> None:
    b = BookBuilder(max_levels=2)
    b.apply(snap("X", 1, [("5", "1"), ("4", "1"), ("3", "1")], [("6", "1")]))
    b.apply(diff("X", 2, 2, bids=[("4.5", "2")]))
    assert book(b, "X")[0] == [[5, 1], [4, 2]]  # 4.5 // 1 = 4 (units shown as whole numbers)
    assert b.levels("X")[0]["price"].tolist() == [500000000, 450000000]


def test_empty_events_and_empty_snapshots_keep_continuity() -> None:
    b = BookBuilder()
    b.apply(snap("X", 7, [], []))
    b.apply(diff("X", 8, 9))
    assert b.valid("X") and b.status("X")["update_id"] == 9
    assert book(b, "X") == ([], [])


def test_quantities_beyond_int64_are_kept_exactly() -> None:
    b = BookBuilder()
    huge = "100000000000000.12345678"  # a cheap token's level: beyond int64 at 1e-8
    b.apply(snap("X", 1, [("0.00000001", huge)], []))
    b.apply(diff("X", 2, 2, asks=[("0.00000002", huge)]))
    assert pairs(b.levels("X")[1]) == [(2, 10_000_000_000_000_012_345_678)]
    assert b.top("X").bids == [(Decimal("0.00000001"), Decimal(huge))]


def test_snapshot_decimals_are_exact_and_bounded() -> None:
    assert decimal_units("92233720368.54775807") == 2**63 - 1
    assert decimal_units("92233720368.54775808", wide=True) == 2**63
    assert decimal_units("0.000000010") == 1
    for bad in ("92233720368.54775808", "0.000000001", "1e5", "", "-1"):
        with pytest.raises(SnapshotError):
            decimal_units(bad)


def test_depth_records_of_schema_v1_build_the_same_book() -> None:
    # v1 (before 128-bit quantities): qty an int64, as messages still on a topic may hold
    v1 = HISTORY[(DEPTH.name, 1)]
    current = np.concatenate([snap("X", 14, [("99", "1.25")], [("101", "4")]),
                              diff("X", 15, 15, bids=[("98", "2")])])
    old = np.zeros(len(current), v1.dtype)
    for name in v1.dtype.names or ():
        old[name] = current[name] if name != "qty" else current["qty"]["lo"].astype(np.int64)
    b, expected = BookBuilder(), BookBuilder()
    b.apply(old)
    expected.apply(current)
    assert book(b, "X") == book(expected, "X") and b.top("X").bids[1] == (Decimal("98"),
                                                                          Decimal("2"))
    assert b.top("X").bids[0] == (Decimal("99"), Decimal("1.25"))


def test_an_int64_quantity_is_sign_extended_into_128_bits() -> None:
    v1 = HISTORY[(DEPTH.name, 1)]
    old = np.zeros(2, v1.dtype)
    old["qty"] = [-5, 2**63 - 1]
    now = in_current_layout("depth", old)
    assert [wide_to_int(q) for q in now["qty"]] == [-5, 2**63 - 1]


def test_a_trimmed_book_never_shows_a_forgotten_level_as_its_best() -> None:
    b = BookBuilder(max_levels=2)
    b.apply(snap("X", 10, [("100", "1"), ("99", "1"), ("98", "1")], [("101", "1")]))  # 98 forgotten
    b.apply(diff("X", 11, 11, bids=[("100", "0")]))
    assert book(b, "X")[0] == [[99, 1]]  # 98 may be second: not shown
    assert b.valid("X")  # one level a side is enough (min_levels 1)
    b.apply(diff("X", 12, 13, bids=[("99", "0"), ("97", "5")]))
    # 98 may be the best: neither it nor 97 is shown, and the book is not valid
    assert book(b, "X")[0] == [] and b.status("X")["state"] == "short"
    assert "below 1 levels" in b.why_not("X") and "update id 13" in b.why_not("X")
    b.apply(diff("X", 14, 14, bids=[("105", "5")]))  # buffered
    assert not b.valid("X") and b.status("X")["buffered"] == 1
    b.apply(snap("X", 13, [("98", "1"), ("97", "5")], [("101", "1")]))
    assert b.valid("X") and book(b, "X")[0] == [[105, 5], [98, 1]]  # 97 forgotten again
    assert b.status("X")["shorts"] == 1


def test_a_side_below_min_levels_makes_a_trimmed_book_invalid_until_a_snapshot() -> None:
    b = BookBuilder(max_levels=3, min_levels=2)
    asks = [("101", "1"), ("102", "1"), ("103", "1"), ("104", "1")]
    b.apply(snap("X", 10, [("99", "1")], asks))  # 104 forgotten; one bid is the whole side
    b.apply(diff("X", 11, 11, asks=[("101", "0")]))
    assert b.valid("X")  # 102, 103 still: two levels
    b.apply(diff("X", 12, 12, asks=[("102", "0")]))
    assert b.status("X")["state"] == "short" and b.status("X")["expected"] == 13
    with pytest.raises(ValueError, match="above max_levels"):
        BookBuilder(max_levels=3, min_levels=4)


def test_a_snapshot_side_cut_at_its_limit_knows_nothing_beyond_its_last_level() -> None:
    rows = snapshot_records("X", {"lastUpdateId": 10, "bids": [["99", "1"], ["98", "1"]],
                                  "asks": [["101", "1"]]}, 10, limit=2)
    assert list(rows["flags"]) == [4 | 8 | 1, 4 | 8, 4 | 2]  # bids filled the limit: cut
    b = BookBuilder()  # full depth, yet the snapshot's bids stop at 98
    b.apply(rows)
    b.apply(diff("X", 11, 11, bids=[("90", "7"), ("98.5", "2")]))  # 90: beyond 98, not kept
    assert pairs(b.levels("X")[0]) == [(decimal_units(p), decimal_units(q)) for p, q in
                                       (("99", "1"), ("98.5", "2"), ("98", "1"))]
    b.apply(diff("X", 12, 12, bids=[("99", "0"), ("98.5", "0"), ("98", "0")]))
    assert b.status("X")["state"] == "short"  # the best bid may be 90, or one never seen
    complete = snapshot_records("X", {"lastUpdateId": 10, "bids": [["99", "1"]],
                                      "asks": []}, 10, limit=2)
    assert list(complete["flags"]) == [4 | 1 | 2]


def test_a_snapshot_the_first_buffered_diff_follows_on_from_is_used() -> None:
    b = BookBuilder()
    b.apply(diff("X", 15, 16, bids=[("1", "2")]))
    b.apply(snap("X", 14, [("1", "1")], [("2", "1")]))  # U = lastUpdateId + 1
    assert b.valid("X") and b.status("X")["update_id"] == 16 and book(b, "X")[0] == [[1, 2]]


def test_a_short_book_takes_no_snapshot_older_than_the_id_it_reached() -> None:
    b = BookBuilder(max_levels=2)
    b.apply(snap("X", 10, [("100", "1"), ("99", "1"), ("98", "1")], [("101", "1")]))
    b.apply(diff("X", 11, 20, bids=[("100", "0"), ("99", "0")]))
    assert b.status("X")["state"] == "short" and b.status("X")["buffered"] == 0
    b.apply(snap("X", 15, [("100", "1"), ("99", "1")], [("101", "1")]))  # before 11-20
    assert b.status("X")["state"] == "stale_snapshot" and b.status("X")["expected"] == 21
    b.apply(snap("X", 18, [("100", "1"), ("99", "1")], [("101", "1")]))  # still before
    assert b.status("X")["state"] == "stale_snapshot"
    b.apply(snap("X", 20, [("98", "1"), ("97", "1")], [("101", "1")]))
    assert b.valid("X") and book(b, "X")[0] == [[98, 1], [97, 1]]


def test_a_snapshot_cut_below_min_levels_is_short_at_once() -> None:
    b = BookBuilder(min_levels=3)
    b.apply(snapshot_records("X", {"lastUpdateId": 10, "bids": [["99", "1"], ["98", "1"]],
                                   "asks": [["101", "1"]]}, 10, limit=2))
    assert b.status("X")["state"] == "short"  # asks are whole: one level is all there is
    b.apply(diff("X", 11, 11))
    assert b.status("X")["buffered"] == 1  # kept for the next snapshot


def test_a_builder_with_refresh_levels_stays_valid_and_takes_the_next_covering_snapshot() -> None:
    b = BookBuilder(max_levels=4, refresh_levels=2)
    bids = [("100", "1"), ("99", "1"), ("98", "1"), ("97", "1"), ("96", "1")]
    b.apply(snap("X", 10, bids, [("101", "1")]))  # 96 forgotten
    b.apply(diff("X", 11, 12, bids=[("100", "0"), ("99", "0"), ("98", "0")]))
    assert b.valid("X") and b.status("X")["recording"] and book(b, "X")[0] == [[97, 1]]
    b.apply(diff("X", 13, 13, bids=[("97", "2")]))
    b.apply(snap("X", 12, [("97", "1"), ("96", "1"), ("95", "1")], [("101", "1")]))
    assert b.valid("X") and not b.status("X")["recording"]
    assert book(b, "X")[0] == [[97, 2], [96, 1], [95, 1]]  # 12's levels, then 13 replayed
