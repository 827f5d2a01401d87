"""librdkafka's producer through its C API (Cython: ext/feedhandler/_ext/producer.pyx)."""

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError

HEADER_VERSION: int  # librdkafka's, built with (0xMMmmrrxx)
LIBRARY_VERSION: int  # librdkafka's, loaded

def version_mismatch(library: int, header: int) -> str | None: ...

class Producer:
    # read-only
    logger: logging.Logger | None
    on_failure: Callable[[str, bytes, int, KafkaError], Any] | None
    on_error: Callable[[KafkaError], Any] | None
    on_statistics: Callable[[str], Any] | None
    # capturing: (topic, key, value, headers) per message
    captured: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] | None
    # (topic, produce -> ack seconds) per acknowledgement; None: not kept
    acks: list[tuple[str, float | None]] | None
    on_acked: Callable[[str, int, int], Any] | None

    def __init__(
        self,
        settings: dict[str, Any] | None,
        *,
        logger: logging.Logger | None = None,
        on_failure: Callable[[str, bytes, int, KafkaError], Any] | None = None,
        on_error: Callable[[KafkaError], Any] | None = None,
        on_statistics: Callable[[str], Any] | None = None,
    ) -> None: ...
    @classmethod
    def capturing(cls, room: int = -1, max_bytes: int = -1) -> Producer: ...
    @property
    def name(self) -> str: ...
    def produce(self, topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]],
                count: int) -> None: ...
    def poll(self, timeout: float = 0.0) -> int: ...
    def flush(self, timeout: float) -> int: ...
    def purge(self) -> None: ...
    def __len__(self) -> int: ...
