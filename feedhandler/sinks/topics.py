"""Kafka on start: clients made from the configuration (a setting librdkafka refuses is a
configuration error), and topics created with the configured partitions/replication, or
checked to exist."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from feedhandler.config import ConfigError, KafkaConfig
from feedhandler.config_layers import REDACTED, secret_entry

log = logging.getLogger(__name__)
START_RETRY_S = 5.0  # after a failed try (itself up to its timeout) of a broker down at start
# what a broker that is down, or not yet resolvable, gives (not bad credentials, say)
UNREACHABLE = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
                         KafkaError._TIMED_OUT, KafkaError._RESOLVE})


Client = TypeVar("Client")


def kafka_client(make: Callable[..., Client], settings: dict[str, Any], **options: Any) -> Client:
    """make(settings, **options); a setting librdkafka refuses (an unknown name, a bad value)
    raises ConfigError with its words, secret values kept out."""
    try:
        return make(settings, **options)
    except KafkaException as exc:
        error = exc.args[0]
        if error.code() != KafkaError._INVALID_ARG:
            raise
        text = error.str()
        for name, value in settings.items():
            if secret_entry(name) and str(value):
                text = text.replace(str(value), REDACTED)
        raise ConfigError(f"kafka.producer: {text}") from None


class TopicError(ConfigError):
    """The broker cannot be reached, or the topics are not as the configuration says."""


def ensure_topics(config: KafkaConfig, topics: Iterable[str], timeout: float = 30.0,
                  wait_s: float = 0.0) -> list[str]:
    """Create the missing `topics` (kafka.create_topics: true) or fail naming them; returns
    the topics created; a broker that cannot be reached is tried again for `wait_s` (at
    start: kafka.start_wait_s). Blocks: call it before the event loop starts reading."""
    admin = kafka_client(AdminClient,
                         {"bootstrap.servers": config.bootstrap, **_admin_settings(config)},
                         logger=log)
    existing = _list_topics(admin, config.bootstrap, timeout, wait_s)
    missing = sorted(set(topics) - set(existing))
    if not missing:
        return []
    if not config.create_topics:
        raise TopicError(f"kafka: missing topics {', '.join(missing)} on {config.bootstrap}: "
                         "create them, or set kafka.create_topics: true")
    new = [NewTopic(topic, num_partitions=config.partitions,
                    replication_factor=config.replication_factor,
                    config={k: str(v) for k, v in config.topic_config.items()})
           for topic in missing]
    created = []
    for topic, future in admin.create_topics(new, request_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:  # else: another instance won
                raise TopicError(f"kafka: cannot create topic {topic}: {error.str()}") from None
        else:
            created.append(topic)
    log.info("kafka: created topics %s", ", ".join(created) or "(none: created meanwhile)")
    return created


def _list_topics(admin: AdminClient, bootstrap: str, timeout: float,
                 wait_s: float) -> dict[str, Any]:
    """The broker's topics. One that cannot be reached (each try takes `timeout`) is tried
    again START_RETRY_S after each failure until `wait_s` has passed; then, or at any other
    error (credentials, say), TopicError."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            topics: dict[str, Any] = admin.list_topics(timeout=timeout).topics
            return topics
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            why = f"kafka: cannot list topics on {bootstrap}: {error.str()}"
        left = deadline - time.monotonic()
        if left <= 0 or error.code() not in UNREACHABLE:
            raise TopicError(why)
        log.warning("%s; trying again for %.0f s more (kafka.start_wait_s)", why, left)
        time.sleep(min(START_RETRY_S, left))


def _admin_settings(config: KafkaConfig) -> dict[str, str | int | float]:
    """The producer overrides that concern connecting (security, client id, addresses), for
    the admin: a setting the producer connects with must not fail the topic check."""
    prefixes = ("security.", "sasl.", "ssl.", "client.", "socket.", "enable.ssl.",
                "enable.sasl.", "bootstrap.", "broker.address.", "resolve.", "connections.",
                "reconnect.", "api.version", "broker.version.")
    return {k: v for k, v in config.producer.items() if k.startswith(prefixes)}
