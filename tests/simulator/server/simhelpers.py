"""Helpers for the simulator conformance tests (imported by tests and conftest).

- `StubSource`: a tiny deterministic event source with consecutive trade ids per stream, so
  sequence faults can be asserted exactly without depending on the market model.
- `connect`/`request`: the independent `websockets` client, set up not to ping on its own.
- `RawClient`: a minimal RFC 6455 client over asyncio streams. The `websockets` client always
  answers pings and never sends unsolicited pongs; the heartbeat tests need a client that can
  do neither or both.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Sequence
from typing import Any

import orjson
import websockets
from websockets.asyncio.client import ClientConnection

from feedhandler.simulator.server.source import Event, FrameSource
from feedhandler.simulator.server.urls import TimeUnit


class StubSource:
    """Trade events, round-robin over the subscribed streams; `t` counts up by one per stream."""

    EPOCH_MS = 1_700_000_000_000

    def __init__(self, time_unit: TimeUnit) -> None:
        self.scale = 1000 if time_unit == "us" else 1
        self.streams: list[str] = []
        self.next_id: dict[str, int] = {}
        self.turn = 0
        self.ready: list[Event] = []  # generated, not yet handed out
        self.repeat: set[str] = set()
        self.swap: set[str] = set()

    def subscribe(self, streams: Sequence[str]) -> None:
        for name in streams:
            self.streams.append(name)
            self.next_id.setdefault(name, 1)

    def unsubscribe(self, streams: Sequence[str]) -> None:
        self.streams = [name for name in self.streams if name not in streams]

    def payload(self, stream: str, trade_id: int) -> bytes:
        symbol = stream.partition("@")[0].upper()
        stamp = (self.EPOCH_MS + trade_id) * self.scale
        return orjson.dumps({"e": "trade", "E": stamp, "s": symbol, "t": trade_id})

    def next_frames(self, max_frames: int) -> list[Event]:
        while self.streams and len(self.ready) < max_frames:
            stream = self.streams[self.turn % len(self.streams)]
            self.turn += 1
            ids = [self.next_id[stream]]
            if stream in self.swap:
                self.swap.discard(stream)
                ids = [ids[0] + 1, ids[0]]
            if stream in self.repeat:
                self.repeat.discard(stream)
                ids.append(ids[-1])
            self.next_id[stream] = max(ids) + 1
            self.ready += [(stream, self.payload(stream, i)) for i in ids]
        out, self.ready = self.ready[:max_frames], self.ready[max_frames:]
        return out

    def inject_gap(self, stream: str, n: int = 1) -> None:
        self.next_id[stream] += n

    def inject_duplicate(self, stream: str) -> None:
        self.repeat.add(stream)

    def inject_reorder(self, stream: str) -> None:
        self.swap.add(stream)


class StubFactory:
    def __init__(self) -> None:
        self.opened: list[StubSource] = []

    def is_valid_stream(self, name: str) -> bool:
        symbol, at, kind = name.partition("@")
        return bool(at) and symbol.isalnum() and symbol == symbol.lower() and kind == "trade"

    def open(self, time_unit: TimeUnit) -> FrameSource:
        source = StubSource(time_unit)
        self.opened.append(source)
        return source


def connect(url: str, **kwargs: Any) -> websockets.asyncio.client.connect:
    """websockets client that never pings on its own (pings count against the 5 msg/s)."""
    options: dict[str, Any] = {
        "ping_interval": None,
        "compression": None,
        "proxy": None,
        "max_size": None,
        "open_timeout": 5,
    }
    return websockets.connect(url, **{**options, **kwargs})


async def recv_json(ws: ClientConnection, timeout: float = 2.0) -> Any:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def request(ws: ClientConnection, message: dict[str, Any] | bytes | str) -> Any:
    """Send a control message and return the first reply (skipping market events)."""
    await ws.send(message if isinstance(message, (bytes, str)) else orjson.dumps(message).decode())
    while True:
        reply = await recv_json(ws)
        if isinstance(reply, dict) and ("result" in reply or "code" in reply):
            return reply


OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One WebSocket frame off the wire: (opcode, payload), unmasked if the sender masked it
    (a client does, a server does not)."""
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    mask = await reader.readexactly(4) if second & 0x80 else b""
    data = await reader.readexactly(size)
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return first & 0x0F, data


class RawClient:
    """Just enough WebSocket to control pings and pongs by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int, path: str) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send(self, opcode: int, payload: bytes = b"") -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert len(payload) < 126
        self.writer.write(bytes((0x80 | opcode, 0x80 | len(payload))) + mask + masked)

    async def recv(self) -> tuple[int, bytes]:
        """Next frame (opcode, payload); raises IncompleteReadError when TCP closes."""
        return await read_frame(self.reader)

    async def recv_until(self, opcode: int, timeout: float = 2.0) -> bytes:
        async with asyncio.timeout(timeout):
            while True:
                kind, payload = await self.recv()
                if kind == opcode:
                    return payload

    def close(self) -> None:
        self.writer.close()
