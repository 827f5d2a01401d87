"""Recording file format: raw market-data frames with their local receive times.

`feedhandler record` writes it; the simulator's replay mode reads it. Layout (all integers
little-endian, no padding, no compression):

    file    = header record*
    header  = magic     8 bytes  b"FHREC\\x00\\r\\n" (the CR LF catches text-mode mangling)
              version   uint16   1
              flags     uint16   0 (reserved; readers reject unknown bits)
              meta_len  uint32   length of meta
              meta      meta_len bytes: UTF-8 JSON object describing the recording
                        (e.g. {"url": "...", "time_unit": "ms"}); may be "{}"
    record  = recv_ns     int64   local receive time, ns since the Unix epoch (CLOCK_REALTIME)
              stream_len  uint16  length of stream
              payload_len uint32  length of payload
              stream      stream_len bytes: UTF-8 stream name the payload belongs to
                          ("btcusdt@trade"), or a connection label when the frame is kept
                          whole (e.g. a combined-stream wrapper or a control reply); may be empty
              payload     payload_len bytes: the WebSocket message payload, verbatim

A record is 14 bytes of header plus its two byte strings; records follow each other to end
of file. A file cut short by a crash ends in a partial record: `RecordingReader` raises
`TruncatedRecording` there, or stops silently with `tolerate_truncation=True`.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import IO, Any, NamedTuple, Self

MAGIC = b"FHREC\x00\r\n"
VERSION = 1
_HEADER = struct.Struct("<8sHHI")
_RECORD = struct.Struct("<qHI")
_BUFFER_BYTES = 1 << 20


class RecordingError(ValueError):
    """The file is not a readable recording."""


class TruncatedRecording(RecordingError):
    """The file ends inside a record (the writer did not finish)."""


class Record(NamedTuple):
    recv_ns: int
    stream: str
    payload: bytes


class _RecordingFile:
    """An open recording file: closed by close() or by leaving a `with` block."""

    _file: IO[bytes]

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class RecordingWriter(_RecordingFile):
    """Append records to a new recording file; use as a context manager or call close()."""

    def __init__(self, path: str | os.PathLike[str], meta: Mapping[str, Any] | None = None):
        meta_bytes = json.dumps(dict(meta or {}), separators=(",", ":")).encode()
        self._file: IO[bytes] = open(path, "wb", buffering=_BUFFER_BYTES)  # noqa: SIM115
        self._file.write(_HEADER.pack(MAGIC, VERSION, 0, len(meta_bytes)) + meta_bytes)
        self._pack = _RECORD.pack

    def write(self, recv_ns: int, stream: str, payload: bytes) -> None:
        name = stream.encode()
        self._file.write(self._pack(recv_ns, len(name), len(payload)) + name + payload)

    def flush(self) -> None:
        self._file.flush()


class RecordingReader(_RecordingFile):
    """Iterate `Record(recv_ns, stream, payload)` of a recording file, in file order."""

    def __init__(self, path: str | os.PathLike[str], *, tolerate_truncation: bool = False):
        self._file: IO[bytes] = open(path, "rb", buffering=_BUFFER_BYTES)  # noqa: SIM115
        self._tolerate = tolerate_truncation
        try:
            header = self._file.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise RecordingError(f"{path}: too short for a recording header")
            magic, version, flags, meta_len = _HEADER.unpack(header)
            if magic != MAGIC:
                raise RecordingError(f"{path}: not a recording (bad magic {magic!r})")
            if version != VERSION or flags:
                raise RecordingError(f"{path}: unsupported version {version} / flags {flags}")
            meta = self._file.read(meta_len)
            if len(meta) < meta_len:
                raise TruncatedRecording(f"{path}: header metadata cut short")
            self.meta: dict[str, Any] = json.loads(meta)
        except BaseException:
            self._file.close()
            raise

    def __iter__(self) -> Iterator[Record]:
        read, unpack, size = self._file.read, _RECORD.unpack, _RECORD.size
        while head := read(size):
            if len(head) == size:
                recv_ns, stream_len, payload_len = unpack(head)
                body = read(stream_len + payload_len)
                if len(body) == stream_len + payload_len:
                    yield Record(recv_ns, body[:stream_len].decode(), body[stream_len:])
                    continue
            if self._tolerate:
                return
            raise TruncatedRecording("recording ends inside a record")
