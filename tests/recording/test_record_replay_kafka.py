"""`record` against the simulator into Kafka, then `replay` of its files into Kafka: the same
records (receive times included) and the same dead letters as the live run; and the
simulator replays the recorder's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from feedhandler import decode
from feedhandler.consume.reader import read_messages
from feedhandler.contract import header_dict
from feedhandler.recording.format import RecordingReader
from feedhandler.records import SCHEMAS, schema_by_name
from feedhandler.simulator.server.faults import BINARY, MALFORMED
from feedhandler.simulator.testing import SimulatorProcess
from tests.integration.test_kafka_bridge import stream_names

pytestmark = pytest.mark.integration


def feedhandler(log: Path, *args: str, market: str = "") -> dict[str, Any]:
    """Run a feedhandler command to its end; the summary it printed."""
    # a loaded CI machine may need more than the default 10 s to flush at the end
    env = {**os.environ, "FEEDHANDLER_SHUTDOWN_TIMEOUT_S": "120",
           **({"FEEDHANDLER_KAFKA__MARKET": market} if market else {})}
    with log.open("w") as err:
        done = subprocess.run([sys.executable, "-m", "feedhandler", *args, "--summary-json"],
                              stdout=subprocess.PIPE, stderr=err, text=True, timeout=180,
                              env=env, check=False)
    assert done.returncode == 0, log.read_text()[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def published(bootstrap: str, market: str) -> tuple[dict[tuple[str, bytes], bytes], list[bytes]]:
    """(kind, symbol) -> its records' bytes in order (receive times included); dead letters."""
    parts: dict[tuple[str, bytes], list[np.ndarray]] = defaultdict(list)
    for msg in read_messages(bootstrap, pattern=rf"^binance\.{market}\.(?!control|deadletter)"):
        headers = header_dict(msg.headers())
        kind = schema_by_name(headers["fh.schema"], int(headers["fh.version"])).kind
        parts[(kind, msg.key() or b"")].append(decode(msg))
    records = {}
    for (kind, symbol), arrays in parts.items():
        out = np.zeros(sum(map(len, arrays)), SCHEMAS[kind].dtype)  # padding zeroed
        out[...] = np.concatenate(arrays)
        records[(kind, symbol)] = out.tobytes()
    dead = [m.value() or b"" for m in read_messages(bootstrap, [f"binance.{market}.deadletter"])]
    return records, dead


@pytest.mark.slow
def test_replay_of_a_recording_publishes_what_the_live_run_did(kafka_bootstrap: str,
                                                                tmp_path: Path) -> None:
    streams = ",".join(stream_names(10))
    live, replayed = f"rec{uuid.uuid4().hex[:8]}", f"rep{uuid.uuid4().hex[:8]}"
    kafka = ["--sink", "kafka", "--kafka-bootstrap", kafka_bootstrap]
    out = tmp_path / "rec"
    sim_args = ["--seed", "7", "--rate", "3000", "--fault", "malformed:every=997",
                "--fault", "binary:every=1499"]
    with SimulatorProcess(sim_args) as sim:
        recorded = feedhandler(tmp_path / "record.log", "record", "--out", str(out),
                               "--rotate-s", "3", "--url", sim.url, "--streams", streams,
                               "--duration", "8", *kafka, market=live)
    files = sorted(out.glob("feedhandler-*.fhrec.gz"))
    assert len(files) >= 2, "rotated every 3 s"
    assert recorded["sink"]["recording"]["files"] == [str(f) for f in files]
    assert recorded["frames"] > 10_000 and recorded["errors"]["malformed_json"] > 5
    assert recorded["errors"]["binary_frame"] > 3  # rejected again on replay: as binary
    assert recorded["sink"]["recording"]["frames"] == recorded["frames"]

    again = feedhandler(tmp_path / "replay.log", "replay", *map(str, files), "--fast", *kafka,
                        market=replayed)
    for key in ("frames", "records", "errors", "gaps"):
        assert again[key] == recorded[key], key
    for summary in (recorded, again):
        assert summary["sink"]["undelivered"] == summary["sink"]["failed"] == 0
    live_records, live_dead = published(kafka_bootstrap, live)
    replay_records, replay_dead = published(kafka_bootstrap, replayed)
    assert len(live_records) == 10 * 4  # every (kind, symbol) of the 40 streams
    assert replay_records == live_records
    rejected = recorded["errors"]["malformed_json"] + recorded["errors"]["binary_frame"]
    assert len(replay_dead) == len(live_dead) == rejected, \
        (len(replay_dead), len(live_dead), recorded, again)
    assert replay_dead == live_dead and set(live_dead) == {MALFORMED, BINARY}


def test_the_simulator_replays_the_recorders_files(tmp_path: Path) -> None:
    streams = ",".join(stream_names(3))
    out = tmp_path / "rec"
    with SimulatorProcess(["--seed", "7", "--rate", "2000"]) as sim:
        recorded = feedhandler(tmp_path / "record.log", "record", "--out", str(out),
                               "--url", sim.url, "--streams", streams, "--sink", "null",
                               "--max-messages", "3000")
    (path,) = out.glob("*.fhrec.gz")
    with RecordingReader(path) as reader:
        assert reader.meta["streams"] == sorted(streams.split(","))
        assert len(list(reader)) == recorded["frames"] == 3000
    with SimulatorProcess(["--replay", str(path), "--replay-speed", "0"]) as sim:
        replayed = feedhandler(tmp_path / "run.log", "run", "--url", sim.url, "--streams",
                               streams, "--sink", "null", "--max-messages", "3000",
                               "--duration", "60")
    assert replayed["frames"] == 3000 and replayed["records"] == recorded["records"]
