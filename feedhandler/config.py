"""Handler configuration: YAML file < environment (FEEDHANDLER_*) < command-line flags.

A pydantic model: every key is typed, ranged and documented (the docstring under a field is its
help, in `feedhandler config schema` too); an unknown key, a wrong type (`2.9` for an integer,
`yes` for a boolean) or a value out of range fails at start with one line naming the key, the
value and where it came from. Loading and error reporting: `feedhandler.config_layers`.

To add a key, add one line (and a docstring) to its section, e.g.
`staleness_s: PositiveFloat = 60.0`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator
from typing_extensions import TypedDict

from feedhandler.config_layers import (
    ConfigError,
    Invalid,
    Origins,
    Scalar,
    SecretEntries,
    Section,
    load,
)
from feedhandler.contract.kinds import BOOK_LEVELS
from feedhandler.contract.streams import (
    clash,
    normalize_streams,
    parse_stream,
    suffix_clash,
    url_streams,
    url_time_unit,
)
from feedhandler.supervisor.plan import replica_part
from feedhandler.wsapi.budget import refresh_ceiling
from feedhandler.wsapi.methods import CONNECT_WEIGHT, depth_weight, request_weight

__all__ = ["BATCH_KEYS", "BatchConfig", "BookConfig", "ConfigError", "ConnectionConfig",
           "HandlerConfig", "KafkaConfig", "UniverseConfig", "WsApiConfig", "load_config",
           "load_config_with_origins"]

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Port = Annotated[int, Field(ge=0, le=65535)]
Text = Annotated[str, Field(min_length=1)]


def _broker_list(value: str) -> str:
    hosts = value.split(",")
    if not all(h.strip() and not any(c.isspace() for c in h.strip()) for h in hosts):
        raise ValueError("expected host:port[,host:port...]")
    return value


def _existing_file(value: str) -> str:
    if value and not Path(value).is_file():
        raise ValueError("no such file")
    return value


def _minus_one_or_more(value: float) -> float:
    if value < 0 and value != -1:
        raise ValueError("must be -1 (the profile's) or >= 0")
    return value


# Binance Spot's production market-data hosts: a `url` on another needs the WS API and REST
# endpoints of its own exchange set too (HandlerConfig._one_exchange)
BINANCE_SPOT_STREAM_HOSTS = ("stream.binance.com", "data-stream.binance.vision")
# Binance futures' WebSocket hosts (fstream., fstream-mm., dstream., ws-fapi., ...)
_FUTURES_HOST = re.compile(r"^(?:[fd]stream|ws-[fd]api)[.-]")


def _websocket_url(value: str) -> str:
    if not value.startswith(("ws://", "wss://")) or not value.split("://", 1)[1]:
        raise ValueError("expected a ws:// or wss:// URL")
    if _FUTURES_HOST.match(urlsplit(value).hostname or ""):
        raise ValueError("Binance futures is not supported (Spot only): its diff depth chains "
                         "by pu, not U = u + 1, and would read as gaps")
    return value


def _websocket_host(value: str) -> str:
    """"" or ws(s)://host[:port] with no path: a shard's path and query go after it."""
    if value and (_websocket_url(value).split("://", 1)[1].rstrip("/").count("/") or
                  "?" in value):
        raise ValueError("expected ws(s)://host[:port] with no path")
    return value


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or not value.split("://", 1)[1]:
        raise ValueError("expected an http:// or https:// URL")
    return value


def _readable_file(value: str) -> str:
    """A key file is read when the WS API connects: unreadable, it fails here instead."""
    if value:
        try:
            with open(value, "rb"):
                pass
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror}") from None
    return value


KeyFile = Annotated[str, AfterValidator(_readable_file)]


def _sink_name(value: object) -> object:
    if value is None:  # YAML's `sink: null` is no value at all
        raise ValueError("expected 'kafka' or 'null' (in YAML write the null sink as "
                         "sink: \"null\")")
    return value


def _partitions(value: int) -> int:
    if value == 0 or value < -1:
        raise ValueError("must be -1 (broker default) or >= 1")
    return value


def check_topic_template(value: str) -> str:
    try:
        value.format(exchange="x", market="x", kind="x", symbol="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"bad topic template ({exc!s}); placeholders: {{exchange}}, "
                         "{market}, {kind}, {symbol}") from None
    return value


def _comma_list(value: Any) -> Any:
    """`a@trade,b@depth` (flags, env) is a list too."""
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


TopicTemplate = Annotated[str, Field(min_length=1), AfterValidator(check_topic_template)]
Partitions = Annotated[int, AfterValidator(_partitions)]


MESSAGE_OVERHEAD = 64 << 10  # message.max.bytes beyond max_message_bytes (key, headers)
KEY_AND_HEADERS = 4 << 10  # ... what they take at most in practice (9 headers, a symbol)

# librdkafka settings `kafka.producer` may not give: the sink's delivery guarantee rests on
# them (README "Delivery"), or a key of `kafka` sets them (an alias would silently win or lose
# against it). Each with what to use instead, or why.
OWNED_PRODUCER_KEYS = {
    **dict.fromkeys(("enable.idempotence", "acks", "request.required.acks", "retries",
                     "message.send.max.retries", "max.in.flight",
                     "max.in.flight.requests.per.connection"),
                    "the sink's delivery guarantee (idempotent, acks=all: no duplicate, no "
                    "reordering) rests on it"),
    **dict.fromkeys(("message.timeout.ms", "delivery.timeout.ms"),
                    "an outage is backpressure, not loss (kafka.backlog_limit_mb bounds it)"),
    **dict.fromkeys(("linger.ms", "queue.buffering.max.ms"), "use kafka.linger_ms"),
    **dict.fromkeys(("compression.type", "compression.codec"), "use kafka.compression"),
    "batch.size": "use kafka.batch_bytes",
    "message.max.bytes": "use kafka.max_message_bytes",
}


class KafkaConfig(Section):
    bootstrap: Annotated[str, AfterValidator(_broker_list)] = "127.0.0.1:9092"
    """bootstrap servers, host:port[,host:port...]"""
    topic_template: TopicTemplate = "{exchange}.{market}.{kind}"
    """data topics; `{symbol}` gives one topic per stream"""
    control_topic: TopicTemplate = "{exchange}.{market}.control"
    """gaps, reconnects, backpressure events"""
    deadletter_topic: TopicTemplate = "{exchange}.{market}.deadletter"
    """rejected frames, unchanged"""
    exchange: Text = "binance"
    """{exchange} in topic names"""
    market: Text = "spot"
    """{market} in topic names (e.g. sim for simulator data on a shared broker)"""
    encoding: Literal["records", "compact", "json", "jsonrecord", "raw"] = "records"
    """message values: record bytes; compact: record bytes without the symbol, which a header
    carries once (uncompressed 33-44 % fewer bytes for the busy kinds, less CPU per record);
    JSON lines; one JSON record per message; or the exchange frames
    (feedhandler.contract.ENCODINGS)"""
    create_topics: bool = True
    """create missing topics on start; false: fail naming a missing one"""
    start_wait_s: NonNegativeFloat = 0.0
    """at start, keep trying a broker that cannot be reached for this long (each try takes up
    to 30 s, then 5 s between): a pod restarted during a Kafka outage waits for it instead of
    exiting into a crash loop; 0: one try"""
    partitions: Partitions = -1
    """for created topics; -1 = the broker's default"""
    replication_factor: Partitions = -1
    """for created topics; -1 = the broker's default"""
    topic_config: dict[str, Scalar] = Field(default_factory=dict)
    """for created topics, e.g. retention.ms"""
    profile: Literal["latency", "throughput"] = "throughput"
    """the producer's defaults (sinks/kafka.py); the keys below win over it"""
    compression: Literal["", "none", "gzip", "snappy", "lz4", "zstd"] = ""
    """"": the profile's"""
    linger_ms: Annotated[float, AfterValidator(_minus_one_or_more)] = -1.0
    """librdkafka linger.ms; -1: the profile's"""
    hold_ms: Annotated[float, AfterValidator(_minus_one_or_more)] = -1.0
    """records and compact encodings: while the handler is behind the exchange (its data waits
    unread), a kind's records are held up to this long (checked every 2 ms), or until they
    fill batch_bytes, in one open message per symbol and connection: fewer, bigger messages
    (less CPU per record) under load, and no wait once it has caught up; 0: each batch's
    messages leave with it; -1: the profile's (latency 0, throughput 5)"""
    batch_bytes: PositiveInt = 1 << 20
    """librdkafka batch.size"""
    max_message_bytes: Annotated[int, Field(ge=1024)] = 1_000_000
    """a bigger (kind, symbol) batch is split; the broker's default limit is 1 MiB"""
    queue_mb: PositiveInt = 64
    """librdkafka's own queue (queue.buffering.max.kbytes)..."""
    backlog_limit_mb: PositiveInt = 64
    """...then ours (values plus ~1 KB a message for its headers); beyond it, reading from the
    exchange pauses"""
    thread_nice: Annotated[int, Field(ge=-1, le=19)] = -1
    """nice of librdkafka's threads (0-19; never below the process's): above 0 they are less
    likely to preempt the decoding thread on a shared core, so a read's messages tend to go
    in one request; on a busy core they get a small share. -1: the profile's (latency 10,
    throughput 0)"""
    ack_latency: bool = True
    """report every delivery for the produce -> ack histogram (a Python call per Kafka
    message); false: only failures are reported"""
    producer: SecretEntries = Field(default_factory=dict)
    """librdkafka settings (SASL/TLS), except those the sink's guarantee rests on or a key
    above sets; `<name>_file` reads a value from a file; secret values are redacted"""

    @field_validator("producer")
    @classmethod
    def _not_owned(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        for key in value:
            if (why := OWNED_PRODUCER_KEYS.get(key)) is not None:
                raise Invalid((key,), f"not settable here: {why}")
        return value

    def queue_bytes(self) -> int:
        """librdkafka's whole queue, which a message must fit (librdkafka refuses a bigger one
        as "queue full", for ever); 0 for a value librdkafka refuses itself."""
        kbytes = str(self.producer.get("queue.buffering.max.kbytes", self.queue_mb << 10))
        return int(kbytes) << 10 if kbytes.isdigit() else 0

    @model_validator(mode="after")
    def _message_fits_the_queue(self) -> KafkaConfig:
        queue = self.queue_bytes()
        if 0 < queue < self.max_message_bytes + KEY_AND_HEADERS:
            raise Invalid("max_message_bytes", f"must fit librdkafka's queue with its key and "
                                               f"headers: at most {queue - KEY_AND_HEADERS}")
        return self


BATCH_KEYS = ("rows", "bytes", "linger_ms")


class KindBatch(TypedDict, total=False):
    """Thresholds of one kind, overriding the batch defaults."""

    __pydantic_config__ = Section.model_config  # type: ignore[misc]
    rows: PositiveInt
    bytes: NonNegativeInt
    linger_ms: NonNegativeFloat


class BatchConfig(Section):
    rows: PositiveInt = 4096
    """flush a kind's batch at this many records..."""
    bytes: NonNegativeInt = 1 << 20
    """...or this many bytes of records (rows = bytes // record size; 0 = rows only)..."""
    linger_ms: NonNegativeFloat = 5.0
    """...or when its first record is this old (a cap; see burst)..."""
    burst: bool = True
    """...and as soon as the current socket read is decoded (smart batching: big batches
    under load, each frame at once when idle); false: full or linger"""
    per_kind: dict[str, KindBatch] = Field(default_factory=dict)
    """kind -> {rows, bytes, linger_ms} for that kind"""

    @field_validator("per_kind")
    @classmethod
    def _known_kinds(cls, value: dict[str, KindBatch]) -> dict[str, KindBatch]:
        from feedhandler.records import SCHEMAS  # only when needed: it loads the decoder

        for kind in value:
            if kind not in SCHEMAS:
                raise Invalid(kind, f"unknown kind; known: {', '.join(SCHEMAS)}")
        return value

    def rows_for(self, kind: str, itemsize: int) -> int:
        """Records per batch of `kind`: the smaller of its row and byte thresholds."""
        own = self.per_kind.get(kind, {})
        rows, size = int(own.get("rows", self.rows)), int(own.get("bytes", self.bytes))
        return max(1, min(rows, size // itemsize)) if size else rows

    def linger_for(self, kind: str) -> float:
        return float(self.per_kind.get(kind, {}).get("linger_ms", self.linger_ms))


class ConnectionConfig(Section):
    streams_per_connection: Annotated[int, Field(ge=1, le=1024)] = 200
    """shard size; Binance allows 1024, URLs get long before that"""
    max_frame_bytes: Annotated[int, Field(ge=1024)] = 1 << 20
    """larger frames are dead-lettered, not parsed"""
    time_unit: Literal["ms", "us"] = "ms"
    """us subscribes with timeUnit=MICROSECOND"""
    backoff_initial_s: PositiveFloat = 0.5
    """first reconnect delay (exponential, full jitter)"""
    backoff_max_s: PositiveFloat = 30.0
    """reconnect delay cap"""
    backoff_reset_after_s: NonNegativeFloat = 30.0
    """backoff starts over once a connection delivered this long (the WS API's: stayed up)"""
    stale_after_s: PositiveFloat = 30.0
    """no data frame for this long: our ping (Binance counts them)..."""
    ping_timeout_s: PositiveFloat = 10.0
    """...no pong within this: the connection is replaced"""
    max_silence_s: NonNegativeFloat = 0.0
    """pongs but no data for this long: replaced (0 = per-kind default)"""
    handshake_timeout_s: PositiveFloat = 10.0
    """TCP + TLS + HTTP upgrade"""
    ca_file: Annotated[str, AfterValidator(_existing_file)] = ""
    """PEM CA bundle for wss:// streams and WS API (default: the system store); always
    verified"""
    attempt_limit: PositiveInt = 300
    """connection attempts per attempt_window_s, for the whole process"""
    attempt_window_s: PositiveFloat = 300.0
    """(replicas behind one egress IP: split the 300 among them)"""
    max_lifetime_s: PositiveFloat = 84600.0
    """a connection is replaced make-before-break by this age (Binance closes at 24 h)..."""
    rollover_lead_s: NonNegativeFloat = 60.0
    """...its replacement opens this long before it"""
    rollover_overlap_s: PositiveFloat = 10.0
    """both run until the new one is in step, at most this long"""
    redundancy: Literal[1, 2] = 1
    """2: every shard on two connections (legs A, B); each record's first arrival wins"""
    url_b: Annotated[str, AfterValidator(_websocket_host)] = ""
    """leg B's ws(s)://host:port (default: url's); the shard's path follows"""

    @model_validator(mode="after")
    def _backoff_range(self) -> ConnectionConfig:
        if self.backoff_max_s < self.backoff_initial_s:
            raise Invalid("backoff_max_s", f"must be >= backoff_initial_s "
                                           f"({self.backoff_initial_s})")
        return self

    @model_validator(mode="after")
    def _second_leg(self) -> ConnectionConfig:
        if self.url_b and self.redundancy != 2:
            raise Invalid("url_b", "needs redundancy: 2")
        return self

    @model_validator(mode="after")
    def _rollover_lead(self) -> ConnectionConfig:
        if self.rollover_lead_s >= self.max_lifetime_s:
            raise Invalid("rollover_lead_s", f"must be < max_lifetime_s ({self.max_lifetime_s})")
        return self


class WsApiConfig(Section):
    url: Annotated[str, AfterValidator(_websocket_url)] = "wss://ws-api.binance.com:443/ws-api/v3"
    """WebSocket API endpoint (snapshots, exchangeInfo, sessions)"""
    api_key_file: KeyFile = ""
    """Ed25519 session keys: files (Kubernetes Secret volumes) or the..."""
    private_key_file: KeyFile = ""
    """...BINANCE_{API_KEY,PRIVATE_KEY,PRIVATE_KEY_PASSPHRASE} environment variables..."""
    private_key_passphrase_file: KeyFile = ""
    """...never in the config itself"""
    request_timeout_s: PositiveFloat = 10.0
    """a request unanswered this long fails (idempotent reads are retried)"""
    retries: NonNegativeInt = 2
    """for idempotent reads only"""
    weight_limit: PositiveInt = 6000
    """REQUEST_WEIGHT per weight_interval_s (the exchange's live limit when lower)"""
    weight_interval_s: PositiveFloat = 60.0
    """the REQUEST_WEIGHT window (followed live)"""
    weight_margin_s: NonNegativeFloat = 1.0
    """the budget's window is interval + margin"""
    recv_window_ms: Annotated[int, Field(ge=1, le=60000)] = 5000
    """recvWindow of signed requests"""


class BookConfig(Section):
    snapshots: bool = False
    """publish depth snapshots (WS API) so books rebuild from Kafka"""
    snapshot_limit: Annotated[int, Field(ge=1, le=5000)] = 5000
    """levels per side (weight 250 above 1000; >= 2 x top_n with publish)"""
    refresh_s: NonNegativeFloat = 0.0
    """also a fresh snapshot of every streamed symbol this often (0 = off)"""
    snapshot_source: Literal["wsapi", "rest"] = "wsapi"
    """rest: GET /api/v3/depth, a configured fallback"""
    rest_url: Annotated[str, AfterValidator(_http_url)] = "https://api.binance.com"
    """REST base URL for snapshot_source: rest"""
    publish: bool = False
    """keep a book per symbol in the handler; publish its top-N as `book` records"""
    top_n: Annotated[int, Field(ge=1, le=BOOK_LEVELS)] = BOOK_LEVELS
    """levels per side in a `book` record"""
    interval_ms: PositiveInt = 100
    """a `book` record of each changed valid book this often"""
    max_levels: NonNegativeInt = 0
    """levels per side the handler's books keep (0 = full depth, else >= 2 x top_n)"""
    max_buffer: Annotated[int, Field(ge=10_000, le=100_000_000)] = 1_000_000
    """depth rows a book holds while it waits for a snapshot, per symbol (96 bytes each);
    past it they are dropped and it holds the newest again, which a fresh snapshot needs
    (too few, and a busy symbol's snapshot comes too old for them)"""
    alert_interval_s: PositiveFloat = 10.0
    """book_crossed / book_ticker_mismatch: at most one per symbol this often"""

    @model_validator(mode="after")
    def _publish_needs_snapshots(self) -> BookConfig:
        if self.publish and not self.snapshots:
            raise Invalid("publish", "needs book.snapshots: true (a book is valid only from a "
                                     "snapshot)")
        # A side is refreshed once half of what it kept is gone (top_n at least): with less
        # room than 2 x top_n, every cancel near the top would fetch a snapshot.
        if self.max_levels and self.max_levels < 2 * self.top_n:
            raise Invalid("max_levels", f"must be 0 or >= 2 x top_n ({2 * self.top_n})")
        if self.publish and self.snapshot_limit < 2 * self.top_n:
            raise Invalid("snapshot_limit", f"must be >= 2 x top_n ({2 * self.top_n}) with "
                                            "publish")
        return self


def _all_or_symbols(value: Any) -> Any:
    """`all`, or symbols (a list, or comma-separated), upper-cased."""
    if value == "all":
        return value
    value = _comma_list(value)
    if isinstance(value, list):
        for name in value:
            if not isinstance(name, str) or not name.isalnum():
                raise ValueError(f"expected `all` or symbols; {name!r} is not a symbol")
        return [name.upper() for name in value]
    return value


def _stream_suffix(value: str) -> str:
    stream = parse_stream(f"x@{value}")
    if stream is None:
        raise ValueError(f"not a per-symbol stream suffix: {value!r} (e.g. trade, bookTicker, "
                         "depth@100ms, kline_1m)")
    return value


def _no_clash(streams: list[str]) -> list[str]:
    problem = clash(streams)
    if problem:
        raise ValueError(problem)
    return streams


def _suffixes_apart(suffixes: list[str]) -> list[str]:
    problem = suffix_clash(suffixes)
    if problem:
        raise ValueError(problem)
    return suffixes


TextList = Annotated[list[Text], BeforeValidator(_comma_list)]


class UniverseConfig(Section):
    """Streams from exchangeInfo instead of `streams` (exclusive with it): every TRADING symbol
    of `symbols` that passes the filters, times `kinds`; followed live every `refresh_s`."""

    kinds: Annotated[list[Annotated[str, AfterValidator(_stream_suffix)]],
                     BeforeValidator(_comma_list), AfterValidator(_suffixes_apart)
                     ] = Field(default_factory=list)
    """stream suffixes per symbol, e.g. [trade, depth@100ms]; empty: no universe (`streams`)"""
    symbols: Annotated[Literal["all"] | list[Text], BeforeValidator(_all_or_symbols)] = "all"
    """`all`, or the symbols to follow while they are TRADING, e.g. [BTCUSDT, ETHUSDT]"""
    quote_assets: TextList = Field(default_factory=list)
    """only symbols quoted in one of these, e.g. [USDT, FDUSD] (empty: any)"""
    permissions: TextList = Field(default_factory=list)
    """only symbols with one of these permissions, e.g. [SPOT] (empty: any)"""
    refresh_s: NonNegativeFloat = 60.0
    """read exchangeInfo again this often: listings subscribed, delistings unsubscribed
    (0 = at start only)"""
    max_delist: Annotated[float, Field(ge=0, le=1)] = 0.5
    """a refresh that would stop following more than this share of the followed symbols (and
    more than one) is held: none is removed, and the refresh is logged and counts as a failure
    (an exchange-wide BREAK for maintenance, or a truncated exchangeInfo, must not unsubscribe
    the market); 1 = no limit (a restart also applies a mass delisting)"""
    check_precision: bool = True
    """count prices off the tick size and quantities off the step size, per kind and symbol"""


def unknown_topics(config: HandlerConfig, streams: Iterable[str]) -> str:
    """Why `streams` would publish to topics that cannot be created or checked up front ("" if
    they would not): an all-market stream's records under a `{symbol}` template."""
    kafka = config.kafka
    market_wide = [s for s in streams if s.startswith("!")]
    if config.sink == "kafka" and "{symbol}" in kafka.topic_template and \
            kafka.encoding != "raw" and market_wide:
        return (f"{{symbol}} with an all-market stream ({market_wide[0]}) would make a topic "
                "per symbol of the market, which cannot be created or checked on start (give "
                "a template without {symbol}, or kafka.encoding: raw)")
    return ""


class HandlerConfig(Section):
    url: str = "wss://stream.binance.com:9443"
    """exchange base URL; /stream?streams=... is built per connection (a URL with a path is
    used as is: one connection, its streams the handler's, its timeUnit that of
    connection.time_unit)"""
    streams: Annotated[list[Text], Field(min_length=1), BeforeValidator(_comma_list)] = \
        Field(default_factory=lambda: ["btcusdt@bookTicker"])
    """Binance stream names (a list, or comma-separated)"""
    sink: Annotated[Literal["kafka", "null"], BeforeValidator(_sink_name)] = "kafka"
    """kafka, or null (decode and count only: benchmarks, checks)"""
    instance: str = ""
    """name in headers and events (empty: the host name)"""
    shard_index: NonNegativeInt = 0
    """this replica's part of the stream plan..."""
    shard_count: PositiveInt = 1
    """...when several replicas share one config"""
    max_messages: NonNegativeInt = 0
    """stop after this many data frames (0 = run until stopped)"""
    duration_s: NonNegativeFloat = 0.0
    """stop after this long (0 = run until stopped)"""
    shutdown_timeout_s: NonNegativeFloat = 10.0
    """flushing batches and the producer at SIGTERM"""
    health_port: Port = 0
    """HTTP /livez /readyz /metrics (0 = off)"""
    health_host: Text = "0.0.0.0"
    """all interfaces: probes and scrapes come from outside the pod"""
    health_writes: Literal["loopback", "any", "off"] = "loopback"
    """who may POST /subscriptions: loopback clients (kubectl exec or port-forward), any client
    that reaches the port, or none"""
    kafka: KafkaConfig = Field(default_factory=KafkaConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    connection: ConnectionConfig = Field(default_factory=ConnectionConfig)
    wsapi: WsApiConfig = Field(default_factory=WsApiConfig)
    book: BookConfig = Field(default_factory=BookConfig)
    universe: UniverseConfig = Field(default_factory=UniverseConfig)

    @field_validator("url")
    @classmethod
    def _stream_url(cls, value: str) -> str:
        _websocket_url(value)
        from_url = url_streams(value)  # a URL with a path names its streams itself
        if from_url is not None:
            _no_clash(normalize_streams(from_url))
        return value

    @field_validator("streams")
    @classmethod
    def _known_streams(cls, value: list[str]) -> list[str]:
        # split into connections later: no per-connection count here
        return _no_clash(normalize_streams(value, per_connection=None))

    @model_validator(mode="after")
    def _shard_in_range(self) -> HandlerConfig:
        if self.shard_index >= self.shard_count:
            raise Invalid("shard_index", f"must be below shard_count ({self.shard_count})")
        count = len(set(self.named_streams()))
        # (plan.replica_part gives each replica a run of the streams: some get none when
        # there are more replicas than streams)
        if not self.universe.kinds and self.shard_count > count:
            raise Invalid("shard_count", f"too many replicas for {count} stream"
                                         f"{'s' * (count != 1)}: some would get none")
        return self

    @model_validator(mode="after")
    def _snapshots_have_records(self) -> HandlerConfig:
        if self.kafka.encoding == "raw" and self.book.snapshots:
            raise Invalid("book.snapshots", "not with kafka.encoding: raw (a message of that "
                                            "encoding carries exchange frames; snapshots and "
                                            "books are records)")
        return self

    @model_validator(mode="after")
    def _raw_frames_fit_a_message(self) -> HandlerConfig:
        # A raw message never splits a frame: one the decoder takes must fit librdkafka's
        # message.max.bytes (max_message_bytes + MESSAGE_OVERHEAD), else its every record is
        # lost to MSG_SIZE_TOO_LARGE
        if self.kafka.encoding != "raw":
            return self
        frame = self.connection.max_frame_bytes + 1 + KEY_AND_HEADERS
        why = f"with kafka.encoding: raw, which never splits a frame (connection." \
              f"max_frame_bytes {self.connection.max_frame_bytes})"
        if self.kafka.max_message_bytes < frame - MESSAGE_OVERHEAD:
            raise Invalid("kafka.max_message_bytes",
                          f"must be at least {frame - MESSAGE_OVERHEAD} {why}")
        # (and librdkafka's whole queue: else that message is refused as "queue full" for
        # ever, and every message behind it waits)
        if 0 < self.kafka.queue_bytes() < frame:
            if "queue.buffering.max.kbytes" in self.kafka.producer:
                raise Invalid(("kafka", "producer", "queue.buffering.max.kbytes"),
                              f"must be at least {math.ceil(frame / 1024)} {why}")
            raise Invalid("kafka.queue_mb", f"must be at least {math.ceil(frame / 2**20)} {why}")
        return self

    def weighed_requests(self) -> list[tuple[int, str]]:
        """(weight, what) of the WebSocket API requests the configuration makes."""
        needs = []
        if self.book.snapshots:
            needs.append((depth_weight(self.book.snapshot_limit),
                          f"a book.snapshot_limit {self.book.snapshot_limit} snapshot"))
        if self.universe.kinds:
            needs.append((request_weight("exchangeInfo", None), "exchangeInfo (universe)"))
        if self.uses_wsapi:
            needs.append((CONNECT_WEIGHT, "a WebSocket API connection"))
        return needs

    def named_streams(self) -> list[str]:
        """The streams configured: a URL's that names them, else `streams`."""
        return url_streams(self.url) or self.streams

    @property
    def uses_wsapi(self) -> bool:
        """Whether the handler needs the WebSocket API: the universe's exchangeInfo, or depth
        snapshots from it."""
        return bool(self.universe.kinds) or (self.book.snapshots
                                             and self.book.snapshot_source == "wsapi")

    @model_validator(mode="after")
    def _requests_fit_the_budget(self) -> HandlerConfig:
        # (snapshots and exchangeInfo share one weight budget: a request heavier than all of
        # it would never be sent, and books would never be synced)
        for weight, what in self.weighed_requests():
            if weight > self.wsapi.weight_limit:
                raise Invalid("wsapi.weight_limit", f"must be at least {weight}, the weight of "
                                                    f"{what}")
        return self

    @model_validator(mode="after")
    def _books_have_diffs(self) -> HandlerConfig:
        # snapshots and books follow the diff-depth streams only: without one they would do
        # nothing, silently
        if not self.book.snapshots:
            return self
        streams = [f"x@{suffix}" for suffix in self.universe.kinds] or self.named_streams()
        kinds = {stream.kind for stream in map(parse_stream, streams) if stream}
        if "depth" not in kinds:
            raise Invalid("book.snapshots", "no diff-depth stream (`<symbol>@depth`, "
                          "`@depth@100ms`) in the streams: snapshots and books follow those "
                          "only (a partial depth stream, `@depth5` ..., is a whole book itself)")
        return self

    @model_validator(mode="after")
    def _refreshes_fit_their_half(self) -> HandlerConfig:
        # The budget grants refreshes half its limit (the other half is the resyncs'): rounds
        # that need more never finish on time, and ask again meanwhile. (With universe.kinds
        # the symbols come later: not known here.)
        book, wsapi = self.book, self.wsapi
        if not (book.snapshots and book.refresh_s > 0) or self.universe.kinds:
            return self
        mine = replica_part(set(self.named_streams()), self.shard_index, self.shard_count)
        symbols = {s.symbol for s in map(parse_stream, mine) if s and s.kind == "depth"}
        weight = depth_weight(book.snapshot_limit)
        per_window = refresh_ceiling(wsapi.weight_limit, weight) // weight
        window_s = wsapi.weight_interval_s + wsapi.weight_margin_s
        least = len(symbols) * window_s / per_window  # (a granted refresh holds a window)
        if book.refresh_s < least:
            raise Invalid("book.refresh_s", f"must be at least {math.ceil(least)}: "
                          f"{len(symbols)} symbols' snapshots of weight {weight} each, "
                          f"{per_window} in each {window_s:g} s window (refreshes get half of "
                          f"wsapi.weight_limit {wsapi.weight_limit}; the other half is the "
                          f"resyncs')")
        return self

    @model_validator(mode="after")
    def _symbol_topics_known(self) -> HandlerConfig:
        problem = unknown_topics(self, self.named_streams())
        if problem:
            raise Invalid("kafka.topic_template", problem)
        return self

    @model_validator(mode="after")
    def _url_used_as_it_is(self) -> HandlerConfig:
        # A URL that names its streams is one connection of this replica's, used as it is:
        # its timeUnit, not connection.time_unit, says what the exchange sends, and the
        # decoder scales by the latter (a mismatch would be every time off by 1000)
        named = url_streams(self.url)
        if named is None:
            return self
        unit, given = url_time_unit(self.url)
        if self.connection.time_unit != unit:
            raise Invalid("connection.time_unit", f"must be {unit}, the url's timeUnit "
                          f"({given or 'none: milliseconds'}), which is used as it is")
        if self.shard_count > 1:
            raise Invalid("shard_count", "must be 1 with a url that names its streams (each "
                                         "replica would read them all: give the base URL)")
        if len(named) > self.connection.streams_per_connection:
            raise Invalid("url", f"names {len(named)} streams, more than one connection's "
                                 f"connection.streams_per_connection "
                                 f"({self.connection.streams_per_connection})")
        return self

    @model_validator(mode="after")
    def _universe_alone(self) -> HandlerConfig:
        if not self.universe.kinds:
            return self
        if "streams" in self.model_fields_set:
            raise Invalid("streams", "not with universe.kinds: the universe makes the streams "
                                     "(set one or the other)")
        if url_streams(self.url) is not None:
            raise Invalid("url", "names its streams: not with universe.kinds (give the base URL)")
        if self.shard_count > 1:
            raise Invalid("shard_count", "must be 1 with universe.kinds (the universe follows "
                                         "listings live)")
        if self.connection.redundancy != 1:
            raise Invalid("connection.redundancy", "must be 1 with universe.kinds (listings "
                                                   "follow by live subscriptions, one leg each)")
        return self

    @model_validator(mode="after")
    def _one_exchange(self) -> HandlerConfig:
        # exchangeInfo and depth snapshots come from the exchange the streams come from: the
        # defaults are Binance's production endpoints, and with `url` elsewhere (the
        # simulator, a testnet) they would mix two markets, e.g. books from one's snapshot and
        # the other's diffs
        if (urlsplit(self.url).hostname or "") in BINANCE_SPOT_STREAM_HOSTS:
            return self
        if self.uses_wsapi and "url" not in self.wsapi.model_fields_set:
            raise Invalid(("wsapi", "url"), f"must be the WebSocket API of the exchange url "
                          f"is on ({self.url}; the simulator's: ws://HOST:PORT/ws-api/v3), not "
                          f"Binance's")
        if self.book.snapshots and self.book.snapshot_source == "rest" and \
                "rest_url" not in self.book.model_fields_set:
            raise Invalid(("book", "rest_url"), f"must be the REST API of the exchange url is "
                          f"on ({self.url}), not Binance's")
        return self


def load_config_with_origins(path: str | Path | None = None,
                             overrides: Mapping[str, Any] | None = None,
                             environ: Mapping[str, str] | None = None,
                             flag_names: Mapping[str, str] | None = None,
                             ) -> tuple[HandlerConfig, Origins]:
    """The config and where each value came from (see `config_layers.load`)."""
    return load(HandlerConfig, path, overrides, os.environ if environ is None else environ,
                flag_names)


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                environ: Mapping[str, str] | None = None,
                flag_names: Mapping[str, str] | None = None) -> HandlerConfig:
    """`overrides` uses dotted keys ("kafka.bootstrap") and wins over file and environment
    (`environ`, default os.environ); raises ConfigError with one line."""
    return load_config_with_origins(path, overrides, environ, flag_names)[0]
