"""The topic check connects as the producer does, and waits for a broker down at start."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from feedhandler.config import KafkaConfig
from feedhandler.sinks import topics
from feedhandler.sinks.topics import TopicError, _admin_settings, ensure_topics


def test_the_admin_client_gets_every_setting_the_producer_connects_with() -> None:
    connecting = {"security.protocol": "SSL", "ssl.ca.location": "/ca.pem",
                  "enable.ssl.certificate.verification": "false", "sasl.mechanism": "PLAIN",
                  "enable.sasl.oauthbearer.unsecure.jwt": "true", "client.id": "fh",
                  "broker.address.family": "v4", "socket.timeout.ms": 5000,
                  "bootstrap.servers": "10.0.0.1:9093"}
    config = KafkaConfig(producer={**connecting, "batch.num.messages": 7,
                                   "queue.buffering.max.kbytes": 2048})
    assert _admin_settings(config) == connecting


class WakingBroker:
    """An admin client whose broker cannot be reached for its first `down` tries."""

    def __init__(self, down: int, code: int = KafkaError._TRANSPORT,
                 text: str = "Connection refused") -> None:
        self.down, self.tries, self.error = down, 0, KafkaError(code, text)

    def list_topics(self, timeout: float) -> Any:
        self.tries += 1
        if self.tries <= self.down:
            raise KafkaException(self.error)
        return SimpleNamespace(topics={"t": None})


def test_a_broker_down_at_start_is_waited_for_within_start_wait_s(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(topics, "START_RETRY_S", 0.01)
    broker = WakingBroker(down=2)
    assert topics._list_topics(broker, "kafka:9092", 1.0, 5.0) == {"t": None}
    assert broker.tries == 3
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "kafka: cannot list topics on kafka:9092: Connection refused"] * 2
    with pytest.raises(TopicError, match="cannot list topics on kafka:9092: Connection"):
        topics._list_topics(WakingBroker(down=1), "kafka:9092", 1.0, 0.0)  # (no wait: once)
    refused = WakingBroker(down=1, code=KafkaError._AUTHENTICATION, text="SASL failed")
    with pytest.raises(TopicError, match="SASL failed"):  # not a broker that is down: once
        topics._list_topics(refused, "kafka:9092", 1.0, 5.0)
    assert refused.tries == 1


def test_an_unreachable_broker_fails_once_start_wait_s_has_passed() -> None:
    started = time.monotonic()
    with pytest.raises(TopicError, match=r"cannot list topics on 127\.0\.0\.1:9"):
        ensure_topics(KafkaConfig(bootstrap="127.0.0.1:9"), ["x"], timeout=0.5, wait_s=1.5)
    assert time.monotonic() - started >= 1.5
