"""`BookBuilder`: order books rebuilt from the Kafka depth topic alone (diffs + snapshots).

Per symbol it follows Binance's procedure (protocol doc §5) on the records: diffs are
buffered until a snapshot event arrives; diffs up to its `lastUpdateId` are dropped, the
first kept one must have `U <= lastUpdateId + 1`, and from then on every event must continue
the last (`U <= u_prev + 1`, older events ignored). A break makes that symbol alone invalid
until the next snapshot the handler publishes for it. The work per record is C++
(`feedhandler._ext.book`); Python runs per message.

    builder = BookBuilder()
    for message in consumer:                     # the depth topic, from the beginning
        builder.apply_message(message)
    builder.valid("BTCUSDT"), builder.why_not("BTCUSDT"), builder.top("BTCUSDT", 10)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from feedhandler._ext.book import Books
from feedhandler.consume.decode import KafkaMessage, decode
from feedhandler.records import in_current_layout, to_decimal, wide_to_int

_REASONS = {
    "no_snapshot": "no snapshot seen yet",
    "gap": "update ids skipped (expected U <= {expected}, got {received}); waiting for a "
    "new snapshot",
    "stale_snapshot": "the buffered diffs do not follow on from the last snapshot (their "
    "first U is {expected}, past its lastUpdateId + 1); waiting for a newer one",
    "buffer_overflow": "too many diffs buffered before a snapshot came",
    "rebuilding": "a snapshot is being applied (its rows span messages)",
    "short": "a side fell below {min_levels} levels while levels beyond it are unknown "
    "(forgotten to max_levels, or past a snapshot's limit), so its best may be missing "
    "(at update id {update_id}); waiting for a new snapshot",
}


@dataclass(frozen=True)
class Top:
    """Best levels of one book, prices and quantities exact. `valid` False: the book is not
    valid now (BookBuilder.why_not says why), so its levels may be partial or cleared."""

    symbol: str
    update_id: int
    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]
    valid: bool


class BookBuilder:
    def __init__(self, max_levels: int = 0, max_buffer: int = 1_000_000,
                 min_levels: int = 1, refresh_levels: int = 0) -> None:
        """`max_levels` > 0 keeps only the best N levels per side (0: full depth). A side
        that holds fewer than `min_levels` while levels beyond it are unknown (forgotten, or
        past a snapshot's limit) makes the book invalid until the next snapshot: its best may
        be missing (1: only once such a side is empty). Fewer than `refresh_levels` keeps it
        valid and records its diffs, so that the next snapshot on the topic they follow on
        from rebuilds it to full depth (0: not; the handler's books do this with half of what
        a side kept)."""
        self.books = Books(max_levels, max_buffer, min_levels, refresh_levels)

    def apply(self, records: np.ndarray) -> None:
        """Depth records (diffs and snapshot rows), in topic order. Records of an earlier
        schema version, and arrays numpy repacked (`np.concatenate` drops the padding), are
        brought to the current wire layout first."""
        self.books.apply(in_current_layout("depth", records))

    def apply_message(self, message: KafkaMessage) -> None:
        """One message of the depth topic, in any encoding `decode` reads."""
        self.apply(decode(message))

    def symbols(self) -> list[str]:
        return self.books.symbols()

    def status(self, symbol: str) -> dict[str, Any]:
        return self.books.status(symbol)

    def valid(self, symbol: str) -> bool:
        try:
            return bool(self.books.status(symbol)["state"] == "valid")
        except KeyError:
            return False

    def why_not(self, symbol: str) -> str:
        """Why the book of `symbol` is not valid ("" when it is)."""
        try:
            status = self.books.status(symbol)
        except KeyError:
            return "no record of this symbol yet"
        if status["state"] == "valid":
            return ""
        return _REASONS[status["state"]].format(min_levels=self.books.min_levels, **status)

    def levels(self, symbol: str) -> tuple[np.ndarray, np.ndarray]:
        """Every level held: (bids, asks), arrays of `LEVEL_DTYPE` (price int64, qty 128-bit
        lo/hi, 1e-8 units), best first; whether they are a valid book: `valid(symbol)`."""
        return self.books.levels(symbol, 0), self.books.levels(symbol, 1)

    def top(self, symbol: str, depth: int = 10) -> Top:
        status = self.books.status(symbol)

        def exact(levels: np.ndarray) -> list[tuple[Decimal, Decimal]]:
            return [(to_decimal(int(level["price"])), to_decimal(wide_to_int(level["qty"])))
                    for level in levels]

        return Top(
            symbol,
            int(status["update_id"]),
            exact(self.books.levels(symbol, 0, depth)),
            exact(self.books.levels(symbol, 1, depth)),
            status["state"] == "valid",
        )
