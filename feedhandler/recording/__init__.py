"""Recordings of raw market-data frames (`feedhandler record`, simulator replay)."""

from feedhandler.recording.format import (
    Record,
    RecordingError,
    RecordingReader,
    RecordingWriter,
    TruncatedRecording,
)

__all__ = [
    "Record",
    "RecordingError",
    "RecordingReader",
    "RecordingWriter",
    "TruncatedRecording",
]
