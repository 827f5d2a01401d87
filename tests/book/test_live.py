"""The handler's books (`HandlerBooks`, C++ through `feedhandler._ext.book`): top-N records
equal a reference book built in Python from the same records; crossed books and bookTickers
that disagree with the book at their update id are counted and evented, rate-limited."""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import pytest

from feedhandler._ext.book import BOOK_DTYPE, Books
from feedhandler.book.live import HandlerBooks
from feedhandler.book.snapshot import decimal_units
from feedhandler.config import BookConfig
from feedhandler.records import SCHEMAS, wide_to_int
from tests.book.test_builder import diff, snap

SECOND = 1_000_000_000


def ticker(symbol: str, u: int, bid: tuple[str, str], ask: tuple[str, str]) -> np.ndarray:
    row = np.zeros(1, SCHEMAS["bookTicker"].dtype)
    row["symbol"], row["update_id"] = symbol.encode(), u
    for side, (price, qty) in (("bid", bid), ("ask", ask)):
        row[f"{side}_price"] = decimal_units(price)
        units = decimal_units(qty, wide=True)
        row[f"{side}_qty"] = (units & (2**64 - 1), units >> 64)
    return row


def record_levels(row: np.void, side: str) -> list[tuple[int, int]]:
    n = int(row[f"{side}_count"])
    return [(int(row[f"{side}_price"][i]), wide_to_int(row[f"{side}_qty"][i])) for i in range(n)]


class ReferenceBook:
    """Snapshot, then diffs applied level by level: dicts of price -> qty (1e-8 units)."""

    def __init__(self, bids: dict[int, int], asks: dict[int, int]) -> None:
        self.sides = (dict(bids), dict(asks))

    def apply(self, side: int, price: int, qty: int) -> None:
        if qty:
            self.sides[side][price] = qty
        else:
            self.sides[side].pop(price, None)

    def top(self, side: int, n: int) -> list[tuple[int, int]]:
        prices = sorted(self.sides[side], reverse=side == 0)[:n]
        return [(p, self.sides[side][p]) for p in prices]


@pytest.mark.parametrize("top_n", [1, 5, 20])
def test_top_n_records_equal_a_reference_book_built_in_python(top_n: int) -> None:
    rng = random.Random(top_n)
    units = 10**8
    bids = {(1000 - i) * units: rng.randint(1, 50) * units for i in range(40)}
    asks = {(1001 + i) * units: rng.randint(1, 50) * units for i in range(40)}
    books = Books()
    books.apply(snap("X", 100, [(str(p // units), str(q // units)) for p, q in bids.items()],
                     [(str(p // units), str(q // units)) for p, q in asks.items()]))
    reference = ReferenceBook(bids, asks)
    (first,) = books.take_tops(top_n, 7)
    assert record_levels(first, "bid") == reference.top(0, top_n)
    assert first["update_id"] == 100 and first["ts"] == 7
    u = 100
    for _ in range(300):
        changes = [(rng.randint(0, 1), rng.randint(960, 1040), rng.choice([0, 0, 1, 7, 2**70]))
                   for _ in range(rng.randint(1, 6))]
        first_id, u = u + 1, u + rng.randint(1, 3)
        b = [(str(p), f"{q}") for side, p, q in changes if side == 0]
        a = [(str(p), f"{q}") for side, p, q in changes if side == 1]
        batch = diff("X", first_id, u, bids=b, asks=a)
        batch["ts_event"] = u * 10
        books.apply(batch)
        for side, p, q in changes:
            reference.apply(side, p * units, q * units)
        (row,) = books.take_tops(top_n, u)
        assert (row["update_id"], row["ts_event"], bytes(row["symbol"])) == (u, u * 10, b"X")
        assert record_levels(row, "bid") == reference.top(0, top_n)
        assert record_levels(row, "ask") == reference.top(1, top_n)
        # unused slots hold 0
        assert not row["bid_price"][row["bid_count"]:].any()
    assert len(books.take_tops(top_n, 0)) == 0  # nothing changed since the last record


def test_only_valid_books_are_taken() -> None:
    books = Books()
    books.apply(diff("X", 5, 6, bids=[("1", "1")]))  # no snapshot yet
    assert len(books.take_tops(5, 0)) == 0
    books.apply(snap("X", 5, [("1", "2")], [("2", "1")]))
    (row,) = books.take_tops(5, 0)
    assert row["update_id"] == 6 and record_levels(row, "bid") == [(10**8, 10**8)]
    books.apply(diff("X", 9, 9, bids=[("1", "3")]))  # gap: 7 and 8 missing
    books.apply(diff("X", 10, 10, bids=[("1", "4")]))
    assert books.status("X")["state"] == "gap" and len(books.take_tops(5, 0)) == 0
    assert SCHEMAS["book"].dtype == BOOK_DTYPE


def test_crossed_and_locked_books_are_counted_and_where() -> None:
    books = Books()
    books.apply(snap("X", 1, [("5", "1")], [("6", "1")]))
    books.apply(diff("X", 2, 2, bids=[("6", "1")]))  # locked
    books.apply(diff("X", 3, 3, bids=[("7", "1")]))  # crossed
    books.apply(diff("X", 4, 4, bids=[("7", "0"), ("6", "0")]))  # fine again
    status = books.status("X")
    assert status["crossed"] == 2
    assert status["crossed_at"] == {"update_id": 3, "bid_price": 7 * 10**8,
                                    "ask_price": 6 * 10**8}


def test_tickers_are_compared_at_their_own_update_id_only() -> None:
    books = Books()
    books.apply(snap("X", 10, [("5", "1")], [("6", "1")]))
    books.apply(diff("X", 11, 13, bids=[("5", "2")]))
    books.check_tickers(ticker("X", 13, ("5", "2"), ("6", "1")))  # at the event's u: agrees
    books.check_tickers(ticker("X", 10, ("5", "1"), ("6", "1")))  # late, at the snapshot
    books.check_tickers(ticker("X", 12, ("5", "9"), ("6", "1")))  # inside [11; 13]: unknown
    books.check_tickers(ticker("Y", 1, ("1", "1"), ("2", "1")))  # no book of Y
    status = books.status("X")
    assert (status["tickers_checked"], status["ticker_mismatches"],
            status["tickers_uncovered"]) == (2, 0, 1)
    # early: waits for the book to reach its u, then disagrees on the ask quantity
    books.check_tickers(ticker("X", 15, ("5", "2"), ("6", "3")))
    assert books.status("X")["tickers_pending"] == 1
    books.apply(diff("X", 14, 15, asks=[("6", "2")]))
    status = books.status("X")
    assert (status["tickers_checked"], status["ticker_mismatches"],
            status["tickers_pending"]) == (3, 1, 0)
    assert status["mismatch"]["ticker"]["ask_qty"] == 3 * 10**8
    assert status["mismatch"]["book"] == {"update_id": 15, "bid_price": 5 * 10**8,
                                          "bid_qty": 2 * 10**8, "ask_price": 6 * 10**8,
                                          "ask_qty": 2 * 10**8}
    # a ticker the book never reaches at an event's end is uncovered once the book passes it
    books.check_tickers(ticker("X", 17, ("5", "2"), ("6", "2")))
    books.apply(diff("X", 16, 18))
    assert books.status("X")["tickers_uncovered"] == 2


def test_a_wall_clock_stepped_back_does_not_stop_publishing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    published: list[np.ndarray] = []
    config = BookConfig(snapshots=True, publish=True, top_n=2, interval_ms=1)
    live = HandlerBooks(config, published.append, lambda event: None, lambda *want: None)
    live.on_depth(snap("X", 1, [("5", "1")], [("6", "1")]))
    live.service()
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() - 3600 * SECOND)  # an NTP step
    live.on_depth(diff("X", 2, 2, bids=[("5.5", "1")]))
    time.sleep(0.002)
    live.service()
    assert [rows["update_id"].tolist() for rows in published] == [[1], [2]]


def test_handler_books_publish_changed_tops_and_rate_limited_events() -> None:
    published: list[np.ndarray] = []
    events: list[dict[str, Any]] = []
    config = BookConfig(snapshots=True, publish=True, top_n=2, alert_interval_s=10.0)
    live = HandlerBooks(config, published.append, events.append, lambda *want: None)
    live.on_depth(snap("X", 1, [("5", "1"), ("4", "1"), ("3", "1")], [("6", "1")]))
    live.on_depth(diff("X", 2, 2, bids=[("6.5", "1")]))  # crossed
    live.on_book_ticker(ticker("X", 2, ("6.5", "1"), ("6", "2")))  # ask qty differs
    live.publish(1 * SECOND, 1 * SECOND)
    (rows,) = published
    assert rows.dtype == SCHEMAS["book"].dtype and rows["bid_count"].tolist() == [2]
    assert [e["type"] for e in events] == ["book_crossed", "book_ticker_mismatch"]
    assert events[0] == {"type": "book_crossed", "symbol": "X", "count": 1, "total": 1,
                         "update_id": 2, "bid": "6.50000000", "ask": "6.00000000",
                         "ts_ns": SECOND}
    assert events[1]["ticker"] == ["6.50000000", "1.00000000", "6.00000000", "2.00000000"]
    assert events[1]["book"] == ["6.50000000", "1.00000000", "6.00000000", "1.00000000"]
    live.on_depth(diff("X", 3, 3, bids=[("6.6", "1")]))  # crossed again, within 10 s
    live.publish(2 * SECOND, 2 * SECOND)
    assert len(events) == 2 and len(published) == 2
    live.publish(12 * SECOND, 12 * SECOND)  # due now: the count since the last event
    assert events[2]["type"] == "book_crossed" and events[2]["count"] == 1
    assert events[2]["total"] == 2 and len(published) == 2  # the book did not change
    summary = live.summary()
    assert {k: summary[k] for k in ("symbols", "valid", "crossed", "tickers_compared",
                                    "ticker_mismatches", "records")} == {
        "symbols": 1, "valid": 1, "crossed": 2, "tickers_compared": 1,
        "ticker_mismatches": 1, "records": 2}


def test_a_book_whose_stream_was_lost_is_neither_published_nor_valid_until_a_snapshot(
        ) -> None:
    published: list[np.ndarray] = []
    disconnected: set[str] = set()
    live = HandlerBooks(BookConfig(snapshots=True, publish=True, top_n=2), published.append,
                        lambda event: None, lambda *want: None, disconnected)
    for symbol in ("X", "Y"):
        live.on_depth(snap(symbol, 1, [("5", "1")], [("6", "1")]))
    disconnected.add("X")  # (SnapshotSync.lost)
    for symbol in ("X", "Y"):
        live.on_depth(diff(symbol, 2, 2, bids=[("5", "2")]))  # following on, after the loss
    live.publish(1 * SECOND, 1 * SECOND)
    (rows,) = published
    assert [bytes(s) for s in rows["symbol"]] == [b"Y"]
    assert live.summary()["valid"] == 1
    disconnected.discard("X")  # a snapshot after it (the book, valid, keeps its levels)
    live.on_depth(snap("X", 3, [("5", "2")], [("6", "1")]))
    live.publish(2 * SECOND)  # what the diffs since the loss made of it, now
    (rows,) = published[1:]
    assert [bytes(s) for s in rows["symbol"]] == [b"X"]
    assert rows["update_id"].tolist() == [2] and rows["ts"].tolist() == [2 * SECOND]
    assert live.summary()["valid"] == 2
    live.publish(3 * SECOND)  # once
    assert len(published) == 2
    # a top held for a book that is no longer valid once current again is dropped
    disconnected.add("Y")
    live.on_depth(diff("Y", 3, 3, bids=[("5", "4")]))
    live.publish(4 * SECOND)  # held
    disconnected.discard("Y")
    live.on_depth(diff("Y", 9, 9))  # a gap: invalid
    live.publish(5 * SECOND)
    assert len(published) == 2


def test_only_streamed_symbols_books_are_counted_valid() -> None:
    """A book whose symbol was unsubscribed is frozen, not valid; its counters still count."""
    streamed = {"X", "Y"}
    live = HandlerBooks(BookConfig(snapshots=True, publish=True, top_n=2), lambda rows: None,
                        lambda event: None, lambda *want: None, streamed=lambda: streamed)
    for symbol in ("X", "Y"):
        live.on_depth(snap(symbol, 1, [("5", "1")], [("6", "1")]))
        live.on_depth(diff(symbol, 2, 2, bids=[("6.5", "1")]))  # crossed
    assert {k: live.summary()[k] for k in ("symbols", "valid", "crossed")} == {
        "symbols": 2, "valid": 2, "crossed": 2}
    streamed.discard("X")  # unsubscribed
    assert {k: live.summary()[k] for k in ("symbols", "valid", "crossed")} == {
        "symbols": 1, "valid": 1, "crossed": 2}


def test_a_ticker_waiting_for_an_event_that_empties_a_side_is_not_a_mismatch() -> None:
    books = Books(2, min_levels=1)
    books.apply(snap("X", 10, [("100", "1"), ("99", "1"), ("98", "1")], [("101", "1")]))
    books.check_tickers(ticker("X", 11, ("98", "1"), ("101", "1")))  # ahead of the book
    books.apply(diff("X", 11, 11, bids=[("100", "0"), ("99", "0")]))  # 98 was forgotten
    status = books.status("X")
    assert status["state"] == "short"
    assert status["ticker_mismatches"] == 0 and status["tickers_uncovered"] == 1


def test_a_valid_book_records_its_diffs_once_thin_and_a_snapshot_they_follow_rebuilds_it() -> None:
    books = Books(3, min_levels=1, refresh_levels=2, wants=True)
    books.apply(snap("X", 10, [("100", "1"), ("99", "1"), ("98", "1"), ("97", "1")],
                     [("101", "1")]))  # 97 forgotten
    books.apply(diff("X", 11, 11, bids=[("100", "0")]))
    assert books.take_wants() == [] and not books.status("X")["recording"]
    books.apply(diff("X", 12, 12, bids=[("99", "0")]))  # 98 alone above the horizon
    assert books.take_wants() == [("X", 13, "refresh")]
    books.apply(diff("X", 13, 14, bids=[("98.5", "3")], asks=[("101", "2")]))  # recorded
    status = books.status("X")
    assert status["state"] == "valid" and status["recording"] and status["buffered"] == 2
    tops = books.take_tops(2, 0)
    assert tops["bid_count"].tolist() == [2] and tops["bid_price"][0][:2].tolist() == \
        [98_50000000, 98_00000000]
    books.apply(snap("X", 11, [("99", "1"), ("98", "1"), ("97", "1")], [("101", "1")]))
    assert books.status("X")["recording"]  # too old for the recorded 13-14: not used
    books.apply(snap("X", 12, [("98", "1"), ("97", "1"), ("96", "1")], [("101", "1")]))
    status = books.status("X")  # rebuilt: 12's levels, then 13-14 replayed
    assert status["state"] == "valid" and not status["recording"]
    assert status["update_id"] == 14 and status["buffered"] == 0
    levels = [(int(p), wide_to_int(q)) for p, q in books.levels("X", 0)]
    assert levels == [(98_50000000, 3 * 10**8), (98 * 10**8, 10**8), (97 * 10**8, 10**8)]
    assert [wide_to_int(q) for q in books.levels("X", 1)["qty"]] == [2 * 10**8]


def test_a_rebuild_is_not_valid_midway_counts_no_crossing_twice_and_is_published_again() -> None:
    books = Books(4, min_levels=1, refresh_levels=2, wants=True)
    books.apply(snap("X", 10, [("100", "1"), ("99", "1"), ("98", "1"), ("97", "1"),
                               ("96", "1")], [("101", "1")]))  # 96 forgotten
    books.apply(diff("X", 11, 11, bids=[("100", "0"), ("99", "0"), ("98", "0")]))  # thin
    books.apply(diff("X", 12, 12, bids=[("101.5", "1")]))  # crossed (bid above the ask)
    books.apply(diff("X", 13, 13, bids=[("101.5", "0")]))
    assert books.status("X")["crossed"] == 1 and len(books.take_tops(2, 0)) == 1
    rows = snap("X", 11, [("97", "1"), ("96", "1"), ("95", "1")], [("101", "1")])
    books.apply(rows[:2])  # a snapshot whose rows span two messages
    assert books.status("X")["state"] == "rebuilding" and len(books.take_tops(2, 0)) == 0
    books.apply(rows[2:])
    status = books.status("X")  # 11's levels, 12 and 13 replayed
    assert status["state"] == "valid" and status["update_id"] == 13
    assert status["crossed"] == 1  # the replayed 12 is not a new crossing
    (top,) = books.take_tops(2, 0)  # the same update id, published again: now two bids
    assert top["bid_count"] == 2 and top["bid_price"][:2].tolist() == [97 * 10**8, 96 * 10**8]


def test_wants_are_kept_only_for_a_reader_that_fetches_snapshots() -> None:
    books = Books(2, min_levels=1)  # a BookBuilder's: nothing asks it, nothing piles up
    books.apply(snap("X", 10, [("100", "1"), ("99", "1"), ("98", "1")], [("101", "1")]))
    books.apply(diff("X", 11, 11, bids=[("100", "0"), ("99", "0")]))
    assert books.status("X")["state"] == "short" and books.take_wants() == []


def test_the_rows_a_book_holds_while_it_waits_are_bounded_by_book_max_buffer() -> None:
    config = BookConfig(snapshots=True, publish=True, top_n=1, max_buffer=10_000)
    live = HandlerBooks(config, lambda rows: None, lambda event: None, lambda *want: None)
    live.on_depth(diff("X", 1, 1, bids=[(f"{p}", "1") for p in range(1, 10_001)]))
    assert live.books.status("X")["buffered"] == 10_000  # full
    live.on_depth(diff("X", 2, 2, bids=[("20000", "1")]))  # past it: the newest only
    assert live.books.status("X")["buffered"] == 1
    assert live.books.status("X")["state"] == "buffer_overflow"
    live.on_depth(snap("X", 1, [("3", "1")], [("30000", "1")]))  # a fresh snapshot fits them
    assert live.books.status("X")["state"] == "valid"
    assert [int(level["price"]) for level in live.books.levels("X", 0)] == [
        20000_00000000, 3_00000000]
    with pytest.raises(ValueError, match="max_buffer"):
        BookConfig(max_buffer=9_999)
