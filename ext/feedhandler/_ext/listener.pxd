from libc.stdint cimport int64_t, uint64_t
from picows.picows cimport WSFrame, WSListener, WSTransport

from feedhandler._ext.decoder cimport Decoder


cdef class FeedListener(WSListener):
    cdef readonly Decoder decoder
    cdef readonly WSTransport transport
    cdef readonly uint64_t frames
    cdef readonly uint64_t bytes_received
    cdef readonly int64_t connected_ns     # when the upgrade completed
    cdef readonly int64_t last_frame_ns   # ts_recv of the latest data frame, for staleness
    cdef readonly int64_t last_pong_ns    # when the latest pong arrived (answers our pings)
    cdef readonly object close_code       # int code of the peer's close frame, else None
    cdef readonly str close_reason        # its reason ("" for none)
    cdef readonly str violation           # protocol violation we closed with 1002 for, else None
    cdef readonly uint64_t oversized      # fragmented messages dropped past max_message_bytes
    cdef readonly uint64_t max_frames     # stop decoding after this many data frames (0 = no limit)
    cdef readonly uint64_t max_message_bytes  # bound of a reassembled (fragmented) message
    cdef public int leg                   # 0 or 1: which of two overlapping connections
    cdef bytearray _fragments             # a fragmented message being reassembled
    cdef bint _fragments_text
    cdef bint _discarding                 # dropping the rest of an oversized message...
    cdef bint _past_limit                 # ... or of one that came past max_frames
    cdef bint _closing                    # a close frame was sent or received: ignore data
    cdef int _fd                          # the connection's socket (-1: none known), for unread()
    cdef object _on_connected
    cdef object _on_disconnected
    cdef object _on_limit

    cdef int _on_data(self, WSTransport transport, WSFrame frame) except -1
    cdef int _on_continuation(self, WSTransport transport, WSFrame frame) except -1
    cdef int _append_fragment(self, WSFrame frame) except -1
    cdef int _message_done(self) except -1
    cdef int _on_close_frame(self, WSTransport transport, WSFrame frame) except -1
    cdef int _violate(self, WSTransport transport, str reason) except -1

    cpdef close(self, int code=*, reason=*)
