"""The recorder's sink: frames of interleaved per-kind batches written in receive order,
rotation, dead letters, and everything passed on to the inner sink."""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pytest

from feedhandler._ext.decoder import ERROR_NAMES
from feedhandler.contract import Frames
from feedhandler.recording.format import (
    Record,
    RecordingReader,
    RecordingWriter,
    TruncatedRecording,
)
from feedhandler.recording.sink import BINARY_FRAME, RecordingSink
from feedhandler.records import SCHEMAS
from feedhandler.sinks.base import TopicSink
from feedhandler.sinks.null import NullSink


def batch(kind: str, stamps: list[int], frames: list[bytes]) -> tuple[np.ndarray, Frames]:
    """One record per frame, except the first frame which made two (a depth event)."""
    rows = [0, 2, *range(3, len(frames) + 2)]
    records = np.zeros(rows[-1], SCHEMAS[kind].dtype)
    records["ts_recv"] = np.repeat(stamps, np.diff(rows))
    lengths = [len(f) for f in frames]
    offsets = np.array([0, *np.cumsum(lengths)], np.int64)
    return records, Frames(b"".join(frames), offsets, np.array(rows, np.int64))


def test_frames_are_written_in_receive_order_and_passed_on(tmp_path: Path) -> None:
    inner = NullSink()
    sink = RecordingSink(tmp_path, inner, {"streams": ["a@trade"]}, max_linger_ms=5)
    now = time.time_ns() + 10**12  # after the dead letter's stamp
    trades = [b'{"t":1}', b'{"t":2}', b'{"t":3}']
    books = [b'{"b":1}', b'{"b":22}']
    records, frames = batch("trade", [now + 10, now + 30, now + 50], trades)
    sink.publish_batch("trade", records, 1, frames)
    records, frames = batch("bookTicker", [now + 20, now + 40], books)
    sink.publish_batch("bookTicker", records, 1, frames)
    sink.publish_dead_letter("malformed_json", "", "", b"{oops")
    assert inner.batches == 2 and inner.records == 4 + 3 and inner.dead_letters == 1
    sink._write(now + 35)  # the horizon: older frames are written, newer ones held
    assert sink.summary()["recording"]["frames"] == 4  # the dead letter and three frames
    assert sink.frames == 0  # (on disk once flushed)
    assert sink.close(1.0) == 0
    (path,) = sink.files
    assert path.name.startswith("feedhandler-") and path.name.endswith(".fhrec.gz")
    with RecordingReader(path) as reader:
        assert reader.meta == {"streams": ["a@trade"]}
        got = list(reader)
    assert got[0].payload == b"{oops" and got[0].recv_ns < now  # stamped when rejected
    assert got[1:] == [Record(now + 10, "", b'{"t":1}'), Record(now + 20, "", b'{"b":1}'),
                       Record(now + 30, "", b'{"t":2}'), Record(now + 40, "", b'{"b":22}'),
                       Record(now + 50, "", b'{"t":3}')]
    summary = sink.summary()
    assert summary["records"] == 7 and summary["recording"]["frames"] == 6


def test_rotation_by_size(tmp_path: Path) -> None:
    sink = RecordingSink(tmp_path, NullSink(), {}, max_linger_ms=5, rotate_mb=1 / 1024)
    frame = b"x" * 300
    for i in range(10):  # 10 x 314 bytes; a new file past 1 KiB
        records, frames = batch("trade", [i], [frame])
        records["ts_recv"] = i
        sink.publish_batch("trade", records[:1], 1, Frames(frames.payload, frames.offsets,
                                                             np.array([0, 1], np.int64)))
        sink._write(None)
    sink.close(1.0)
    assert len(sink.files) == 3
    stamps = [r.recv_ns for path in sink.files for r in RecordingReader(path)]
    assert stamps == list(range(10))


def test_topics_of_streams_added_at_runtime_are_the_inner_sinks_business(
        tmp_path: Path) -> None:
    class Topics(NullSink):
        def __init__(self) -> None:
            super().__init__()
            self.added: list[str] = []

        def add_streams(self, streams: Collection[str]) -> None:
            self.added += streams

    inner = Topics()
    sink = RecordingSink(tmp_path, inner, {}, max_linger_ms=5)
    assert isinstance(sink, TopicSink)
    sink.add_streams(["solusdt@trade"])
    plain = RecordingSink(tmp_path, NullSink(), {}, max_linger_ms=5)
    plain.add_streams(["x@trade"])  # a sink without topics: nothing to do
    assert inner.added == ["solusdt@trade"]
    assert sink.close(1.0) == 0 and plain.close(1.0) == 0


def test_a_disk_error_ends_the_recording_but_the_inner_sink_is_still_closed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk stops the handler (service() raises: exit 1) and its close still flushes
    the inner sink (Kafka), instead of leaving its queue unflushed behind a traceback."""
    closed: list[float] = []

    class Inner(NullSink):
        def close(self, timeout: float) -> int:
            closed.append(timeout)
            return 0

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    sink = RecordingSink(tmp_path, Inner(), {}, max_linger_ms=5)
    records, frames = batch("trade", [1, 2, 3], [b'{"t":1}', b'{"t":2}', b'{"t":3}'])
    sink.publish_batch("trade", records, 1, frames)
    monkeypatch.setattr(RecordingWriter, "write_frames", full)
    with pytest.raises(OSError, match="No space left"):
        sink.service()
    assert isinstance(sink.failed, OSError)
    sink.publish_batch("trade", records, 1, frames)  # no longer held for the disk
    assert sink.close(2.0) == 0 and closed == [2.0] and sink.frames == 0
    assert sink.summary()["recording"]["lost"] == 3


@pytest.mark.parametrize("close_fails", [True, False])
def test_frames_count_as_recorded_once_they_are_in_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, close_fails: bool) -> None:
    """Written into the gzip stream is not yet in the file: frames a disk error keeps in its
    buffers are lost, and the summary says so instead of counting them recorded; should
    closing the file still get them in, they are recorded. The summary matches the file."""
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    sink = RecordingSink(tmp_path, NullSink(), {}, max_linger_ms=5)
    records, frames = batch("trade", [1, 2, 3], [b'{"t":1}', b'{"t":2}', b'{"t":3}'])
    sink.publish_batch("trade", records, 1, frames)
    sink.service()
    clock[0] += 10  # flushed: in the file
    sink.service()
    sink.publish_batch("trade", records, 1, frames)
    clock[0] += 1
    sink.service()  # written into the stream, not flushed yet

    def full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    writer = sink._writer
    assert writer is not None
    monkeypatch.setattr(writer, "flush", full)
    if close_fails:
        monkeypatch.setattr(writer, "close", full)
    clock[0] += 10
    with pytest.raises(OSError, match="No space left"):
        sink.service()
    assert sink.close(1.0) == 0
    recording = sink.summary()["recording"]
    assert (recording["frames"], recording["lost"]) == ((3, 3) if close_fails else (6, 0))
    read = []
    with contextlib.suppress(TruncatedRecording):  # (cut short when its close failed)
        read.extend(RecordingReader(sink.files[0]))
    assert len(read) == recording["frames"]


def test_a_quiet_file_is_rotated_on_time_and_flushed_meanwhile(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    sink = RecordingSink(tmp_path, NullSink(), {}, max_linger_ms=5, rotate_s=60)
    records, frames = batch("trade", [1, 2, 3], [b'{"t":1}', b'{"t":2}', b'{"t":3}'])
    sink.publish_batch("trade", records, 1, frames)
    sink.service()  # written (their receive times are long past)
    (path,) = sink.files
    clock[0] += 10  # a flush is due: what was written reads back while the file is open
    sink.service()
    read: list[int] = []
    with pytest.raises(TruncatedRecording, match="after 3 records"):  # (still open)
        read.extend(r.recv_ns for r in RecordingReader(path))
    assert read == [1, 2, 3]
    clock[0] += 60  # nothing more came, and the file is rotate_s old: closed
    sink.service()
    assert sink._writer is None and sink.close(1.0) == 0 and sink.files == [path]


@pytest.mark.parametrize("prefix", ["a/b", "", ".."])
def test_a_place_no_file_can_be_made_in_fails_at_start(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(OSError, match="without '/'"):
        RecordingSink(tmp_path, NullSink(), {}, max_linger_ms=5, prefix=prefix)
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError):  # (a file where the directory goes)
        RecordingSink(tmp_path / "file", NullSink(), {}, max_linger_ms=5)


def test_a_rejected_binary_frame_is_recorded_as_binary(tmp_path: Path) -> None:
    # (so that a replay rejects it as binary again, where as text it might even decode)
    assert BINARY_FRAME in ERROR_NAMES
    sink = RecordingSink(tmp_path, NullSink(), {}, max_linger_ms=5)
    sink.publish_dead_letter(BINARY_FRAME, "", "", b'{"e":"trade"}')
    sink.publish_dead_letter("malformed_json", "", "", b"{oops")
    assert sink.close(1.0) == 0
    (path,) = sink.files
    with RecordingReader(path) as reader:
        assert [(r.payload, r.binary) for r in reader] == [(b'{"e":"trade"}', True),
                                                           (b"{oops", False)]
