"""Handler throughput vs a bare picows client, side by side against the same simulator load.

  .venv/bin/python bench/bench_handler_vs_picows.py [--messages N] [--rounds R]
                                                     [--workload synthetic|realistic] [--pin]

Each round connects (a) a bare picows client whose Python `on_ws_frame` only counts frames and
our handler's hot path (FeedListener -> C++ decoder -> numpy batches -> null sink), (b) with
smart batching (a batch leaves when the loop has decoded the read burst, as the handler runs
it) and (c) with batches that leave only when full or 5 ms old (before smart batching), to a
simulator that pre-encodes N bookTicker frames per connection and writes them in bulk. Rates
are messages/s between the first and the last frame; ratios are (b)/(a) and (c)/(a) per round.
Each client's CPU time per frame (this process's, connection included) is reported too, and
its ratio bare / handler: what the rates would be if neither ever waited on the simulator.
--pin: the clients on the first CPU and the simulator on the others, so that the two never
share a core (unpinned, on two vCPUs, a round's rate moves 2x with where the scheduler put
them).

--workload realistic: instead of bookTicker, frames shaped like real captures, replayed at full
speed from a recording built from ../shared/corpus (beside the repo), pre-encoded and written in
bulk like the synthetic frames (a replay that writes frame by frame is slower than both clients
and would only measure itself): per symbol, bookTicker,
trade and aggTrade events from the captures and diff-depth events whose levels are real REST
snapshot levels, most with 10-20 levels a side, some 20-70, and 1 in 20 with 100-325 (as real
busy books send); sequence ids made continuous, so no gap rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from feedhandler._ext.decoder import SIMD_KERNEL, Decoder
from feedhandler._ext.listener import FeedListener
from feedhandler.argtypes import number
from feedhandler.bench.pinning import pin_process, pin_self, split_cpus
from feedhandler.recording.format import RecordingWriter
from feedhandler.simulator.market import Universe
from feedhandler.simulator.testing import SimulatorProcess

SEED = 7
CORPUS = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpus" / "binance"
SYMBOLS = ("ZILUSDT", "BTCUSDT", "ETHUSDT", "WAVESUSDT")
KINDS = ("bookTicker", "trade", "aggTrade", "depth")


def _corpus(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (CORPUS / name).read_text().splitlines() if line]


def realistic_recording(path: Path, n: int) -> list[str]:
    """Write n realistic frames (see the module docstring) to `path`; returns their streams."""
    with RecordingWriter(path, {"workload": "realistic"}) as out:
        for i, (stream, payload) in enumerate(realistic_events(n)):
            out.write(i, stream, payload)
    return [f"{s.lower()}@{k}" for s in SYMBOLS for k in KINDS]


def realistic_events(n: int) -> Iterator[tuple[str, bytes]]:
    """n realistic events (see the module docstring): (stream, compact JSON payload)."""
    rng = random.Random(SEED)
    book, trade, agg = (_corpus(f"{k}.jsonl")[0] for k in ("bookTicker", "trade", "aggTrade"))
    depth = _corpus("depthUpdate.jsonl")[0]
    bids = [level for snap in _corpus("rest_depth.jsonl") for level in snap["bids"]]
    asks = [level for snap in _corpus("rest_depth.jsonl") for level in snap["asks"]]
    last: dict[tuple[str, str], int] = {}  # (kind, symbol) -> its last sequence id
    for i in range(n):
        symbol, kind = SYMBOLS[i % len(SYMBOLS)], rng.choice(
            ("bookTicker", "bookTicker", "trade", "aggTrade", "depth"))
        seq = last.get((kind, symbol), 1_000_000) + 1
        if kind == "bookTicker":
            event = {**book, "s": symbol, "u": seq}
        elif kind == "trade":
            event = {**trade, "s": symbol, "t": seq}
        elif kind == "aggTrade":
            event = {**agg, "s": symbol, "a": seq}
        else:
            roll = rng.random()
            levels = (rng.randint(100, 325) if roll < 0.05 else
                      rng.randint(20, 70) if roll < 0.30 else rng.randint(10, 20))
            start = rng.randrange(0, min(len(bids), len(asks)) - levels)
            event = {**depth, "s": symbol, "U": seq, "u": seq + levels - 1,
                     "b": bids[start:start + levels], "a": asks[start:start + levels]}
            seq += levels - 1
        last[kind, symbol] = seq
        yield (f"{symbol.lower()}@{kind}",
               json.dumps(event, separators=(",", ":")).encode())


class CountingListener(WSListener):
    def __init__(self, target: int, done: asyncio.Future[tuple[int, int]]) -> None:
        self.count = 0
        self.first_ns = 0
        self.target = target
        self.done = done

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type != WSMsgType.TEXT:
            return
        if self.count == 0:
            self.first_ns = time.time_ns()
        self.count += 1
        if self.count == self.target:
            self.done.set_result((self.first_ns, time.time_ns()))


Run = tuple[float, float]  # (messages/s, CPU seconds per message of this process)


async def cpu_timed(client: Awaitable[float], n: int) -> Run:
    start = time.process_time()
    rate = await client
    return rate, (time.process_time() - start) / n


async def bare_picows(url: str, n: int) -> float:
    done: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
    transport, _ = await ws_connect(lambda: CountingListener(n, done), url)
    first, last = await done
    transport.disconnect()
    return n / ((last - first) / 1e9)


async def handler_hot_path(url: str, n: int, burst: bool) -> float:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    span = [0, 0]
    seen = [0]

    def on_batch(kind: str, records) -> None:  # the null sink: count, keep first/last ts_recv
        if seen[0] == 0:
            span[0] = int(records["ts_recv"][0])
        seen[0] += len(records)
        span[1] = int(records["ts_recv"][-1])

    decoder = Decoder(on_batch, batch_rows=4096, linger_ms=5.0, burst=burst)

    def on_limit(_listener: FeedListener) -> None:
        decoder.flush()
        done.set_result(None)

    transport, _ = await ws_connect(lambda: FeedListener(decoder, max_frames=n, on_limit=on_limit),
                                    url, enable_auto_pong=False)
    await done
    transport.disconnect()
    assert decoder.frames == n and not decoder.error_counts, decoder.error_counts
    return n / ((span[1] - span[0]) / 1e9)


async def main(n: int, rounds: int, workload: str, pin: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-realistic-") as scratch:
        if workload == "realistic":
            recording = Path(scratch) / "realistic.fhrec"
            streams = "/".join(realistic_recording(recording, n))
            args = ["--replay", str(recording), "--replay-speed", "0", "--max-messages", str(n),
                    "--fast", "--pregenerate", str(n)]
            what = "realistic frames (bookTicker, trade, aggTrade, depth 10-325 levels a side)"
        else:
            streams = "/".join(f"{s.symbol.lower()}@bookTicker"
                               for s in Universe.generate(SEED, 50).symbols[:20])
            args = ["--seed", str(SEED), "--symbols", "50", "--fast", "--pregenerate", str(n),
                    "--max-messages", str(n)]
            what = "bookTicker frames, 20 symbols"
        await compare(f"{n} {what} x {rounds} rounds", args, streams, n, rounds, pin)


async def compare(title: str, args: list[str], streams: str, n: int, rounds: int,
                  pin: bool) -> None:
    bare: list[Run] = []
    ours: dict[str, list[Run]] = {"burst": [], "linger": []}
    with SimulatorProcess(args, timeout=60) as sim:
        if pin:
            clients_cpu, others = split_cpus()
            pin_self(clients_cpu)
            pin_process(sim.pid, others)
        url = f"{sim.url}/stream?streams={streams}"
        for i in range(rounds):
            bare.append(await cpu_timed(bare_picows(url, n), n))
            for variant in ("burst", "linger") if i % 2 == 0 else ("linger", "burst"):
                ours[variant].append(
                    await cpu_timed(handler_hot_path(url, n, variant == "burst"), n))
    print(f"machine: {platform.processor() or platform.machine()}, simdjson kernel {SIMD_KERNEL}"
          + (f"; clients on CPU {clients_cpu}, simulator on the others" if pin else ""))
    print(title)
    print(f"bare picows (Python counter): median {statistics.median(r for r, _ in bare):,.0f} "
          f"msg/s, {statistics.median(c for _, c in bare) * 1e9:,.0f} ns CPU a frame  "
          f"{[round(r) for r, _ in bare]}")
    for variant, label in (("burst", "smart batching"), ("linger", "full or 5 ms only")):
        runs = ours[variant]
        ratios = [o / b for (o, _), (b, _) in zip(runs, bare, strict=True)]
        cpu_ratios = [b / o for (_, o), (_, b) in zip(runs, bare, strict=True)]
        print(f"feedhandler null sink, {label}: median {statistics.median(r for r, _ in runs):,.0f}"
              f" msg/s, {statistics.median(c for _, c in runs) * 1e9:,.0f} ns CPU a frame; "
              f"ratio to bare: median {statistics.median(ratios):.2f}  per round "
              f"{[round(r, 2) for r in ratios]}; CPU bare / handler: median "
              f"{statistics.median(cpu_ratios):.2f}  per round "
              f"{[round(r, 2) for r in cpu_ratios]}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=number(int), default=300_000)
    p.add_argument("--rounds", type=number(int), default=3)
    p.add_argument("--workload", choices=["synthetic", "realistic"], default="synthetic")
    p.add_argument("--pin", action="store_true",
                   help="the clients on the first CPU, the simulator on the others")
    a = p.parse_args()
    uvloop.run(main(a.messages, a.rounds, a.workload, a.pin))
