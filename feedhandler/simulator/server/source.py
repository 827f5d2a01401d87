"""Where a connection's events come from: the synthetic market or a recording.

Each connection owns one `FrameSource`, created when it connects with the time unit its URL
asked for. The synthetic market is deterministic for a seed, so every connection with the same
subscriptions receives the same events (see the README for what that means for rollover tests).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Protocol

from feedhandler.simulator.market import Feed, Universe
from feedhandler.simulator.server.urls import TimeUnit

Event = tuple[str, bytes]  # (stream name, raw /ws/ payload)


class FrameSource(Protocol):
    def subscribe(self, streams: Sequence[str]) -> None: ...
    def unsubscribe(self, streams: Sequence[str]) -> None: ...
    def next_frames(self, max_frames: int) -> list[Event]: ...
    def inject_gap(self, stream: str, n: int = 1) -> None: ...
    def inject_duplicate(self, stream: str) -> None: ...
    def inject_reorder(self, stream: str) -> None: ...


class SourceFactory(Protocol):
    def is_valid_stream(self, name: str) -> bool: ...
    def open(self, time_unit: TimeUnit) -> FrameSource: ...


class MarketSource:
    """Synthetic market events from `feedhandler.simulator.market`."""

    def __init__(self, seed: int, symbols: int | None) -> None:
        self._seed = seed
        self._universe = (
            Universe.generate(seed) if symbols is None else Universe.generate(seed, symbols)
        )
        # an instance's check also requires the symbol to be listed in the universe
        self._idle = Feed(seed, self._universe)
        self.is_valid_stream = self._idle.is_valid_stream
        self._feeds: list[weakref.ref[Feed]] = []

    @property
    def universe(self) -> Universe:
        return self._universe

    def open(self, time_unit: TimeUnit) -> FrameSource:
        feed = Feed(self._seed, self._universe, time_unit=time_unit)
        self._feeds = [ref for ref in self._feeds if ref() is not None]
        self._feeds.append(weakref.ref(feed))
        return feed

    def snapshot(
        self, symbol: str, limit: int
    ) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        """The WS API's true book of `symbol`: from the newest connection streaming it (its
        engine is the one whose update ids that client sees), else from an idle feed."""
        prefix = symbol.lower() + "@"
        for ref in reversed(self._feeds):
            feed = ref()
            if feed is not None and any(s.startswith(prefix) for s in feed.subscriptions):
                return feed.book_snapshot(symbol, limit)
        return self._idle.book_snapshot(symbol, limit)
