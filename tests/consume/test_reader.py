"""read_messages against a stub consumer whose topics grow while it reads: without --follow it
stops once every partition reached the end it had at the start; with --follow it also reads
topics created since."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from feedhandler.cli import main
from feedhandler.consume import reader
from feedhandler.consume.reader import read_messages


class Message:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]


class GrowingTopics:
    """trade (3 messages at the start) gains one message per poll; depth holds 50; a topic
    `later` appears at the 5th poll."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.ends = {("binance.spot.trade", 0): 3, ("binance.spot.depth", 0): 50}
        self.at: dict[tuple[str, int], int] = {}
        self.paused: set[tuple[str, int]] = set()
        self.polls = 0

    def list_topics(self, timeout: float | None = None) -> Any:
        names = {topic for topic, _ in self.ends}
        return types.SimpleNamespace(topics={t: types.SimpleNamespace(partitions={0: None})
                                             for t in names})

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float | None = None
                              ) -> tuple[int, int]:
        return 0, self.ends[tp.topic, tp.partition]

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.at.update({(tp.topic, tp.partition): tp.offset for tp in partitions})

    incremental_assign = assign

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def poll(self, timeout: float) -> Message | None:
        self.polls += 1
        self.ends["binance.spot.trade", 0] += 1
        if self.polls == 5:
            self.ends["binance.spot.later", 0] = 2
        for part in sorted(self.at, key=lambda p: (self.polls + ord(p[0][-1])) % 3):
            if part not in self.paused and self.at[part] < self.ends[part]:
                self.at[part] += 1
                return Message(*part, self.at[part] - 1)
        return None

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(reader, "Consumer", GrowingTopics)
    monkeypatch.setattr(reader, "NEW_TOPICS_S", 0.0)
    yield


def offsets(messages: Iterator[Any], count: int = 10_000) -> dict[str, list[int]]:
    got: dict[str, list[int]] = {}
    for msg, _ in zip(messages, range(count), strict=False):
        got.setdefault(msg.topic().rpartition(".")[2], []).append(msg.offset())
    return got


def test_without_follow_it_stops_once_every_partition_reached_its_start_end() -> None:
    got = offsets(read_messages("x", pattern=r"^binance\.spot\.", idle_timeout=60))
    assert got["trade"][:3] == [0, 1, 2] and got["depth"] == list(range(50))
    got = offsets(read_messages("x", pattern=r"^binance\.spot\.", from_beginning=False, tail=2,
                                idle_timeout=60))
    assert got["trade"][:2] == [1, 2] and got["depth"] == [48, 49]


def test_follow_reads_the_topics_created_since_its_start_from_their_beginning() -> None:
    got = offsets(read_messages("x", pattern=r"^binance\.spot\.", follow=True,
                                from_beginning=False), count=200)
    assert got["later"] == [0, 1] and got["trade"][0] == 3


def test_book_view_takes_the_librdkafka_settings_and_reports_errors_in_one_line(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    configs: list[dict[str, Any]] = []

    def refusing(config: dict[str, Any]) -> None:
        configs.append(config)
        raise KafkaException(KafkaError(KafkaError._INVALID_ARG, "no such property"))

    monkeypatch.setattr(reader, "Consumer", refusing)
    assert main(["consume", "--book", "BTCUSDT", "-X", "sasl.mechanism=PLAIN"]) == 2  # usage
    assert configs[0]["sasl.mechanism"] == "PLAIN"
    assert capsys.readouterr().err == \
        "feedhandler consume: -X: bad librdkafka setting: no such property\n"


def test_tail_0_reads_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["consume", "--tail", "0", "--idle-timeout", "0.2"]) == 0
    assert capsys.readouterr().err.endswith("consumed 0 records\n")
