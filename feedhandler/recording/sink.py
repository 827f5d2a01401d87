"""The recorder: a sink that writes every frame the decoders saw, with its receive time, to
compressed rotating recording files, and passes everything on to another sink.

Frames reach a sink in per-kind batches, up to the linger time after they arrived, so the
batches of different kinds interleave out of time order. The recorder holds frames for longer
than any batch lingers, then writes what is older than that horizon sorted by receive time:
files are in receive order (unless the event loop stalls longer than the horizon). All of it
per batch and vectorised: no Python object per frame.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from feedhandler.contract import Frames
from feedhandler.recording.format import RecordingWriter, gather
from feedhandler.sinks.base import Sink, TopicSink

log = logging.getLogger(__name__)

HOLD_MARGIN_NS = 250_000_000  # beyond the longest linger: service-loop and scheduling delays
WRITE_INTERVAL_S = 0.1
# A process killed (OOM, SIGKILL) loses at most this much of its file's end: a gzip sync flush
# (a few bytes of compression each) makes what was written readable.
FLUSH_INTERVAL_S = 5.0
SUFFIX = ".fhrec.gz"
BINARY_FRAME = "binary_frame"  # the decoder's reason for a binary message: recorded as binary


class RecordingSink:
    captures_frames = True  # the Handler then hands every batch over with its frames

    def __init__(self, directory: Path, inner: Sink, meta: Mapping[str, Any], *,
                 max_linger_ms: float, rotate_s: float = 3600.0, rotate_mb: float = 1024.0,
                 prefix: str = "feedhandler") -> None:
        self.inner = inner
        self.directory = directory
        self.meta = dict(meta)
        self.rotate_s, self.rotate_bytes = rotate_s, int(rotate_mb * (1 << 20))
        self.prefix = prefix
        self.hold_ns = int(max_linger_ms * 1e6) + HOLD_MARGIN_NS
        self.files: list[Path] = []
        # Counted once in the file on disk (a flush or a close went through): what a disk
        # error leaves in the writer's buffers is lost, not recorded.
        self.frames = 0
        self.bytes = 0  # uncompressed
        self.lost = 0  # frames a disk error kept from the file
        self._unflushed = 0  # frames in the open file's buffers
        self._writer: RecordingWriter | None = None
        self._opened = self._flushed = 0.0
        self._flushed_size = 0  # uncompressed bytes of the open file a flush wrote
        self._last_write = 0.0
        # frames not yet written: (recv_ns, payload as uint8, starts, lengths, binary) per batch
        self._held: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.failed: OSError | None = None  # the disk error that ended the recording
        self._new_file = False  # set by add_streams (another thread): rotate at the next write
        # at start, not at the first file: a bad place fails the command with one line
        if not prefix or "/" in prefix or prefix in (".", ".."):
            raise OSError(f"prefix {prefix!r}: a file name's start, without '/'")
        directory.mkdir(parents=True, exist_ok=True)
        if not os.access(directory, os.W_OK | os.X_OK):
            raise OSError(f"{directory}: not writable")

    # --- Sink -----------------------------------------------------------------------------
    def publish_batch(self, kind: str, records: np.ndarray, epoch: int,
                      frames: Frames | None = None) -> None:
        if frames is not None and len(frames.offsets) > 1:
            offsets = frames.offsets
            # a frame's receive time is its first record's (every frame makes a record)
            recv = records["ts_recv"][np.minimum(frames.rows[:-1], len(records) - 1)]
            self._hold(recv, np.frombuffer(frames.payload, np.uint8), offsets[:-1],
                       np.diff(offsets), np.zeros(len(recv), bool))
        self.inner.publish_batch(kind, records, epoch, frames)

    def publish_dead_letter(self, reason: str, field: str, stream: str, frame: bytes) -> None:
        # recorded too, so that a replay rejects the same frames (stamped now: the decoder
        # keeps no receive time for a rejected frame), a binary one as binary
        self._hold(np.array([time.time_ns()], np.int64), np.frombuffer(frame, np.uint8),
                   np.zeros(1, np.int64), np.array([len(frame)], np.int64),
                   np.array([reason == BINARY_FRAME]))
        self.inner.publish_dead_letter(reason, field, stream, frame)

    def publish_control(self, event: dict[str, Any]) -> None:
        self.inner.publish_control(event)

    def service(self) -> None:
        now = time.monotonic()
        if now - self._last_write >= WRITE_INTERVAL_S:  # not every 2 ms tick: fewer, larger sorts
            self._last_write = now
            try:
                self._write(time.time_ns() - self.hold_ns)
                self._keep_up(now)
            except OSError as exc:  # (a full disk): the handler stops, exit 1, its sink flushed
                self._fail(exc)
                raise
        self.inner.service()

    def backlog_bytes(self) -> int:
        return self.inner.backlog_bytes()

    def add_streams(self, streams: Collection[str]) -> None:
        """Streams added at runtime (live.py, from a worker thread), before their first frame:
        the next write starts a new file whose metadata lists them too (a replay creates or
        checks their topics from it); their frames are held longer than that takes."""
        if isinstance(self.inner, TopicSink):
            self.inner.add_streams(streams)
        listed = self.meta.get("streams")
        if isinstance(listed, list) and not set(streams) <= set(listed):
            self.meta["streams"] = sorted(set(listed) | set(streams))  # (removed ones too)
            self._new_file = True

    def summary(self) -> dict[str, Any]:
        return {**self.inner.summary(),
                "recording": {"files": [str(f) for f in self.files],
                              "frames": self.frames + self._unflushed,
                              "bytes": self.bytes + (self._writer.size if self._writer else 0),
                              "lost": self.lost}}

    def close(self, timeout: float) -> int:
        try:
            if self.failed is None:
                self._write(None)
                if self._writer is not None:
                    self._close_file()
        except OSError as exc:
            self._fail(exc)
        finally:
            undelivered = self.inner.close(timeout)  # whatever became of the recording
        return undelivered

    def _keep_up(self, now: float) -> None:
        """The open file: rotated once it is rotate_s old (a quiet one too, not only after a
        write), else flushed every FLUSH_INTERVAL_S."""
        if self._writer is None:
            return
        if now - self._opened >= self.rotate_s:
            self._close_file()
        elif now - self._flushed >= FLUSH_INTERVAL_S:
            self._writer.flush()
            self._flushed = now
            self._in_file()
            self._flushed_size = self._writer.size

    def _fail(self, exc: OSError) -> None:
        """The recording ends here (the frames held are not written); the sink goes on."""
        held = sum(len(h[0]) for h in self._held)
        if self._writer is not None:
            try:  # what its buffers hold may still go in (the error may have passed)
                self._writer.close()
                self._in_file()
                self.bytes += self._writer.size
            except OSError:  # the file ends before them
                held += self._unflushed
                self.bytes += self._flushed_size
            self._writer, self._unflushed = None, 0
        if self.failed is None:
            log.error("recording to %s failed: %s; %d frames not written", self.directory,
                      exc, held)
        self.failed, self._held = exc, []
        self.lost += held

    # --- files ----------------------------------------------------------------------------
    def _hold(self, recv: np.ndarray, payload: np.ndarray, starts: np.ndarray,
              lengths: np.ndarray, binary: np.ndarray) -> None:
        """Frames to write once their receive times are past the horizon (none once failed)."""
        if self.failed is None:
            self._held.append((recv, payload, starts, lengths, binary))

    def _write(self, horizon_ns: int | None) -> None:
        """Write held frames received before `horizon_ns` (None: all), oldest first."""
        if self._new_file:
            self._new_file = False
            if self._writer is not None:
                self._close_file()
        if not self._held:
            return
        recv = np.concatenate([h[0] for h in self._held])
        due = np.ones(len(recv), bool) if horizon_ns is None else recv < horizon_ns
        if not due.any():
            return
        bases = np.cumsum([0] + [len(h[1]) for h in self._held[:-1]])
        payload = np.concatenate([h[1] for h in self._held])
        starts = np.concatenate([h[2] + base for h, base in zip(self._held, bases, strict=True)])
        lengths = np.concatenate([h[3] for h in self._held])
        binary = np.concatenate([h[4] for h in self._held])
        order = np.flatnonzero(due)[np.argsort(recv[due], kind="stable")]
        writer = self._current_writer()
        writer.write_frames(recv[order], payload, starts[order], lengths[order], binary[order])
        self._unflushed += len(order)
        keep = np.flatnonzero(~due)
        self._held = []
        if len(keep):  # copy out what stays held, so written bytes are freed
            kept = gather(payload, starts[keep], lengths[keep])
            self._held.append((recv[keep], kept, np.cumsum(lengths[keep]) - lengths[keep],
                               lengths[keep], binary[keep]))
        if writer.size >= self.rotate_bytes:  # (by time: _keep_up)
            self._close_file()

    def _current_writer(self) -> RecordingWriter:
        if self._writer is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            path = self.directory / f"{self.prefix}-{stamp}{SUFFIX}"
            self._writer = RecordingWriter(path, self.meta)
            self._opened = self._flushed = time.monotonic()
            self._flushed_size = 0
            self.files.append(path)
            log.info("recording to %s", path)
        return self._writer

    def _close_file(self) -> None:
        assert self._writer is not None
        self._writer.close()
        self._in_file()
        self.bytes += self._writer.size
        self._writer = None

    def _in_file(self) -> None:
        """A flush or close went through: the frames written since are in the file."""
        self.frames, self._unflushed = self.frames + self._unflushed, 0
