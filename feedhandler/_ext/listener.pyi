"""picows listener feeding each frame, in place, to a Decoder."""

from collections.abc import Callable

from picows import WSCloseCode, WSFrame, WSListener, WSTransport

from feedhandler._ext.decoder import Decoder

class FeedListener(WSListener):
    # read-only
    decoder: Decoder
    transport: WSTransport | None
    frames: int
    bytes_received: int
    last_frame_ns: int
    close_code: WSCloseCode | None  # what the exchange closed with
    max_frames: int

    def __init__(
        self,
        decoder: Decoder,
        on_connected: Callable[[FeedListener], None] | None = None,
        on_disconnected: Callable[[FeedListener], None] | None = None,
        *,
        max_frames: int = 0,
        on_limit: Callable[[FeedListener], None] | None = None,
    ) -> None: ...
    def on_ws_connected(self, transport: WSTransport) -> None: ...
    def on_ws_disconnected(self, transport: WSTransport) -> None: ...
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None: ...
