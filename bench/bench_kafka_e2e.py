"""Handler throughput into Kafka (every record acknowledged) against the null sink, same load.

    .venv/bin/python bench/bench_kafka_e2e.py [--frames N] [--symbols K] [--rounds R]
        [--set KEY=VALUE ...] [--compare KEY=VALUE[,KEY=VALUE] ...] [--bootstrap HOST:PORT]
        [--pin] [--broker-log disk|memory]

One simulator process (`--fast --pregenerate N`: each connection's N events are encoded before
the first is sent, so the simulator is not the bottleneck; `--live`: generated while sending,
at the market model's pace) serves every run; each run is a fresh in-process `Handler` on
uvloop over one connection of K symbols x (bookTicker, trade, aggTrade, depth@100ms). The clock
runs from the first frame to the end of `Handler.run()`, which for Kafka includes flushing the
producer: the rate counts acknowledged (acks=all) records only. Also reports CPU seconds per
million frames of the handler process (librdkafka's threads included, and shown apart), of the
broker and of the simulator: the three share two cores. Without --bootstrap a local broker is
started in a temporary directory. Unrecorded warm-up runs come first: a fresh broker spends its
first tens of seconds under load JIT-compiling. Sinks alternate across rounds; medians are
reported, and the median of each round's Kafka / null ratio (the two runs of a round are
adjacent in time, which cancels much of a shared machine's drift). `--pin`: the handler
(librdkafka's threads included) on the first CPU, the broker and the simulator on the others.
`--broker-log memory`: the local broker's log on tmpfs (/dev/shm). Each Kafka run's topics are
deleted from the local broker (not from one given by --bootstrap) once the run is measured:
with about ten runs' topics on it (some 200 MB each) the local broker's CPU per frame doubled,
sooner with its log on disk than in memory, its acknowledgements slowed and librdkafka's
broker thread spun in the handler's process (bench/BENCHMARKS.md, Kafka path, twenty-first
and twenty-second sessions).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import uvloop
from confluent_kafka.admin import AdminClient

from feedhandler.app.handler import Handler
from feedhandler.argtypes import key_value, key_values, number
from feedhandler.bench.latency import broker, cpu_model, cpu_seconds
from feedhandler.bench.pinning import pin_process, pin_self, split_cpus
from feedhandler.config import load_config
from feedhandler.contract import data_topics
from feedhandler.simulator.market import Universe
from feedhandler.simulator.testing import SimulatorProcess
from feedhandler.sinks.kafka import KafkaSink

KINDS = ("bookTicker", "trade", "aggTrade", "depth@100ms")


def _librdkafka_threads() -> dict[int, float]:
    """CPU seconds so far of each of this process's librdkafka threads (named rdk:...), by
    thread id: schedstat's nanoseconds, as /proc/PID/stat's ticks are too coarse for a run."""
    used = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            if Path(f"/proc/self/task/{tid}/comm").read_text().startswith("rdk:"):
                used[int(tid)] = int(Path(f"/proc/self/task/{tid}/schedstat").read_text()
                                     .split()[0]) / 1e9
        except OSError:  # a thread that ended meanwhile
            pass
    return used


async def _timed(handler: Handler, pids: dict[str, int | None]) -> tuple[float, dict[str, float]]:
    """(seconds from the first frame to the end, CPU seconds meanwhile: ours ("handler",
    librdkafka's threads included; "librdkafka", theirs alone) and that of each process in
    `pids`)."""
    first = 0.0
    start: dict[str, float] = {}
    threads: dict[int, float] = {}

    async def watch() -> None:
        nonlocal first, start
        while not any(shard.frames for shard in handler.shards):
            await asyncio.sleep(0.002)  # (uvloop timers tick in ms: less would spin)
        first, start = time.perf_counter(), cpu_seconds(pids)
        threads.update(_librdkafka_threads())

    watcher = asyncio.create_task(watch())
    await handler.run()
    end, used, after = time.perf_counter(), cpu_seconds(pids), _librdkafka_threads()
    watcher.cancel()
    # a thread's share since the start (from 0 if it started later; one that ended is lost)
    librdkafka = sum(seconds - threads.get(tid, 0.0) for tid, seconds in after.items())
    return end - first, {**{name: used[name] - start[name] for name in used},
                         "librdkafka": librdkafka}


def run_once(url: str, streams: list[str], sink: str, frames: int, bootstrap: str,
             broker_pid: int | None, simulator_pid: int,
             settings: dict[str, str]) -> dict[str, Any]:
    # The runs before are garbage in reference cycles: collected now, not in the middle of
    # this run (a Kafka one's producer, destroyed then, would cost this run its teardown).
    gc.collect()
    config = load_config(None, {
        "url": url, "streams": streams, "sink": sink, "max_messages": frames,
        "kafka.bootstrap": bootstrap, "kafka.market": f"bench{uuid.uuid4().hex[:8]}",
        "instance": "bench", **settings,
    }, environ={})
    handler = Handler(config)
    # (a broker given by --bootstrap is no process of this host's to measure)
    pids = {"simulator": simulator_pid, **({"broker": broker_pid} if broker_pid else {})}
    seconds, cpu = uvloop.run(_timed(handler, pids))
    stats = handler.stats
    records = sum(stats.records.values())
    assert stats.frames == frames, stats.summary()
    kafka = handler.sink if isinstance(handler.sink, KafkaSink) else None
    try:
        if kafka is not None:
            delivered = stats.sink["records_delivered"]
            assert delivered == records and stats.sink["undelivered"] == 0, stats.sink
    finally:
        if kafka is not None and broker_pid:  # (not --bootstrap's broker)
            _delete_topics(kafka, streams)
    return {"frames_per_s": frames / seconds, "records_per_s": records / seconds,
            **{f"{name}_cpu": used / frames * 1e6 for name, used in cpu.items()},
            "messages": stats.sink.get("delivered", 0), "close_s": stats.close_s}


def _delete_topics(sink: KafkaSink, streams: list[str]) -> None:
    """The topics a run's sink published to, deleted once the run is measured: the local
    broker's CPU per frame doubled after about ten runs' topics had piled up, whichever
    medium its log was on."""
    config = sink.config
    names = [sink.control_topic, sink.deadletter_topic,
             *data_topics(streams, config.topic_template, config.exchange, config.market,
                          sink.derived)]
    admin = AdminClient({"bootstrap.servers": config.bootstrap})
    for done in admin.delete_topics(names, operation_timeout=30).values():
        done.result()


def _cpu_text(result: dict[str, Any], sink: str) -> str:
    names = ("handler", "broker", "simulator") if sink == "kafka" else ("handler", "simulator")
    return "CPU s per million frames: " + ", ".join(
        f"{name} {result[f'{name}_cpu']:.2f}" if f"{name}_cpu" in result
        else f"{name} not measured (--bootstrap)" for name in names) + (
        f" (librdkafka's threads {result['librdkafka_cpu']:.2f} of the handler's)"
        if sink == "kafka" else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=number(int), default=500_000, help="frames per run")
    parser.add_argument("--symbols", type=number(int), default=50, help="symbols (x4 streams)")
    parser.add_argument("--rounds", type=number(int), default=3)
    parser.add_argument("--warmup", type=number(int, zero=True), default=3,
                        help="unrecorded Kafka runs first")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", type=key_value,
                        help="config override for both sinks, e.g. kafka.encoding=json")
    parser.add_argument("--bootstrap", help="use this broker instead of a local one")
    parser.add_argument("--broker-log", choices=("disk", "memory"), default="disk",
                        help="the local broker's log in the temporary directory (disk) or on "
                             "tmpfs, /dev/shm (memory)")
    parser.add_argument("--compare", action="append", default=[], metavar="KEY=VALUE",
                        type=key_values,
                        help="also run both sinks with these settings (comma-separated) in every "
                        "round, e.g. batch.burst=false (before smart batching) or "
                        "kafka.profile=latency")
    parser.add_argument("--live", action="store_true",
                        help="the simulator generates while it sends (its own rate limits)")
    parser.add_argument("--pin", action="store_true",
                        help="handler on the first CPU; simulator and a local broker on the others")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)
    universe = Universe.generate(1)
    streams = [f"{s.symbol.lower()}@{k}" for s in universe.symbols[: args.symbols] for k in KINDS]

    print(f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {cpu_model()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{platform.system()} {platform.release()}")
    print(f"# {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"# {len(streams)} streams on one connection, {args.frames:,} frames per run, "
          f"settings {settings or 'default'}, simulator {'live' if args.live else 'pre-generated'};"
          " simulator, handler and broker on this host"
          + (": handler on its own CPU, simulator and a local broker on the others"
             if args.pin else "")
          + ("" if args.bootstrap else f"; the local broker's log on {args.broker_log}"))
    sim_args = ["--fast", "--seed", "1", "--max-messages", str(args.frames),
                "--pregenerate", "0" if args.live else str(args.frames)]
    # variant label -> settings; each runs with both sinks in every round
    variants = {"default": settings,
                **{c: {**settings, **dict(kv.split("=", 1) for kv in c.split(","))}
                   for c in args.compare}}
    runs = [(sink, label) for label in variants for sink in ("null", "kafka")]
    results: dict[tuple[str, str], list[dict[str, Any]]] = {run: [] for run in runs}
    log_dir = "/dev/shm" if args.broker_log == "memory" else None
    with broker(args.bootstrap, log_dir) as (bootstrap, broker_pid), \
            SimulatorProcess(sim_args, timeout=120) as sim:
        if args.pin:
            handler_cpu, others = split_cpus()
            pin_self(handler_cpu)
            for pid in filter(None, (broker_pid, sim.pid)):
                pin_process(pid, others)
        for sink in ("null", *["kafka"] * args.warmup):
            run_once(sim.url, streams, sink, args.frames, bootstrap, broker_pid, sim.pid,
                     settings)
        for i in range(args.rounds):
            for sink, label in runs if i % 2 == 0 else runs[::-1]:
                result = run_once(sim.url, streams, sink, args.frames, bootstrap, broker_pid,
                                  sim.pid, variants[label])
                results[sink, label].append(result)
                print(f"  round {i + 1} {sink:>5} {label}: {result['frames_per_s']:>9,.0f} "
                      f"frames/s, {result['records_per_s']:>9,.0f} records/s; "
                      f"{_cpu_text(result, sink)}"
                      + (f"; {result['messages']:,} Kafka messages, flush "
                         f"{result['close_s']:.2f} s" if sink == "kafka" else ""))
    median = {run: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
              for run, rs in results.items()}
    for (sink, label), m in median.items():
        print(f"{sink:>5} {label} (median of {args.rounds}): {m['frames_per_s']:>9,.0f} "
              f"frames/s, {m['records_per_s']:>9,.0f} records/s; {_cpu_text(m, sink)}")
    for label in variants:
        kafka, null = results["kafka", label], results["null", label]
        ratio = median["kafka", label]["frames_per_s"] / median["null", label]["frames_per_s"]
        # Each round's runs are adjacent in time: their ratio cancels the machine's slow spells
        paired = statistics.median(k["frames_per_s"] / n["frames_per_s"]
                                   for k, n in zip(kafka, null, strict=True))
        print(f"kafka / null, {label}: {ratio:.0%} (medians); {paired:.0%} (median of the "
              "rounds' ratios)")
        cpu = statistics.median(k["handler_cpu"] / n["handler_cpu"]
                                for k, n in zip(kafka, null, strict=True))
        print(f"handler CPU per frame, kafka / null, {label}: {cpu:.2f}x (median of the "
              "rounds' ratios)")
        # What the handler's own threads spend, librdkafka's left out: the sink's path and
        # the produce and poll calls into librdkafka, which run on them
        theirs = statistics.median(k["librdkafka_cpu"] / n["handler_cpu"]
                                   for k, n in zip(kafka, null, strict=True))
        own = statistics.median((k["handler_cpu"] - k["librdkafka_cpu"]) / n["handler_cpu"]
                                for k, n in zip(kafka, null, strict=True))
        print(f"  librdkafka's threads: {theirs:.2f}x the null handler's CPU; the rest "
              f"{own:.2f}x (medians of the rounds' ratios)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
