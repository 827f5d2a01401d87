"""The handler's own books (`book.publish`): per symbol, in C++ (`feedhandler._ext.book`), from
the depth records of each decoded batch and the snapshot rows `SnapshotSync` publishes.

- Every `book.interval_ms`, each valid book that changed since its last record is published as
  one `book` record (its best `book.top_n` levels a side); a book in a gap or waiting for a
  snapshot is not (`book_resync` / `book_snapshot` mark those intervals), nor one whose diffs
  stopped with a lost connection, until a snapshot after it (the diffs since may follow on,
  but the book was not current meanwhile).
- Levels beyond a side's horizon are unknown: forgotten to `book.max_levels`, or beyond a
  snapshot cut at `book.snapshot_limit`. A side that holds fewer than `book.top_n` levels
  above its horizon keeps the book valid (its levels are right, there are just fewer) and
  records its diffs; the handler asks SnapshotSync for a snapshot (`want`), and the first one
  those diffs follow on from rebuilds the book to full depth. A side with none left would
  have an unknown best: the book is invalid until a snapshot (`book_resync`, reason `short`).
  So is a book whose snapshot turned out too old for the diffs it buffered (e.g. after its
  buffer overflowed): SnapshotSync fetches a newer one.
- A book left crossed or locked (best bid >= best ask) by a depth event is counted, and
  evented as `book_crossed`.
- Each bookTicker is compared with the book at its own update id `u` only: the bookTicker and
  depth streams are separate and not synchronised, and a diff event [U; u] shows only the
  state after `u`. So a ticker is compared when its `u` is the `u` of one of the book's last 64
  depth events (or of a snapshot), whichever arrives first; a ticker whose `u` falls inside an
  event, or that the book never reaches, is counted as uncovered, not compared. A comparison
  that differs in any of bid, bid qty, ask, ask qty is a disagreement: counted, and evented as
  `book_ticker_mismatch`.

Both events: at most one per symbol per `book.alert_interval_s`, carrying the count since the
last. Python runs per batch, per tick and per event; never per level, row or book.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from feedhandler._ext.book import Books
from feedhandler.config import BookConfig
from feedhandler.records import to_str

EventSink = Callable[[dict[str, Any]], None]


class HandlerBooks:
    def __init__(self, config: BookConfig, publish: Callable[[np.ndarray], None],
                 on_event: EventSink, want: Callable[[str, int, str], None],
                 disconnected: Collection[str] = (),
                 streamed: Callable[[], Collection[str]] | None = None) -> None:
        """`disconnected`: symbols whose diffs stopped with a lost connection, until a
        snapshot after it (SnapshotSync.disconnected): their books are not current, whatever
        the diffs since say, so neither published nor counted valid. `streamed()`: the
        symbols whose diffs are streamed now; the books of others (unsubscribed: frozen) are
        not counted among the symbols, nor valid (None: all are)."""
        # a refresh once half of what a side kept is gone (top_n at least: BookConfig wants
        # 2 x top_n kept), so that it comes before the side runs out on a moving market
        kept = min(config.max_levels or config.snapshot_limit, config.snapshot_limit)
        self.books = Books(config.max_levels, config.max_buffer, min_levels=1,
                           refresh_levels=kept // 2, wants=True)
        self.records = 0  # `book` records published
        self.apply_ns = 0  # time spent in the C++ books (depth and bookTicker batches)
        self.batches = 0
        self._top_n = config.top_n
        self._interval_ns = config.interval_ms * 1_000_000
        self._alert_interval_ns = int(config.alert_interval_s * 1e9)
        self._publish = publish
        self._on_event = on_event
        self._want = want  # (symbol, first_update_id, why): SnapshotSync.want
        self._disconnected = disconnected
        self._streamed = streamed
        self._held: dict[str, np.ndarray] = {}  # a disconnected book's newest top, unpublished
        self._next_ns = 0

    def on_depth(self, records: np.ndarray) -> None:
        """Depth diffs (a decoded batch) or snapshot rows, in the order they are published."""
        started = time.perf_counter_ns()
        self.books.apply(records)
        self.apply_ns += time.perf_counter_ns() - started
        self.batches += 1

    def on_book_ticker(self, records: np.ndarray) -> None:
        started = time.perf_counter_ns()
        self.books.check_tickers(records)
        self.apply_ns += time.perf_counter_ns() - started
        self.batches += 1

    def service(self) -> None:
        """From the handler's service loop: books that want a snapshot ask for one (here, not
        while a snapshot's rows are applied: its book_snapshot event comes first); publishes
        once `interval_ms` has passed."""
        for symbol, first_update_id, why in self.books.take_wants():
            self._want(symbol, first_update_id, why)
        # (timed on the monotonic clock: a wall clock stepped back must not stop publishing)
        tick = time.monotonic_ns()
        if tick >= self._next_ns:
            self._next_ns = tick + self._interval_ns
            self.publish(tick_ns=tick)

    def publish(self, now_ns: int | None = None, tick_ns: int | None = None) -> None:
        """The changed valid books' tops, and the alerts due, now: `now_ns` on the wall clock
        (their records' and events' time), `tick_ns` on the monotonic one (the alerts' rate
        limit: a wall clock stepped back must not hold them)."""
        now = time.time_ns() if now_ns is None else now_ns
        tick = time.monotonic_ns() if tick_ns is None else tick_ns
        rows = self.books.take_tops(self._top_n, now)
        if self._disconnected or self._held:
            rows = self._hold_disconnected(rows, now)
        if len(rows):
            self.records += len(rows)
            self._publish(rows)
        for symbol, crossed, mismatches in self.books.take_alerts(tick, self._alert_interval_ns):
            status = self.books.status(symbol)
            if crossed:
                at = status["crossed_at"]
                self._on_event({"type": "book_crossed", "symbol": symbol, "count": crossed,
                                "total": status["crossed"], "update_id": at["update_id"],
                                "bid": to_str(at["bid_price"]), "ask": to_str(at["ask_price"]),
                                "ts_ns": now})
            if mismatches:
                mismatch = status["mismatch"]
                self._on_event({"type": "book_ticker_mismatch", "symbol": symbol,
                                "count": mismatches, "total": status["ticker_mismatches"],
                                "update_id": mismatch["ticker"]["update_id"],
                                "ticker": _top_text(mismatch["ticker"]),
                                "book": _top_text(mismatch["book"]), "ts_ns": now})

    def _hold_disconnected(self, rows: np.ndarray, now: int) -> np.ndarray:
        """`rows` less those of disconnected books, each kept (the newest) until its book is
        current again and then published at `now` if it is still valid and no newer one came
        meanwhile: its diffs since the loss may have changed the book with no change after
        the snapshot."""
        names = [bytes(symbol).decode() for symbol in rows["symbol"]]
        for name, row in zip(names, rows, strict=True):
            if name in self._disconnected:
                self._held[name] = row.copy()
        fresh = [name not in self._disconnected for name in names]
        back = [row for name, row in self._held.items()  # (a book since invalid: dropped)
                if name not in self._disconnected and name not in names
                and self.books.status(name)["state"] == "valid"]
        self._held = {name: row for name, row in self._held.items()
                      if name in self._disconnected}
        if not back:
            return rows[fresh]
        released = np.array(back, rows.dtype)
        released["ts"] = now
        return np.concatenate([rows[fresh], released])

    def summary(self) -> dict[str, int]:
        """Totals over the symbols, for the status snapshot (one pass per scrape): symbols and
        valid books of the streamed symbols; counters over every book (they never go down)."""
        totals = {"symbols": 0, "valid": 0, "crossed": 0, "tickers_compared": 0,
                  "ticker_mismatches": 0, "tickers_uncovered": 0}
        streamed = self._streamed() if self._streamed is not None else None
        for symbol in self.books.symbols():
            status = self.books.status(symbol)
            if streamed is None or symbol in streamed:
                totals["symbols"] += 1
                totals["valid"] += status["state"] == "valid" and \
                    symbol not in self._disconnected
            totals["crossed"] += status["crossed"]
            totals["tickers_compared"] += status["tickers_checked"]
            totals["ticker_mismatches"] += status["ticker_mismatches"]
            totals["tickers_uncovered"] += status["tickers_uncovered"]
        return {**totals, "records": self.records, "batches": self.batches,
                "apply_ns": self.apply_ns}


def _top_text(top: dict[str, int]) -> list[str]:
    return [to_str(top[k]) for k in ("bid_price", "bid_qty", "ask_price", "ask_qty")]
