"""What a message costs the producing thread in confluent-kafka, against librdkafka's C API.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/bench_produce_call.py [--include DIR]

The Kafka sink called confluent-kafka's Producer.produce() once per message, and poll() served
the delivery reports; this measured what calling librdkafka's C API directly would save, which
the sink now does (feedhandler/_ext/producer.pyx).
Both sides here produce the same messages (VALUE_BYTES, the mean message of
bench/bench_kafka_e2e.py's runs; 8 headers or none) into a producer with no broker, so
nothing is sent and librdkafka's own threads stay idle; each round's messages are purged and
their reports served by poll(0). Reported: CPU µs per message on this thread, produce and poll.

- python: Producer.produce() positionally, as publish.pyx called it, with a delivery callback
  (reports of failures only, as with kafka.ack_latency: false).
  Values, keys and header lists are made before the timing: their cost is left out.
- C: rd_kafka_produceva() from bench/produce_call.cpp, compiled here against rdkafka.h and the
  librdkafka that confluent-kafka loads (its wheel's copy), with the rdkafka.h `make setup`
  unpacks from Debian's librdkafka-dev (2.0.2: it declares these calls as the library's newer
  versions do). Without it only the python lines are printed.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import tempfile
import time
from pathlib import Path

import confluent_kafka
from confluent_kafka import Producer

from feedhandler.argtypes import number
from feedhandler.contract import fixed_headers

HERE = Path(__file__).parent
VALUE_BYTES = 7_900  # ~82 records of ~96 bytes (bench_kafka_e2e: 2.0 M records, 24,600 messages)


def python_us(messages: int, rounds: int, value_bytes: int, headers: int) -> tuple[float, float]:
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "enable.idempotence": True,
                         "queue.buffering.max.messages": 10_000_000,
                         "queue.buffering.max.kbytes": 4_000_000, "log_level": 0,
                         "delivery.report.only.error": True})
    fixed = fixed_headers("binance.spot.trade", 2, "records", "bench")
    produce_s = poll_s = 0.0
    warm_up = rounds // 10
    for round_ in range(rounds):
        batch = []
        for i in range(messages):
            ids = b"%d" % (1_000_000_000 + i)
            lists = [*fixed, ("fh.count", b"82"), ("fh.epoch", b"1"), ("fh.seq.first", ids),
                     ("fh.seq.last", ids)][:headers]
            batch.append((bytes(value_bytes), lists or None))
        def callback(err: object, msg: object) -> None:
            pass

        start = time.thread_time()
        for value, lists in batch:
            producer.produce("t", value, b"SYM001USDT", -1, callback, None, 0, lists)
        produced = time.thread_time()
        producer.purge(True, False)
        purged = time.thread_time()
        producer.poll(0)
        if round_ >= warm_up:
            produce_s += produced - start
            poll_s += time.thread_time() - purged
    counted = messages * (rounds - warm_up)
    return produce_s / counted * 1e6, poll_s / counted * 1e6


def librdkafka() -> str:
    """The librdkafka confluent-kafka loads: its wheel's copy, else the system's."""
    site = Path(confluent_kafka.__file__).parent.parent
    bundled = sorted(glob.glob(str(site / "confluent_kafka.libs" / "librdkafka*.so*")))
    return bundled[0] if bundled else "-lrdkafka"


def build_c(include: str, out: Path) -> Path | None:
    if not (Path(include) / "librdkafka" / "rdkafka.h").exists():
        print(f"C: skipped, no librdkafka/rdkafka.h under {include} (see --help)")
        return None
    library = librdkafka()
    rpath = [f"-Wl,-rpath,{os.path.dirname(library)}"] if library.startswith("/") else []
    binary = out / "produce_call"
    subprocess.run(["g++", "-O2", "-std=c++17", f"-I{include}", str(HERE / "produce_call.cpp"),
                    "-o", str(binary), library, *rpath], check=True)
    return binary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--include", default=".tools/librdkafka/usr/include",
                        help="where librdkafka/rdkafka.h is")
    parser.add_argument("--messages", type=number(int), default=500, help="per round")
    parser.add_argument("--rounds", type=number(int), default=200)
    parser.add_argument("--value-bytes", type=number(int), default=VALUE_BYTES)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        binary = build_c(args.include, Path(tmp))
        for headers in (8, 0):
            rows.append(("python", headers,
                         *python_us(args.messages, args.rounds, args.value_bytes, headers)))
            if binary is not None:
                out = subprocess.run([str(binary), str(args.messages), str(args.rounds),
                                      str(args.value_bytes), str(headers)],
                                     check=True, capture_output=True, text=True).stdout.split()
                rows.append(("C", headers, float(out[0]), float(out[1])))
    print(f"CPU µs per message on the producing thread, {args.value_bytes}-byte values, "
          f"{args.messages} messages x {args.rounds} rounds (the first tenth not counted)")
    print(f"{'path':>7} {'headers':>7} {'produce':>8} {'poll':>6} {'total':>6}")
    for path, headers, produce, poll in rows:
        print(f"{path:>7} {headers:>7} {produce:8.2f} {poll:6.2f} {produce + poll:6.2f}")


if __name__ == "__main__":
    main()
