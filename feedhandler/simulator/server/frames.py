"""Pre-encoded server-to-client WebSocket frames (RFC 6455 §5.2).

Server frames are never masked, so a frame is just `header + payload`. Encoding a whole chunk of
market events into one `bytes` object lets the fast mode hand the kernel one big write instead of
one `transport.send()` per event. Every chunk remembers where each frame ends, so a caller can
send any prefix of it (max-messages budget, fault trigger points) without re-encoding.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import orjson

OP_TEXT = 0x1
OP_BINARY = 0x2

_FIN = 0x80
# Headers for the frame sizes market events actually have; bigger frames pack their header.
_TEXT_HEADERS = tuple(
    bytes((_FIN | OP_TEXT, n)) if n < 126 else struct.pack("!BBH", _FIN | OP_TEXT, 126, n)
    for n in range(8192)
)


def frame_header(size: int) -> bytes:
    """Header of one unmasked, final text frame carrying `size` payload bytes."""
    if size < len(_TEXT_HEADERS):
        return _TEXT_HEADERS[size]
    if size < 1 << 16:
        return struct.pack("!BBH", _FIN | OP_TEXT, 126, size)
    return struct.pack("!BBQ", _FIN | OP_TEXT, 127, size)


@lru_cache(maxsize=4096)
def _combined_prefix(stream: str) -> bytes:
    return b'{"stream":' + orjson.dumps(stream) + b',"data":'


def wrap_combined(stream: str, payload: bytes) -> bytes:
    """The `/stream` envelope: `{"stream":<name>,"data":<raw payload>}`."""
    return _combined_prefix(stream) + payload + b"}"


def unwrap_combined(message: bytes) -> tuple[str, bytes] | None:
    """Inverse of `wrap_combined`, byte-exact: (stream, raw payload), or None if `message` is
    not an envelope in Binance's layout."""
    head, middle = b'{"stream":"', b'","data":'
    if not message.startswith(head) or not message.endswith(b"}"):
        return None
    end = message.find(middle, len(head))
    if end < 0:
        return None
    return message[len(head) : end].decode(), message[end + len(middle) : -1]


@dataclass(frozen=True, slots=True)
class EncodedChunk:
    """Consecutive text frames in one buffer; `ends[i]` is the end offset of frame `i`."""

    data: bytes
    ends: array[int]

    def __len__(self) -> int:
        return len(self.ends)

    def span(self, start: int, count: int) -> memoryview:
        """Wire bytes of frames `start .. start+count-1` (borrowed; `data` is immutable)."""
        begin = self.ends[start - 1] if start else 0
        return memoryview(self.data)[begin : self.ends[start + count - 1]]


def encode_events(events: Sequence[tuple[str, bytes]], combined: bool) -> EncodedChunk:
    """Encode `(stream, raw payload)` events as text frames, wrapped when `combined`."""
    parts: list[bytes] = []
    append = parts.append
    ends = array("Q")
    add_end = ends.append
    headers = _TEXT_HEADERS
    small = len(headers)
    pos = 0
    if combined:
        for stream, payload in events:
            prefix = _combined_prefix(stream)
            size = len(prefix) + len(payload) + 1
            header = headers[size] if size < small else frame_header(size)
            append(header)
            append(prefix)
            append(payload)
            append(b"}")
            pos += len(header) + size
            add_end(pos)
    else:
        for _, payload in events:
            size = len(payload)
            header = headers[size] if size < small else frame_header(size)
            append(header)
            append(payload)
            pos += len(header) + size
            add_end(pos)
    return EncodedChunk(b"".join(parts), ends)
