from libc.stdint cimport int64_t, uint64_t
from libcpp.string cimport string
from libcpp.vector cimport vector
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

cimport feedhandler._ext.core as core


# Receive timestamps: CLOCK_REALTIME in ns, read once per frame.
cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return ts.tv_sec * 1000000000 + ts.tv_nsec


cdef class Decoder:
    cdef core.Decoder* _core
    cdef list _arrays                 # numpy array each table writes into, per kind
    cdef object _on_batch             # (kind: str, records: ndarray) -> None
    cdef object _on_error             # (reason, field, stream, frame: bytes) -> None
    cdef object _on_control           # (frame: bytes) -> None
    cdef size_t _batch_rows[<int>core.KIND_COUNT]
    cdef int64_t _batch_started[<int>core.KIND_COUNT]  # ts_recv of a batch's first row, 0 = empty
    cdef int64_t _linger_ns[<int>core.KIND_COUNT]
    cdef uint64_t _error_counts[<int>core.ERR_COUNT]
    cdef uint64_t _rows[<int>core.KIND_COUNT]
    cdef readonly uint64_t frames
    # capture_frames: each open batch's source frames, concatenated, with per-frame byte and
    # first-row offsets (both start at 0), for the raw (archival) encoding
    cdef bint _capture
    cdef vector[string] _captured
    cdef vector[vector[int64_t]] _frame_offsets
    cdef vector[vector[int64_t]] _frame_rows

    # Decodes one frame. `readable_after` = bytes readable past the payload (picows tail_size).
    # Python runs only when a batch is handed over, or for a bad/control frame.
    cdef int feed(self, const char* data, size_t size, size_t readable_after, int64_t ts_recv,
                  bint is_text) except -1
    cdef int _flush_kind(self, int kind) except -1
    cdef int _rows_added(self, int kind, int64_t ts_recv) except -1
    cdef int _attach(self, int kind, size_t capacity) except -1
    cdef int _capture_frame(self, int kind, const char* data, size_t size) except -1
