from libc.stdint cimport int64_t, uint64_t
from libcpp.string cimport string
from libcpp.vector cimport vector

cimport feedhandler._ext.core as core


# The decoder's record tables (one preallocated numpy array per kind, rows appended by the C++
# core) and the rule that hands them over as batches: when full, when the event loop has
# decoded the current read burst (burst mode), or when a batch's first row is linger_ns old.
cdef class RecordBuffers:
    cdef core.Decoder* _core          # borrowed: the owner keeps it alive
    cdef object _owner                # ...and is kept alive by us (a pending burst callback)
    cdef tuple _dtypes
    cdef tuple _names
    cdef list _arrays                 # numpy array each table writes into, per kind
    cdef list _spares                 # the array of each kind's last batch, reused once released
    cdef object _on_batch             # (kind: str, records: ndarray[, frames]) -> None
    cdef size_t _batch_rows[<int>core.KIND_COUNT]
    cdef int64_t _batch_started[<int>core.KIND_COUNT]  # ts_recv of a batch's first row, 0 = empty
    cdef int64_t _linger_ns[<int>core.KIND_COUNT]
    cdef uint64_t _rows[<int>core.KIND_COUNT]
    cdef bint _burst                  # hand over at the end of the loop's read burst
    cdef object _burst_end            # bound method, made once
    cdef object _burst_handle         # its scheduled call (None: not armed), cancelled when a
                                      # read's end comes first
    cdef object _after_burst          # () -> None once a burst end's batches are all handed over
    cdef readonly uint64_t bursts     # burst-end hand-overs that found rows
    # capture_frames: each open batch's source frames, concatenated, with per-frame byte and
    # first-row offsets (both start at 0), for the raw (archival) encoding
    cdef bint _capture
    cdef vector[string] _captured
    cdef vector[vector[int64_t]] _frame_offsets
    cdef vector[vector[int64_t]] _frame_rows

    cdef int bind(self, core.Decoder* decoder, object owner) except -1
    # Rows were appended to `kind`'s table by a frame received at ts_recv.
    cdef int rows_added(self, int kind, int64_t ts_recv) except -1
    # The core found `kind`'s table full: hand the batch over, or grow an empty table.
    cdef int make_room(self, int kind) except -1
    cdef int flush_kind(self, int kind) except -1
    # picows has decoded the last whole frame of a socket read: the burst is over.
    cdef int end_of_read(self) except -1
    cdef int capture_frame(self, int kind, const char* data, size_t size) except -1
    cdef int _attach(self, int kind, size_t capacity) except -1
    cdef size_t _pending(self) noexcept
    cdef size_t _capacity(self, int kind) noexcept
