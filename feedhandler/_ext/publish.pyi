"""Record batches -> Kafka messages, one per (kind, symbol) run (Cython + ext/cpp/grouping)."""

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from confluent_kafka import KafkaError

from feedhandler._ext.producer import Producer

Headers = list[tuple[str, bytes]]

def group_rows(keys: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]: ...
class Outlet:
    # read-only
    producer: Producer
    backlog: Callable[[str, bytes, bytes, Headers, int], Any]
    failed: Callable[[str, bytes, int, KafkaError], Any]

    def __init__(
        self,
        producer: Producer,
        backlog: Callable[[str, bytes, bytes, Headers, int], Any],
        failed: Callable[[str, bytes, int, KafkaError], Any],
    ) -> None: ...

class Counts:
    # read-only: what produce_messages or produce_records did
    produced: int
    records: int
    buffer_full: int

class MessageBatch(Counts):
    def __init__(
        self,
        topics: list[str],
        keys: list[bytes],
        values: list[bytes],
        counts: np.ndarray,
        fixed_headers: tuple[tuple[str, bytes], ...],
        epoch: int,
        firsts: np.ndarray | None = None,
        lasts: np.ndarray | None = None,
        extra_headers: list[Headers] | None = None,
    ) -> None: ...

def produce_messages(outlet: Outlet, batch: MessageBatch, full: bool) -> None: ...

class RecordLayout:
    # read-only: byte offsets in a record (-1: the kind has no sequence range)
    itemsize: int
    row_bytes: int  # of each record in a message: itemsize, or fewer, before the symbol
    symbol_offset: int
    symbol_width: int
    first_offset: int
    last_offset: int
    compact: bool  # row_bytes < itemsize: the symbol left out
    @property
    def held(self) -> int: ...  # rows given to produce_records, not yet sent

    def __init__(self, dtype: np.dtype[Any], sequence: tuple[str, str] | None = None,
                 padding: Iterable[tuple[int, int]] = (), row_bytes: int = -1) -> None: ...

def produce_records(
    outlet: Outlet,
    layout: RecordLayout,
    records: np.ndarray | None,
    most: int,
    topics: dict[bytes, str],
    new_topic: Callable[[bytes], str],
    fixed_headers: tuple[tuple[str, bytes], ...],
    epoch: int,
    full: bool,
    counts: Counts,
    hold: bool = False,
) -> None: ...
