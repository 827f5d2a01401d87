"""kafka.profile: librdkafka defaults for latency or throughput; individual keys win."""

from __future__ import annotations

import re

import pytest
from confluent_kafka import Producer

from feedhandler.config import ConfigError, load_config
from feedhandler.sinks.kafka import _lower_priority, producer_config
from feedhandler.sinks.topics import kafka_client


def settings(**overrides: object) -> dict[str, object]:
    config = load_config(None, {f"kafka.{k}": v for k, v in overrides.items()}, environ={})
    return producer_config(config.kafka, "test")


def test_profiles_choose_linger_and_compression() -> None:
    latency = settings(profile="latency")
    assert (latency["linger.ms"], latency["compression.type"], latency["socket.nagle.disable"]) \
        == (0, "none", True)
    throughput = settings()  # the default profile: the settings this sink always had
    assert (throughput["linger.ms"], throughput["compression.type"]) == (5, "lz4")
    for each in (latency, throughput):
        assert (each["enable.idempotence"], each["acks"]) == (True, "all")


def test_individual_keys_win_over_the_profile() -> None:
    chosen = settings(profile="latency", linger_ms=0.5, compression="zstd")
    assert (chosen["linger.ms"], chosen["compression.type"]) == (0.5, "zstd")
    assert settings(profile="throughput", linger_ms=0)["linger.ms"] == 0


@pytest.mark.parametrize(("key", "why"), [
    ("linger.ms", "use kafka.linger_ms"), ("queue.buffering.max.ms", "use kafka.linger_ms"),
    ("compression.codec", "use kafka.compression"),
    ("enable.idempotence", "delivery guarantee"), ("acks", "delivery guarantee"),
    ("delivery.timeout.ms", "an outage is backpressure, not loss"),
])
def test_producer_keys_the_sink_owns_are_refused(key: str, why: str) -> None:
    """Raw librdkafka keys could silently undo the guarantee, or win or lose against a key of
    `kafka` through an alias."""
    with pytest.raises(ConfigError, match=rf"kafka\.producer\.{re.escape(key)}: not settable "
                                          rf"here: .*{why}"):
        settings(producer={key: 1})


def test_a_message_bigger_than_librdkafkas_queue_is_refused() -> None:
    """librdkafka would answer "queue full" to it for ever: the sink would stall."""
    with pytest.raises(ConfigError, match=r"kafka\.max_message_bytes: must fit librdkafka's "
                                          r"queue with its key and headers: at most 1044480"):
        settings(queue_mb=1, max_message_bytes=1_044_481)
    assert settings(queue_mb=1, max_message_bytes=1_044_480)["queue.buffering.max.kbytes"] == 1024
    with pytest.raises(ConfigError, match=r"at most 28672"):  # librdkafka's own key wins
        settings(producer={"queue.buffering.max.kbytes": 32}, max_message_bytes=30_000)


def test_an_unknown_profile_fails_at_load() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.profile: expected 'latency' or 'throughput'"):
        settings(profile="fast")


@pytest.mark.parametrize("nice", [-2, 20])
def test_thread_nice_is_minus_one_or_a_nice_value(nice: int) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.thread_nice"):
        settings(thread_nice=nice)


def test_threads_that_cannot_be_reniced_are_a_warning_not_a_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    _lower_priority({2**22 + 12345}, 10)  # (beyond pid_max: no such thread)
    assert "could not be set to nice 10" in caplog.text


def test_a_setting_librdkafka_refuses_is_a_configuration_error_that_shows_no_secret() -> None:
    with pytest.raises(ConfigError) as caught:  # the password happens to be the bad value
        kafka_client(Producer, {"bootstrap.servers": "127.0.0.1:1", "sasl.password": "bogus",
                                "security.protocol": "bogus"})
    assert str(caught.value) == ('kafka.producer: Invalid value "***" for configuration '
                                 'property "security.protocol"')
