"""The Kafka bridge end to end: simulator -> `feedhandler run` -> real Kafka -> consumer.

Every check compares what the consumer reads with what the simulator's market model generates
for the same seed and subscriptions (`Feed`, decoded by `feedhandler.parse`): each record once,
in order per (kind, symbol), field for field (all but the local receive time).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from feedhandler import decode
from feedhandler.consume.reader import read_messages
from feedhandler.contract import header_dict, stream_kind
from feedhandler.parsing import parse
from feedhandler.records import SCHEMAS, schema_by_name
from feedhandler.simulator.market import Feed, Universe
from feedhandler.simulator.server.faults import MALFORMED
from feedhandler.simulator.testing import SimulatorProcess
from feedhandler.supervisor.plan import plan
from feedhandler.testing.kafka import LocalKafka

pytestmark = pytest.mark.integration

SEED = 7
KINDS = ("bookTicker", "trade", "aggTrade", "depth@100ms")
Streams = dict[tuple[str, bytes], np.ndarray]  # (kind, symbol) -> records


def stream_names(symbols: int) -> list[str]:
    universe = Universe.generate(SEED)
    return [f"{s.symbol.lower()}@{k}" for s in universe.symbols[:symbols] for k in KINDS]


def by_stream(tables: dict[str, list[np.ndarray]]) -> Streams:
    """Per kind batches -> per (kind, symbol) records in order, receive time zeroed."""
    out: Streams = {}
    for kind, parts in tables.items():
        # A fresh zeroed array: ndarray.copy() would not copy the padding bytes.
        records = np.zeros(sum(map(len, parts)), SCHEMAS[kind].dtype)
        records[...] = np.concatenate(parts)
        records["ts_recv"] = 0
        symbols = records["symbol"]
        for symbol in np.unique(symbols):
            out[(kind, bytes(symbol))] = np.take(records, np.flatnonzero(symbols == symbol))
    return out


def expected_streams(streams: list[str], frames_per_connection: int,
                     per_connection: int = 200) -> Streams:
    """What the simulator sends each connection of the handler's plan, decoded."""
    universe = Universe.generate(SEED)
    tables: dict[str, list[np.ndarray]] = defaultdict(list)
    for shard in plan("ws://sim", streams, per_connection):
        feed = Feed(SEED, universe)
        feed.subscribe(shard.streams)
        frames = [b'{"stream":"%s","data":%s}' % (s.encode(), p)
                  for s, p in feed.next_frames(frames_per_connection)]
        for kind, records in parse(frames).items():
            if len(records):
                tables[kind].append(records)
    return by_stream(tables)


def consumed(bootstrap: str, market: str, streams: list[str]) -> Streams:
    kinds = sorted({stream_kind(s)[0] for s in streams})
    tables: dict[str, list[np.ndarray]] = defaultdict(list)
    for msg in read_messages(bootstrap, [f"binance.{market}.{k}" for k in kinds]):
        headers = header_dict(msg.headers())
        records = decode(msg)
        assert (records["symbol"] == msg.key()).all(), "one symbol per message, keyed by it"
        assert (records["ts_recv"] > 0).all()
        kind = schema_by_name(headers["fh.schema"], int(headers["fh.version"])).kind
        tables[kind].append(records)
    return by_stream(tables)


def assert_same(got: Streams, expected: Streams) -> None:
    assert set(got) == set(expected)
    for key, records in expected.items():
        mine = got[key]
        assert len(mine) == len(records), f"{key}: {len(mine)} records, expected {len(records)}"
        assert mine.tobytes() == records.tobytes(), f"{key}: records differ"


def control_events(bootstrap: str, market: str) -> list[dict[str, Any]]:
    return [orjson.loads(m.value() or b"")
            for m in read_messages(bootstrap, [f"binance.{market}.control"])]


class HandlerProcess:
    """`feedhandler run --sink kafka` in a subprocess, on its own topics (binance.<market>.*)."""

    def __init__(self, log: Path, url: str, bootstrap: str, streams: list[str], *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.market = f"t{uuid.uuid4().hex[:10]}"
        command = [sys.executable, "-m", "feedhandler", "run", "--url", url,
                   "--streams", ",".join(streams), "--sink", "kafka",
                   "--kafka-bootstrap", bootstrap, "--instance", "bridge", "--summary-json",
                   *args]
        environ = {**os.environ, "FEEDHANDLER_KAFKA__MARKET": self.market, **(env or {})}
        self.log = log
        # Logs to a file: a full stderr pipe would block the handler's event loop.
        with log.open("w") as err:
            self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err,
                                         env=environ, text=True)

    def finish(self, timeout: float = 240, exit_code: int = 0) -> dict[str, Any]:
        """Wait for the exit (clean unless told); the summary it printed."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError(f"handler did not finish: {self.stderr()}") from None
        assert self.proc.returncode == exit_code, self.stderr()
        summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return summary

    def stderr(self) -> str:
        return self.log.read_text()[-3000:]


def assert_all_delivered(summary: dict[str, Any]) -> None:
    sink = summary["sink"]
    assert sink["failed"] == 0 and sink["undelivered"] == 0, sink
    assert sink["delivered"] == sink["produced"]
    records = sum(summary["records"].values())
    assert sink["records_delivered"] == sink["records_produced"] == records


@pytest.mark.slow
def test_a_million_records_exactly_once_in_order(kafka_bootstrap: str, tmp_path: Path) -> None:
    streams = stream_names(100)  # 400 streams: two connections of 200
    per_connection = 380_000  # frames; about 1.02 million records in all
    args = ["--seed", str(SEED), "--fast", "--max-messages", str(per_connection)]
    with SimulatorProcess(args) as sim:
        handler = HandlerProcess(tmp_path / "handler.log", sim.url, kafka_bootstrap, streams,
                                 "--max-messages", str(2 * per_connection))
        expected = expected_streams(streams, per_connection)  # meanwhile
        summary = handler.finish()
    assert summary["frames"] == 2 * per_connection
    assert summary["errors"] == {} and summary["gaps"] == 0 and summary["reconnects"] == 0
    assert_all_delivered(summary)
    total = sum(len(r) for r in expected.values())
    assert total >= 1_000_000
    assert sum(summary["records"].values()) == total
    assert_same(consumed(kafka_bootstrap, handler.market, streams), expected)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of the test's own: it is stopped for half a minute mid-run."""
    with LocalKafka(tmp_path / "kafka") as broker:
        yield broker


@pytest.mark.slow
def test_broker_outage_is_backpressure_not_loss(own_broker: LocalKafka, tmp_path: Path) -> None:
    streams = stream_names(10)
    frames = 250_000
    # Paced, so the run spans the outage; small queues, so the backlog limit is reached.
    args = ["--seed", str(SEED), "--rate", "5000", "--max-messages", str(frames)]
    with SimulatorProcess(args) as sim:
        handler = HandlerProcess(
            tmp_path / "handler.log", sim.url, own_broker.bootstrap, streams,
            "--max-messages", str(frames),
            env={"FEEDHANDLER_KAFKA__QUEUE_MB": "2", "FEEDHANDLER_KAFKA__BACKLOG_LIMIT_MB": "2",
                 "FEEDHANDLER_SHUTDOWN_TIMEOUT_S": "60"})
        time.sleep(5)
        own_broker.stop()
        time.sleep(30)
        own_broker.start()
        expected = expected_streams(streams, frames)
        summary = handler.finish(timeout=300)
    assert summary["frames"] == frames and summary["gaps"] == 0
    assert_all_delivered(summary)
    sink = summary["sink"]
    assert sink["buffer_full"] > 0, "the outage filled librdkafka's queue"
    # Bounded: the backlog stops growing at its limit plus the rest of the read burst that
    # crossed it (every kind's batch of that burst is handed over; on a loaded machine a
    # burst holds more). 4 MiB was exceeded (5.2 MiB) only with a benchmark on the other core.
    assert 2 << 20 < sink["backlog_peak_bytes"] < 8 << 20, sink
    assert_same(consumed(own_broker.bootstrap, handler.market, streams), expected)
    types = [e["type"] for e in control_events(own_broker.bootstrap, handler.market)]
    assert "paused" in types and "resumed" in types
    assert types.index("paused") < types.index("resumed")
    assert "gap" not in types and "delivery_failed" not in types


def test_malformed_frames_go_to_the_dead_letter_topic_only(kafka_bootstrap: str,
                                                           tmp_path: Path) -> None:
    streams = stream_names(10)
    frames, every = 20_000, 500
    args = ["--seed", str(SEED), "--fast", "--max-messages", str(frames),
            "--fault", f"malformed:every={every}"]
    bad = frames // every  # sent after every 500th event, the last included
    with SimulatorProcess(args) as sim:
        handler = HandlerProcess(tmp_path / "handler.log", sim.url, kafka_bootstrap, streams,
                                 "--max-messages", str(frames + bad))
        summary = handler.finish()
    assert summary["errors"] == {"malformed_json": bad}
    assert_all_delivered(summary)
    dead = list(read_messages(kafka_bootstrap, [f"binance.{handler.market}.deadletter"]))
    assert len(dead) == bad
    for msg in dead:
        assert msg.value() == MALFORMED  # unchanged
        headers = header_dict(msg.headers())
        assert headers["fh.reason"] == "malformed_json" and headers["fh.instance"] == "bridge"
    assert_same(consumed(kafka_bootstrap, handler.market, streams),
                expected_streams(streams, frames))
    types = {e["type"] for e in control_events(kafka_bootstrap, handler.market)}
    assert types == {"started", "connected", "stopped"}


def test_sigterm_delivers_everything_read_so_far(kafka_bootstrap: str, tmp_path: Path) -> None:
    streams = stream_names(10)
    args = ["--seed", str(SEED), "--rate", "4000"]
    with SimulatorProcess(args) as sim:
        # A long linger: at SIGTERM, open batches hold records that only shutdown flushes.
        handler = HandlerProcess(tmp_path / "handler.log", sim.url, kafka_bootstrap, streams,
                                 "--linger-ms", "2000")
        time.sleep(4)
        handler.proc.send_signal(signal.SIGTERM)
        summary = handler.finish(timeout=60)
    frames = summary["frames"]
    assert frames > 4000, "it ran mid-stream"
    assert_all_delivered(summary)
    assert summary["close_s"] < 10
    assert_same(consumed(kafka_bootstrap, handler.market, streams),
                expected_streams(streams, frames))


def test_a_stop_that_leaves_messages_undelivered_exits_3(own_broker: LocalKafka,
                                                          tmp_path: Path) -> None:
    """Out of shutdown time with the broker gone: the loss is in the exit status as well as in
    the summary and the log, so whatever runs the handler sees it."""
    streams = stream_names(4)
    with SimulatorProcess(["--seed", str(SEED), "--rate", "2000"]) as sim:
        handler = HandlerProcess(tmp_path / "handler.log", sim.url, own_broker.bootstrap,
                                 streams, env={"FEEDHANDLER_SHUTDOWN_TIMEOUT_S": "2"})
        time.sleep(4)
        own_broker.stop()
        time.sleep(1)
        handler.proc.send_signal(signal.SIGTERM)
        summary = handler.finish(timeout=60, exit_code=3)
    assert summary["sink"]["undelivered"] > 0
    assert "messages undelivered at shutdown" in handler.stderr()


@pytest.mark.parametrize("encoding", ["json", "raw"])
def test_other_encodings_carry_the_same_records(kafka_bootstrap: str, tmp_path: Path,
                                                 encoding: str) -> None:
    streams = stream_names(10)
    frames = 20_000
    args = ["--seed", str(SEED), "--fast", "--max-messages", str(frames)]
    with SimulatorProcess(args) as sim:
        handler = HandlerProcess(tmp_path / "handler.log", sim.url, kafka_bootstrap, streams,
                                 "--max-messages", str(frames), "--encoding", encoding)
        summary = handler.finish()
    assert_all_delivered(summary)
    first = next(iter(read_messages(kafka_bootstrap, [f"binance.{handler.market}.trade"])))
    assert header_dict(first.headers())["fh.encoding"] == encoding
    line = orjson.loads((first.value() or b"").splitlines()[0])
    if encoding == "json":  # normalized records, decimals as exact strings
        assert isinstance(line["price"], str) and line["symbol"] == (first.key() or b"").decode()
    else:  # the exchange's own frames, as received
        assert line["stream"].endswith("@trade") and line["data"]["e"] == "trade"
    # Decoded, they give back exactly the records the default encoding carries.
    assert_same(consumed(kafka_bootstrap, handler.market, streams),
                expected_streams(streams, frames))
