"""The one status snapshot that /readyz, /metrics and the summary read (no connection objects).

Built on request from state the supervisor keeps anyway: nothing here is counted per message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LegStatus:
    """One leg of a redundant shard (connection.redundancy 2)."""

    leg: int  # 0 or 1
    url: str
    state: str  # as ConnectionStatus.state
    trusted: bool  # in step: its first arrivals win (False while it joins)
    failed_attempts: int
    last_error: str
    open_for_s: float
    won: int  # records it delivered first (emitted from this leg)
    lead_count: int  # the other leg's copies of those, with their lead measured...
    lead_sum_s: float  # ...summed...
    lead_buckets: tuple[int, ...]  # ...and by decoder.LEAD_BOUNDS_NS (not cumulative)


@dataclass(frozen=True)
class ConnectionStatus:
    shard: int
    url: str
    streams: int
    state: str  # idle | connecting | open | quarantined | stopped
    epoch: int  # its latest connection attempt (unique within the instance)
    frames: int  # data frames, all connections of the shard
    last_frame_ns: int  # wall clock of the latest data frame; 0 before the first
    max_silence_s: float  # no data frame for this long: the connection is replaced
    failed_attempts: int  # since the last successful connection
    last_error: str
    open_for_s: float  # 0 unless open
    never_delivered: bool  # open past stale_after_s, the shard with nothing delivered yet
    suspect: bool  # open, and our ping waits for its pong
    replaced: dict[str, int]  # stale connections replaced, by cause (ping_timeout, silent)
    violations: int  # connections closed with 1002 for a protocol violation
    oversized: int  # fragmented messages over max_frame_bytes (open connection)
    rollovers: dict[str, int]  # make-before-break replacements, by cause
    duplicates: int  # records both connections (rollover, legs) delivered, dropped once
    rejected_copies: int = 0  # bad frames both delivered, rejected once
    legs: tuple[LegStatus, ...] = ()  # A/B redundancy: both legs

    @property
    def quarantined(self) -> tuple[str, ...]:
        """What the exchange refused for good: "" for the shard's connection, "leg N" for a
        redundant leg (the shard still serves on the other: it has lost its redundancy)."""
        if self.state == "quarantined":
            return ("",)
        return tuple(f"leg {leg.leg}" for leg in self.legs if leg.state == "quarantined")


@dataclass(frozen=True)
class SupervisorStatus:
    connections: tuple[ConnectionStatus, ...]
    attempts: int  # connection attempts made, all connections
    attempt_waits: int  # attempts that waited for the limiter
    blocked_for_s: float  # left of a 429/418 block
    quarantined: int
    start_refusal: str  # a permanent refusal before any connection ("" if none)

    def summary(self) -> dict[str, Any]:
        return {"attempts": self.attempts, "attempt_waits": self.attempt_waits,
                "quarantined": self.quarantined,
                "replaced": sum(sum(c.replaced.values()) for c in self.connections),
                "rollovers": sum(sum(c.rollovers.values()) for c in self.connections),
                "duplicates": sum(c.duplicates for c in self.connections),
                "rejected_copies": sum(c.rejected_copies for c in self.connections),
                "violations": sum(c.violations for c in self.connections)}


@dataclass(frozen=True)
class HandlerStatus:
    supervisor: SupervisorStatus
    sink: dict[str, Any] = field(default_factory=dict)  # sink.summary()
    backlog_bytes: int = 0
    paused: bool = False
    books: dict[str, int] = field(default_factory=dict)  # HandlerBooks.summary() (book.publish)
    precision: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, symbol) ->
    # values off the symbol's tick/step grid (universe.check_precision)
    universe_symbols: int | None = None  # symbols the universe follows; None: no universe,
    # or no exchangeInfo read yet
    universe_failures: int = 0  # exchangeInfo reads that failed or were not applied
    universe_held: int = 0  # symbols exchangeInfo delisted, still followed (universe.max_delist)
    universe_age_s: float | None = None  # since the last one applied (None: as universe_symbols,
    # or read once: universe.refresh_s 0)
    universe_refresh_s: float = 0.0  # universe.refresh_s
    requests: dict[str, int] = field(default_factory=dict)  # WS API client and weight budget
    # (Handler.request_summary(); empty when the handler makes no request)
    snapshots: dict[str, int] = field(default_factory=dict)  # SnapshotSync.summary()
