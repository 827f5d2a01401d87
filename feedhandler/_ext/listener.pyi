"""picows listener feeding each frame, in place, to a Decoder."""

from collections.abc import Callable

from picows import WSFrame, WSListener, WSTransport

from feedhandler._ext.decoder import Decoder

class FeedListener(WSListener):
    # read-only
    decoder: Decoder
    transport: WSTransport | None
    frames: int
    bytes_received: int
    connected_ns: int
    last_frame_ns: int
    last_pong_ns: int
    close_code: int | None  # code of the peer's close frame, else None
    close_reason: str
    violation: str | None  # protocol violation we closed the connection with 1002 for
    oversized: int
    max_frames: int
    max_message_bytes: int
    leg: int  # 0 or 1: which of two overlapping connections of a shard (settable)

    def __init__(
        self,
        decoder: Decoder,
        on_connected: Callable[[FeedListener], None] | None = None,
        on_disconnected: Callable[[FeedListener], None] | None = None,
        *,
        max_frames: int = 0,
        on_limit: Callable[[FeedListener], None] | None = None,
        max_message_bytes: int = 1048576,
    ) -> None: ...
    def unread(self) -> int: ...
    def on_ws_connected(self, transport: WSTransport) -> None: ...
    def on_ws_disconnected(self, transport: WSTransport) -> None: ...
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None: ...
    def close(self, code: int = 1000, reason: str = "") -> None: ...
