"""Can one simulator process out-run the handler? Push rate vs consume rate, in one run.

    .venv/bin/python bench/bench_simulator_headroom.py [--frames N] [--rounds R]

Against one simulator (`--fast --pregenerate N`, bookTicker over 20 symbols, combined stream)
each round measures:
  push:    a raw TCP client that does the WebSocket handshake by hand and then only drains
           bytes (1 MiB reads, no frame parsing): what the simulator can write;
  consume: the handler's hot path (FeedListener -> C++ decoder -> numpy batches, null sink).
Both clocks run from the first byte/frame to the last. The ratio push/consume is the headroom.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from urllib.parse import urlsplit

import uvloop

from feedhandler.argtypes import number
from feedhandler.simulator.market import Universe
from feedhandler.simulator.testing import SimulatorProcess

SEED = 11
HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def push_rate(url: str, frames: int, wire_bytes: int) -> float:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port, limit=1 << 22)
    writer.write(HANDSHAKE.format(path=f"{parts.path}?{parts.query}", host=parts.netloc).encode())
    await reader.readuntil(b"\r\n\r\n")
    received, first = 0, 0.0
    while received < wire_bytes:
        chunk = await reader.read(1 << 20)
        if not chunk:
            raise RuntimeError("simulator closed early")
        if not received:
            first = time.perf_counter()
        received += len(chunk)
    elapsed = time.perf_counter() - first
    writer.close()
    return frames / elapsed


async def consume_rate(url: str, frames: int) -> tuple[float, int]:
    from bench_handler_vs_picows import handler_hot_path  # same harness as the picows bench

    return await handler_hot_path(url, frames, burst=True), 0  # (the handler's default)


async def wire_size(url: str, frames: int) -> int:
    """Bytes on the wire for `frames` frames: measured once through a counting client."""
    from picows import WSFrame, WSListener, WSTransport, ws_connect

    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Sizer(WSListener):
        def __init__(self) -> None:
            self.count = self.total = 0

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            n = frame.payload_size
            self.count += 1
            self.total += n + (2 if n < 126 else 4 if n < 65536 else 10)
            if self.count == frames:
                done.set_result(self.total)

    transport, _ = await ws_connect(Sizer, url)
    total = await done
    transport.disconnect()
    return total


async def main(frames: int, rounds: int) -> None:
    streams = "/".join(f"{s.symbol.lower()}@bookTicker"
                       for s in Universe.generate(SEED, 50).symbols[:20])
    args = ["--seed", str(SEED), "--symbols", "50", "--fast", "--pregenerate", str(frames),
            "--max-messages", str(frames), "--batch", "8192", "--write-buffer", str(16 << 20)]
    push, consume = [], []
    with SimulatorProcess(args, timeout=120) as sim:
        url = f"{sim.url}/stream?streams={streams}"
        wire = await wire_size(url, frames)
        for _ in range(rounds):
            push.append(await push_rate(url, frames, wire))
            consume.append((await consume_rate(url, frames))[0])
    ratios = [p / c for p, c in zip(push, consume, strict=True)]
    print(f"machine: {platform.machine()}, {frames} combined bookTicker frames "
          f"({wire / frames:.0f} B/frame on the wire), {rounds} rounds, {time.strftime('%F')}")
    print(f"simulator push (raw drain): median {statistics.median(push):,.0f} frames/s "
          f"= {statistics.median(push) * wire / frames / 1e6:,.0f} MB/s")
    print(f"handler consume (null sink): median {statistics.median(consume):,.0f} frames/s")
    print(f"headroom push/consume: median {statistics.median(ratios):.2f}x  per round "
          f"{[round(r, 2) for r in ratios]}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=number(int), default=300_000)
    p.add_argument("--rounds", type=number(int), default=3)
    a = p.parse_args()
    uvloop.run(main(a.frames, a.rounds))
