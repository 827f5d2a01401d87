# picows listener: each data frame goes from picows's read buffer to the decoder, in place.
from libc.stdint cimport int64_t
from picows.picows cimport WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from posix.ioctl cimport ioctl

from feedhandler._ext.decoder cimport Decoder, now_ns


cdef extern from "<sys/ioctl.h>":
    int FIONREAD


cdef class FeedListener(WSListener):
    """Feeds a connection's frames to a Decoder; no Python object is made per frame.

    on_connected(listener) / on_disconnected(listener) let the supervisor follow the
    connection's life; on_limit(listener) fires once `max_frames` data frames were decoded
    (later frames are ignored). All optional.

    Transport hygiene is enforced here, where the frames are: a fragmented message is
    reassembled up to `max_message_bytes` (then its prefix goes to the decoder, which rejects
    it as `oversized`, and the rest is dropped as it arrives); RSV bits (we negotiate no
    extension), orphan and interleaved continuations close the connection with 1002 and are
    kept in `violation`; a close frame is answered in kind, and a ping with a pong.

    Connect with picows's `enable_auto_pong=False`: picows answers a ping itself without
    passing it on, and a read that ended with one would not show its end here (its batches
    would wait for the loop's next turn).
    """

    def __init__(self, Decoder decoder, on_connected=None, on_disconnected=None, *,
                 max_frames=0, on_limit=None, max_message_bytes=1 << 20):
        self.decoder = decoder
        self._fd = -1
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_limit = on_limit
        self.max_frames = max_frames
        self.max_message_bytes = max_message_bytes
        self._fragments = None
        self.close_reason = ""

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport
        underlying = transport.underlying_transport if transport is not None else None
        sock = underlying.get_extra_info("socket") if underlying is not None else None
        self._fd = sock.fileno() if sock is not None else -1
        self.connected_ns = now_ns()
        if self._on_connected is not None:
            self._on_connected(self)

    cpdef on_ws_disconnected(self, WSTransport transport):
        self._fd = -1
        self._fragments = None
        # A violation picows found in a frame's header (a masked frame, a bad close frame):
        # it closed first, with 1002 or 1007, which we send only from _violate.
        handshake = transport.close_handshake if transport is not None else None
        if self.violation is None and handshake is not None and handshake.sent is not None \
                and not handshake.recv_then_sent and int(handshake.sent.code) in (1002, 1007):
            self.violation = f"{handshake.sent.reason} (found by picows)"
        if self._on_disconnected is not None:
            self._on_disconnected(self)

    def unread(self):
        """Bytes the kernel holds for this connection that were not read yet (-1: not known,
        no connection): at a burst's end, more than 0 means the handler is behind the exchange."""
        cdef int pending = 0
        # (a closing transport's descriptor may already be closed, its number reused)
        if self._fd < 0 or self.transport.underlying_transport.is_closing() or \
                ioctl(self._fd, FIONREAD, &pending) != 0:
            return -1
        return pending

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef WSMsgType msg_type = frame.msg_type
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self._violate(transport, "RSV bit set, no extension negotiated")
        elif msg_type == WSMsgType.TEXT or msg_type == WSMsgType.BINARY:
            self._on_data(transport, frame)
        elif msg_type == WSMsgType.CONTINUATION:
            self._on_continuation(transport, frame)
        elif msg_type == WSMsgType.PING:
            if not self._closing and transport is not None:  # (None: a test's bare frame)
                transport.send_pong(frame.get_payload_as_bytes())
        elif msg_type == WSMsgType.PONG:
            self.last_pong_ns = now_ns()
        elif msg_type == WSMsgType.CLOSE:
            self._on_close_frame(transport, frame)
        if frame.last_in_buffer:  # the read's burst is decoded: its batches leave now
            self.decoder.buffers.end_of_read()

    cdef int _on_data(self, WSTransport transport, WSFrame frame) except -1:
        cdef int64_t ts
        if self._closing:
            return 0
        if self._fragments is not None or self._discarding:
            return self._violate(transport, "new message inside a fragmented one")
        if self.max_frames and self.frames >= self.max_frames:
            if not frame.fin:  # (its continuations are dropped with it, not a violation)
                self._discarding = self._past_limit = True
            return 0
        ts = now_ns()
        self.frames += 1
        self.bytes_received += frame.payload_size
        self.last_frame_ns = ts
        if not frame.fin:
            # Binance does not fragment; reassemble anyway (copying) rather than misparse.
            self._fragments = bytearray()
            self._fragments_text = frame.msg_type == WSMsgType.TEXT
            return self._append_fragment(frame)
        self.decoder.feed(frame.payload_ptr, frame.payload_size, frame.tail_size, ts,
                          frame.msg_type == WSMsgType.TEXT, self.leg)
        return self._message_done()

    cdef int _message_done(self) except -1:
        """A counted message has been decoded (all its fragments): the limit may be reached."""
        if self.frames == self.max_frames and self._on_limit is not None:
            self._on_limit(self)
        return 0

    cdef int _on_continuation(self, WSTransport transport, WSFrame frame) except -1:
        if self._closing:
            return 0
        if self._fragments is None and not self._discarding:
            return self._violate(transport, "continuation frame without a message to continue")
        self.bytes_received += frame.payload_size
        if self._discarding:
            if not frame.fin:
                return 0
            self._discarding = False
            if self._past_limit:  # (not counted)
                self._past_limit = False
                return 0
            return self._message_done()  # (an oversized one, counted)
        self._append_fragment(frame)
        if not frame.fin:
            return 0
        if self._fragments is not None:
            payload = bytes(self._fragments)
            self._fragments = None
            self.decoder.decode(payload, now_ns(), self._fragments_text, self.leg)
        return self._message_done()

    cdef int _append_fragment(self, WSFrame frame) except -1:
        # Never hold more than one byte past the bound: that prefix is what the decoder
        # rejects (and dead-letters) as oversized.
        cdef Py_ssize_t room = self.max_message_bytes + 1 - len(self._fragments)
        view = frame.get_payload_as_memoryview()
        if frame.payload_size < room:
            self._fragments += view
            return 0
        self._fragments += view[:room]
        prefix = bytes(self._fragments)
        self._fragments = None
        self._discarding = not frame.fin
        self.oversized += 1
        self.decoder.decode(prefix, now_ns(), self._fragments_text, self.leg)
        return 0

    cdef int _on_close_frame(self, WSTransport transport, WSFrame frame) except -1:
        # An empty close frame is answered with an empty one (a code would be invented);
        # otherwise the peer's code is echoed, unless no endpoint may send it (RFC 6455 7.4:
        # 0, 1004-1006, 1015, 5000 and up), which is a violation: 1002. If we started the
        # close, this is the reply.
        if frame.payload_size >= 2:
            self.close_code = int(frame.get_close_code())
            self.close_reason = frame.get_close_reason()
            if not transport.is_close_frame_sent and not _sendable(self.close_code):
                return self._violate(transport, f"close code {self.close_code} is not one an "
                                                "endpoint may send")
        self._closing = True
        if not transport.is_close_frame_sent:
            if self.close_code is None:
                transport.send(WSMsgType.CLOSE, b"")
            else:
                transport.send_close(<WSCloseCode>self.close_code)
        transport.disconnect()
        return 0

    cdef int _violate(self, WSTransport transport, str reason) except -1:
        if self.violation is None and not self._closing:
            self.violation = reason
            self._closing = True
            self._fragments = None
            transport.send_close(WSCloseCode.PROTOCOL_ERROR, reason)
            transport.disconnect()
        return 0

    cpdef close(self, int code=1000, reason=""):
        """Start a graceful close: send a close frame; the peer's reply ends the connection
        (the caller disconnects if it does not come). Frames until then are still decoded."""
        if self.transport is not None and not self.transport.is_close_frame_sent:
            self.transport.send_close(<WSCloseCode>code, reason)


cdef inline bint _sendable(int code) noexcept:
    """A close code an endpoint may put in a close frame (RFC 6455 7.4.1, IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999
