"""Batch thresholds per kind: rows, bytes and linger (batch.* in the handler config)."""

from __future__ import annotations

import pytest

from feedhandler.config import BatchConfig, ConfigError, load_config
from feedhandler.records import SCHEMAS


def test_rows_are_the_smaller_of_the_row_and_byte_thresholds() -> None:
    batch = BatchConfig(rows=4096, bytes=1 << 20,
                        per_kind={"depthPartial": {"bytes": 101_600}, "trade": {"rows": 100},
                                  "kline": {"bytes": 0}})
    assert batch.rows_for("bookTicker", SCHEMAS["bookTicker"].itemsize) == 4096  # 96 B
    assert batch.rows_for("depthPartial", SCHEMAS["depthPartial"].itemsize) == 100  # 1016 B
    assert batch.rows_for("trade", SCHEMAS["trade"].itemsize) == 100
    assert batch.rows_for("kline", SCHEMAS["kline"].itemsize) == 4096  # bytes 0: rows only
    assert BatchConfig(rows=4096, bytes=100).rows_for("ticker", 224) == 1  # never 0
    assert BatchConfig(linger_ms=5, per_kind={"depth": {"linger_ms": 50}}).linger_for("depth") \
        == 50


@pytest.mark.parametrize(
    ("per_kind", "message"),
    [
        ({"trades": {"rows": 1}}, "batch.per_kind.trades: unknown kind"),
        ({"trade": {"row": 1}}, "unknown key batch.per_kind.trade.row"),
        ({"trade": 5}, "batch.per_kind.trade: expected a mapping"),
    ],
)
def test_per_kind_settings_are_validated(per_kind: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, {"batch.per_kind": per_kind}, environ={})


def test_kafka_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.compression: expected .*, got \"brotli\""):
        load_config(None, {"kafka.compression": "brotli"}, environ={})
    with pytest.raises(ConfigError, match=r"kafka\.partitions: must be -1"):
        load_config(None, {"kafka.partitions": 0}, environ={})
    config = load_config(None, {"kafka.encoding": "raw", "kafka.create_topics": "false"},
                         environ={"FEEDHANDLER_KAFKA__QUEUE_MB": "8"})
    assert (config.kafka.encoding, config.kafka.create_topics, config.kafka.queue_mb) == \
        ("raw", False, 8)
