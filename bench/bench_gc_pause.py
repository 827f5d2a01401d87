"""A full garbage collection's pause with a handler built as `feedhandler run` builds it, before
and after `settle_heap()` (gc.freeze of what start-up made).

    .venv/bin/python bench/bench_gc_pause.py [--streams N]

CPython runs a full collection on the thread that allocates, here the event loop, once enough
objects have outlived the younger generations; it walks every tracked object, so its pause
grows with what start-up left behind (modules, the plan, the sink) and delays the frames
queued meanwhile. Prints the tracked objects and the median and worst of 20 collections.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

from feedhandler.app.handler import Handler
from feedhandler.app.run import settle_heap
from feedhandler.argtypes import number
from feedhandler.config import load_config


def pauses_ms(count: int = 20) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        gc.collect()
        out.append((time.perf_counter() - started) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=number(int), default=400)
    args = parser.parse_args()
    streams = ",".join(f"s{i}usdt@trade" for i in range(args.streams))
    config = load_config(None, {"url": "ws://127.0.0.1:9", "streams": streams, "sink": "null"},
                         environ={})
    handler = Handler(config)
    for label in ("as built", "after settle_heap()"):
        if label != "as built":
            settle_heap()
        pauses = pauses_ms()
        print(f"{label:>20}: {len(gc.get_objects()):>7,} objects tracked; full collection "
              f"median {statistics.median(pauses):.2f} ms, worst {max(pauses):.2f} ms")
    handler.sink.close(0)


if __name__ == "__main__":
    main()
