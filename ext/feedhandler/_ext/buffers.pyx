# Record tables and batch hand-over (smart batching). The C++ core appends rows into numpy
# memory attached here; Python runs once per handed-over batch, never per row.
from cpython.ref cimport Py_REFCNT
from libc.stdint cimport int64_t

from asyncio import get_running_loop

import numpy as np

cimport feedhandler._ext.core as core
cimport numpy as cnp

cnp.import_array()


cdef class RecordBuffers:
    """One preallocated numpy table per kind, handed over as batches.

    A batch leaves (on_batch(kind, records[, frames])) once it holds batch_rows rows (the frame
    that reaches them is in it: tables have a quarter more room, so an event of many rows, a
    deep book update, rarely finds the table full and has to be decoded again); in burst
    mode as soon as the current read burst is decoded (under load bursts make big batches,
    when idle each frame leaves at once): at the end of the socket read (`end_of_read`, from
    the listener, at picows's last whole frame of a read), or else by a call_soon armed by the
    first row of an empty batch (frames decoded outside a read, a read whose last frame was a
    ping that picows answered itself); or when a frame finds its first row linger_ns old.
    Burst mode:
    linger is only a cap on a batch's age within a long burst, 0 = no cap. Without burst mode
    (offline): linger 0 hands each frame over at once, INT64_MAX never.

    A batch is a view of its kind's array; the next batch but one writes into that array again
    once nothing references it any more (the sink has published it and let go), so the tables
    stay in cache and no batch pays for a fresh allocation. An array still referenced is left
    to its holders. `after_burst()` runs once a burst end has handed over every kind's batch:
    per-batch bookkeeping that would otherwise delay the next kind's hand-over goes there.
    """

    def __init__(self, tuple dtypes, tuple names, on_batch, list batch_rows, list linger_ns,
                 *, bint burst=False, bint capture_frames=False, after_burst=None):
        self._dtypes = dtypes
        self._names = names
        self._on_batch = on_batch
        self._arrays = [None] * len(names)
        self._spares = [None] * len(names)
        self._burst = burst
        self._burst_end = self.flush_burst
        self._after_burst = after_burst
        self._capture = capture_frames
        self._captured.resize(<int>core.KIND_COUNT)
        self._frame_offsets.resize(<int>core.KIND_COUNT)
        self._frame_rows.resize(<int>core.KIND_COUNT)
        for k in range(<int>core.KIND_COUNT):
            self._batch_rows[k] = max(1, int(batch_rows[k]))
            self._linger_ns[k] = linger_ns[k]
            self._batch_started[k] = 0
            self._rows[k] = 0

    cdef int bind(self, core.Decoder* decoder, object owner) except -1:
        self._core = decoder
        self._owner = owner
        for k in range(<int>core.KIND_COUNT):
            self._attach(k, self._capacity(k))
        return 0

    def flush(self):
        """Hand over every open batch."""
        for k in range(<int>core.KIND_COUNT):
            self.flush_kind(k)

    def flush_burst(self):
        """The burst-end callback: the loop has run every read callback since it was armed."""
        self._burst_handle = None
        if self._core != NULL and self._pending():
            self.bursts += 1
            self.flush()
        if self._after_burst is not None:  # (also after a burst whose batches all left full)
            self._after_burst()

    def flush_expired(self, int64_t now):
        """Hand over batches whose first row is at least linger old at `now` (or, the wall
        clock having stepped back past it, of an age not known: not held until it passes)."""
        cdef int64_t started
        for k in range(<int>core.KIND_COUNT):
            started = self._batch_started[k]
            if started and (now - started >= self._linger_ns[k] or now < started):
                self.flush_kind(k)

    @property
    def row_counts(self):
        return {self._names[k]: self._rows[k]
                for k in range(<int>core.KIND_COUNT) if self._rows[k]}

    @property
    def pending_rows(self):
        return self._pending()

    cdef size_t _pending(self) noexcept:
        cdef size_t rows = 0
        for k in range(<int>core.KIND_COUNT):
            rows += self._core.table(<core.Kind>k).size
        return rows

    cdef int _attach(self, int kind, size_t capacity) except -1:
        array = self._spares[kind]
        # Only the spares list and this name hold it: no batch of it is alive any more.
        if array is None or Py_REFCNT(array) != 2 or len(array) < capacity:
            array = np.empty(capacity, dtype=self._dtypes[kind])
        self._spares[kind] = self._arrays[kind]
        self._arrays[kind] = array
        self._core.attach(<core.Kind>kind, <char*>cnp.PyArray_DATA(<cnp.ndarray>array), capacity)
        return 0

    cdef size_t _capacity(self, int kind) noexcept:
        return self._batch_rows[kind] + self._batch_rows[kind] // 4

    cdef int make_room(self, int kind) except -1:
        cdef const core.Table* table = &self._core.table(<core.Kind>kind)
        if table.size:
            return self.flush_kind(kind)
        # One frame holds more rows than a whole batch: grow this table.
        return self._attach(kind, 2 * table.capacity)

    cdef int flush_kind(self, int kind) except -1:
        cdef size_t size = self._core.table(<core.Kind>kind).size
        if size == 0:
            return 0
        records = self._arrays[kind][:size]
        self._rows[kind] += size
        self._batch_started[kind] = 0
        self._attach(kind, self._capacity(kind))
        if not self._capture or self._frame_offsets[kind].empty():
            self._on_batch(self._names[kind], records)
            return 0
        frames = (self._captured[kind],  # copied into a bytes object
                  np.array(self._frame_offsets[kind], dtype=np.int64),
                  np.array(self._frame_rows[kind], dtype=np.int64))
        self._captured[kind].clear()
        self._frame_offsets[kind].clear()
        self._frame_rows[kind].clear()
        self._on_batch(self._names[kind], records, frames)
        return 0

    cdef int end_of_read(self) except -1:
        # Now, not at the loop's next turn: that comes after every other ready socket's read
        # (other shards) and any due timer. Rows left unarmed (a sink that raised halfway
        # through a burst's hand-overs) leave too.
        if not self._burst:
            return 0
        cdef bint armed = self._burst_handle is not None
        if armed:
            self._burst_handle.cancel()
        if armed or self._pending():
            self.flush_burst()
        return 0

    cdef int capture_frame(self, int kind, const char* data, size_t size) except -1:
        if not self._capture:
            return 0
        if self._frame_offsets[kind].empty():
            self._frame_offsets[kind].push_back(0)
            self._frame_rows[kind].push_back(0)
        self._captured[kind].append(data, size)
        self._frame_offsets[kind].push_back(self._captured[kind].size())
        self._frame_rows[kind].push_back(self._core.table(<core.Kind>kind).size)
        return 0

    cdef int rows_added(self, int kind, int64_t ts_recv) except -1:
        cdef int64_t linger = self._linger_ns[kind]
        if self._batch_started[kind] == 0:
            self._batch_started[kind] = ts_recv
            if self._burst and self._burst_handle is None:
                self._burst_handle = get_running_loop().call_soon(self._burst_end)
        if self._core.table(<core.Kind>kind).size >= self._batch_rows[kind]:
            return self.flush_kind(kind)
        if self._burst and linger == 0:  # burst mode: 0 = no cap, the burst end decides
            return 0
        if ts_recv - self._batch_started[kind] >= linger:
            return self.flush_kind(kind)
        return 0
