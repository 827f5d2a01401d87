"""One exchange connection: connect, decode until it drops, reconnect with capped backoff.

Every (re)connect starts a new epoch; the time between losing a connection and the next one
delivering is a window in which data may have been missed, so it is published as a gap event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from picows import WSError, ws_connect

from feedhandler._ext.decoder import Decoder
from feedhandler._ext.listener import FeedListener
from feedhandler.config import HandlerConfig
from feedhandler.supervisor.plan import Shard

log = logging.getLogger(__name__)

EventSink = Callable[[dict[str, Any]], None]


class Backoff:
    """Exponential backoff with full jitter and a cap; reset once a connection delivers."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial, self.maximum = initial, maximum
        self._attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2**self._attempt)
        self._attempt += 1
        return self._rng.uniform(0, delay)

    def reset(self) -> None:
        self._attempt = 0


class ShardConnection:
    def __init__(self, shard: Shard, config: HandlerConfig, decoder: Decoder,
                 publish_event: EventSink, max_frames: int = 0,
                 on_limit: Callable[[], None] | None = None) -> None:
        self.shard = shard
        self.config = config
        self.decoder = decoder
        self.epoch = 0
        self.frames_before = 0  # frames of earlier epochs
        self.listener: FeedListener | None = None
        self.failed_attempts = 0  # connects failed since the last success (for /readyz)
        self.last_error = ""  # why the last connect failed
        self._publish_event = publish_event
        self._max_frames = max_frames
        self._on_limit = on_limit
        self._backoff = Backoff(config.connection.backoff_initial_s,
                                config.connection.backoff_max_s)
        self._lost_at_ns = 0
        self._last_frame_before_ns = 0
        self._paused = False

    @property
    def frames(self) -> int:
        return self.frames_before + (self.listener.frames if self.listener else 0)

    @property
    def last_frame_ns(self) -> int:
        """Wall-clock time of the latest data frame of any epoch; 0 before the first."""
        current = self.listener.last_frame_ns if self.listener else 0
        return current or self._last_frame_before_ns

    def pause_reading(self) -> None:
        """Stop reading from the exchange (sink backpressure); holds across reconnects."""
        self._paused = True
        self._apply_pause()

    def resume_reading(self) -> None:
        self._paused = False
        self._apply_pause()

    def _apply_pause(self) -> None:
        if self.listener is not None and self.listener.transport is not None:
            transport = self.listener.transport.underlying_transport
            if self._paused:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _event(self, kind: str, **fields: Any) -> None:
        self._publish_event({"type": kind, "shard": self.shard.index, "epoch": self.epoch,
                             "ts_ns": time.time_ns(), **fields})

    def _make_listener(self) -> FeedListener:
        # Frames still owed under --max-messages, across reconnects.
        remaining = self._max_frames - self.frames if self._max_frames else 0
        return FeedListener(self.decoder, max_frames=remaining, on_limit=self._limit_reached)

    def _limit_reached(self, _listener: FeedListener) -> None:
        if self._on_limit is not None:
            self._on_limit()

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config.connection
        while not stop.is_set():
            self.epoch += 1
            self.decoder.reset_sequences()
            try:
                transport, listener = await ws_connect(
                    self._make_listener,
                    self.shard.url,
                    enable_auto_ping=True,
                    auto_ping_idle_timeout=cfg.ping_interval_s,
                    auto_ping_reply_timeout=cfg.ping_timeout_s,
                    max_frame_size=max(cfg.max_frame_bytes * 4, 16 << 20),
                )
            except (TimeoutError, OSError, WSError) as exc:
                self.failed_attempts += 1
                self.last_error = str(exc)
                delay = self._backoff.next_delay()
                log.warning("shard %d: connect to %s failed (%s); retrying in %.2fs",
                            self.shard.index, self.shard.url, exc, delay)
                self._event("connect_failed", error=str(exc), retry_in_s=round(delay, 3))
                await _sleep_unless(stop, delay)
                continue
            assert isinstance(listener, FeedListener)  # what _make_listener made
            self.listener = listener
            self.failed_attempts, self.last_error = 0, ""
            self._apply_pause()  # a connection made while the sink is backed up waits too
            self._backoff.reset()
            self._event("connected", url=self.shard.url, streams=len(self.shard.streams))
            if self._lost_at_ns:
                # Whatever the exchange sent between the drop and now is gone.
                self._event("gap", reason="reconnect", from_ns=self._lost_at_ns,
                            to_ns=time.time_ns())
            stopper = asyncio.ensure_future(stop.wait())
            dropped = asyncio.ensure_future(transport.wait_disconnected())
            await asyncio.wait({stopper, dropped}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not dropped.done():
                transport.disconnect()
                await dropped
            self.frames_before += listener.frames
            self._last_frame_before_ns = listener.last_frame_ns or self._last_frame_before_ns
            self.listener = None
            if stop.is_set():
                return
            self._lost_at_ns = time.time_ns()
            code = listener.close_code
            log.warning("shard %d: disconnected (close code %s); reconnecting", self.shard.index,
                        code)
            self._event("disconnected", close_code=int(code.value) if code is not None else None)
            await _sleep_unless(stop, self._backoff.next_delay())


async def _sleep_unless(stop: asyncio.Event, delay: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)
