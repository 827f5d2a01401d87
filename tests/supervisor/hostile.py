"""A WebSocket peer on raw asyncio streams that misbehaves on purpose.

Each accepted TCP connection runs `script(session)`; the session offers the pieces a script
is made of: read the upgrade request, answer it (101 or a refusal), write any frame (any
opcode, RSV bits, fragments), read the client's frames, close or drop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ssl
import struct
from collections.abc import Awaitable, Callable
from types import TracebackType

import orjson

from tests.simulator.server.simhelpers import read_frame

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


def trade_frame(trade_id: int, symbol: str = "btcusdt") -> bytes:
    return orjson.dumps({"stream": f"{symbol}@trade", "data": {
        "e": "trade", "E": 1700000000000 + trade_id, "s": symbol.upper(), "t": trade_id,
        "p": "37.84900000", "q": "1.85300000", "T": 1700000000000 + trade_id, "m": False,
        "M": True}})


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, 126, size)
    else:
        head = struct.pack("!BBQ", first, 127, size)
    return head + payload


class Session:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 attempt: int) -> None:
        self.reader, self.writer = reader, writer
        self.attempt = attempt  # 1 for the peer's first connection, 2 for the next, ...
        self.request = b""
        self.received: list[tuple[int, bytes]] = []  # the client's frames, unmasked

    async def read_request(self) -> bytes:
        self.request = await self.reader.readuntil(b"\r\n\r\n")
        return self.request

    def _key(self) -> bytes:
        for line in self.request.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                return base64.b64encode(hashlib.sha1(value.strip() + GUID).digest())
        raise AssertionError("no Sec-WebSocket-Key in the request")

    async def accept(self) -> None:
        await self.read_request()
        self.writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + self._key() +
                          b"\r\n\r\n")
        await self.writer.drain()

    async def refuse(self, status: int, body: bytes, *headers: str) -> None:
        await self.read_request()
        extra = "".join(f"{h}\r\n" for h in headers)
        self.writer.write(f"HTTP/1.1 {status} Nope\r\nContent-Length: {len(body)}\r\n"
                          f"Content-Type: application/json\r\n{extra}Connection: close\r\n\r\n"
                          .encode() + body)
        await self.writer.drain()
        self.writer.close()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def trades(self, ids: range) -> None:
        await self.send(b"".join(frame(OP_TEXT, trade_frame(i)) for i in ids))

    async def read_frame(self) -> tuple[int, bytes]:
        opcode, payload = await read_frame(self.reader)
        self.received.append((opcode, payload))
        return opcode, payload

    async def read_until_close(self) -> tuple[int, bytes] | None:
        """The client's frames until its close frame (returned), or None if it just left."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                opcode, payload = await self.read_frame()
                if opcode == OP_CLOSE:
                    return opcode, payload
        return None

    def drop(self) -> None:
        self.writer.transport.abort()


Script = Callable[[Session], Awaitable[None]]


class HostilePeer:
    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.tls = tls
        self.sessions: list[Session] = []
        self.attempts = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts += 1
        session = Session(reader, writer, self.attempts)
        self.sessions.append(session)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.script(session)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # the handler left: fine for a hostile peer
        finally:
            self._tasks.discard(task)
            writer.close()

    async def __aenter__(self) -> HostilePeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._server is not None
        self._server.close()
        for session in self.sessions:  # scripts end on the broken connection
            session.drop()
        async with asyncio.timeout(5):
            await asyncio.gather(*self._tasks, return_exceptions=True)
