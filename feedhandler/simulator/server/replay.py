"""Replay of a recording (`feedhandler.recording.format`) as a connection's event source.

Every connection reads the file from its start and gets the records of the streams it is
subscribed to, in file order. Pacing (recorded or full speed) is the pacer's job; this class
only exposes the capture times. Payloads are sent as recorded, so the URL's `timeUnit` does not
change them. Sequence faults act on records instead of on a model: a gap drops the next n
records of the stream, a duplicate sends the next one twice, a reorder swaps the next two.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from feedhandler.recording.format import RecordingReader
from feedhandler.simulator.market import Feed
from feedhandler.simulator.server.frames import unwrap_combined
from feedhandler.simulator.server.source import Event, FrameSource
from feedhandler.simulator.server.urls import TimeUnit

TimedEvent = tuple[int, str, bytes]  # (capture time ns, stream, payload)


class ReplaySource:
    def __init__(self, records: Iterator[TimedEvent]) -> None:
        self._records = records
        self._raw = next(records, None)  # next file record, not yet filtered
        self._first_ns = self._raw[0] if self._raw else None
        self._ahead: deque[TimedEvent] = deque()  # filtered and transformed, not yet sent
        self._streams: set[str] = set()
        self._drop: dict[str, int] = {}
        self._repeat: set[str] = set()
        self._swap: dict[str, TimedEvent | None] = {}  # stream -> record held back (None: not yet)

    # FrameSource
    def subscribe(self, streams: Sequence[str]) -> None:
        self._streams.update(streams)

    def unsubscribe(self, streams: Sequence[str]) -> None:
        self._streams.difference_update(streams)
        self._ahead = deque(record for record in self._ahead if record[1] in self._streams)

    def next_frames(self, max_frames: int) -> list[Event]:
        """Up to `max_frames` events regardless of time; [] at the end of the file."""
        while self._streams and self._raw is not None and len(self._ahead) < max_frames:
            self._advance()
        count = min(max_frames, len(self._ahead))
        return [self._ahead.popleft()[1:] for _ in range(count)]

    def inject_gap(self, stream: str, n: int = 1) -> None:
        self._drop[stream] = self._drop.get(stream, 0) + n

    def inject_duplicate(self, stream: str) -> None:
        self._repeat.add(stream)

    def inject_reorder(self, stream: str) -> None:
        self._swap.setdefault(stream, None)

    # TimedSource
    def first_ns(self) -> int | None:
        return self._first_ns

    def peek_ns(self) -> int | None:
        """Capture time of the next record (maybe one we will skip); None at the end."""
        if self._ahead:
            return self._ahead[0][0]
        return self._raw[0] if self._raw is not None else None

    def count_due(self, until_ns: int, limit: int) -> int:
        while self._raw is not None and self._raw[0] <= until_ns and len(self._ahead) < limit:
            self._advance()
        due = 0
        for ns, _, _ in self._ahead:
            if ns > until_ns or due == limit:
                break
            due += 1
        return due

    def _advance(self) -> None:
        assert self._raw is not None
        self._ahead.extend(self._transform(self._raw))
        self._raw = next(self._records, None)

    def _transform(self, record: TimedEvent) -> list[TimedEvent]:
        stream = record[1]
        if stream not in self._streams:
            return []
        if self._drop.get(stream):
            self._drop[stream] -= 1
            return []
        out = [record]
        if stream in self._swap:
            held = self._swap.pop(stream)
            if held is None:
                self._swap[stream] = record
                return []
            out.append((record[0], stream, held[2]))
        if stream in self._repeat:
            self._repeat.discard(stream)
            out.append(record)
        return out


def read_events(path: Path, is_valid_stream: Callable[[str], bool]) -> Iterator[TimedEvent]:
    """The market events of a recording file. Records the recorder kept whole (labelled with
    something other than a stream name) are unwrapped when they are combined-stream envelopes
    and skipped otherwise (control replies), as are binary messages (no market event). A file
    cut short by a crash replays up to its last whole record. The file closes when the
    iterator is exhausted or dropped."""
    with RecordingReader(path, tolerate_truncation=True) as reader:
        for recv_ns, stream, payload, binary in reader:
            if binary:
                continue
            if is_valid_stream(stream):
                yield recv_ns, stream, payload
            elif (unwrapped := unwrap_combined(payload)) is not None:
                yield recv_ns, *unwrapped


class ReplayFactory:
    """Opens one `ReplaySource` per connection on the same file."""

    def __init__(self, path: Path) -> None:
        RecordingReader(path).close()  # a bad file fails at start-up, not at a connection
        self._path = path
        self.is_valid_stream: Callable[[str], bool] = Feed.is_valid_stream

    def open(self, time_unit: TimeUnit) -> FrameSource:
        return ReplaySource(read_events(self._path, self.is_valid_stream))
