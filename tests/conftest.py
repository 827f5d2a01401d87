"""Shared pytest fixtures."""

import logging
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


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A command run in-process (cli.main) sets the root logger up on the stderr pytest
    captured for that test; later tests' log lines must not go to that closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level
