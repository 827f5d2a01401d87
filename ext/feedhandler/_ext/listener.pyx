# picows listener: each data frame goes from picows's read buffer to the decoder, in place.
from libc.stdint cimport int64_t
from picows.picows cimport WSFrame, WSListener, WSMsgType, WSTransport

from feedhandler._ext.decoder cimport Decoder, now_ns


cdef class FeedListener(WSListener):
    """Feeds a connection's frames to a Decoder; no Python object is made per frame.

    on_connected(listener) / on_disconnected(listener) let the supervisor follow the
    connection's life; on_limit(listener) fires once `max_frames` data frames were decoded
    (later frames are ignored). All optional.
    """

    def __init__(self, Decoder decoder, on_connected=None, on_disconnected=None, *,
                 max_frames=0, on_limit=None):
        self.decoder = decoder
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_limit = on_limit
        self.max_frames = max_frames
        self._fragments = None

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport
        if self._on_connected is not None:
            self._on_connected(self)

    cpdef on_ws_disconnected(self, WSTransport transport):
        if self._on_disconnected is not None:
            self._on_disconnected(self)

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef WSMsgType msg_type = frame.msg_type
        cdef int64_t ts
        if msg_type == WSMsgType.TEXT or msg_type == WSMsgType.BINARY:
            if self.max_frames and self.frames >= self.max_frames:
                return
            ts = now_ns()
            self.frames += 1
            self.bytes_received += frame.payload_size
            self.last_frame_ns = ts
            if not frame.fin:
                self._fragments = bytearray(frame.get_payload_as_memoryview())
                self._fragments_text = msg_type == WSMsgType.TEXT
                return
            self.decoder.feed(frame.payload_ptr, frame.payload_size, frame.tail_size, ts,
                              msg_type == WSMsgType.TEXT)
            if self.frames == self.max_frames and self._on_limit is not None:
                self._on_limit(self)
        elif msg_type == WSMsgType.CONTINUATION:
            # Binance does not fragment; reassemble anyway (copying) rather than misparse.
            if self._fragments is None:
                return
            self._fragments += frame.get_payload_as_memoryview()
            self.bytes_received += frame.payload_size
            if frame.fin:
                payload = bytes(self._fragments)
                self._fragments = None
                self.decoder.decode(payload, now_ns(), self._fragments_text)
        elif msg_type == WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            transport.send_close(self.close_code)
            transport.disconnect()
