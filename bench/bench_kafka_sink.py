"""The Kafka sink's own cost per message, against librdkafka's floor, with the real broker.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m pytest bench/bench_kafka_sink.py \
        --benchmark-columns=min,median,rounds

One decoder batch of 2,500 trades over 50 symbols becomes 50 Kafka messages (one per symbol
run). Side by side, per batch:

  sink      KafkaSink.publish_batch: grouping by symbol, slicing the records, 8 headers per
            message, produce() with the delivery callback (feedhandler/_ext/publish.pyx)
  produce   the floor: 50 bare Producer.produce() calls with the same values, keys and headers
            prepared in advance (what confluent_kafka + librdkafka cost on their own)

The producer is flushed between rounds (outside the timing), so every round finds librdkafka's
queue empty. At the end the table of µs per message and sink / produce is printed; the ratio is
what the sink adds on top of the client library.
"""

from __future__ import annotations

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
            flush: Callable[[], None]) -> None:
    for _ in range(20):  # warm-up: connections, topic metadata, allocator
        publish()
        flush()
    benchmark.pedantic(publish, setup=flush, rounds=200, iterations=1)
    RESULTS[name] = benchmark.stats.stats.min / SYMBOLS


def test_sink(benchmark: Any, config: KafkaConfig) -> None:
    sink = KafkaSink(config, "bench", topics=[f"binance.{config.market}.trade"])
    batch = trades()
    measure(benchmark, "sink", lambda: sink.publish_batch("trade", batch, 1),
            lambda: sink._producer.flush(30))  # (the sink has no flush short of close)
    summary = sink.summary()
    assert sink.close(30) == 0 and summary["failed"] == summary["backlog_peak_bytes"] == 0


def test_produce(benchmark: Any, config: KafkaConfig) -> None:
    producer = Producer(producer_config(config, "bench-floor"))
    topic = f"binance.{config.market}.trade"
    batch = trades()
    fixed = fixed_headers("binance.spot.trade", 1, "records", "bench")
    messages = []
    for symbol in np.unique(batch["symbol"]):
        rows = batch[batch["symbol"] == symbol]
        headers = [*fixed, ("fh.count", b"%d" % len(rows)), ("fh.epoch", b"1"),
                   ("fh.seq.first", b"%d" % rows["trade_id"][0]),
                   ("fh.seq.last", b"%d" % rows["trade_id"][-1])]
        messages.append((rows.tobytes(), bytes(symbol), headers))
    assert len(messages) == SYMBOLS

    def publish() -> None:
        for value, key, headers in messages:
            producer.produce(topic, value, key, headers=headers)

    measure(benchmark, "produce", publish, lambda: producer.flush(30))
    assert producer.flush(30) == 0


def teardown_module() -> None:
    if len(RESULTS) == 2:
        print(f"\n\nµs per message (fastest round): sink {RESULTS['sink'] * 1e6:.2f}, "
              f"bare produce {RESULTS['produce'] * 1e6:.2f}; "
              f"sink / produce = {RESULTS['sink'] / RESULTS['produce']:.2f}")
