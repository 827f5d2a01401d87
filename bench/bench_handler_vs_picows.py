"""Handler throughput vs a bare picows client, side by side against the same simulator load.

  .venv/bin/python bench/bench_handler_vs_picows.py [--messages N] [--rounds R]

Each round connects (a) a bare picows client whose Python `on_ws_frame` only counts frames and
(b) our handler's hot path (FeedListener -> C++ decoder -> numpy batches -> null sink) to a
simulator that pre-encodes N bookTicker frames per connection and writes them in bulk. Rates
are messages/s between the first and the last frame; the ratio is (b)/(a) per round.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time

import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from feedhandler._ext.decoder import SIMD_KERNEL, Decoder
from feedhandler._ext.listener import FeedListener
from feedhandler.simulator.market import Universe
from feedhandler.simulator.testing import SimulatorProcess

SEED = 7


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


async def bare_picows(url: str, n: int) -> float:
    done: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
    transport, _ = await ws_connect(lambda: CountingListener(n, done), url)
    first, last = await done
    transport.disconnect()
    return n / ((last - first) / 1e9)


async def handler_hot_path(url: str, n: int) -> float:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    span = [0, 0]
    seen = [0]

    def on_batch(kind: str, records) -> None:  # the null sink: count, keep first/last ts_recv
        if seen[0] == 0:
            span[0] = int(records["ts_recv"][0])
        seen[0] += len(records)
        span[1] = int(records["ts_recv"][-1])

    decoder = Decoder(on_batch, batch_rows=4096, linger_ms=5.0)

    def on_limit(_listener: FeedListener) -> None:
        decoder.flush()
        done.set_result(None)

    transport, _ = await ws_connect(lambda: FeedListener(decoder, max_frames=n, on_limit=on_limit),
                                    url)
    await done
    transport.disconnect()
    assert seen[0] == n and not decoder.error_counts, decoder.error_counts
    return n / ((span[1] - span[0]) / 1e9)


async def main(n: int, rounds: int) -> None:
    streams = "/".join(f"{s.symbol.lower()}@bookTicker"
                       for s in Universe.generate(SEED, 50).symbols[:20])
    args = ["--seed", str(SEED), "--symbols", "50", "--fast", "--pregenerate", str(n),
            "--max-messages", str(n)]
    bare, ours = [], []
    with SimulatorProcess(args, timeout=60) as sim:
        url = f"{sim.url}/stream?streams={streams}"
        for _ in range(rounds):
            bare.append(await bare_picows(url, n))
            ours.append(await handler_hot_path(url, n))
    ratios = [o / b for o, b in zip(ours, bare, strict=True)]
    print(f"machine: {platform.processor() or platform.machine()}, simdjson kernel {SIMD_KERNEL}")
    print(f"{n} bookTicker frames x {rounds} rounds, 20 symbols")
    print(f"bare picows (Python counter): median {statistics.median(bare):,.0f} msg/s  {bare}")
    print(f"feedhandler null sink:        median {statistics.median(ours):,.0f} msg/s  {ours}")
    print(f"ratio handler/bare: median {statistics.median(ratios):.2f}  per round {ratios}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=300_000)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    uvloop.run(main(a.messages, a.rounds))
