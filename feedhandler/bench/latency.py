"""`feedhandler bench latency`: where the time goes, from the exchange's send to a consumer.

Each run: the simulator in its wall-clock paced mode (`--rate R --wall-clock`, `E` = the
send time in µs; its events generated before the runs and released every `tick_for(R)` µs,
so that neither the market model's CPU nor millisecond bursts are measured as the handler's)
or, at saturation, pre-generated and as fast as the handler reads; the handler in this
process with the real broker; a consumer in its own process stamping receive times
(`feedhandler.bench.probe`). Per event (frame) of the run:

- exchange -> receive: ts_recv - E (wire, socket buffers, the loop reaching the read);
- receive -> produce: the batch's hand-over to the sink returned - ts_recv (parse, batching,
  the sink's produce() calls);
- produce -> ack: the delivery report of the event's Kafka message, served by a thread as it
  comes - the hand-over;
- ack -> consumer: the consumer's receive time - the ack (negative when the consumer was
  served first: both wait for the same commit);
- end to end: the consumer's receive time - E.

The null sink runs measure receive -> produce without a broker; the floor (a bare producer,
`feedhandler.bench.floor`) is what Kafka alone costs on the same broker at the same rate, run
in two halves, before and after the handler's runs at that rate (a broker's tail drifts for
minutes after it starts: whichever ran first would look worse).
The first `settle_s` of each paced run (connecting, topic metadata) is not counted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import platform
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import numpy as np
import orjson
import uvloop
from picows import WSError, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from feedhandler.app.handler import Handler
from feedhandler.app.run import settle_heap
from feedhandler.bench.clock import RoundTripClock, round_trip_offset
from feedhandler.bench.floor import Floor
from feedhandler.bench.pinning import (
    cpu_list,
    pin_process,
    pin_self,
    restored_affinity,
    split_cpus,
)
from feedhandler.bench.stats import summarize
from feedhandler.config import HandlerConfig, load_config
from feedhandler.contract import Frames, data_topics, stream_kind
from feedhandler.contract.kinds import KIND_BY_NAME
from feedhandler.simulator.market import Universe
from feedhandler.simulator.server.config import SimulatorConfig
from feedhandler.simulator.testing import SimulatorProcess
from feedhandler.sinks.base import Sink
from feedhandler.sinks.kafka import KafkaSink
from feedhandler.sinks.topics import ensure_topics
from feedhandler.supervisor.plan import shard_url
from feedhandler.supervisor.transport import tls_context_for
from feedhandler.wsapi.errors import WsApiError

_LOG = logging.getLogger(__name__)
SEED = 1
MAX_SYMBOLS = 3_000  # the simulator's market at SEED
SETTLE_S = 1.0  # the first seconds of each paced run, not counted (connecting, metadata)
TICK_EVENTS = 10  # events per tick of the paced simulator (see tick_for)
DEFAULT_TICK_US = SimulatorConfig().tick_us  # a simulator started without --tick-us
# The unrecorded warm-up run's rate: a fresh broker JIT-compiles its request path over tens of
# thousands of requests, and its tail shrinks for minutes (the handler at 1k/s after 3 s of
# warm-up at 1k/s: produce -> ack p99 4.4-4.7 ms; on a broker that first took 40 s of
# saturation, 0.9-2.6 ms). With --url the remote simulator's own rate applies instead.
WARMUP_RATE = 20_000
STAGES = ("exchange_to_receive", "receive_to_produce", "produce_to_ack", "ack_to_consumer",
          "end_to_end")
SAME_CLOCK = ("one host: E (the simulator's send time) and every later stamp come from the "
              "same CLOCK_REALTIME, so each stage is exact to the clock's resolution")
# A remote simulator's first event: how long to wait (it generates its pre-generated events
# first), and how far its E may be from the send time (clock offset corrected) before the
# simulator is taken to be running without --wall-clock.
SEND_TIME_TIMEOUT_S = 300.0
MAX_SEND_LAG_S = 10.0
GIVEN_OFFSET = ("stages from E are corrected by the clock offset given by --clock-offset-us "
                "(state how it was measured)")


class BenchError(Exception):
    """The benchmark cannot run as asked (the command says it in one line)."""


class BenchStopped(Exception):
    """A SIGINT or SIGTERM: the benchmark unwinds (its processes stopped, temporary
    directories removed) and exits 128 + the signal."""

    def __init__(self, sig: int) -> None:
        super().__init__(signal.Signals(sig).name)
        self.signal = sig


def reachable(url: str, timeout_s: float = 5.0) -> None:
    """BenchError at once when nothing listens at `url`'s host and port (the round trips
    would only retry until they time out)."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        socket.create_connection((parts.hostname or "", port), timeout_s).close()
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot reach {url}: {getattr(exc, 'strerror', None) or exc}") \
            from None


@dataclass
class Options:
    rates: list[int]  # events/s offered; 0 = saturation
    profiles: list[str]
    duration_s: float = 5.0
    symbols: int = 8
    kinds: list[str] = field(default_factory=lambda: ["trade", "aggTrade", "bookTicker",
                                                      "depth@100ms"])
    saturation_frames: int = 300_000
    # the paced simulator's tick: it sends the events due every tick_us (1000: its loop's
    # timers; finer, smaller bursts: a frame waits for fewer others of its read); None:
    # tick_for(rate)
    tick_us: int | None = None
    settle_s: float = SETTLE_S
    warmup_s: float = 15.0  # an unrecorded run at WARMUP_RATE first: the broker compiles
    null: bool = True
    floor: bool = True
    # a floor run per entry, its events round-robin over that many topics
    floor_topics: list[int] = field(default_factory=lambda: [1])
    url: str | None = None  # a simulator already running (e.g. on another host)
    bootstrap: str | None = None  # a broker already running
    # the simulator host's clock minus ours, e.g. from PTP or chrony; None: 0 on one host,
    # measured by round trips to the simulator's WS API with `url` (bench.clock)
    clock_offset_us: float | None = None
    clock_note: str | None = None  # how the clocks were aligned; None: said for you
    ack_stamps: bool = True  # delivery reports served by a thread (costs the handler the GIL)
    # the handler (and the floor's producer) on a CPU of its own; broker, simulator and
    # consumer on the others
    pin: bool = False
    settings: dict[str, str] = field(default_factory=dict)  # config overrides, e.g. batch.*


class TimedSink:
    """Wraps the handler's sink; stamps when each batch's hand-over returned. `watch`, while
    set, is called after each, and unset once it returns True."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.batches: list[tuple[str, np.ndarray, int]] = []  # (kind, records' ts_recv, ns)
        self.watch: Callable[[], bool] | None = None

    def publish_batch(self, kind: str, records: np.ndarray, epoch: int,
                      frames: Frames | None = None) -> None:
        self.inner.publish_batch(kind, records, epoch, frames)
        now = time.time_ns()
        # (a copy, not the batch: its array is reused; one stamp per frame comes later, since
        # the next kind of the burst is handed over after this returns)
        self.batches.append((kind, records["ts_recv"].copy(), now))
        if self.watch is not None and self.watch():
            self.watch = None

    def publish_dead_letter(self, reason: str, field: str, stream: str, frame: bytes) -> None:
        self.inner.publish_dead_letter(reason, field, stream, frame)

    def publish_control(self, event: dict[str, Any]) -> None:
        self.inner.publish_control(event)

    def service(self) -> None:
        self.inner.service()

    def backlog_bytes(self) -> int:
        return self.inner.backlog_bytes()

    def summary(self) -> dict[str, Any]:
        return self.inner.summary()

    def close(self, timeout: float) -> int:
        return self.inner.close(timeout)

    def handovers(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """(first ts_recv, hand-over ns) of `kind`'s batches, in order."""
        mine = [(b[1].min(), b[2]) for b in self.batches if b[0] == kind]
        pairs = np.array(mine, np.int64).reshape(-1, 2)
        return pairs[:, 0], pairs[:, 1]


def process_cpu(pid: int | None) -> float:
    """CPU seconds used so far by process `pid` (0 without one)."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: dict[str, int | None]) -> dict[str, float]:
    """CPU seconds used so far by this process ("handler": a handler runs in it) and by each
    process of `pids`, by name."""
    return {"handler": time.process_time(),
            **{name: process_cpu(pid) for name, pid in pids.items()}}


@contextmanager
def probe(bootstrap: str, topics: list[str], workdir: Path, stamped: bool = False,
          cpus: set[int] | None = None) -> Iterator[dict[str, np.ndarray]]:
    """A consumer process reading `topics` (on `cpus` if given); the dict is filled with its
    tables when the block ends (after a grace for the last messages)."""
    out = workdir / f"probe-{uuid.uuid4().hex[:8]}.npz"
    command = [sys.executable, "-m", "feedhandler.bench.probe", "--bootstrap", bootstrap,
               "--topics", ",".join(topics), "--out", str(out)] + (["--stamped"] * stamped)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    tables: dict[str, np.ndarray] = {}
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the benchmark's consumer did not start")
        if cpus is not None:
            pin_process(proc.pid, cpus)
        yield tables
        time.sleep(1.0)  # the last acknowledged messages reach the consumer
    finally:
        proc.terminate()
        proc.wait(60)
    with np.load(out) as data:
        tables.update({name: data[name] for name in data.files})
    out.unlink()


@contextmanager
def delivery_server(sink: KafkaSink) -> Iterator[None]:
    """Serve delivery reports on a thread as they come, so acks are stamped on time (the
    handler itself serves them on its 2 ms service tick)."""
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            sink.serve_deliveries(0.01)

    thread = threading.Thread(target=serve, name="bench-deliveries")
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


class Bench:
    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        symbols = Universe.generate(SEED).symbols[: options.symbols]
        self.streams = [f"{s.symbol.lower()}@{kind}" for s in symbols for kind in options.kinds]
        self.keys = [s.symbol.encode() for s in symbols]
        self.others: set[int] | None = None  # with pin: the CPUs of every process but ours
        self.pinned: str | None = None  # with pin: where each process ran
        self.round_trip: RoundTripClock | None = None  # with url: measured before the runs
        self.clock_offset_us = options.clock_offset_us or 0.0  # applied to stages from E
        self.clock_note: str | None = None  # set by align_clocks
        self.connections = 0  # the handler's, set by its first run

    def align_clocks(self) -> str:
        """Measure a remote simulator's clock offset by round trips and use it unless one was
        given; check that its `E` is its send time; the clock note, which says which."""
        opts = self.options
        if opts.url:
            reachable(opts.url)
            context = self.tls_context()
            lag_us = self.send_lag_us(context)  # (first: a TLS or URL mistake shows at once)
            try:
                self.round_trip = uvloop.run(round_trip_offset(opts.url, ssl_context=context))
            except (OSError, TimeoutError, WsApiError) as exc:
                if opts.clock_offset_us is None:  # (nothing else to correct the stages by)
                    raise BenchError(
                        f"the clock offset of {opts.url} could not be measured by round trips "
                        f"to its WS API ({exc!r}): is it `feedhandler simulate`? Or give "
                        "--clock-offset-us") from exc
                _LOG.warning("clock round trip to %s failed (%r); using --clock-offset-us",
                            opts.url, exc)
            offset_us = opts.clock_offset_us if opts.clock_offset_us is not None else \
                self.round_trip.offset_us if self.round_trip is not None else 0.0
            if lag_us is not None and abs(lag_us + offset_us) > MAX_SEND_LAG_S * 1e6:
                raise BenchError(f"{opts.url}: its events' E is {(lag_us + offset_us) / 1e6:+,.0f} "
                                 "s off the send time: start the simulator with --wall-clock")
        if opts.clock_offset_us is not None:
            note = GIVEN_OFFSET
        elif self.round_trip is not None:
            self.clock_offset_us = self.round_trip.offset_us
            note = self.round_trip.note()
        else:
            note = SAME_CLOCK
        self.clock_note = opts.clock_note or note
        return self.clock_note

    def tls_context(self) -> ssl.SSLContext | None:
        """For a wss:// --url: verification with `--set connection.ca_file` (as the handler's
        own connections), e.g. a simulator's self-signed certificate."""
        config = load_config(None, self.options.settings, environ={})
        return tls_context_for(self.options.url or "", config.connection.ca_file)

    def send_lag_us(self, context: ssl.SSLContext | None) -> float | None:
        """Our clock at the remote simulator's first event with an event time, less that `E`
        (None when no stream of the mix has one): with the clock offset added, about 0 when
        it stamps E with its send time (`--wall-clock`), or every stage from E is
        meaningless. Waiting for it also has its market generate its events now (at the
        first subscription), not in the first run."""
        url = shard_url(self.options.url or "", tuple(self.streams), "us")
        try:
            event_us = uvloop.run(first_event(url, SEND_TIME_TIMEOUT_S, ssl_context=context,
                                              timed=timed(self.streams)))
        except TimeoutError:
            raise BenchError(f"no event from {self.options.url} within "
                             f"{SEND_TIME_TIMEOUT_S:g} s") from None
        except (OSError, WSError) as exc:
            raise BenchError(f"no event from {self.options.url}: {exc}") from exc
        return None if event_us is None else time.time_ns() / 1000 - event_us

    # --- one handler run -------------------------------------------------------------------
    def config(self, url: str, sink: str, profile: str | None, rate: int, bootstrap: str,
               duration_s: float) -> HandlerConfig:
        return load_config(None, {
            "url": url, "streams": self.streams, "sink": sink, "instance": "bench",
            **({"kafka.bootstrap": bootstrap} if bootstrap else {}),  # (null runs: none)
            "kafka.market": f"lat{uuid.uuid4().hex[:8]}",
            "kafka.profile": profile or "latency", "connection.time_unit": "us",
            "kafka.producer": {"delivery.report.only.error": not self.options.ack_stamps},
            # saturation: a fixed number of pre-generated frames, as fast as they are read
            "duration_s": duration_s if rate else 0.0,
            "max_messages": 0 if rate else self.options.saturation_frames,
            **self.options.settings,
        }, environ={})

    def handler_run(self, url: str, sink_kind: str, profile: str | None, rate: int,
                    bootstrap: str,
                    pids: dict[str, int | None], duration_s: float) -> dict[str, Any]:
        config = self.config(url, sink_kind, profile, rate, bootstrap, duration_s)
        pids = {name: pid for name, pid in pids.items() if pid is not None}  # (ours only)
        # (the sink as production makes it: with its per-ack latency histograms)
        handler = Handler(config, wrap_sink=TimedSink)
        sink = cast(TimedSink, handler.sink)
        inner = sink.inner
        self.connections = len(handler.shards)
        settle_heap()  # as `feedhandler run` does once the handler is built
        acks: list[tuple[str, int, int, int]] = []
        tables: dict[str, np.ndarray] = {}

        # CPU counts from a hand-over once every connection has sent frames: not connecting,
        # nor a saturation run's simulator pre-generating each connection's frames once it
        # subscribed (4.6-5.5 µs a frame, against under 0.1 sending them). The counters at the
        # first hand-over, then at that one.
        marks: list[dict[str, float]] = []

        def mark() -> bool:
            everyone = all(shard.frames for shard in handler.shards)
            if everyone or not marks:
                marks.append(cpu_seconds(pids))
            return everyone

        sink.watch = mark

        def timed_run() -> dict[str, float]:
            """The CPU counters at the end of the handler's run (not the consumer's grace
            after it)."""
            uvloop.run(handler.run())
            if handler.signalled is not None:  # (the handler took it while it ran)
                raise BenchStopped(handler.signalled)
            if handler.error is not None:
                raise BenchError(f"the handler failed in a {sink_kind} run: {handler.error!r}")
            return cpu_seconds(pids)

        if isinstance(inner, KafkaSink):
            inner.on_acked = lambda topic, partition, offset: acks.append(
                (topic, partition, offset, time.time_ns()))
            topics = sorted(data_topics(self.streams, config.kafka.topic_template,
                                        config.kafka.exchange, config.kafka.market))
            with probe(bootstrap, topics, self.workdir, cpus=self.others) as tables:
                if self.options.ack_stamps:
                    with delivery_server(inner):
                        end = timed_run()
                else:
                    end = timed_run()
        else:
            end = timed_run()
        frames = handler.stats.frames
        if not frames:
            raise BenchError(f"no frames from {url} in a {sink_kind} run: is it a simulator "
                             "serving these streams?")
        if not marks:
            raise BenchError(f"no batch was handed over in a {sink_kind} run: its CPU cannot "
                             "be counted")
        if sink.watch is not None:  # (the last mark is then the first hand-over's)
            _LOG.warning("%d of %d connections sent frames before the %s run ended: its CPU "
                         "counts from the first hand-over, the simulator's with the others' "
                         "pre-generation", sum(1 for shard in handler.shards if shard.frames),
                         len(handler.shards), sink_kind)
        used = {name: end[name] - marks[-1][name] for name in end}
        if rate and self.options.url and frames < rate * duration_s * 0.9:
            _LOG.warning("%s delivered %d frames in %g s at %d/s: it ran out of pre-generated "
                         "events, or could not keep up (start a fresh one for each run of the "
                         "benchmark, see --help)", url, frames, duration_s, rate)
        run: dict[str, Any] = {
            "sink": sink_kind, "profile": profile,
            "offered": rate or "saturation", "frames": frames,
            "records": sum(handler.stats.records.values()),
            "cpu_us_per_frame": {name: round(s / max(frames, 1) * 1e6, 3)
                                 for name, s in used.items()},
        }
        run["stages"], run["throughput_fps"] = self.stages(sink, acks, tables, stamped=rate > 0)
        if sink_kind == "kafka":
            run["kafka"] = {k: handler.stats.sink[k] for k in ("delivered", "records_delivered",
                                                              "failed", "buffer_full")}
            # every acknowledged record reached the consumer (its stages would miss the rest)
            consumed = run["kafka"]["records_consumed"] = int(tables["messages"][:, 4].sum())
            if consumed != run["kafka"]["records_delivered"]:
                _LOG.warning("the consumer received %d records of the %d acknowledged",
                             consumed, run["kafka"]["records_delivered"])
        return run

    def stages(self, sink: TimedSink, acks: list[tuple[str, int, int, int]],
               tables: dict[str, np.ndarray], stamped: bool) -> tuple[dict[str, Any], float]:
        """Per-stage summaries of the run's events, and its throughput (events/s from the first
        receive to the last hand-over, or with Kafka to the last ack)."""
        if not sink.batches:
            return {}, 0.0
        first = min(b[1].min() for b in sink.batches)
        # (saturation runs are over in about a second: all of them counts)
        settled = first + int(self.options.settle_s * 1e9) if stamped else first
        handed = [(np.unique(ts), now) for _, ts, now in sink.batches]  # (per frame)
        recv = np.concatenate([ts for ts, _ in handed])
        produce = np.concatenate([np.full(len(ts), now) for ts, now in handed])
        samples: dict[str, np.ndarray] = {
            "receive_to_produce": (produce - recv)[recv >= settled]}
        end = max(now for _, now in handed)
        if "events" in tables and len(tables["events"]):
            self._kafka_stages(sink, acks, tables, settled, stamped, samples)
            end = max([end, *(ack for *_, ack in acks)])
        throughput = len(recv) / max((end - first) / 1e9, 1e-9)  # (a float, not numpy)
        return {name: summarize(samples[name]) for name in STAGES if name in samples}, throughput

    def _kafka_stages(self, sink: TimedSink, acks: list[tuple[str, int, int, int]],
                      tables: dict[str, np.ndarray], settled: int, stamped: bool,
                      samples: dict[str, np.ndarray]) -> None:
        topics = tables["topics"].tolist()
        messages, events = tables["messages"], tables["events"]
        acked = {(topic, partition, offset): ns for topic, partition, offset, ns in acks}
        message_ack = np.array([acked.get((topics[t], p, o), -1)
                                for t, p, o, *_ in messages.tolist()], np.int64)
        msg, ts_event, ts_recv = events[:, 0], events[:, 1], events[:, 2]
        kinds = np.array([topics[t].rpartition(".")[2] for t in messages[:, 0].tolist()])
        produce = np.full(len(events), -1, np.int64)
        for kind in np.unique(kinds).tolist():
            firsts, handed = sink.handovers(kind)
            mine = kinds[msg] == kind
            batch = np.searchsorted(firsts, ts_recv[mine], side="right") - 1
            produce[mine] = np.where(batch >= 0, handed[np.maximum(batch, 0)], -1)
        ack, consumed = message_ack[msg], messages[msg, 3]
        keep = (ts_recv >= settled) & (produce >= 0)
        if acks:
            samples["produce_to_ack"] = (ack - produce)[keep & (ack >= 0)]
            samples["ack_to_consumer"] = (consumed - ack)[keep & (ack >= 0)]
        if stamped:  # E is the send time only in the wall-clock paced mode
            offset = round(self.clock_offset_us * 1000)
            timed = keep & (ts_event >= 0)
            # E on the simulator host's clock, minus the offset (its clock minus ours): ours
            samples["exchange_to_receive"] = (ts_recv - ts_event + offset)[timed]
            samples["end_to_end"] = (consumed - ts_event + offset)[timed]

    # --- the floor -------------------------------------------------------------------------
    def floor(self, bootstrap: str, topics: list[str]) -> Floor:
        ensure_topics(load_config(None, {"kafka.bootstrap": bootstrap}, environ={}).kafka,
                      topics)
        return Floor(bootstrap, topics, self.keys)

    def floor_half(self, rate: int, bootstrap: str, broker_pid: int | None,
                   topic_count: int) -> dict[str, Any]:
        """Half of a floor run, its samples raw (floor_run pools two): half the counted time
        of a run, after its own settling time (a fresh topic per half, for the consumer reads
        each from its beginning)."""
        opts = self.options
        name = f"lat{uuid.uuid4().hex[:8]}.floor"
        topics = [name] if topic_count == 1 else [f"{name}{i}" for i in range(topic_count)]
        floor = self.floor(bootstrap, topics)
        with probe(bootstrap, topics, self.workdir, stamped=True,
                   cpus=self.others) as tables:
            # (CPU while producing and flushing: not the consumer's grace after each half)
            cpu, broker = time.process_time(), process_cpu(broker_pid)
            seconds = opts.settle_s + max(0.0, opts.duration_s - opts.settle_s) / 2
            sent = floor.run(rate, seconds, self.tick(rate) / 1e6)
            used, broker = time.process_time() - cpu, process_cpu(broker_pid) - broker
        events, messages = tables["events"], tables["messages"]
        sent_ns, consumed = events[:, 1], messages[events[:, 0], 3]
        settled = sent_ns >= sent_ns.min() + int(opts.settle_s * 1e9) if len(events) \
            else np.zeros(0, bool)
        first = min((sent for sent, _ in floor.acks), default=0)
        if len(events) != sent - floor.failed:
            _LOG.warning("the consumer received %d of the floor's %d messages (%d failed)",
                         len(events), sent, floor.failed)
        return {"sent": sent, "received": len(events), "failed": floor.failed,
                "queue_full": floor.queue_full, "producer_s": used, "broker_s": broker,
                "produce_to_ack": floor.produce_to_ack(first + int(opts.settle_s * 1e9)),
                "end_to_end": (consumed - sent_ns)[settled]}

    def floor_run(self, rate: int, topic_count: int,
                  halves: list[dict[str, Any]]) -> dict[str, Any]:
        """The floor at `rate` from its halves, run before and after the handler's runs at that
        rate: a broker still warming up (or cooling) weighs on both sides alike, not on
        whichever side comes first."""
        def total(key: str) -> Any:
            return sum(half[key] for half in halves)

        def pooled(key: str) -> np.ndarray:
            return np.concatenate([half[key] for half in halves])

        sent = total("sent")
        return {
            "sink": "floor", "profile": None, "offered": rate, "frames": sent,
            "topics": topic_count, "received": total("received"), "failed": total("failed"),
            "queue_full": total("queue_full"),
            "cpu_us_per_frame": {"producer": round(total("producer_s") / max(sent, 1) * 1e6, 3),
                                 "broker": round(total("broker_s") / max(sent, 1) * 1e6, 3)},
            "stages": {"produce_to_ack": summarize(pooled("produce_to_ack")),
                       "end_to_end": summarize(pooled("end_to_end"))},
            # each half's end to end alone: how far the broker drifted meanwhile
            "halves": [summarize(half["end_to_end"], cdf=False) for half in halves],
        }

    def tick(self, rate: int) -> int:
        """The paced simulator's tick (µs): given, or ours, or a remote one's default."""
        if self.options.tick_us is not None:
            return self.options.tick_us
        return DEFAULT_TICK_US if self.options.url else tick_for(rate)

    # --- everything ------------------------------------------------------------------------
    @contextmanager
    def simulator(self, rate: int, seconds: float) -> Iterator[tuple[str, int | None]]:
        """(url, pid) of a simulator offering `rate` events/s (0: pre-generated, fast). Paced,
        it has generated `seconds` of events before this returns, so that the market model
        (several µs of CPU an event) does not compete with the handler during the runs."""
        if self.options.url:
            yield self.options.url, None
            return
        events = int(rate * seconds * 1.1) + 1_000  # (+ what the primer's connection takes)
        if rate:
            args = ["--rate", str(rate), "--wall-clock", "--tick-us", str(self.tick(rate)),
                    "--pregenerate", str(events)]
        else:
            frames = str(self.options.saturation_frames)
            args = ["--fast", "--pregenerate", frames, "--max-messages", frames]
        with SimulatorProcess(["--seed", str(SEED), *args], timeout=120) as sim:
            if self.others is not None:
                pin_process(sim.pid, self.others)
            if rate:  # the shared market generates at its first subscription: make it now
                uvloop.run(first_event(shard_url(sim.url, tuple(self.streams), "us"),
                                       timeout=60 + events / 20_000))
            yield sim.url, sim.pid

    def run(self, log: Any = print) -> dict[str, Any]:
        opts = self.options
        runs: list[dict[str, Any]] = []
        self.align_clocks()
        # null-sink runs alone need no broker (a JVM starting beside them is not measured)
        needs_broker = bool(opts.profiles) or (opts.floor and any(opts.rates))
        with (broker(opts.bootstrap) if needs_broker else nullcontext(("", None))) as \
                (bootstrap, broker_pid), restored_affinity():
            if opts.pin:
                cpu, self.others = split_cpus()
                pin_self(cpu)
                if broker_pid is not None:
                    pin_process(broker_pid, self.others)
                moved = ["broker"] * (broker_pid is not None) + \
                    ["simulator"] * (opts.url is None) + ["consumer"]
                self.pinned = (f"handler and floor producer on CPU {cpu}; "
                               f"{', '.join(moved)} on CPUs {cpu_list(self.others)}")
            if opts.warmup_s and opts.profiles:
                with self.simulator(WARMUP_RATE, opts.warmup_s) as (url, _):
                    self.handler_run(url, "kafka", opts.profiles[0], WARMUP_RATE, bootstrap,
                                     {}, opts.warmup_s)
            elif opts.warmup_s and needs_broker:  # the floor alone
                self.floor(bootstrap, [f"lat{uuid.uuid4().hex[:8]}.warmup"]).run(
                    WARMUP_RATE, opts.warmup_s)
            for rate in opts.rates:
                floors = opts.floor_topics if opts.floor and rate else []
                before = [self.floor_half(rate, bootstrap, broker_pid, n) for n in floors]
                plan = [("null", None)] * opts.null + [("kafka", p) for p in opts.profiles]
                with self.simulator(rate, opts.duration_s * len(plan)) as (url, sim_pid):
                    pids = {"simulator": sim_pid, "broker": broker_pid}
                    for sink, profile in plan:
                        runs.append(self.handler_run(url, sink, profile, rate, bootstrap, pids,
                                                     opts.duration_s))
                        log(describe(runs[-1]))
                # mirrored (1, 4 | handler | 4, 1): each floor's halves centre on the handler
                after = [self.floor_half(rate, bootstrap, broker_pid, n) for n in floors[::-1]]
                for n, first, second in zip(floors, before, after[::-1], strict=True):
                    runs.append(self.floor_run(rate, n, [first, second]))
                    log(describe(runs[-1]))
        return {"meta": self.meta(), "runs": runs}

    def meta(self) -> dict[str, Any]:
        return {
            "date": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
            "command": shlex.join(["feedhandler", *sys.argv[1:]]),
            "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, {platform.system()} "
                       f"{platform.release()}, Python {platform.python_version()}",
            "streams": len(self.streams), "connections": self.connections,
            "kinds": self.options.kinds,
            "symbols": self.options.symbols, "duration_s": self.options.duration_s,
            "settle_s": self.options.settle_s, "clock": self.clock_note,
            "clock_offset_us": self.clock_offset_us,
            "clock_offset_given": self.options.clock_offset_us is not None,
            "clock_round_trip": None if self.round_trip is None else {
                "offset_us": round(self.round_trip.offset_us, 1),
                "error_us": round(self.round_trip.error_us, 1),
                "samples": self.round_trip.samples},
            "simulator": self.options.url or "local", "broker": self.options.bootstrap or "local",
            "simulator_tick_us": {
                str(rate): self.tick(rate) for rate in self.options.rates if rate},
            "pinned": self.pinned,
        }


def tick_for(rate: float) -> int:
    """The paced simulator's tick (µs) at `rate` events/s: ~10 events a tick, 100 µs to 1 ms.
    1 ms is the loop's own timers; a finer tick makes smaller bursts (a frame waits for fewer
    others of its read) but more produce requests: at 10k/s 250 µs ticks doubled the Kafka
    runs' produce -> ack here, while 1 ms already keeps the handler's own p99 under 50 µs."""
    return max(100, min(1_000, round(TICK_EVENTS * 1e6 / rate)))


class _FirstEvent(WSListener):
    """Resolves `arrived` at the first event (a `data` object), or with `timed` at the first
    with an integer event time `E`: that E, else None; fails it if the peer disconnects."""

    def __init__(self, arrived: asyncio.Future[int | None], timed: bool) -> None:
        super().__init__()
        self.arrived = arrived
        self.timed = timed

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT or self.arrived.done():
            return
        try:
            message = orjson.loads(frame.get_payload_as_bytes())
        except orjson.JSONDecodeError:
            return
        data = message.get("data") if isinstance(message, dict) else None
        if not isinstance(data, dict):  # (a reply to a request, not an event)
            return
        event_time = data.get("E")
        if type(event_time) is int:
            self.arrived.set_result(event_time)
        elif not self.timed:
            self.arrived.set_result(None)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.arrived.done():
            self.arrived.set_exception(ConnectionError("the connection closed"))


async def first_event(url: str, timeout: float, ssl_context: ssl.SSLContext | None = None,
                      timed: bool = False) -> int | None:
    """Connect to combined-stream `url`, wait for its first event (`timed`: its first with an
    event time), return its `E` (None if it has none), disconnect. TimeoutError past
    `timeout`, ConnectionError if the peer closes first."""
    arrived: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
    transport, _ = await ws_connect(lambda: _FirstEvent(arrived, timed), url,
                                    ssl_context=ssl_context)
    try:
        return await asyncio.wait_for(arrived, timeout)
    finally:
        transport.disconnect()
        await transport.wait_disconnected()


def timed(streams: list[str]) -> bool:
    """Whether any of `streams` carries an event time `E` (bookTicker, partial depth: none)."""
    return any(f.key == "E" for stream in streams
               for f in KIND_BY_NAME[stream_kind(stream)[0]].fields)


@contextmanager
def broker(bootstrap: str | None, log_dir: str | None = None) -> Iterator[tuple[str, int | None]]:
    """(bootstrap, pid of the broker when it is ours: a local one in a temporary directory,
    under `log_dir` when given)."""
    if bootstrap:
        yield bootstrap, None
        return
    try:  # (a repository checkout's helper: scripts/kafka-local, Maven)
        from feedhandler.testing.kafka import LocalKafka
    except ImportError:
        raise SystemExit("feedhandler bench latency: give --bootstrap HOST:PORT (an installed "
                         "package cannot start a local broker: that needs the repository's "
                         "scripts/kafka-local)") from None
    with tempfile.TemporaryDirectory(prefix="bench-kafka-", dir=log_dir) as workdir, \
            LocalKafka(Path(workdir)) as kafka:
        yield kafka.bootstrap, kafka.pid


def cpu_model() -> str:
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def run_name(run: dict[str, Any]) -> str:
    """"null", "kafka latency", "floor", "floor (4 topics)": a run in tables and plots."""
    if run["profile"] is not None:
        return f"kafka {run['profile']}"
    topics = run.get("topics", 1)
    return run["sink"] if topics == 1 else f"{run['sink']} ({topics} topics)"


def describe(run: dict[str, Any]) -> str:
    """One line per run for the console."""
    parts = [f"{run_name(run):>18} @ {run['offered']!s:>10}: {run['frames']:>8,} frames"]
    if run.get("throughput_fps"):
        parts.append(f"{run['throughput_fps']:>10,.0f} frames/s")
    for stage, s in run["stages"].items():
        if s.get("count"):
            parts.append(f"{stage} p50 {s['p50_us']:,.0f} p99 {s['p99_us']:,.0f} µs")
    return "; ".join(parts)


def run_bench(options: Options) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="feedhandler-bench-") as workdir:
        return Bench(options, Path(workdir)).run()
