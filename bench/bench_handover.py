"""Receive stamp -> batch hand-over with smart batching, hot and cold, without any I/O.

    .venv/bin/python bench/bench_handover.py [--frames N]

One trade frame per event-loop turn goes into `Decoder(burst=True)` (as the listener feeds it);
the time from its ts_recv to on_batch is the handler's own part of receive -> produce (the
burst-end callback, the batch hand-over, the null sink). "hot": the next frame is queued at
once; "cold": the loop sleeps 1 ms between frames, as at 1k msgs/s, so caches and branch
predictors have gone cold. Percentiles exclude the first 10 % of each run.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
import uvloop

from feedhandler._ext.decoder import Decoder
from feedhandler.argtypes import number

FRAME = b'{"e":"trade","E":1,"s":"BTCUSDT","t":%d,"p":"1.5","q":"2","T":1,"m":true}'


async def handover_us(frames: int, idle_s: float) -> np.ndarray:
    latencies: list[int] = []

    def on_batch(kind: str, records: np.ndarray) -> None:
        latencies.append(time.time_ns() - int(records["ts_recv"][0]))

    decoder = Decoder(on_batch, burst=True)
    loop = asyncio.get_running_loop()
    for i in range(frames):
        loop.call_soon(decoder.decode, FRAME % i)  # stamped when the loop runs it
        await asyncio.sleep(idle_s)
    return np.array(latencies[frames // 10:]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=number(int), default=5000)
    args = parser.parse_args()
    for name, idle in (("hot", 0.0), ("cold (1 ms idle)", 0.001)):
        us = uvloop.run(handover_us(args.frames, idle))
        p50, p90, p99 = np.percentile(us, [50, 90, 99])
        print(f"{name:>17}: ts_recv -> hand-over p50 {p50:.1f} µs, p90 {p90:.1f}, "
              f"p99 {p99:.1f} ({len(us)} frames)")


if __name__ == "__main__":
    main()
