cimport cython
from libc.stdint cimport int64_t, uint64_t
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

cimport feedhandler._ext.core as core
from feedhandler._ext.buffers cimport RecordBuffers


# Receive timestamps: CLOCK_REALTIME in ns, read once per frame.
cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return ts.tv_sec * 1000000000 + ts.tv_nsec


@cython.final  # (feed() runs per frame: direct calls, no vtable)
cdef class Decoder:
    cdef core.Decoder* _core
    cdef readonly RecordBuffers buffers  # the record tables and their batch hand-over
    cdef object _on_error             # (reason, field, stream, frame: bytes) -> None
    cdef object _on_control           # (frame: bytes) -> None
    cdef uint64_t _error_counts[<int>core.ERR_COUNT]
    cdef readonly uint64_t frames
    # Frames held for the other leg (set_overlap), per stream (kind, symbol): a list of
    # (first id, arrival, frame, ts_recv, is_text, leg)
    cdef dict _held
    cdef Py_ssize_t _held_frames
    cdef Py_ssize_t _held_bytes
    cdef int64_t _held_since  # the oldest held frame's ts_recv
    cdef uint64_t _held_count  # frames held so far (arrival order among equal ids)
    cdef bint _releasing
    cdef readonly uint64_t redecoded  # held frames decoded again
    cdef dict _rejected  # while two connections overlap: rejected frames' digests (see pyx)
    cdef object _rejections  # ... and their arrivals (a deque)
    cdef uint64_t _rejection_count
    cdef readonly uint64_t rejected_copies  # rejected frames the other connection delivered too

    # Decodes one frame. `readable_after` = bytes readable past the payload (picows tail_size).
    # Python runs only when a batch is handed over, or for a bad/control frame.
    # `leg`: which of two overlapping connections the frame came from (see set_overlap).
    cdef int feed(self, const char* data, size_t size, size_t readable_after, int64_t ts_recv,
                  bint is_text, int leg) except -1
    cdef int _feed_one(self, const char* data, size_t size, size_t readable_after,
                       int64_t ts_recv, bint is_text, int leg) except -1
    cdef int _release(self, bint force) except -1
    cdef list _take_due(self)
    cdef bint _copy_of_rejected(self, int error, bytes frame, int leg, int64_t now) except -1
    cdef bint _held_out(self, int64_t now)
