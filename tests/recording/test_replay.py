"""`feedhandler replay`: public captures and recordings through the real decoder, pacing, the
summary, and bad input."""

from __future__ import annotations

import gzip
import json
import os
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvloop

from feedhandler.cli import main
from feedhandler.config import load_config
from feedhandler.contract import Frames
from feedhandler.contract.streams import apart
from feedhandler.parsing import parse
from feedhandler.recording.captures import FrameFile, capture_streams
from feedhandler.recording.format import RecordingWriter
from feedhandler.recording.replay import replay_handler
from feedhandler.records import SCHEMAS
from feedhandler.sinks.null import NullSink

CORPUS = Path("../shared/corpus/binance")
BASE_NS = 1_617_647_603_000_000_000


class Collecting(NullSink):
    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[np.ndarray]] = defaultdict(list)
        self.rejected: list[str] = []

    def publish_batch(self, kind: str, records: np.ndarray, epoch: int,
                      frames: Frames | None = None) -> None:
        super().publish_batch(kind, records, epoch, frames)
        self.tables[kind].append(records.copy())

    def publish_dead_letter(self, reason: str, field: str, stream: str, frame: bytes) -> None:
        super().publish_dead_letter(reason, field, stream, frame)
        self.rejected.append(reason)


def joined(kind: str, parts: list[np.ndarray]) -> np.ndarray:
    """The records back to back in the wire layout (np.concatenate and ndarray.copy() would
    drop or leave undefined the padding bytes)."""
    out = np.zeros(sum(map(len, parts)), SCHEMAS[kind].dtype)
    out[...] = np.concatenate(parts)
    return out


def combined_frames() -> list[bytes]:
    return [line.encode() for line in (CORPUS / "combined.jsonl").read_text().splitlines()
            if line.strip()]


def write_capture(path: Path, frames: list[bytes]) -> list[int]:
    """`<recv_ns> <frame>` per line, gzip; receive times 1 ms apart."""
    stamps = [BASE_NS + i * 1_000_000 for i in range(len(frames))]
    path.write_bytes(gzip.compress(b"".join(b"%d %s\n" % (ns, f)
                                            for ns, f in zip(stamps, frames, strict=True))))
    return stamps


def replay(paths: list[Path], speed: float = 0.0, **overrides: Any) -> tuple[Collecting, Any]:
    streams = apart(sorted(set().union(*map(capture_streams, paths))))  # as replay_config
    config = load_config(None, {"url": "ws://replay.invalid", "sink": "null",
                                "streams": streams, **overrides}, environ={})
    sink = Collecting()
    stats = uvloop.run(replay_handler(config, paths, speed, sink).run())
    return sink, stats


def test_public_capture_replays_to_the_records_of_the_same_frames(tmp_path: Path) -> None:
    frames = combined_frames()
    assert len(frames) > 50
    stamps = write_capture(tmp_path / "capture.jsonl.gz", frames)
    sink, stats = replay([tmp_path / "capture.jsonl.gz"])
    expected = parse(frames, ts_recv=0)
    assert stats.frames == len(frames)
    assert stats.summary().keys() == {"frames", "records", "errors", "gaps", "reconnects",
                                      "elapsed_s", "frames_per_s", "close_s", "sink",
                                      "connections"}
    assert stats.gaps == len(expected["gap"]) > 0  # the corpus lines are not contiguous
    for kind, table in expected.items():
        if not len(table) or kind in ("gap", "control"):  # published as control events
            continue
        got = joined(kind, sink.tables[kind])
        assert set(got["ts_recv"]) <= set(stamps), kind  # the recorded receive times
        assert (np.diff(got["ts_recv"]) >= 0).all(), kind
        got["ts_recv"] = 0
        assert got.tobytes() == joined(kind, [table]).tobytes(), kind
    assert sink.rejected == [d.reason for d in expected.dead_letters]


def test_capture_line_forms(tmp_path: Path) -> None:
    frame = b'{"stream":"btcusdt@trade","data":{}}'
    path = tmp_path / "forms.jsonl"
    path.write_bytes(b"1617647603484000123 %s\n1617647603.5: %s\n\n%s\nnot a frame\n"
                     % (frame, frame, frame))
    with FrameFile(path) as frames:
        got = list(frames)
    assert [(f.recv_ns, f.payload) for f in got] == [
        (1617647603484000123, frame), (1617647603500000000, frame), (None, frame),
        (None, b"not a frame")]  # judged (and dead-lettered) by the decoder, not fatal
    assert capture_streams(path) == {"btcusdt@trade"}


def test_recorded_pace_and_speed_up(tmp_path: Path) -> None:
    frames = combined_frames()[:60]
    path = tmp_path / "paced.fhrec"
    with RecordingWriter(path, {"streams": sorted(capture_streams_of(frames))}) as writer:
        for i, frame in enumerate(frames):  # 0.5 s of recording
            writer.write(BASE_NS + i * 500_000_000 // len(frames), "", frame)
    timings = {}
    for speed in (1.0, 4.0, 0.0):
        started = time.perf_counter()
        _, stats = replay([path], speed)
        timings[speed] = time.perf_counter() - started
        assert stats.frames == len(frames)
    # ratios within one run: recorded pace takes the recording's length, x4 a quarter
    assert timings[1.0] > 0.45
    assert timings[4.0] < timings[1.0] - 0.25
    assert timings[0.0] < timings[1.0] - 0.3


def capture_streams_of(frames: list[bytes]) -> set[str]:
    return {json.loads(f)["stream"] for f in frames}


def test_replay_command_summary_and_errors(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    frames = combined_frames()
    write_capture(tmp_path / "a.jsonl.gz", frames[:50])
    write_capture(tmp_path / "b.jsonl.gz", frames[50:])
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = [signal.getsignal(sig) for sig in signals]
    code = main(["replay", str(tmp_path / "a.jsonl.gz"), str(tmp_path / "b.jsonl.gz"),
                 "--fast", "--sink", "null", "--summary-json"])
    assert code == 0
    assert [signal.getsignal(sig) for sig in signals] == before  # in-process: ours back
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["frames"] == len(frames)
    data = {k: n for k, n in summary["records"].items() if k not in ("gap", "control")}
    assert sum(data.values()) == summary["sink"]["records"] > 150
    assert main(["replay", str(tmp_path / "missing.gz"), "--fast"]) == 2
    assert "cannot read" in capsys.readouterr().err
    # what it read from a file is said to come from there, not from a flag
    (tmp_path / "odd.txt").write_text('1 {"stream":"btcusdt@bogusKind","data":{}}\n')
    assert main(["replay", str(tmp_path / "odd.txt"), "--fast", "--sink", "null"]) == 2
    assert capsys.readouterr().err.endswith('got "btcusdt@bogusKind" (the files replayed)\n')
    # one decoder, one time unit: recordings made in two are not replayed together
    for unit in ("ms", "us"):
        with RecordingWriter(tmp_path / f"{unit}.fhrec", {"time_unit": unit}) as writer:
            writer.write(BASE_NS, "", frames[0])
    assert main(["replay", str(tmp_path / "ms.fhrec"), str(tmp_path / "us.fhrec"),
                 "--fast", "--sink", "null"]) == 2
    refused = ("feedhandler replay: configuration error: files in different time units ({}): "
               "replay them separately (a capture names no unit: it is taken to be in "
               "connection.time_unit's, else in ms)\n")
    assert capsys.readouterr().err == refused.format(
        f"{tmp_path}/ms.fhrec: ms, {tmp_path}/us.fhrec: us")
    # a capture is in ms unless told: not with a us recording (its E would read as us)
    a, us = str(tmp_path / "a.jsonl.gz"), str(tmp_path / "us.fhrec")
    assert main(["replay", us, a, "--fast", "--sink", "null"]) == 2
    assert capsys.readouterr().err == refused.format(f"{us}: us, {a}: ms")
    # nor a time unit configured other than a recording's own (a flag, or the file)
    assert main(["replay", us, "--time-unit", "ms", "--fast", "--sink", "null"]) == 2
    assert capsys.readouterr().err == refused.format(f"connection.time_unit: ms, {us}: us")
    # told, a capture is in the unit given, by a flag or the config file
    assert main(["replay", us, a, "--time-unit", "us", "--fast", "--sink", "null"]) == 0
    (tmp_path / "us.yaml").write_text("connection: {time_unit: us}\n")
    assert main(["replay", us, a, "--config", str(tmp_path / "us.yaml"), "--fast", "--sink",
                 "null"]) == 0
    # the config a universe run was recorded with: the recording's streams, not a universe
    (tmp_path / "universe.yaml").write_text(
        "universe: {kinds: [trade]}\nwsapi: {url: 'ws://127.0.0.1:9/ws-api/v3'}\n")
    assert main(["replay", a, "--config", str(tmp_path / "universe.yaml"), "--fast", "--sink",
                 "null"]) == 0


def recording(path: Path, frames: list[bytes], span_ns: int = 1_000_000) -> None:
    with RecordingWriter(path, {"streams": sorted(capture_streams_of(frames))}) as writer:
        for i, frame in enumerate(frames):
            writer.write(BASE_NS + i * span_ns // len(frames), "", frame)


def replay_summary(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["replay", *args, "--sink", "null", "--summary-json"])
    return code, json.loads(capsys.readouterr().out.splitlines()[-1])


def test_the_summary_says_which_files_were_cut_short_damaged_or_empty(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file cut short (a recorder that stopped) replays up to the cut and says so; one whose
    bytes are damaged (gzip CRC) replays up to there as well, but exits 1: what was read
    before the damage may be wrong too."""
    frames = combined_frames()
    whole, cut, damaged = (tmp_path / f"{n}.fhrec.gz" for n in ("whole", "cut", "damaged"))
    for path in (whole, cut, damaged):
        recording(path, frames)
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) // 2])
    damaged.write_bytes(data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:])  # CRC
    (tmp_path / "empty.fhrec.gz").write_bytes(b"")
    code, summary = replay_summary(capsys, str(whole), str(cut), "--fast")
    assert code == 0
    assert summary["replay"]["complete"] is True
    (cut_short,) = summary["replay"]["cut_short"]
    assert cut_short["file"] == str(cut) and summary["replay"]["damaged"] == []
    code, summary = replay_summary(capsys, str(damaged), str(tmp_path / "empty.fhrec.gz"),
                                   "--fast")
    assert code == 1
    (bad,) = summary["replay"]["damaged"]
    assert bad["file"] == str(damaged) and "CRC check failed" in bad["error"]
    assert summary["replay"]["empty"] == [str(tmp_path / "empty.fhrec.gz")]


def test_a_replay_stopped_before_the_end_says_so_and_exits_3(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "slow.fhrec"
    recording(path, combined_frames(), span_ns=30 * 10**9)  # 30 s at the recorded pace
    threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    code, summary = replay_summary(capsys, str(path))
    assert code == 3
    assert summary["replay"]["complete"] is False
    assert 0 < summary["frames"] < len(combined_frames())
    # a stop asked for is no interruption
    code, summary = replay_summary(capsys, str(path), "--duration", "1")
    assert code == 0 and summary["replay"]["complete"] is False
