"""`feedhandler replay FILE...`: recordings and public captures through the real decoder into
any sink, at the recorded pace, N times faster, or as fast as possible.

Frames are decoded with their recorded receive times, so the records equal those of the live
run that recorded them. The process is `run`'s (Handler, sink, batches, control events,
metrics, summary); only the frame source differs: `ReplayChild` stands in for the exchange
connection. Reading a file costs one bytes object per frame (the file has to be read); decoding
and everything after it is the hot path of `run`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from feedhandler._ext.listener import FeedListener
from feedhandler.app.handler import Handler
from feedhandler.app.run import add_arguments as add_run_arguments
from feedhandler.app.run import load_from_args, run_handler
from feedhandler.argtypes import number
from feedhandler.config import ConfigError, HandlerConfig
from feedhandler.contract.streams import apart
from feedhandler.recording.captures import FrameFile, capture_streams
from feedhandler.recording.format import RecordingError
from feedhandler.sinks.base import Sink
from feedhandler.supervisor.failures import Failure
from feedhandler.supervisor.feed import ShardFeed
from feedhandler.supervisor.staleness import Verdict

YIELD_EVERY = 1024  # frames between event-loop turns: the service loop flushes and delivers
PROGRESS_INTERVAL_S = 0.25


class Progress:
    """One self-overwriting status line on a terminal; nothing when not on one."""

    def __init__(self, total_bytes: int, out: TextIO = sys.stderr) -> None:
        self.total = max(total_bytes, 1)
        self.out = out
        self.enabled = out.isatty()
        self._started = self._shown = time.monotonic()

    def update(self, done_bytes: int, frames: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not final and now - self._shown < PROGRESS_INTERVAL_S):
            return
        self._shown = now
        share = min(1.0, done_bytes / self.total)
        bar = "#" * int(share * 30)
        rate = frames / max(now - self._started, 1e-9)
        self.out.write(f"\rreplay [{bar:<30}] {share:4.0%}  {frames:,} frames  "
                       f"{rate:,.0f}/s" + ("\n" if final else ""))
        self.out.flush()


class ReplayChild:
    """A shard's frame source under the supervisor, in place of its exchange connection: feeds
    recorded frames to the shard's decoder, paced; reports as an open connection."""

    def __init__(self, feed: ShardFeed, paths: Sequence[Path], *, speed: float,
                 max_frames: int = 0, on_limit: Callable[[], None] | None = None,
                 on_end: Callable[[], None] | None = None) -> None:
        self.feed = feed
        self.paths = list(paths)
        self.decoder = feed.decoder
        self.speed = speed  # 0: as fast as possible
        self.frames = 0
        self.state = "idle"
        self.listener: FeedListener | None = None
        self.failed_attempts, self.last_error = 0, ""
        self.start_refusal: Failure | None = None
        self.replaced: Counter[str] = Counter()
        self.rollovers: Counter[str] = Counter()
        self.violations = 0
        self.verdict = Verdict("ok")
        self.opened_at = 0.0
        self.max_silence_s = math.inf  # a recording's pauses are never replaced
        self.progress = Progress(sum(p.stat().st_size for p in self.paths))
        self._max_frames = max_frames
        self._on_limit = on_limit
        self._on_end = on_end
        self._done_bytes = 0
        self._counted = 0  # frames already handed to the feed's count
        self.complete = False  # every file read to its end (or to --max-messages)
        self.files: dict[str, list[Any]] = {"cut_short": [], "damaged": [], "empty": []}

    @property
    def index(self) -> int:
        return self.feed.shard.index

    async def run(self, stop: asyncio.Event) -> None:
        self.feed.attempting()  # epoch 1, fresh sequence checks
        self.state, self.opened_at = "open", time.monotonic()
        try:
            for path in self.paths:
                with FrameFile(path) as frames:
                    before = self.frames
                    if not await self._replay(frames, stop):
                        return
                    self._read(path, frames, self.frames - before)
                self._done_bytes += path.stat().st_size
            self.complete = True
        finally:
            self._count()
            self.state = "stopped"
            self.progress.update(self._done_bytes, self.frames, final=True)
        if self._on_end is not None and self.paths:
            self._on_end()

    def _read(self, path: Path, frames: FrameFile, count: int) -> None:
        """What became of a file read to its end, for the summary."""
        if frames.damaged:
            self.files["damaged"].append({"file": str(path), "error": frames.stopped_early})
        elif frames.stopped_early:
            self.files["cut_short"].append({"file": str(path), "error": frames.stopped_early})
        if not count:
            self.files["empty"].append(str(path))

    def report(self, signalled: bool) -> tuple[dict[str, Any], int]:
        """The summary's `replay` part, and the exit code it calls for: 1 when a file was
        damaged (what was read before the damage went out, and may be wrong), 3 when a
        signal stopped the replay before the end of its files (not --duration: asked for)."""
        return ({"replay": {"complete": self.complete, "files": len(self.paths),
                            **self.files}},
                1 if self.files["damaged"] else 3 if signalled and not self.complete else 0)

    def _count(self) -> None:
        self.feed.fed(self.frames - self._counted, time.time_ns())
        self._counted = self.frames

    async def _replay(self, frames: FrameFile, stop: asyncio.Event) -> bool:
        """Decode one file's frames; False when told to stop (or the frame limit is reached)."""
        loop = asyncio.get_running_loop()
        decode, set_stream = self.decoder.decode, self.decoder.set_stream
        stream = ""
        start_s, first_ns = 0.0, 0
        for recv_ns, label, payload, binary in frames:
            if label and label != stream:  # a raw payload recorded under its stream's name
                stream = label
                set_stream(label)
            if self.speed and recv_ns is not None:
                if not first_ns:
                    start_s, first_ns = loop.time(), recv_ns
                wait = start_s + (recv_ns - first_ns) / 1e9 / self.speed - loop.time()
                if wait > 0.001:  # (a stop ends the wait: a paced replay may be slow)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait)
                    if stop.is_set():
                        return False
            decode(payload, recv_ns, not binary)
            self.frames += 1
            if self._max_frames and self.frames >= self._max_frames:
                self.complete = True  # (what was asked for)
                if self._on_limit is not None:
                    self._on_limit()
                return False
            if self.frames % YIELD_EVERY == 0:
                self._count()
                self.progress.update(self._done_bytes + frames.position(), self.frames)
                await asyncio.sleep(0)
                while self.feed.paused and not stop.is_set():  # sink backpressure
                    await asyncio.sleep(0.01)
                if stop.is_set():
                    return False
        return True


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("files", nargs="+", type=Path, metavar="FILE",
                   help="recordings (feedhandler record) or captures: `<recv_ns> <frame>` per "
                        "line, gzip or not")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=number(float), default=1.0,
                      help="replay at N times the recorded pace (default: 1, as recorded)")
    pace.add_argument("--fast", action="store_true", help="as fast as possible")
    add_run_arguments(p)


def replay_config(args: argparse.Namespace, paths: Sequence[Path]) -> HandlerConfig:
    """run's configuration, with the recordings' streams and time unit. One decoder reads
    every file, in one time unit: recordings in two are refused, and so is a configured
    connection.time_unit (flag, environment or file) other than theirs. A capture names no
    unit: it is in the configured one, else in Binance's default (ms)."""
    # (a capture may hold streams that clash, e.g. !bookTicker from before Binance dropped it
    # beside btcusdt@bookTicker: the plan takes the first, the frames all decode as recorded)
    streams = getattr(args, "streams", None) or \
        ",".join(apart(sorted(set().union(*map(capture_streams, paths)))))
    fill: dict[str, Any] = {
        "streams": streams or None,
        # snapshots are the exchange's book now, not the recording's (and a url the
        # recording's exchange's WS API would not be)
        "book.snapshots": False, "book.publish": False,
        # the recording's streams, not the universe's of the config it was made with
        "universe.kinds": [],
        # one shard: it replays every file
        "connection.streams_per_connection": 1024,
        "url": "ws://replay.invalid"}
    config = load_from_args(args, "the files replayed", **fill)
    configured: str = config.connection.time_unit
    units = {configured: "connection.time_unit"} \
        if "time_unit" in config.connection.model_fields_set else {}
    for path in paths:
        with FrameFile(path) as frames:
            unit = frames.meta.get("time_unit")
        units.setdefault(unit if isinstance(unit, str) else configured, str(path))
    if len(units) > 1:
        raise RecordingError("files in different time units (" + ", ".join(
            f"{where}: {unit}" for unit, where in units.items()) + "): replay them separately"
            " (a capture names no unit: it is taken to be in connection.time_unit's, else in "
            "ms)")
    unit = next(iter(units), configured)
    return config if unit == configured else load_from_args(
        args, "the files replayed", **fill, **{"connection.time_unit": unit})


def run(args: argparse.Namespace) -> int:
    paths: list[Path] = args.files
    speed = 0.0 if args.fast else args.speed
    for path in paths:
        if not os.access(path, os.R_OK):
            print(f"feedhandler replay: cannot read {path}", file=sys.stderr)
            return 2

    built: list[Handler] = []

    def make_handler() -> Handler:
        try:
            config = replay_config(args, paths)
        except RecordingError as exc:
            raise ConfigError(str(exc)) from None
        built.append(replay_handler(config, paths, speed))
        return built[0]

    def report() -> tuple[dict[str, Any], int]:
        reader = built[0].supervisor.children[0]  # (the shard that replays the files)
        assert isinstance(reader, ReplayChild)
        return reader.report(built[0].signalled is not None)

    return run_handler("replay", args, make_handler, report=report)


def replay_handler(config: HandlerConfig, paths: Sequence[Path], speed: float,
                   sink: Sink | None = None) -> Handler:
    """A Handler whose first shard replays `paths` (any other has nothing to replay) and that
    stops at their end."""
    pending = [list(paths)]

    def make_child(feed: ShardFeed) -> ReplayChild:
        # (called while the Handler is built: `handler` is bound by the time these run)
        return ReplayChild(feed, pending.pop() if pending else [], speed=speed,
                           max_frames=config.max_messages, on_limit=lambda: handler.stop(),
                           on_end=lambda: handler.stop())

    handler = Handler(config, sink, make_child=make_child)
    return handler
