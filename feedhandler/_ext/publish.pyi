"""Record batches -> Kafka messages, one per (kind, symbol) run (Cython + ext/cpp/grouping)."""

from collections.abc import Callable
from typing import Any

import numpy as np
from confluent_kafka import KafkaError, Message

Headers = list[tuple[str, bytes]]
DeliveryCallback = Callable[[KafkaError | None, Message], None]

def group_rows(keys: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]: ...
def record_values(data: np.ndarray, itemsize: int, starts: np.ndarray, ends: np.ndarray,
                  order: np.ndarray | None = None) -> list[bytes]: ...
def produce_messages(
    produce: Callable[..., None],
    on_delivery: Callable[[int, KafkaError | None, Message], None],
    callbacks: dict[int, DeliveryCallback],
    backlog: Callable[[str, bytes, bytes, Headers, int], Any],
    failed: Callable[[str, bytes, int, KafkaError], Any],
    topics: list[str],
    keys: list[bytes],
    values: list[bytes],
    counts: np.ndarray,
    firsts: np.ndarray | None,
    lasts: np.ndarray | None,
    fixed_headers: tuple[tuple[str, bytes], ...],
    epoch: bytes,
    full: bool,
    totals: np.ndarray,
    extra_headers: list[Headers] | None = None,
) -> None: ...
