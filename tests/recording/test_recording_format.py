"""Recording files: round trip, the documented byte layout, and damaged files."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from feedhandler.recording.captures import FrameFile
from feedhandler.recording.format import (
    MAGIC,
    Record,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    TruncatedRecording,
)

RECORDS = [
    Record(1_767_225_600_123_456_789, "btcusdt@trade", b'{"e":"trade","t":1}'),
    Record(1_767_225_600_123_456_790, "币安人生usdt@bookTicker", '{"s":"币安人生USDT"}'.encode()),
    Record(-5, "", b""),  # empty stream label and payload are legal
    Record(2**63 - 1, "x" * 65_535, bytes(range(256)) * 4000),
    Record(3, "", b'{"e":"trade"}', binary=True),  # a binary message: replayed as binary
]


def _write(path: Path, meta: dict[str, object] | None = None) -> None:
    with RecordingWriter(path, meta) as writer:
        for record in RECORDS:
            writer.write(*record)


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.fhrec"
    _write(path, {"url": "ws://127.0.0.1:9443/stream?streams=btcusdt@trade", "time_unit": "us"})
    with RecordingReader(path) as reader:
        assert reader.meta == {
            "url": "ws://127.0.0.1:9443/stream?streams=btcusdt@trade",
            "time_unit": "us",
        }
        assert list(reader) == RECORDS
    recv_ns, stream, payload, binary = next(iter(RecordingReader(path)))  # plain unpacking
    assert (recv_ns, stream, payload, binary) == tuple(RECORDS[0])


def test_byte_layout_matches_the_documentation(tmp_path: Path) -> None:
    path = tmp_path / "b.fhrec"
    with RecordingWriter(path) as writer:
        writer.write(7, "ab", b"xyz")
        writer.write(8, "", b"\x00", binary=True)
    data = path.read_bytes()
    assert data == (
        b"FHREC\x00\r\n"  # magic
        + struct.pack("<HHI", 2, 0, 2) + b"{}"  # version, flags, meta_len, meta
        + struct.pack("<qHIB", 7, 2, 3, 0) + b"ab" + b"xyz"  # a text record
        + struct.pack("<qHIB", 8, 0, 1, 1) + b"\x00"  # a binary one
    )  # fmt: skip
    assert data.startswith(MAGIC)


def test_version_1_files_are_read_every_frame_text(tmp_path: Path) -> None:
    path = tmp_path / "v1.fhrec"
    path.write_bytes(MAGIC + struct.pack("<HHI", 1, 0, 2) + b"{}"
                     + struct.pack("<qHI", 7, 2, 3) + b"ab" + b"xyz"
                     + struct.pack("<qHI", 8, 0, 2) + b"{}")
    assert list(RecordingReader(path)) == [Record(7, "ab", b"xyz"), Record(8, "", b"{}")]


def test_a_record_with_unknown_flags_stops_the_reading_as_damage(tmp_path: Path) -> None:
    path = tmp_path / "f.fhrec"
    with RecordingWriter(path) as writer:
        writer.write(1, "", b"{}")
        writer.write(2, "", b"[]", binary=True)
    data = bytearray(path.read_bytes())
    data[-3] = 0x03  # the second record's flags: binary and a bit no reader knows
    path.write_bytes(bytes(data))
    with pytest.raises(TruncatedRecording, match="record flags 0x3 unknown, after 1 records"):
        list(RecordingReader(path))
    reader = RecordingReader(path, tolerate_truncation=True)
    assert list(reader) == [Record(1, "", b"{}")] and reader.damaged


def test_truncated_tail(tmp_path: Path) -> None:
    path = tmp_path / "c.fhrec"
    _write(path)
    data = path.read_bytes()
    final = RECORDS[-1]
    last = len(data) - (15 + len(final.stream.encode()) + len(final.payload))
    big = last - (15 + 65_535 + 1_024_000)  # the one before: a long label, a long payload
    # a cut inside the last payload, inside the one before's stream name, inside its header
    for end, whole in ((len(data) - 1, 4), (big + 15 + 100, 3), (big + 5, 3)):
        path.write_bytes(data[:end])
        with pytest.raises(TruncatedRecording):
            list(RecordingReader(path))
        assert list(RecordingReader(path, tolerate_truncation=True)) == RECORDS[:whole]
    path.write_bytes(data[:last])  # a cut between records is a clean end
    assert list(RecordingReader(path)) == RECORDS[:4]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short"),
        (b"NOTAREC!" + struct.pack("<HHI", 1, 0, 0), "bad magic"),
        (MAGIC + struct.pack("<HHI", 3, 0, 0), "unsupported version"),
        (MAGIC + struct.pack("<HHI", 1, 1, 0), "flags"),
        (MAGIC + struct.pack("<HHI", 1, 0, 10) + b"{}", "metadata cut short"),
    ],
)
def test_rejects_bad_headers(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "d.fhrec"
    path.write_bytes(data)
    with pytest.raises(RecordingError, match=message):
        RecordingReader(path)


def test_gzip_round_trip_and_many_records_at_once(tmp_path: Path) -> None:
    frames = [b'{"a":1}', b"", "币安".encode(), b"x" * 70_000]
    recv = np.array([5, 3, -1, 2**62], np.int64)
    payload = np.frombuffer(b"".join(frames), np.uint8)
    lengths = np.array([len(f) for f in frames])
    starts = np.cumsum(lengths) - lengths
    plain, packed = tmp_path / "plain.fhrec", tmp_path / "packed.fhrec.gz"
    with RecordingWriter(plain, {"k": 1}) as writer:
        for ns, frame in zip(recv, frames, strict=True):
            writer.write(int(ns), "", frame)
    with RecordingWriter(packed, {"k": 1}) as writer:
        writer.write_frames(recv[:2], payload, starts[:2], lengths[:2])
        writer.write_frames(recv[2:], payload, starts[2:], lengths[2:])
        assert writer.size == plain.stat().st_size  # counted before compression
    assert packed.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()  # byte for byte
    with RecordingReader(packed) as reader:
        assert reader.meta == {"k": 1}
        assert list(reader) == [Record(int(n), "", f) for n, f in zip(recv, frames, strict=True)]
        assert reader.position() == packed.stat().st_size


def test_gzip_recording_cut_short_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "cut.fhrec.gz"
    _write(path)
    path.write_bytes(path.read_bytes()[:-30])  # no gzip trailer, last record incomplete
    with pytest.raises(TruncatedRecording):
        list(RecordingReader(path))
    assert list(RecordingReader(path, tolerate_truncation=True)) == RECORDS[:4]


def _many(path: Path, count: int = 20_000) -> list[Record]:
    """A gzip recording of `count` records, several MiB unpacked (random payloads)."""
    rng = np.random.default_rng(7)
    records = [Record(i, "btcusdt@trade", rng.bytes(200)) for i in range(count)]
    with RecordingWriter(path) as writer:
        for record in records:
            writer.write(*record)
    return records


def test_a_damaged_gzip_recording_gives_every_record_before_the_damage(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "r.fhrec.gz"
    records = _many(path)
    data = path.read_bytes()
    path.write_bytes(data[:-8])  # the trailer lost: every record is still whole
    assert list(RecordingReader(path, tolerate_truncation=True)) == records
    assert "after 20000 records: read up to there" in caplog.text
    path.write_bytes(data[:len(data) // 2])  # cut short
    got = list(RecordingReader(path, tolerate_truncation=True))
    assert got == records[:len(got)]
    assert len(records) // 2 - len(got) < 50  # what was decompressed is kept
    with pytest.raises(TruncatedRecording):
        list(RecordingReader(path))
    with FrameFile(path) as frames:  # (the replay's reader)
        assert [f.payload for f in frames] == [r.payload for r in got]
    # damaged inside: deflate may decode some garbage before its checksum fails at the end
    # (records carry no checksum of their own, only flags no writer sets); the reader stops
    # there, without a traceback, and says the file is damaged
    path.write_bytes(data[:len(data) // 2] + bytes(1000) + data[len(data) // 2 + 1000:])
    reader = RecordingReader(path, tolerate_truncation=True)
    got = list(reader)
    assert got[:len(records) // 2 - 50] == records[:len(records) // 2 - 50]
    assert reader.damaged
    assert any(text in caplog.text for text in ("CRC check failed", "invalid", "record flags"))


@pytest.mark.parametrize("meta", [b"{not json", b"[1, 2]", b'"text"'])
def test_header_metadata_must_be_a_json_object(tmp_path: Path, meta: bytes) -> None:
    path = tmp_path / "m.fhrec"
    path.write_bytes(MAGIC + struct.pack("<HHI", 1, 0, len(meta)) + meta)
    with pytest.raises(RecordingError, match="header metadata is not a JSON object"):
        RecordingReader(path)


def test_a_stream_label_that_is_not_utf8_is_read_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "u.fhrec"
    with RecordingWriter(path) as writer:
        writer.write(1, "x", b"{}")
    data = path.read_bytes()
    path.write_bytes(data[:-3] + b"\xff{}")  # the label's one byte
    assert list(RecordingReader(path)) == [Record(1, "\ufffd", b"{}")]


@pytest.mark.parametrize("name", ["big.fhrec", "big.fhrec.gz"])
def test_records_longer_than_a_read_chunk(tmp_path: Path, name: str) -> None:
    records = [Record(1, "a", b"x" * 3_000_000), Record(2, "b", b"{}"),
               Record(3, "c", bytes(range(256)) * 9000)]
    with RecordingWriter(tmp_path / name) as writer:
        for record in records:
            writer.write(*record)
    assert list(RecordingReader(tmp_path / name)) == records
