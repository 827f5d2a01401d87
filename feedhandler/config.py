"""Handler configuration: YAML file < environment (FEEDHANDLER_*) < command-line flags.

Every key is validated on load; an unknown key or a wrong type fails with the key's dotted
path, so a typo in a ConfigMap is an error at start, not a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from feedhandler.contract import ENCODINGS
from feedhandler.contract.streams import normalize_streams, url_streams


class ConfigError(ValueError):
    pass


@dataclass
class KafkaConfig:
    bootstrap: str = "127.0.0.1:9092"
    topic_template: str = "{exchange}.{market}.{kind}"  # `{symbol}` allowed
    control_topic: str = "{exchange}.{market}.control"  # gaps, reconnects, backpressure
    deadletter_topic: str = "{exchange}.{market}.deadletter"  # rejected frames, unchanged
    exchange: str = "binance"
    market: str = "spot"
    encoding: str = "records"  # records | json | jsonrecord | raw
    create_topics: bool = True  # create missing topics on start; false: fail if one is missing
    partitions: int = -1  # for created topics; -1 = the broker's default
    replication_factor: int = -1
    topic_config: dict[str, str] = field(default_factory=dict)  # e.g. retention.ms
    compression: str = "lz4"  # none | gzip | snappy | lz4 | zstd
    linger_ms: float = 5.0  # librdkafka linger.ms
    batch_bytes: int = 1 << 20  # librdkafka batch.size
    max_message_bytes: int = 1_000_000  # a bigger (kind, symbol) batch is split; broker: 1 MiB
    queue_mb: int = 64  # librdkafka's own queue (queue.buffering.max.kbytes)...
    backlog_limit_mb: int = 64  # ...then ours; beyond it, reading from the exchange pauses
    producer: dict[str, Any] = field(default_factory=dict)  # librdkafka settings, win over all


BATCH_KEYS = ("rows", "bytes", "linger_ms")


@dataclass
class BatchConfig:
    rows: int = 4096  # flush a kind's batch at this many records...
    bytes: int = 1 << 20  # ...or this many bytes of records (rows = bytes // record size)...
    linger_ms: float = 5.0  # ...or when its first record is this old
    per_kind: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> BATCH_KEYS

    def rows_for(self, kind: str, itemsize: int) -> int:
        """Records per batch of `kind`: the smaller of its row and byte thresholds."""
        own = self.per_kind.get(kind, {})
        rows, size = int(own.get("rows", self.rows)), int(own.get("bytes", self.bytes))
        return max(1, min(rows, size // itemsize)) if size else rows

    def linger_for(self, kind: str) -> float:
        return float(self.per_kind.get(kind, {}).get("linger_ms", self.linger_ms))


@dataclass
class ConnectionConfig:
    streams_per_connection: int = 200  # Binance allows 1024; URLs get long before that
    max_frame_bytes: int = 1 << 20  # larger frames are dead-lettered, not parsed
    time_unit: str = "ms"  # ms | us (timeUnit=MICROSECOND)
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    ping_interval_s: float = 30.0  # our own staleness pings (Binance counts them: keep rare)
    ping_timeout_s: float = 10.0


@dataclass
class HandlerConfig:
    url: str = "wss://stream.binance.com:9443"
    streams: list[str] = field(default_factory=lambda: ["btcusdt@bookTicker"])
    sink: str = "kafka"  # kafka | null
    instance: str = ""  # defaults to the host name
    shard_index: int = 0  # this replica's part of the stream plan...
    shard_count: int = 1  # ...when several replicas share one config
    max_messages: int = 0  # stop after this many data frames (0 = run until stopped)
    duration_s: float = 0.0  # stop after this long (0 = run until stopped)
    shutdown_timeout_s: float = 10.0
    health_port: int = 0  # HTTP /livez /readyz /metrics (0 = off)
    health_host: str = "0.0.0.0"  # all interfaces: probes and scrapes come from outside the pod
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    connection: ConnectionConfig = field(default_factory=ConnectionConfig)

    def validate(self) -> None:
        if self.sink not in ("kafka", "null"):
            raise ConfigError(f"sink: must be kafka or null, not {self.sink!r}")
        if self.kafka.encoding not in ENCODINGS:
            raise ConfigError(f"kafka.encoding: must be one of {', '.join(ENCODINGS)}, not "
                              f"{self.kafka.encoding!r}")
        if self.kafka.compression not in ("none", "gzip", "snappy", "lz4", "zstd"):
            raise ConfigError(f"kafka.compression: unknown codec {self.kafka.compression!r}")
        for key in ("partitions", "replication_factor"):
            if getattr(self.kafka, key) == 0 or getattr(self.kafka, key) < -1:
                raise ConfigError(f"kafka.{key}: must be -1 (broker default) or >= 1")
        if self.kafka.max_message_bytes < 1024:
            raise ConfigError("kafka.max_message_bytes: must be >= 1024")
        for kind, settings in self.batch.per_kind.items():
            from feedhandler.records import SCHEMAS  # only when needed: it loads the decoder

            if kind not in SCHEMAS:
                raise ConfigError(f"batch.per_kind: unknown kind {kind!r}; known: "
                                  f"{', '.join(SCHEMAS)}")
            if not isinstance(settings, dict):
                raise ConfigError(f"batch.per_kind.{kind}: expected a mapping")
            unknown = set(settings) - set(BATCH_KEYS)
            if unknown:
                raise ConfigError(f"unknown key batch.per_kind.{kind}.{sorted(unknown)[0]}")
        if self.connection.time_unit not in ("ms", "us"):
            raise ConfigError("connection.time_unit: must be ms or us")
        if not self.streams:
            raise ConfigError("streams: at least one stream is required")
        try:  # split into connections later: no per-connection count here
            self.streams = normalize_streams(self.streams, per_connection=None)
        except ValueError as e:
            raise ConfigError(f"streams: {e}") from None
        try:
            from_url = url_streams(self.url)
            if from_url is not None:
                normalize_streams(from_url)
        except ValueError as e:
            raise ConfigError(f"url: {e}") from None
        if not 0 <= self.shard_index < self.shard_count:
            raise ConfigError(f"shard_index: must be within 0..{self.shard_count - 1}")
        if not 1 <= self.connection.streams_per_connection <= 1024:
            raise ConfigError("connection.streams_per_connection: must be within 1..1024")
        if not 0 <= self.health_port <= 65535:
            raise ConfigError("health_port: must be within 0..65535 (0 = off)")


def _coerce(path: str, hint: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping")
        return _build(hint, value, f"{path}.")
    origin = getattr(hint, "__origin__", hint)
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list")
        return [str(v) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping")
        return value
    try:
        if hint is bool and isinstance(value, str):
            return value.lower() in ("1", "true", "yes", "on")
        return hint(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: expected {hint.__name__}, got {value!r}") from None


def _build(cls: Any, data: dict[str, Any], prefix: str = "") -> Any:
    hints = get_type_hints(cls)
    unknown = set(data) - set(hints)
    if unknown:
        raise ConfigError(f"unknown key {prefix}{sorted(unknown)[0]}")
    kwargs = {k: _coerce(f"{prefix}{k}", hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _nested(dotted: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _from_env(environ: dict[str, str]) -> dict[str, Any]:
    """FEEDHANDLER_KAFKA__BOOTSTRAP=… -> {"kafka": {"bootstrap": …}} (double underscore nests)."""
    dotted = {
        k[len("FEEDHANDLER_"):].lower().replace("__", "."): v
        for k, v in environ.items()
        if k.startswith("FEEDHANDLER_") and not k.startswith("FEEDHANDLER_BUILD")
        and k not in ("FEEDHANDLER_SANITIZE", "FEEDHANDLER_ANNOTATE", "FEEDHANDLER_MARCH")
    }
    return _nested(dotted)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                environ: dict[str, str] | None = None) -> HandlerConfig:
    """`overrides` uses dotted keys ("kafka.bootstrap") and wins over file and environment."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        data = loaded
    data = _merge(data, _from_env(dict(os.environ if environ is None else environ)))
    data = _merge(data, _nested({k: v for k, v in (overrides or {}).items() if v is not None}))
    config: HandlerConfig = _build(HandlerConfig, data)
    config.validate()
    return config
