"""Where a connection's events come from: the synthetic market or a recording.

Paced connections share one source, the process's market (`market.SharedMarket`); fast and
replay connections each open their own `FrameSource`, with the time unit their URL asked for.
The synthetic market is deterministic for a seed.
"""

from __future__ import annotations

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
        self.is_valid_stream = Feed(seed, self._universe).is_valid_stream

    def open(self, time_unit: TimeUnit) -> FrameSource:
        feed: FrameSource = Feed(self._seed, self._universe, time_unit=time_unit)
        return feed
