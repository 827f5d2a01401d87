# Python face of the C++ books: records in by batch, levels out as numpy arrays; no Python
# object per level or per record.
from libc.string cimport memcpy
from libcpp.string_view cimport string_view
from libcpp.vector cimport vector

import numpy as np

STATES = ("no_snapshot", "valid", "gap", "stale_snapshot", "buffer_overflow")
SNAPSHOT_FLAG = DEPTH_SNAPSHOT
DEPTH_RECORD_SIZE = sizeof(DepthRecord)
LEVEL_DTYPE = np.dtype([("price", "<i8"), ("qty", [("lo", "<u8"), ("hi", "<i8")])])
assert LEVEL_DTYPE.itemsize == sizeof(Level)


cdef class Books:
    """Books of every symbol seen in depth records (diffs and snapshot rows)."""

    def __cinit__(self, unsigned int max_levels=0, size_t max_buffer=1_000_000):
        self._core = new BookSet(max_levels, max_buffer)
        self.max_levels = max_levels

    def __dealloc__(self):
        del self._core

    def apply(self, records):
        """Apply depth records (the `depth` kind's dtype), in exchange order per symbol."""
        if records.dtype.itemsize != sizeof(DepthRecord):
            raise ValueError(f"not depth records: itemsize {records.dtype.itemsize}")
        if len(records) == 0:
            return
        cdef const unsigned char[::1] raw = np.ascontiguousarray(records).view(np.uint8)
        with nogil:
            self._core.apply(<const DepthRecord*>&raw[0], <size_t>(raw.shape[0] // sizeof(DepthRecord)))

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
        crossed, buffered}: `expected`/`received` are the U ids of the last gap; `crossed`
        counts events after which the valid book had best bid >= best ask."""
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
            "crossed": book.crossed,
            "buffered": book.buffer.size(),
        }

    def levels(self, str symbol, int side, size_t depth=0):
        """`LEVEL_DTYPE` array (price int64, qty 128-bit as lo/hi, 1e-8 units), best first;
        `side` 0 = bids, 1 = asks; `depth` 0 = every level held. One copy, no per-level
        Python."""
        if side not in (0, 1):
            raise ValueError("side must be 0 (bids) or 1 (asks)")
        cdef const vector[Level]* levels = &self._find(symbol).book.side(side)
        cdef size_t n = levels.size() if depth == 0 else min(depth, levels.size())
        out = np.empty(n, LEVEL_DTYPE)
        cdef unsigned char[::1] raw = out.view(np.uint8)
        if n:
            memcpy(&raw[0], levels.data(), n * sizeof(Level))
        return out
