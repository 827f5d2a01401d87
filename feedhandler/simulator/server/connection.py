"""One client connection: events out, control messages in, heartbeat, limits and faults.

Events are encoded in chunks (`frames.encode_events`) and written straight to the transport
under picows, in the same order as picows' own control frames (both go through the transport's
one write buffer). Writing stops while the transport is over its high-water mark
(`pause_writing`) and resumes from `resume_writing`, so a slow reader costs at most
`write_buffer` + one chunk of memory.

The source is the connection's view of the shared market (paced mode: the market paces, the
connection sends what it is given) or a source of its own (fast, replay). The pump runs from
the event loop: each turn it asks the pacer how many events are due, trims
that to the `max_messages` budget and to the next scheduled fault, sends them, fires the faults
due at the new count, and schedules its next turn.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport

from feedhandler.simulator.server import control
from feedhandler.simulator.server.config import SimulatorConfig
from feedhandler.simulator.server.faults import FaultSchedule
from feedhandler.simulator.server.frames import EncodedChunk, encode_events, wrap_combined
from feedhandler.simulator.server.heartbeat import Heartbeat
from feedhandler.simulator.server.limits import SlidingWindow
from feedhandler.simulator.server.pacing import Pacer
from feedhandler.simulator.server.source import FrameSource
from feedhandler.simulator.server.stamping import stamp_send_time
from feedhandler.simulator.server.subscriptions import Subscriptions
from feedhandler.simulator.server.urls import StreamRequest, TimeUnit

_LOG = logging.getLogger(__name__)
_COUNTED = frozenset(
    (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION, WSMsgType.PING, WSMsgType.PONG)
)
_PROTOCOL_ERROR = 1002
_POLICY_VIOLATION = 1008
_MESSAGE_TOO_BIG = 1009

SourceOp = Callable[[FrameSource], None]


class Connection(WSListener):
    """Server side of one WebSocket; also the `faults.Target` the fault API acts on."""

    def __init__(
        self,
        *,
        cid: int,
        peer: str,
        request: StreamRequest,
        subscriptions: Subscriptions,
        source: FrameSource,
        pacer: Pacer,
        config: SimulatorConfig,
        on_open: Callable[[Connection], None],
        on_close: Callable[[Connection], object],
    ) -> None:
        super().__init__()
        self.id = cid
        self.peer = peer
        self.time_unit: TimeUnit = request.time_unit
        self.combined = request.combined
        self._subs = subscriptions
        self._source = source
        self._pacer = pacer
        self._config = config
        self._schedule = FaultSchedule(config.faults, cid)
        self._on_open = on_open
        self._on_close = on_close
        self._loop = asyncio.get_running_loop()
        self._transport: WSTransport | None = None
        self._incoming = SlidingWindow(config.max_incoming, config.incoming_window)
        self._heartbeat = Heartbeat(
            self._loop,
            config.ping_interval,
            config.pong_timeout,
            self._send_ping,
            lambda: self.close(_POLICY_VIOLATION, "Pong timeout"),
        )
        self._pending: deque[EncodedChunk] = deque()  # encoded, not yet (fully) written
        self._pending_pos = 0  # frames of _pending[0] already written
        self._deferred: list[SourceOp] | None = None  # source ops queued during pregeneration
        self._pregeneration: asyncio.Task[None] | None = None
        self._pump_handle: asyncio.Handle | None = None
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._paused = False
        self._idle = False  # the source had nothing: wait for SUBSCRIBE
        self._closing = False
        self._pings_ignored_until = -math.inf
        self.closed: asyncio.Future[None] = self._loop.create_future()
        # counters, read by tests and benchmarks
        self.sent = 0  # market events
        self.bytes_sent = 0  # their wire bytes
        self.injected = 0  # fault frames (malformed, oversized, ...)
        self.received = 0  # client messages, close frames excluded
        self._fragments: bytearray | None = None  # a fragmented client message so far

    # --- read-only views -------------------------------------------------------------------
    def subscriptions(self) -> list[str]:
        return self._subs.names()

    @property
    def pings_sent(self) -> int:
        return self._heartbeat.pings_sent

    @property
    def pongs_accepted(self) -> int:
        return self._heartbeat.pongs_accepted

    @property
    def write_buffer_size(self) -> int:
        """Bytes queued in the transport, not yet taken by the kernel."""
        if self._transport is None or self._transport.is_disconnected:
            return 0
        return int(self._transport.underlying_transport.get_write_buffer_size())

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._closing

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.peer} streams={len(self._subs)} sent={self.sent}>"

    # --- picows callbacks ------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        transport.underlying_transport.set_write_buffer_limits(high=self._config.write_buffer)
        self._heartbeat.start()
        self._timers["lifetime"] = self._loop.call_later(
            self._config.lifetime, self.close, 1000, "Connection lifetime exceeded"
        )
        self._on_open(self)
        self._source.subscribe(self._subs.names())
        self._schedule.fire(self, 0)
        if self._config.fast and self._config.pregenerate:
            self._deferred = []
            self._pregeneration = self._loop.create_task(
                self._pregenerate(self._config.pregenerate)
            )
        self._wake()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            self._on_close_frame(transport)
            return
        if self._closing or kind not in _COUNTED:
            return
        request = None
        if kind in (WSMsgType.TEXT, WSMsgType.BINARY, WSMsgType.CONTINUATION):
            request = self._reassembled(kind, frame)
            if request is None:  # a fragment of a message still coming, or a protocol error
                return
        self.received += 1  # a message once whole: a fragmented one counts once
        if not self._incoming.hit(self._loop.time()):
            self.close(_POLICY_VIOLATION, "Too many requests")
        elif kind == WSMsgType.PING:
            if self._loop.time() >= self._pings_ignored_until:
                transport.send_pong(frame.get_payload_as_bytes())
        elif kind == WSMsgType.PONG:
            self._heartbeat.on_pong(frame.get_payload_as_bytes())
        elif request is not None:
            transport.send(WSMsgType.TEXT, control.handle(request, self))

    def _reassembled(self, kind: WSMsgType, frame: WSFrame) -> bytes | None:
        """A data frame's whole message (RFC 6455 §5.4: a client may fragment it), or None
        while more fragments are due or after closing for a fragment out of place or a
        message past max_frame_size."""
        payload = frame.get_payload_as_bytes()
        if (kind == WSMsgType.CONTINUATION) == (self._fragments is None):
            self.close(_PROTOCOL_ERROR, "Unexpected continuation" if self._fragments is None
                       else "Expected a continuation")
            return None
        if self._fragments is None:
            if frame.fin:
                return payload
            self._fragments = bytearray()
        self._fragments += payload
        if len(self._fragments) > self._config.max_frame_size:
            self.close(_MESSAGE_TOO_BIG, "Message too big")
            return None
        if not frame.fin:
            return None
        message, self._fragments = bytes(self._fragments), None
        return message

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._closing = True
        self._heartbeat.stop()
        self._cancel_pump()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._pending.clear()
        if self._deferred is None:  # a shared market stops sending our streams for us
            self._source.unsubscribe(self._subs.names())
        if not self.closed.done():
            self.closed.set_result(None)
        self._on_close(self)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._pacer.restart(self._loop.time())
        self._wake()

    # --- market.Reader ---------------------------------------------------------------------
    def source_ready(self) -> None:
        """The shared market queued events for an idle connection: send them."""
        if self._idle:
            self._idle = False
            self._wake()

    # --- control.Session -------------------------------------------------------------------
    def subscribe(self, streams: list[str]) -> None:
        new = self._subs.add(streams)  # raises SubscriptionError
        if new:
            self._on_source(lambda source: source.subscribe(new))
            if self._idle:
                self._idle = False
                self._pacer.restart(self._loop.time())
                self._wake()

    def unsubscribe(self, streams: list[str]) -> None:
        gone = self._subs.remove(streams)
        if gone:
            self._on_source(lambda source: source.unsubscribe(gone))

    # --- faults.Target ---------------------------------------------------------------------
    def abort(self) -> None:
        """Drop TCP without a close frame."""
        if self._transport is not None and not self._transport.is_disconnected:
            self._closing = True
            self._transport.disconnect(graceful=False)

    def stall(self, seconds: float) -> None:
        """Send neither events nor pings for `seconds`; everything else keeps working."""
        self._heartbeat.pause()
        if "stall" in self._timers:
            self._timers["stall"].cancel()
        self._timers["stall"] = self._loop.call_later(seconds, self._unstall)

    def inject(self, kind: str, stream: str, n: int) -> None:
        """A sequence fault on `stream`; ignored when this connection is not subscribed to it."""
        if stream not in self._subs:
            return
        if kind == "gap":
            self._on_source(lambda source: source.inject_gap(stream, n))
        elif kind == "duplicate":
            self._on_source(lambda source: source.inject_duplicate(stream))
        elif kind == "reorder":
            self._on_source(lambda source: source.inject_reorder(stream))
        else:
            raise ValueError(f"unknown sequence fault {kind!r}")

    def send_raw(self, opcode: int, payload: bytes) -> None:
        if self.is_open and self._transport is not None:
            self._transport.send(WSMsgType(opcode), payload)
            self.injected += 1

    def ignore_pings(self, seconds: float | None) -> None:
        self._pings_ignored_until = math.inf if seconds is None else self._loop.time() + seconds

    def close(self, code: int, reason: str = "") -> None:
        """Start the close handshake; TCP is dropped when the client answers or after
        `close_timeout`."""
        if self._transport is None or self._closing:
            return
        self._closing = True
        self._heartbeat.stop()
        self._cancel_pump()
        self._transport.send_close(WSCloseCode(code), reason.encode())
        self._timers["close"] = self._loop.call_later(
            self._config.close_timeout, self._transport.disconnect
        )

    def send_server_shutdown(self) -> None:
        now_ns = time.time_ns()
        stamp = now_ns // 1_000_000 if self.time_unit == "ms" else now_ns // 1_000
        event = orjson.dumps({"e": "serverShutdown", "E": stamp})
        if self.combined:
            event = wrap_combined("!serverShutdown", event)
        if self.is_open and self._transport is not None:
            self._transport.send(WSMsgType.TEXT, event)

    # --- sending ---------------------------------------------------------------------------
    def _send_ping(self, payload: bytes) -> None:
        if self._transport is not None:
            self._transport.send_ping(payload)

    def _on_close_frame(self, transport: WSTransport) -> None:
        if not self._closing:  # client-initiated: answer, then drop TCP
            self._closing = True
            self._cancel_pump()
            transport.send_close(WSCloseCode.OK)
        transport.disconnect()

    def _unstall(self) -> None:
        del self._timers["stall"]
        self._heartbeat.resume()
        self._pacer.restart(self._loop.time())
        self._wake()

    def _on_source(self, op: SourceOp) -> None:
        if self._deferred is None:
            op(self._source)
        else:
            self._deferred.append(op)

    def _budget(self) -> float:
        limit = self._config.max_messages
        return math.inf if limit is None else limit - self.sent

    def _blocked(self) -> bool:
        return (
            self._closing
            or self._paused
            or self._idle
            or "stall" in self._timers
            or self._deferred is not None
            or self._budget() <= 0
        )

    def _wake(self, when: float | None = None) -> None:
        if self._pump_handle is not None or self._blocked():
            return
        if when is None or when <= self._loop.time():
            self._pump_handle = self._loop.call_soon(self._pump)
        else:
            self._pump_handle = self._loop.call_at(when, self._pump)

    def _cancel_pump(self) -> None:
        if self._pump_handle is not None:
            self._pump_handle.cancel()
            self._pump_handle = None

    def _pump(self) -> None:
        self._pump_handle = None
        if self._blocked():
            return
        now = self._loop.time()
        allowed = int(min(self._pacer.allowance(now), self._budget()))
        until_fault = self._schedule.until_next(self.sent)
        if until_fault is not None:
            allowed = min(allowed, until_fault)
        if allowed > 0:
            count = self._send_events(allowed)
            if count == 0:
                self._idle = True  # nothing subscribed, or the recording has ended
                return
            self._pacer.consumed(count)
            self._schedule.fire(self, self.sent)
        wakeup = self._pacer.next_wakeup(now)
        if wakeup is not None:
            self._wake(wakeup)

    def _send_events(self, limit: int) -> int:
        """Write up to `limit` events: from pre-generated chunks first, then fresh ones."""
        if not self._pending:
            events = self._source.next_frames(limit)
            if not events:
                return 0
            if self._config.wall_clock:
                events = stamp_send_time(events, self.time_unit)
            self._pending.append(encode_events(events, self.combined))
            self._pending_pos = 0
        chunk = self._pending[0]
        count = min(limit, len(chunk) - self._pending_pos)
        data = chunk.span(self._pending_pos, count)
        self._pending_pos += count
        if self._pending_pos == len(chunk):
            self._pending.popleft()
            self._pending_pos = 0
        self.sent += count
        self.bytes_sent += len(data)
        assert self._transport is not None
        self._transport.underlying_transport.write(data)
        return count

    async def _pregenerate(self, count: int) -> None:
        """Encode `count` events in a worker thread before the first is sent (fast mode), so
        the wire rate is not bounded by the market model. Frames keep the `combined` setting
        of this moment; control and faults issued meanwhile apply to the events after them."""
        combined, batch, source = self.combined, self._config.batch, self._source

        def generate() -> list[EncodedChunk]:
            chunks = []
            left = count
            while left > 0:
                events = source.next_frames(min(batch, left))
                if not events:
                    break
                chunks.append(encode_events(events, combined))
                left -= len(events)
            return chunks

        try:
            chunks = await self._loop.run_in_executor(None, generate)
        except Exception:
            _LOG.exception("connection %d: pre-generation failed", self.id)
            self.close(1011, "Internal error")
            return
        if self._closing:
            return
        self._pending.extend(chunks)
        deferred, self._deferred = self._deferred or [], None
        for op in deferred:
            op(self._source)
        self._wake()
