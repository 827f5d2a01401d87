"""Shared pytest fixtures."""

from collections.abc import Iterator

import pytest

from feedhandler.testing.kafka import LocalKafka


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A real local Kafka broker shared by the session; if it cannot start, tests error out."""
    with LocalKafka(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture
def kafka_bootstrap(kafka_broker: LocalKafka) -> str:
    """``bootstrap.servers`` of the session broker."""
    return kafka_broker.bootstrap
