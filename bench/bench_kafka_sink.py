"""The Kafka sink's own cost per message, against librdkafka's floor, with the real broker.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m pytest -s bench/bench_kafka_sink.py \
        --benchmark-columns=min,median,rounds

One decoder batch of 2,500 trades over 50 symbols becomes 50 Kafka messages (one per symbol
run). Side by side, per batch:

  sink      KafkaSink.publish_batch: grouping by symbol, slicing the records, 8 headers per
            message, librdkafka's C API (feedhandler/_ext/publish.pyx, producer.pyx)
  produce   50 bare confluent_kafka Producer.produce() calls with the same values, keys and
            headers prepared in advance (what confluent_kafka + librdkafka cost on their own)

The producer is flushed between rounds (outside the timing), so every round finds librdkafka's
queue empty. At the end the table of µs per message and sink / produce is printed (pytest shows
it with `-s`); the ratio is what the sink adds on top of the client library.

`[one_row_after_idle]`: the latency profile at low rates, where each hand-over is one frame and
the loop sleeps between them (caches gone cold): one single-row batch after delivery reports
are served (`poll(0)`) and 1 ms of sleep, 1,000 times; medians, µs per batch.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from confluent_kafka import Producer

from feedhandler.config import KafkaConfig
from feedhandler.contract import fixed_headers
from feedhandler.records import SCHEMAS
from feedhandler.sinks.kafka import KafkaSink, producer_config
from feedhandler.testing.kafka import LocalKafka

SYMBOLS = 50
ROWS = 2_500
RESULTS: dict[str, float] = {}


def trades() -> np.ndarray:
    rng = np.random.default_rng(1)
    records = np.zeros(ROWS, SCHEMAS["trade"].dtype)
    records["symbol"] = np.array([b"SYM%03dUSDT" % i for i in range(SYMBOLS)])[
        rng.integers(0, SYMBOLS, ROWS)]
    records["trade_id"] = np.arange(ROWS)
    records["price"] = rng.integers(10**8, 10**13, ROWS)
    records["qty"] = rng.integers(1, 10**9, ROWS)
    records["ts_event"] = records["ts_trade"] = 1_700_000_000_000 + np.arange(ROWS)
    return records


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaConfig]:
    with LocalKafka(tmp_path_factory.mktemp("kafka")) as kafka:
        yield KafkaConfig(bootstrap=kafka.bootstrap, market=f"b{uuid.uuid4().hex[:8]}")


def measure(benchmark: Any, name: str, publish: Callable[[], None],
            flush: Callable[[], None], serve: Callable[[], None] | None = None) -> None:
    """`serve`: the idle case, as the handler runs at low rates: delivery reports served
    (poll(0)) and 1 ms of sleep between two publishes."""
    for _ in range(20):  # warm-up: connections, topic metadata, allocator
        publish()
        flush()
    if serve is not None:
        def idle() -> None:
            serve()
            time.sleep(0.001)

        benchmark.pedantic(publish, setup=idle, rounds=1000, iterations=1)
        RESULTS[name] = benchmark.stats.stats.median
    else:
        benchmark.pedantic(publish, setup=flush, rounds=200, iterations=1)
        RESULTS[name] = benchmark.stats.stats.min / SYMBOLS


@pytest.mark.parametrize("rows", [ROWS, 1], ids=["batch", "one_row_after_idle"])
def test_sink(benchmark: Any, config: KafkaConfig, rows: int) -> None:
    sink = KafkaSink(config, "bench", topics=[f"binance.{config.market}.trade"])
    batch = trades()[:rows]
    measure(benchmark, "sink" if rows == ROWS else "sink one row",
            lambda: sink.publish_batch("trade", batch, 1),
            lambda: sink._producer.flush(30),  # (the sink has no flush short of close)
            sink.service if rows == 1 else None)
    summary = sink.summary()
    assert sink.close(30) == 0 and summary["failed"] == summary["backlog_peak_bytes"] == 0


@pytest.mark.parametrize("rows", [ROWS, 1], ids=["batch", "one_row_after_idle"])
def test_produce(benchmark: Any, config: KafkaConfig, rows: int) -> None:
    producer = Producer(producer_config(config, "bench-floor"))
    topic = f"binance.{config.market}.trade"
    batch = trades()[:rows]
    fixed = fixed_headers("binance.spot.trade", 1, "records", "bench")
    messages = []
    for symbol in np.unique(batch["symbol"]):
        run = batch[batch["symbol"] == symbol]
        headers = [*fixed, ("fh.count", b"%d" % len(run)), ("fh.epoch", b"1"),
                   ("fh.seq.first", b"%d" % run["trade_id"][0]),
                   ("fh.seq.last", b"%d" % run["trade_id"][-1])]
        messages.append((run.tobytes(), bytes(symbol), headers))
    assert len(messages) == min(rows, SYMBOLS)

    def publish() -> None:
        for value, key, headers in messages:
            producer.produce(topic, value, key, headers=headers)

    measure(benchmark, "produce" if rows == ROWS else "produce one row", publish,
            lambda: producer.flush(30), (lambda: producer.poll(0)) if rows == 1 else None)
    assert producer.flush(30) == 0


def teardown_module() -> None:
    for name, unit in (("", "µs per message (fastest round)"),
                       (" one row", "µs per one-row batch after 1 ms idle (median)")):
        sink, produce = RESULTS.get("sink" + name), RESULTS.get("produce" + name)
        if sink and produce:
            print(f"\n{unit}: sink {sink * 1e6:.2f}, bare produce {produce * 1e6:.2f}; "
                  f"sink / produce = {sink / produce:.2f}")
