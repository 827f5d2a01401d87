"""The feed handler process: shards -> decoders -> sink, plus the timers that serve them.

Python runs here per batch (on_batch), per bad frame (on_error) and per timer tick; never per
message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import signal
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from feedhandler import __version__
from feedhandler._ext.decoder import SIMD_KERNEL, Decoder
from feedhandler.app.health import HealthServer
from feedhandler.app.latency import LatencyHistograms
from feedhandler.app.live import LiveStreams
from feedhandler.book.live import HandlerBooks
from feedhandler.book.rest import RestDepth
from feedhandler.book.sync import DepthSource, SnapshotSync
from feedhandler.config import ConfigError, HandlerConfig
from feedhandler.contract import Frames, data_topics, stream_kind
from feedhandler.contract.kinds import DATA_ROLES, KINDS, Role
from feedhandler.logs import Throttle
from feedhandler.records import SCHEMAS
from feedhandler.signals import SavedHandlers
from feedhandler.sinks.base import HoldingSink, Sink
from feedhandler.sinks.null import NullSink
from feedhandler.supervisor.backoff import Backoff
from feedhandler.supervisor.feed import ShardFeed
from feedhandler.supervisor.plan import Shard, plan
from feedhandler.supervisor.status import HandlerStatus
from feedhandler.supervisor.subscriptions import route_control
from feedhandler.supervisor.transport import tls_context_for
from feedhandler.supervisor.tree import ChildFactory, Supervisor
from feedhandler.universe import PrecisionCheck, UniverseTracker
from feedhandler.wsapi import Credentials, KeySources, WeightBudget, WsApiClient

log = logging.getLogger(__name__)

SERVICE_INTERVAL_S = 0.002  # linger checks and Kafka delivery reports


@dataclass
class HandlerStats:
    frames: int = 0
    records: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    gaps: int = 0
    reconnects: int = 0
    elapsed_s: float = 0.0
    close_s: float = 0.0  # flushing batches and the sink at shutdown
    sink: dict[str, Any] = field(default_factory=dict)
    supervisor: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        rate = self.frames / self.elapsed_s if self.elapsed_s else 0.0
        return {"frames": self.frames, "records": dict(self.records), "errors": dict(self.errors),
                "gaps": self.gaps, "reconnects": self.reconnects,
                "elapsed_s": round(self.elapsed_s, 3), "frames_per_s": round(rate),
                "close_s": round(self.close_s, 3), "sink": self.sink,
                "connections": self.supervisor}


def make_sink(config: HandlerConfig,
              on_ack_latency: Callable[[str, np.ndarray], None] | None = None) -> Sink:
    if config.sink == "null":
        return NullSink()
    from feedhandler.sinks.kafka import KafkaSink

    kafka = config.kafka
    derived = ("book",) if config.book.publish else ()
    return KafkaSink(kafka, config.instance or socket.gethostname(), config.connection.time_unit,
                     data_topics(config.named_streams(), kafka.topic_template, kafka.exchange,
                                 kafka.market, derived), on_ack_latency, derived)


class Handler:
    def __init__(self, config: HandlerConfig, sink: Sink | None = None, *,
                 make_child: ChildFactory | None = None,
                 reload: Callable[[], HandlerConfig] | None = None,
                 wrap_sink: Callable[[Sink], Sink] | None = None) -> None:
        """`make_child(feed)` makes each shard's frame source: by default an exchange
        connection; a recording's reader for replay. `reload` reads the configuration again
        at SIGHUP (its streams apply live). `wrap_sink(sink)` (the recorder) wraps the
        configured sink, which still reports its acks to the latency histograms. With
        `universe.kinds` the plan starts empty and the universe tracker fills it from
        exchangeInfo."""
        if config.universe.kinds:
            config = config.model_copy(update={"streams": []})
        self.config = config
        self.latency = LatencyHistograms()
        if sink is None:
            sink = make_sink(config, self.latency.observe_acks)
        self.sink = wrap_sink(sink) if wrap_sink is not None else sink
        self._holding = sink if isinstance(sink, HoldingSink) else None  # (wrapped or not)
        self.stats = HandlerStats()
        self._stop = asyncio.Event()
        self._error_lines = Throttle(ERROR_LINE_S)  # per (reason, stream)
        self._paused = False
        self._retired_frames = 0
        self._handed: list[tuple[str, np.ndarray, int]] = []  # (kind, batch, hand-over ns)
        self._backlog_limit = config.kafka.backlog_limit_mb << 20
        self.error: BaseException | None = None  # what stopped the handler, if not a request
        self.signalled: int | None = None  # the SIGINT/SIGTERM that stopped it, if one did
        self.heartbeat = time.monotonic()  # last run of the service loop (/livez)
        self.health: HealthServer | None = None
        self.wsapi: WsApiClient | None = None
        self.book_sync: SnapshotSync | None = None
        self.books: HandlerBooks | None = None
        self.universe: UniverseTracker | None = None
        self.precision: PrecisionCheck | None = None
        self._universe_task: asyncio.Task[None] | None = None
        self._epochs = itertools.count(1)  # every connection attempt of the instance its own
        self.shards = [
            self._feed(shard)
            for shard in plan(config.url, config.named_streams(),
                              config.connection.streams_per_connection,
                              config.connection.time_unit, config.shard_index, config.shard_count)
        ]
        self.supervisor = Supervisor(self.shards, config.connection, make_child=make_child)
        self.supervisor.on_start_refusal = self.stop
        self.live = LiveStreams(self, reload)  # runtime stream changes
        self._reloads: set[asyncio.Task[None]] = set()
        api = self.config.wsapi
        self._budget = WeightBudget(api.weight_limit, api.weight_interval_s,
                                    api.weight_margin_s,
                                    max((w for w, _ in config.weighed_requests()), default=1))
        if config.uses_wsapi:
            self.wsapi = self._wsapi_client()
        if config.book.snapshots:
            self.book_sync = self._book_sync()
        if config.book.publish:
            assert self.book_sync is not None  # (book.publish needs book.snapshots)
            self.books = HandlerBooks(config.book, self._publish_books, self._publish_event,
                                      self.book_sync.want, self.book_sync.disconnected,
                                      self._depth_symbols)
        if config.universe.kinds:
            self.universe = self._universe()

    def _publish_books(self, rows: np.ndarray) -> None:
        self.sink.publish_batch("book", rows, 0)
        self.stats.records["book"] += len(rows)  # (made here, not decoded: counted here)

    def _wsapi_client(self) -> WsApiClient:
        """One WebSocket API connection for snapshots and exchangeInfo."""
        api = self.config.wsapi
        credentials = Credentials.load(KeySources(
            api.api_key_file, api.private_key_file, api.private_key_passphrase_file))
        return WsApiClient(
            api.url, self._budget, credentials=credentials,
            request_timeout_s=api.request_timeout_s, retries=api.retries,
            recv_window_ms=api.recv_window_ms,
            backoff=Backoff(self.config.connection.backoff_initial_s,
                            self.config.connection.backoff_max_s),
            backoff_reset_after_s=self.config.connection.backoff_reset_after_s,
            limiter=self.supervisor.limiter, on_event=self._publish_event,
            ssl_context=tls_context_for(api.url, self.config.connection.ca_file))

    def _book_sync(self) -> SnapshotSync:
        """Depth snapshots through the WS API (or REST, when configured), published as
        snapshot rows (epoch 0: not from a stream connection)."""
        book = self.config.book
        source: DepthSource
        if book.snapshot_source == "rest":
            source = RestDepth(book.rest_url, self._budget, self.config.wsapi.request_timeout_s)
        else:
            assert self.wsapi is not None  # (made for wsapi snapshots)
            source = self.wsapi
        return SnapshotSync(source, self._publish_snapshot,
                            limit=book.snapshot_limit, refresh_s=book.refresh_s,
                            on_event=self._publish_event, paused=lambda: self._paused,
                            streamed=self._depth_symbols)

    def _depth_symbols(self) -> set[str]:
        """The symbols whose diff depth the connections stream now."""
        return _depth_of(self.shards)

    def _universe(self) -> UniverseTracker:
        """The stream plan from exchangeInfo, with the tick/step check when configured."""
        universe = self.config.universe
        if universe.check_precision:
            self.precision = PrecisionCheck(self._publish_event)
        assert self.wsapi is not None
        return UniverseTracker(
            self.wsapi.exchange_info, self.live, symbols=universe.symbols,
            kinds=universe.kinds, quote_assets=universe.quote_assets,
            permissions=universe.permissions, refresh_s=universe.refresh_s,
            on_event=self._publish_event, precision=self.precision,
            max_delist=universe.max_delist)

    def _publish_snapshot(self, rows: np.ndarray) -> None:
        if self.books is not None:
            self.books.on_depth(rows)
        self.sink.publish_batch("depth", rows, 0)

    def add_feed(self, shard: Shard) -> ShardFeed:
        """A shard added at runtime (a live subscription change needs a new connection)."""
        feed = self._feed(shard)
        self.shards.append(feed)
        if self._paused:
            feed.pause_reading()
        return feed

    def remove_feed(self, feed: ShardFeed) -> None:
        """A retired shard's connection has closed: publish what its decoder holds and let
        it go (its frames stay counted)."""
        feed.decoder.flush()
        self._observe_handed()
        self._retired_frames += feed.frames
        self.shards.remove(feed)

    @property
    def frames(self) -> int:
        """Data frames decoded so far, by every shard (retired ones too)."""
        return self._retired_frames + sum(s.frames for s in self.shards)

    def _feed(self, shard: Shard) -> ShardFeed:
        holder: list[ShardFeed] = []

        def on_batch(kind: str, records: np.ndarray,
                     frames: tuple[bytes, np.ndarray, np.ndarray] | None = None) -> None:
            # (as little as possible before the hand-over: receive -> produce runs until it)
            if kind == "depth" and self.book_sync is not None:
                self.book_sync.on_depth(records)  # before the sink owns the records
            if self.books is not None:
                if kind == "depth":
                    self.books.on_depth(records)
                elif kind == "bookTicker":
                    self.books.on_book_ticker(records)
            if kind in UNPUBLISHED_KINDS:
                self.stats.records[kind] += len(records)
                if kind in GAP_KINDS:
                    self._publish_gaps(records, shard.index, holder[0].epoch)
                return  # (control frames are published by on_control)
            if self.precision is not None:  # counted, still published: exact exchange values
                self.precision.check(kind, records)
            if frames is None:
                self.sink.publish_batch(kind, records, holder[0].epoch)
            else:
                self.sink.publish_batch(kind, records, holder[0].epoch, Frames(*frames))
            # stamped at the hand-over, which receive -> produce measures, and observed after
            # the burst's last one (or at the next service tick), so that no kind's batch
            # waits for another's bookkeeping (sinks never change the time columns)
            self._handed.append((kind, records, time.time_ns()))
            self.stats.records[kind] += len(records)
            if not self._paused and not self._stop.is_set() and \
                    self.sink.backlog_bytes() > self._backlog_limit:
                # at once, not at the next service tick: a loaded loop would read on meanwhile
                self._pause_reads()

        batch = self.config.batch
        decoder = Decoder(
            on_batch, functools.partial(self._on_error, shard.index),
            lambda frame, leg: self._on_control(holder[0], frame, leg),
            batch_rows={kind: batch.rows_for(kind, s.itemsize) for kind, s in SCHEMAS.items()},
            linger_ms={kind: batch.linger_for(kind) for kind in SCHEMAS},
            max_frame=self.config.connection.max_frame_bytes,
            time_unit=self.config.connection.time_unit,
            # raw (archival) encoding: on_batch also gets the frames each batch came from
            capture_frames=(self.config.sink == "kafka" and self.config.kafka.encoding == "raw")
            or getattr(self.sink, "captures_frames", False),  # e.g. the recorder's sink
            burst=batch.burst,  # hand over once the loop has decoded the read burst
            after_burst=lambda: self._after_burst(holder[0]),
        )
        feed = ShardFeed(shard, decoder, self._publish_event,
                         max_frames=self.config.max_messages, on_limit=self._maybe_done,
                         max_message_bytes=self.config.connection.max_frame_bytes,
                         redundant=self.config.connection.redundancy == 2, epochs=self._epochs)
        holder.append(feed)
        return feed

    # --- callbacks from the decoders ------------------------------------------------------
    def _after_burst(self, feed: ShardFeed) -> None:
        """A burst's batches were handed over."""
        self._release_held((feed,))
        self._observe_handed()

    def _release_held(self, feeds: Sequence[ShardFeed]) -> None:
        """Records a sink holds (kafka.hold_ms) wait only while the handler is behind the
        exchange: once `feeds` have read what was sent so far they go, so holding costs latency
        only under load. Asked of a burst's feed at its end, and of every feed at the service
        tick (another leg's duplicates, a partial frame left unread)."""
        holding = self._holding
        if holding is not None and holding.holding and feeds and \
                all(feed.caught_up for feed in feeds):
            holding.caught_up()

    def _observe_handed(self) -> None:
        """Latencies of the batches handed over since the last call."""
        handed, self._handed = self._handed, []
        for kind, records, handed_ns in handed:
            self.latency.observe_batch(kind, records, handed_ns)

    def _on_error(self, shard: int, reason: str, field: str, stream: str, frame: bytes) -> None:
        self.stats.errors[reason] += 1
        stream = stream[:STREAM_SHOWN]
        # A line per reason and stream at most every ERROR_LINE_S, with a sample and how many
        # came since the last one: a flood of bad frames does not flood the log. (A hostile
        # peer's made-up stream names share one entry once ERROR_LINE_KEYS are taken.)
        key = (reason, stream)
        if key not in self._error_lines and len(self._error_lines) >= ERROR_LINE_KEYS:
            key = (reason, "")
        rejected = self._error_lines.due(key)
        if rejected is not None:
            log.error("shard %d: rejected frame: %s at field %r of stream %r; sample: %r%s",
                      shard, reason, field, stream, frame[:200],
                      f" ({rejected - 1} more of this reason and stream since its last line)"
                      if rejected > 1 else "")
        self.sink.publish_dead_letter(reason, field, stream, frame)

    def _on_control(self, feed: ShardFeed, frame: bytes, leg: int) -> None:
        # Replies to our subscription requests go to the connection that asked (by id);
        # error replies become `subscription_error` events there.
        if route_control(frame, feed.subscriptions, feed.report):
            return
        message = frame.decode("utf-8", "replace")
        self._publish_event({"type": "exchange_control", "message": message})
        if _is_server_shutdown(frame):
            feed.shutdown_notices[leg].set()  # the connection it came on rolls over

    def _publish_gaps(self, rows: np.ndarray, shard: int, epoch: int) -> None:
        reasons = {1: "missing", 2: "backwards"}
        for row in rows:
            self.stats.gaps += 1
            self._publish_event({
                "type": "gap", "reason": reasons.get(int(row["reason"]), "unknown"),
                "kind": SCHEMAS_BY_INDEX[int(row["kind"])],
                "symbol": bytes(row["symbol"]).decode(),
                "expected": int(row["expected"]), "received": int(row["received"]),
                "ts_recv": int(row["ts_recv"]), "shard": shard, "epoch": epoch,
            })

    def _publish_event(self, event: dict[str, Any]) -> None:
        if event["type"] == "disconnected" and "shard" in event:  # (not the WS API's)
            self.stats.reconnects += 1
        self.sink.publish_control(event)
        # (a stream connection's, not the WS API's)
        if event["type"] == "disconnected" and "shard" in event and self.book_sync is not None:
            self.book_sync.lost(_depth_of(stopped_by(self.shards, event)))

    def _maybe_done(self) -> None:
        if self.config.max_messages and \
                self.frames >= self.config.max_messages:
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    def on_signal(self, sig: int) -> None:
        """SIGINT/SIGTERM: stop, and remember which (an interrupted replay exits 3)."""
        self.signalled = sig
        self.stop()

    def _reload(self) -> None:
        if self.live.reload_config is None:
            log.warning("SIGHUP ignored: only `feedhandler run` reads its configuration again")
            return
        task = asyncio.create_task(self.live.reload(), name="reload")
        self._reloads.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._reloads.discard)

    def status(self) -> HandlerStatus:
        """The snapshot /readyz and /metrics read."""
        return HandlerStatus(self.supervisor.status(), self.sink.summary(),
                             self.sink.backlog_bytes(), self._paused,
                             self.books.summary() if self.books is not None else {},
                             dict(self.precision.violations) if self.precision else {},
                             requests=self.request_summary(),
                             snapshots=self.book_sync.summary()
                             if self.book_sync is not None else {},
                             **(self.universe.status() if self.universe else {}))

    def request_summary(self) -> dict[str, int]:
        """The WS API client's counts and the weight budget it shares with REST snapshots
        (empty when the handler sends no request)."""
        if self.wsapi is None and self.book_sync is None:
            return {}
        counts = {"weight_used": self._budget.used(), "weight_limit": self._budget.limit}
        if self.wsapi is not None:
            counts |= {**dataclasses.asdict(self.wsapi.stats),
                       "connected": int(self.wsapi.connected)}
        return counts

    @property
    def paused(self) -> bool:
        """Exchange reads paused because the sink's backlog is over its limit."""
        return self._paused

    @property
    def wsapi_start_refusal(self) -> str:
        """The WS API refused its first connection for good (a configuration error)."""
        wsapi = self.wsapi
        return f"wsapi: {wsapi.refused}" if wsapi and wsapi.refused and \
            not wsapi.stats.connects else ""

    def _wsapi_done(self, task: asyncio.Task[None]) -> None:
        if self.wsapi_start_refusal:  # exit 2, as for a stream connection refused at start
            self.stop()
        else:  # (refused later: requests fail with errors.Refused, the handler serves on)
            self._task_done(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        # A connection or service task must not die quietly and leave the process half alive:
        # stop (flushing what was read) and let the exit code tell the orchestrator.
        if not task.cancelled() and task.exception() is not None and self.error is None:
            self.error = task.exception()
            log.error("handler task failed; stopping", exc_info=self.error)
            self.stop()

    # --- main loop ------------------------------------------------------------------------
    def _pause_reads(self) -> None:
        backlog = self.sink.backlog_bytes()
        self._paused = True
        log.warning("sink backlog %d bytes over limit: pausing exchange reads", backlog)
        self._publish_event({"type": "paused", "backlog_bytes": backlog})
        for shard in self.shards:
            shard.pause_reading()

    async def _service(self) -> None:
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            for shard in self.shards:
                shard.decoder.flush_expired()
            # batches that left full, at their linger cap, or without burst mode
            self._observe_handed()
            if self.books is not None:
                self.books.service()
            self._release_held(self.shards)
            self.sink.service()
            self._maybe_done()
            backlog = self.sink.backlog_bytes()
            if not self._paused and backlog > self._backlog_limit:
                self._pause_reads()
            elif self._paused and backlog < self._backlog_limit // 2:
                self._paused = False
                log.warning("sink backlog drained: resuming exchange reads")
                self._publish_event({"type": "resumed", "backlog_bytes": backlog})
                for shard in self.shards:
                    shard.resume_reading()
            await asyncio.sleep(SERVICE_INTERVAL_S)

    async def run(self) -> HandlerStats:
        loop = asyncio.get_running_loop()
        self.heartbeat = time.monotonic()
        if self.config.health_port:  # first: a taken port fails the start, before any read
            self.health = HealthServer(self, self.config.health_host, self.config.health_port,
                                       self.config.health_writes)
            await self.health.start()
        # (after the port's check: a configuration refused is then the one line on stderr)
        kinds = self.config.universe.kinds
        log.info("decoder SIMD kernel: %s; %s; sink=%s", SIMD_KERNEL,
                 f"universe {kinds} from exchangeInfo" if kinds
                 else f"{len(self.config.named_streams())} streams", self.config.sink)
        # the loop's handlers while it runs, then those from before (the command line's keep
        # a late signal from turning exit 0 into 143; in-process users get theirs back)
        previous = SavedHandlers()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.on_signal, sig)
        # (SIGHUP's default would end the process unflushed: record and replay ignore it)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        started = time.perf_counter()
        self._publish_event({"type": "started", "ts_ns": time.time_ns(), "version": __version__,
                             "streams": sum(len(f.shard.streams) for f in self.shards)})
        self.supervisor.start(self._task_done)
        service = asyncio.create_task(self._service(), name="service")
        service.add_done_callback(self._task_done)
        if self.wsapi is not None:
            await self.wsapi.start()
            assert self.wsapi.task is not None
            self.wsapi.task.add_done_callback(self._wsapi_done)
        if self.universe is not None:
            self._universe_task = asyncio.create_task(self.universe.run(), name="universe")
            self._universe_task.add_done_callback(self._task_done)
        if self.config.duration_s:
            loop.call_later(self.config.duration_s, self.stop)
        try:
            await self._stop.wait()
        finally:
            stopping = time.perf_counter()
            if self.health is not None:
                # Probes stop at pod deletion; the flush below blocks the loop anyway.
                self.health.close()
            self.stats.elapsed_s = stopping - started
            if self._universe_task is not None:  # no plan change while connections close
                self._universe_task.cancel()
                await asyncio.gather(self._universe_task, return_exceptions=True)
            for task in list(self._reloads):  # (nor a SIGHUP's)
                task.cancel()
            await asyncio.gather(*self._reloads, return_exceptions=True)
            # Open connections close gracefully; pending connects and handshakes are
            # cancelled: both within a second, whatever the peer does.
            self.supervisor.stop()
            await self.supervisor.wait_stopped()
            service.cancel()
            await asyncio.gather(service, return_exceptions=True)
            for shard in self.shards:
                shard.decoder.flush()
            self._observe_handed()
            self._publish_event({"type": "stopped", "ts_ns": time.time_ns(),
                                 "frames": self.frames})
            if self.books is not None:  # (a short's book_resync event; close cancels its fetch)
                self.books.service()
            if self.book_sync is not None:
                await self.book_sync.close()
            if self.wsapi is not None:
                await self.wsapi.close()
            if self.books is not None:
                self.books.publish()  # the books as the last records left them
            self.stats.frames = self.frames
            closing = time.perf_counter()
            budget = self.config.shutdown_timeout_s - (closing - stopping)
            undelivered = self.sink.close(max(0.5, budget))
            self.stats.close_s = time.perf_counter() - closing
            self.stats.sink = self.sink.summary()
            self.stats.supervisor = self.supervisor.status().summary()
            if undelivered:
                log.error("%d messages undelivered at shutdown", undelivered)
            # (not remove_signal_handler for all: it sets the default, which a signal arriving
            # right then would meet; the loop's own handler goes with the loop)
            previous.restore(loop.remove_signal_handler)
        refusal = self.supervisor.start_refusal or self.wsapi_start_refusal
        if refusal:
            raise ConfigError(refusal)
        return self.stats


SCHEMAS_BY_INDEX = list(SCHEMAS)
# An unknown stream's name as the dead letter's key and fh.stream header, and in the log: the
# frame says what it was; a name of 400 kB would make the broker refuse the dead letter.
STREAM_SHOWN = 256
ERROR_LINE_S = 10.0  # a rejected frame's log line: at most this often per reason and stream
ERROR_LINE_KEYS = 1024  # (reason, stream) pairs followed apart, at most
# Kinds whose rows are not records on a data topic (sets: an enum member is a slow lookup)
UNPUBLISHED_KINDS = frozenset(kind.name for kind in KINDS if kind.role not in DATA_ROLES)
GAP_KINDS = frozenset(kind.name for kind in KINDS if kind.role is Role.GAP)


def _is_server_shutdown(frame: bytes) -> bool:
    """`serverShutdown`, raw or in the combined wrapper (control frames are rare: parsed)."""
    try:
        message = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return False
    if isinstance(message, dict) and isinstance(message.get("data"), dict):
        message = message["data"]
    return isinstance(message, dict) and message.get("e") == "serverShutdown"


def stopped_by(feeds: Iterable[ShardFeed], event: dict[str, Any]) -> list[ShardFeed]:
    """The feeds a stream connection's `disconnected` event stopped: its shard's, unless
    another leg still feeds it (a redundant shard's events name their `leg`). Not by the open
    connections alone: one that ended before its rollover's replacement opened is still
    listed when this is told."""
    leg = event.get("leg")
    return [feed for feed in feeds if feed.shard.index == event["shard"]
            and (leg is None or all(other.leg == leg for other in feed.listeners))]


def _depth_of(feeds: Iterable[ShardFeed]) -> set[str]:
    """The symbols whose diff depth `feeds` stream."""
    return {symbol for feed in feeds
            for kind, symbol in map(stream_kind, feed.shard.streams) if kind == "depth"}
