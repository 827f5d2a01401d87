"""The topic check connects as the producer does."""

from __future__ import annotations

from feedhandler.config import KafkaConfig
from feedhandler.sinks.topics import _admin_settings


def test_the_admin_client_gets_every_setting_the_producer_connects_with() -> None:
    connecting = {"security.protocol": "SSL", "ssl.ca.location": "/ca.pem",
                  "enable.ssl.certificate.verification": "false", "sasl.mechanism": "PLAIN",
                  "enable.sasl.oauthbearer.unsecure.jwt": "true", "client.id": "fh",
                  "broker.address.family": "v4", "socket.timeout.ms": 5000,
                  "bootstrap.servers": "10.0.0.1:9093"}
    config = KafkaConfig(producer={**connecting, "batch.num.messages": 7,
                                   "queue.buffering.max.kbytes": 2048})
    assert _admin_settings(config) == connecting
