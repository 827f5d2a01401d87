"""Frames with their receive times from files: `feedhandler` recordings (plain or gzip) and
public capture files.

A capture file is text, one frame a line, optionally gzip-compressed: `<recv_ns> <frame>`
(receive time in integer nanoseconds, as published with many captures), `<seconds>: <frame>`
(cryptofeed's recorder, decimal seconds) or the bare frame (no receive time: it is stamped when
replayed). Frames are combined-stream wrappers or raw stream payloads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple

from feedhandler.recording.format import (
    DAMAGED,
    MAGIC,
    RecordingError,
    RecordingReader,
    log_stopped_early,
    open_for_reading,
    stopped_early,
)

NS_PER_S = 10**9


class Frame(NamedTuple):
    recv_ns: int | None  # None: the capture has no receive time
    stream: str  # the recorded stream label ("" when the frame is kept whole)
    payload: bytes
    binary: bool = False  # a recording's binary WebSocket message


class FrameFile:
    """One recording or capture file, iterated as `Frame`s; `position()` is how many bytes of
    the file on disk were read (for progress)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.meta: dict[str, object] = {}
        # once read: why it stopped early ("" at its end), and whether its bytes are damaged
        self.stopped_early, self.damaged = "", False
        self._recording: RecordingReader | None = None
        self._raw, self._text = open_for_reading(self.path)
        try:
            head = self._text.peek(len(MAGIC))
        except DAMAGED as exc:
            self.close()
            raise RecordingError(f"{self.path}: unreadable: {exc}") from None
        if head[:len(MAGIC)] == MAGIC:
            self.close()
            self._recording = RecordingReader(self.path, tolerate_truncation=True)
            self.meta = self._recording.meta

    def close(self) -> None:
        if self._recording is not None:
            self._recording.close()
        else:
            self._text.close()
            self._raw.close()

    def position(self) -> int:
        return self._recording.position() if self._recording else self._raw.tell()

    def __iter__(self) -> Iterator[Frame]:
        if self._recording is not None:
            for record in self._recording:
                yield Frame(*record)
            self.stopped_early = self._recording.stopped_early
            self.damaged = self._recording.damaged
            return
        lines = 0
        try:
            for line in self._text:
                lines += 1
                if line.strip():
                    yield self._parse_line(line)
        except DAMAGED as exc:  # a gzip capture cut short or damaged
            self.stopped_early, self.damaged = stopped_early(exc, f"{lines} lines")
            log_stopped_early(self.path, self.stopped_early, self.damaged)

    @staticmethod
    def _parse_line(line: bytes) -> Frame:
        line = line.rstrip(b"\r\n")
        stamp, _, frame = line.partition(b" ")
        try:
            if stamp.endswith(b":"):
                return Frame(int(Decimal(stamp[:-1].decode()) * NS_PER_S), "", frame)
            if stamp.isdigit():
                return Frame(int(stamp), "", frame)
        except (InvalidOperation, UnicodeDecodeError):
            pass
        # a bare frame, or a line we cannot split: the decoder judges it (and dead-letters it
        # if it is not a frame), so one bad line never stops a replay
        return Frame(None, "", line)

    def __enter__(self) -> FrameFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


STREAM_PREFIX = re.compile(rb'^\s*(?:\S+ )?\{"stream":"([^"]+)"')


def capture_streams(path: str | os.PathLike[str]) -> set[str]:
    """The stream names of a file: a recording's metadata, else a scan of its combined-stream
    wrappers (raw payloads name no stream)."""
    with FrameFile(path) as frames:
        listed = frames.meta.get("streams")
        if isinstance(listed, list):
            return {str(s) for s in listed}
        found: set[str] = set()
        for frame in frames:
            match = STREAM_PREFIX.match(frame.payload[:200])
            if match:
                found.add(match[1].decode())
        return found
