"""Every knob of the simulator in one frozen dataclass; defaults are Binance's values.

Tests scale the intervals down (`ping_interval=0.05`, `lifetime=0.3`, ...); the CLI exposes each
field as a flag of the same name (`ping_interval` -> `--ping-interval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from feedhandler.simulator.server.faults import FaultSpec


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    # where to listen
    host: str = "127.0.0.1"
    port: int = 9443
    tls_cert: Path | None = None  # PEM certificate chain; TLS is on when set (with tls_key)
    tls_key: Path | None = None

    # synthetic market
    seed: int = 1
    symbols: int | None = None  # size of the simulated universe (None: the market's default)

    # sending (per connection)
    rate: float = 100.0  # events/s in paced mode
    tick_us: int = 1000  # paced mode: events due are released every tick (< 1000: a timerfd)
    wall_clock: bool = False  # paced mode: each event's E is its send time (see stamping.py)
    fast: bool = False  # as fast as the client reads (pre-encoded bulk writes)
    batch: int = 1024  # events encoded and written per write
    pregenerate: int = 0  # events generated before the first is sent (fast: per connection)
    max_messages: int | None = None  # events per connection, then only control/pings
    write_buffer: int = 1 << 20  # transport high-water mark (bytes): bounds queued memory

    # replay instead of the synthetic market
    replay: Path | None = None
    replay_speed: float = 1.0  # 1.0 = recorded pace, 2.0 = twice as fast, 0 = full speed

    # protocol timings and limits (protocol doc §2)
    ping_interval: float = 20.0
    pong_timeout: float = 60.0
    max_incoming: int = 5  # client messages (ping, pong, control) per incoming_window
    incoming_window: float = 1.0
    max_streams: int = 1024
    lifetime: float = 24 * 3600.0
    max_attempts: int = 300  # connection attempts per IP per attempt_window
    attempt_window: float = 300.0
    ban_after: int = 10  # refused attempts per attempt_window before a 418 ban (0: never)
    ban_duration: float = 120.0
    handshake_timeout: float = 5.0
    close_timeout: float = 1.0  # wait for the client's close frame before dropping TCP
    shutdown_grace: float = 1.0  # between the serverShutdown event and the close at shutdown
    max_frame_size: int = 1 << 20  # largest client frame accepted

    # WebSocket API at /ws-api/v3 (wsapi.py): REQUEST_WEIGHT per IP per aligned window
    api_weight_limit: int = 6000
    api_weight_interval: int = 60  # seconds
    api_ban_after: int = 10  # 429s in one window before a 418 ban of ban_duration (0: never)
    api_keys: tuple[tuple[str, Path], ...] = ()  # (API key, Ed25519 public key PEM file)
    api_clock_offset_ms: int = 0  # the exchange clock's lead over ours (clock sync tests)

    # periodic faults for soak runs (see faults.py)
    faults: tuple[FaultSpec, ...] = ()

    def __post_init__(self) -> None:
        positive = (
            "rate", "batch", "write_buffer", "ping_interval", "pong_timeout", "max_incoming",
            "incoming_window", "max_streams", "lifetime", "max_attempts", "attempt_window",
            "ban_duration", "handshake_timeout", "close_timeout", "max_frame_size",
            "api_weight_limit", "api_weight_interval",
        )  # fmt: skip
        for name in positive:
            if not 0 < getattr(self, name) < math.inf:  # (NaN fails too)
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = (
            "pregenerate", "ban_after", "shutdown_grace", "replay_speed", "port", "api_ban_after",
        )  # fmt: skip
        for name in non_negative:
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.port > 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.max_messages is not None and self.max_messages < 0:
            raise ValueError(f"max_messages must be >= 0, got {self.max_messages}")
        if self.symbols is not None and self.symbols <= 0:
            raise ValueError(f"symbols must be > 0, got {self.symbols}")
        if not 0 < self.tick_us <= 1000:  # the loop's own timers tick every millisecond
            raise ValueError(f"tick_us must be 1..1000, got {self.tick_us}")
        if self.wall_clock and self.fast:
            raise ValueError("wall_clock stamps paced events; it does not combine with fast")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None
