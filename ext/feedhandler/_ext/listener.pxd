from libc.stdint cimport int64_t, uint64_t
from picows.picows cimport WSFrame, WSListener, WSTransport

from feedhandler._ext.decoder cimport Decoder


cdef class FeedListener(WSListener):
    cdef readonly Decoder decoder
    cdef readonly WSTransport transport
    cdef readonly uint64_t frames
    cdef readonly uint64_t bytes_received
    cdef readonly int64_t last_frame_ns   # ts_recv of the latest data frame, for staleness
    cdef readonly object close_code       # WSCloseCode the exchange closed with, else None
    cdef readonly uint64_t max_frames     # stop decoding after this many data frames (0 = no limit)
    cdef bytearray _fragments             # a fragmented message being reassembled
    cdef bint _fragments_text
    cdef object _on_connected
    cdef object _on_disconnected
    cdef object _on_limit
