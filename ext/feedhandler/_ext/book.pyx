# Python face of the C++ books: records in by batch, levels out as numpy arrays; no Python
# object per level or per record.
from libcpp.string_view cimport string_view

import numpy as np

from feedhandler import contract
from feedhandler.records import SCHEMAS

STATES = ("no_snapshot", "valid", "gap", "stale_snapshot", "buffer_overflow", "short",
          "rebuilding")
WANTS = ("short", "stale", "refresh")  # WantKind
SNAPSHOT_FLAG = DEPTH_SNAPSHOT
CUT_FLAG = DEPTH_CUT
assert (SNAPSHOT_FLAG, CUT_FLAG) == (contract.DEPTH_SNAPSHOT, contract.DEPTH_CUT)
DEPTH_RECORD_SIZE = sizeof(DepthRecord)
LEVEL_DTYPE = np.dtype([("price", "<i8"), ("qty", [("lo", "<u8"), ("hi", "<i8")])])
assert LEVEL_DTYPE.itemsize == sizeof(Level)
BOOK_DTYPE = SCHEMAS["book"].dtype
assert BOOK_DTYPE.itemsize == sizeof(BookRecord)
assert SCHEMAS["bookTicker"].dtype.itemsize == sizeof(BookTickerRecord)


cdef object _wide(Int128LE v):
    return (<object>v.hi << 64) | v.lo


cdef dict _top(const Top& t):
    return {"update_id": t.update_id, "bid_price": t.bid_price, "bid_qty": _wide(t.bid_qty),
            "ask_price": t.ask_price, "ask_qty": _wide(t.ask_qty)}


cdef const unsigned char[::1] _rows(records, size_t itemsize, str kind):
    """The bytes of `kind` records (C-contiguous), after checking their size."""
    if records.dtype.itemsize != itemsize:
        raise ValueError(f"not {kind} records: itemsize {records.dtype.itemsize}")
    return np.ascontiguousarray(records).view(np.uint8)


cdef class Books:
    """Books of every symbol seen in depth records (diffs and snapshot rows).

    `max_levels` > 0 keeps the best max_levels a side. For a side whose levels beyond are
    unknown (forgotten to max_levels, or cut by the snapshot's limit: CUT_FLAG rows):
    - fewer than `min_levels` makes the book invalid ("short") until the next snapshot: its
      best may be a level it does not know;
    - fewer than `refresh_levels` keeps the book valid and records its diffs, so that the next
      snapshot they follow on from rebuilds it to full depth ("rebuilding" while its rows
      come).
    `wants`: keep what take_wants returns (a reader that fetches snapshots, the handler)."""

    def __cinit__(self, unsigned int max_levels=0, size_t max_buffer=1_000_000,
                  unsigned int min_levels=0, unsigned int refresh_levels=0, bint wants=False):
        for name, levels in (("min_levels", min_levels), ("refresh_levels", refresh_levels)):
            if max_levels and levels > max_levels:
                raise ValueError(f"{name} ({levels}) above max_levels ({max_levels})")
        self.max_levels, self.min_levels = max_levels, min_levels
        self.refresh_levels = refresh_levels
        self._core = new BookSet(max_levels, max_buffer, min_levels, refresh_levels, wants)

    def __dealloc__(self):
        del self._core

    def apply(self, records):
        """Apply depth records (the `depth` kind's dtype), in exchange order per symbol."""
        cdef const unsigned char[::1] raw = _rows(records, sizeof(DepthRecord), "depth")
        if raw.shape[0] == 0:
            return
        with nogil:
            self._core.apply(<const DepthRecord*>&raw[0], <size_t>(raw.shape[0] // sizeof(DepthRecord)))

    def check_tickers(self, records):
        """Compare bookTicker records (the `bookTicker` kind's dtype) with the books, each at
        its own update id `u` (see ext/cpp/book.h); counted in `status`."""
        cdef const unsigned char[::1] raw = _rows(records, sizeof(BookTickerRecord), "bookTicker")
        if raw.shape[0] == 0:
            return
        with nogil:
            self._core.check_tickers(<const BookTickerRecord*>&raw[0],
                                     <size_t>(raw.shape[0] // sizeof(BookTickerRecord)))

    def take_tops(self, unsigned int depth, long long now_ns):
        """`book` records (BOOK_DTYPE) of the best `depth` levels of every valid book that
        changed since its last record; one C++ pass, no Python per book or level."""
        out = np.zeros(self._core.size(), BOOK_DTYPE)
        if len(out) == 0:
            return out
        cdef unsigned char[::1] raw = out.view(np.uint8)
        cdef size_t n
        with nogil:
            n = self._core.take_tops(<BookRecord*>&raw[0], depth, now_ns)
        return out[:n]

    def take_alerts(self, long long now_ns, long long min_interval_ns):
        """[(symbol, new crossings, new ticker disagreements)] of the symbols that have some
        since their last alert, each symbol at most once per `min_interval_ns`."""
        return [(a.symbol.decode(), a.crossed, a.mismatches)
                for a in self._core.take_alerts(now_ns, min_interval_ns)]

    def take_wants(self):
        """[(symbol, first_update_id, why)] of the books that, since the last call, went short,
        got a snapshot too old for their buffered diffs (stale), or started recording for a
        refresh, and still wait: each needs a snapshot with lastUpdateId + 1 >=
        first_update_id."""
        return [(w.symbol.decode(), w.first_update_id, WANTS[w.kind])
                for w in self._core.take_wants()]

    def symbols(self):
        return [s.decode() for s in self._core.symbols()]

    cdef const SymbolBook* _find(self, str symbol) except NULL:
        encoded = symbol.encode()
        cdef const SymbolBook* book = self._core.find(string_view(encoded, len(encoded)))
        if book == NULL:
            raise KeyError(symbol)
        return book

    def status(self, str symbol):
        """{state, update_id, expected, received, changed_ns, gaps, snapshots, events,
        shorts, refreshes, recording, crossed, buffered, ts_event, crossed_at,
        tickers_checked, ticker_mismatches, tickers_uncovered, tickers_pending, mismatch}: `expected`/`received` are the U ids of
        the last gap (`expected` alone: the id after the book's when it went short); `shorts`
        counts the times it went short, `refreshes` the times it started recording for a
        refresh (`recording`: it is); `crossed` counts events after which the valid book
        had best bid >= best ask (`crossed_at`: the last one); `mismatch` is the last ticker
        disagreement."""
        cdef const SymbolBook* book = self._find(symbol)
        return {
            "state": STATES[<int>book.state],
            "update_id": book.update_id,
            "expected": book.expected,
            "received": book.received,
            "changed_ns": book.changed_ns,
            "gaps": book.gaps,
            "snapshots": book.snapshots,
            "events": book.events,
            "shorts": book.shorts,
            "refreshes": book.refreshes,
            "recording": book.recording,
            "crossed": book.crossed,
            "buffered": book.buffer.size(),
            "ts_event": book.ts_event,
            "crossed_at": {"update_id": book.crossed_update_id, "bid_price": book.crossed_bid,
                           "ask_price": book.crossed_ask},
            "tickers_checked": book.tickers_checked,
            "ticker_mismatches": book.ticker_mismatches,
            "tickers_uncovered": book.tickers_uncovered,
            "tickers_pending": book.pending.size(),
            "mismatch": {"ticker": _top(book.mismatch_ticker), "book": _top(book.mismatch_book)},
        }

    def levels(self, str symbol, int side, size_t depth=0):
        """`LEVEL_DTYPE` array (price int64, qty 128-bit as lo/hi, 1e-8 units), best first;
        `side` 0 = bids, 1 = asks; `depth` 0 = every level held. One copy, no per-level
        Python."""
        if side not in (0, 1):
            raise ValueError("side must be 0 (bids) or 1 (asks)")
        cdef const Book* book = &self._find(symbol).book
        cdef size_t n = book.depth(side) if depth == 0 else min(depth, book.depth(side))
        out = np.empty(n, LEVEL_DTYPE)
        cdef unsigned char[::1] raw = out.view(np.uint8)
        if n:
            book.copy_best(side, n, <Level*>&raw[0])
        return out
