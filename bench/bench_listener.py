"""CPU time per data frame through FeedListener.on_ws_frame (decoder included), in-process.

  .venv/bin/python bench/bench_listener.py [--rounds R]

No network and no simulator: the same 2,000 trade frames (picows test frames) go through the
listener again and again; CPU time (process_time) rather than wall time, so a busy machine
changes the number less. Run it on two builds to compare the listener's per-frame cost.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
from picows.picows import WSMsgType, _make_test_ws_frame

from feedhandler._ext.decoder import Decoder
from feedhandler._ext.listener import FeedListener
from feedhandler.argtypes import number

PAYLOAD = (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":%d,'
           b'"p":"37.84900000","q":"1.85300000","T":1,"m":false,"M":true}}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=number(int), default=15)
    args = parser.parse_args()

    rows = [0]

    def on_batch(kind: str, records: np.ndarray, frames: object = None) -> None:
        rows[0] += len(records)

    decoder = Decoder(on_batch, batch_rows=4096, linger_ms=None)
    listener = FeedListener(decoder)
    # 64 spare bytes after each payload, as picows's read buffer has
    frames = [_make_test_ws_frame(WSMsgType.TEXT, PAYLOAD % i + b" " * 64, True, False)
              for i in range(1, 2001)]
    no_transport: Any = None  # on_ws_frame only needs one for close frames and violations
    repeats = 50
    per_frame_ns = []
    for _ in range(args.rounds):
        started = time.process_time()
        for _ in range(repeats):
            for frame in frames:
                listener.on_ws_frame(no_transport, frame)
        per_frame_ns.append((time.process_time() - started) / (repeats * len(frames)) * 1e9)
        decoder.reset_sequences()
    print(f"{args.rounds} rounds x {repeats * len(frames)} frames: CPU ns/frame min "
          f"{min(per_frame_ns):.1f}, median {statistics.median(per_frame_ns):.1f}")


if __name__ == "__main__":
    main()
