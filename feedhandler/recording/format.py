"""Recording file format: raw market-data frames with their local receive times.

`feedhandler record` writes it; `feedhandler replay` and the simulator's replay mode read it.
A file whose name ends in `.gz` is gzip-compressed as a whole (readers recognise gzip by its
magic, whatever the name). Layout of the (uncompressed) bytes, all integers little-endian, no
padding:

    file    = header record*
    header  = magic     8 bytes  b"FHREC\\x00\\r\\n" (the CR LF catches text-mode mangling)
              version   uint16   2 (readers also read 1: the same without a record's flags)
              flags     uint16   0 (reserved; readers reject unknown bits)
              meta_len  uint32   length of meta
              meta      meta_len bytes: UTF-8 JSON object describing the recording
                        (e.g. {"url": "...", "time_unit": "ms"}); may be "{}"
    record  = recv_ns     int64   local receive time, ns since the Unix epoch (CLOCK_REALTIME)
              stream_len  uint16  length of stream
              payload_len uint32  length of payload
              flags       uint8   bit 0: a binary WebSocket message (else text); the other
                                  bits are reserved (a reader stops there, as at damage)
              stream      stream_len bytes: UTF-8 stream name the payload belongs to
                          ("btcusdt@trade"), or a connection label when the frame is kept
                          whole (e.g. a combined-stream wrapper or a control reply); may be empty
              payload     payload_len bytes: the WebSocket message payload, verbatim

A record is 15 bytes of header (14 in version 1) plus its two byte strings; records follow
each other to end of file. A file cut short by a crash ends in a partial record:
`RecordingReader` raises `TruncatedRecording` there, or stops silently with
`tolerate_truncation=True`.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import IO, Any, NamedTuple, Self

import numpy as np

MAGIC = b"FHREC\x00\r\n"
VERSION = 2
_HEADER = struct.Struct("<8sHHI")
_RECORD = struct.Struct("<qHIB")
_RECORD_V1 = struct.Struct("<qHI")  # (flags 0: every frame text)
BINARY = 1  # a record's flag: the frame came as a binary WebSocket message
_BUFFER_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
DAMAGED = (EOFError, OSError, zlib.error)  # what reading a gzip stream cut short or damaged raises


def stopped_early(exc: BaseException | None, after: str) -> tuple[str, bool]:
    """Why a file's reading stopped before its end (`exc`: what reading raised, None: it
    ends inside a record), and whether its bytes are damaged (a gzip CRC or inflate error:
    what came before may be wrong too), not just cut short (a writer that stopped)."""
    return (f"{exc if exc is not None else 'it ends inside a record'}, after {after}",
            exc is not None and not isinstance(exc, EOFError))


def log_stopped_early(path: object, why: str, damaged: bool) -> None:
    if damaged:
        log.error("%s: damaged: %s: read up to there; what came before may be damaged too",
                  path, why)
    else:
        log.warning("%s: %s: read up to there", path, why)


def open_for_reading(path: str | os.PathLike[str],
                     ) -> tuple[io.BufferedReader[io.FileIO],
                                io.BufferedReader[io.FileIO] | gzip.GzipFile]:
    """(the file on disk, its content): the file, or the gzip stream it starts with. The
    stream is read as it is (buffered inside): a buffer over it would drop what it had
    decompressed when it turns out cut short or damaged."""
    raw = io.BufferedReader(io.FileIO(path), _BUFFER_BYTES)
    return raw, gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == GZIP_MAGIC else raw
GZIP_LEVEL = 1  # fastest: market data still shrinks ~8x, and the recorder must keep up
# a record header as a numpy dtype (packed: 15 bytes), for writing many records at once
RECORD_HEADER = np.dtype({"names": ["recv_ns", "stream_len", "payload_len", "flags"],
                          "formats": ["<i8", "<u2", "<u4", "u1"], "offsets": [0, 8, 10, 14],
                          "itemsize": _RECORD.size})


log = logging.getLogger(__name__)


class RecordingError(ValueError):
    """The file is not a readable recording."""


class TruncatedRecording(RecordingError):
    """The file ends inside a record (the writer did not finish)."""


class Record(NamedTuple):
    recv_ns: int
    stream: str
    payload: bytes
    binary: bool = False  # a binary WebSocket message (the decoder rejects those)


class _RecordingFile:
    """An open recording file: closed by close() or by leaving a `with` block."""

    _file: IO[bytes] | gzip.GzipFile

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
        if os.fspath(path).endswith(".gz"):
            self._file = gzip.GzipFile(fileobj=self._file, mode="wb",  # type: ignore[assignment]
                                       compresslevel=GZIP_LEVEL)
            self._raw: IO[bytes] = self._file.fileobj  # type: ignore[attr-defined]
        else:
            self._raw = self._file
        self.size = _HEADER.size + len(meta_bytes)  # bytes written, before compression
        self._file.write(_HEADER.pack(MAGIC, VERSION, 0, len(meta_bytes)) + meta_bytes)
        self._pack = _RECORD.pack

    def write(self, recv_ns: int, stream: str, payload: bytes, binary: bool = False) -> None:
        name = stream.encode()
        data = self._pack(recv_ns, len(name), len(payload), BINARY if binary else 0) + name \
            + payload
        self._file.write(data)
        self.size += len(data)

    def write_frames(self, recv_ns: np.ndarray, payload: np.ndarray, starts: np.ndarray,
                     lengths: np.ndarray, binary: np.ndarray | None = None) -> None:
        """Many records at once, with an empty stream label (frames kept whole): record i is
        payload[starts[i]:starts[i] + lengths[i]] received at recv_ns[i], a binary message
        where binary[i] (None: all text). Vectorised: no Python object per record."""
        data = pack_frames(recv_ns, payload, starts, lengths, binary)
        self._file.write(data)
        self.size += len(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        if self._raw is not self._file:  # GzipFile does not close a file object it was given
            self._raw.close()


def pack_frames(recv_ns: np.ndarray, payload: np.ndarray, starts: np.ndarray,
                lengths: np.ndarray, binary: np.ndarray | None = None) -> bytes:
    """Records with empty stream labels, laid out as in a file (see `write_frames`)."""
    lengths = np.asarray(lengths, np.int64)
    if len(lengths) == 0:
        return b""
    heads = np.zeros(len(lengths), RECORD_HEADER)
    heads["recv_ns"] = recv_ns
    heads["payload_len"] = lengths
    if binary is not None:
        heads["flags"] = np.where(binary, BINARY, 0)
    sizes = _RECORD.size + lengths
    begins = np.cumsum(sizes) - sizes
    out = np.empty(int(sizes.sum()), np.uint8)
    out[(begins[:, None] + np.arange(_RECORD.size)).ravel()] = heads.view(np.uint8)
    # the k-th payload byte of record i goes to begins[i] + 14 + k
    within = _within(lengths)
    out[np.repeat(begins + _RECORD.size, lengths) + within] = gather(payload, starts, lengths)
    return out.tobytes()


def _within(lengths: np.ndarray) -> np.ndarray:
    """0..lengths[i]-1 for every i, concatenated."""
    within: np.ndarray = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths,
                                                                   lengths)
    return within


def gather(payload: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """payload[starts[i]:starts[i] + lengths[i]] for every i, concatenated (uint8)."""
    lengths = np.asarray(lengths, np.int64)
    out: np.ndarray = payload[np.repeat(np.asarray(starts, np.int64), lengths) + _within(lengths)]
    return out


class RecordingReader(_RecordingFile):
    """Iterate `Record(recv_ns, stream, payload)` of a recording file, in file order."""

    def __init__(self, path: str | os.PathLike[str], *, tolerate_truncation: bool = False):
        raw, content = open_for_reading(path)
        self._raw = raw  # the file on disk: its position is the progress through it
        self._file: io.BufferedReader[io.FileIO] | gzip.GzipFile = content
        self._path = os.fspath(path)
        self._tolerate = tolerate_truncation
        # once read: why it stopped early ("" at its end), and whether its bytes are damaged
        self.stopped_early, self.damaged = "", False
        try:
            header = self._file.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise RecordingError(f"{path}: too short for a recording header")
            magic, version, flags, meta_len = _HEADER.unpack(header)
            if magic != MAGIC:
                raise RecordingError(f"{path}: not a recording (bad magic {magic!r})")
            if version not in (1, VERSION) or flags:
                raise RecordingError(f"{path}: unsupported version {version} / flags {flags}")
            self._record = _RECORD if version == VERSION else _RECORD_V1
            meta = self._file.read(meta_len)
            if len(meta) < meta_len:
                raise TruncatedRecording(f"{path}: header metadata cut short")
            try:
                self.meta: dict[str, Any] = json.loads(meta)
            except ValueError:
                self.meta = None  # type: ignore[assignment]
            if not isinstance(self.meta, dict):
                raise RecordingError(f"{path}: header metadata is not a JSON object")
        except DAMAGED as exc:
            self.close()
            raise RecordingError(f"{path}: unreadable: {exc}") from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._file.close()
        self._raw.close()

    def position(self) -> int:
        """Bytes of the file on disk read so far (compressed bytes for a gzip file)."""
        return self._raw.tell()

    def __iter__(self) -> Iterator[Record]:
        # Records are cut from chunks as they come: all that was read before a gzip stream
        # turns out cut short or damaged is given out first.
        read, read1 = self._file.read, self._file.read1
        unpack, size = self._record.unpack_from, self._record.size
        flagged = self._record is _RECORD  # (version 1: no flags, every frame text)
        chunk, at, records = b"", 0, 0
        damage: BaseException | None = None  # (None at a cut inside a record)
        try:
            while True:
                end = at + size
                if len(chunk) >= end:
                    fields = unpack(chunk, at)
                    recv_ns, stream_len, payload_len = fields[0], fields[1], fields[2]
                    flags = fields[3] if flagged else 0
                    if flags & ~BINARY:  # a newer writer's: what it means is unknown here
                        damage = RecordingError(f"record flags {flags:#x} unknown")
                        break
                    end += stream_len + payload_len
                    if len(chunk) >= end:
                        stream = at + size + stream_len
                        # (a label that is not UTF-8 names no stream: the payload is judged)
                        yield Record(recv_ns, chunk[at + size:stream].decode(errors="replace"),
                                     chunk[stream:end], flags == BINARY)
                        records, at = records + 1, end
                        continue
                # a record longer than a chunk is read whole (read() loses only that record,
                # then incomplete, if the stream ends on the way)
                missing = end - len(chunk)
                more = read1(_BUFFER_BYTES) if missing <= _BUFFER_BYTES else read(missing)
                if not more:
                    if at == len(chunk):
                        return
                    break
                chunk, at = chunk[at:] + more, 0
        except DAMAGED as exc:
            damage = exc
        self.stopped_early, self.damaged = stopped_early(damage, f"{records} records")
        if not self._tolerate:
            raise TruncatedRecording(f"{self._path}: {self.stopped_early}")
        log_stopped_early(self._path, self.stopped_early, self.damaged)
