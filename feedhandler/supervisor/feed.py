"""One shard's data path as the supervisor sees it: its decoder, epochs and reconnect gaps.

The connections of a shard feed it: one at a time, or two while a make-before-break rollover
overlaps the old connection with its replacement. Each listener is one "leg" (0 or 1) of the
decoder; while two are open the decoder drops what one leg already delivered (set_overlap),
in C++, so the records stay exactly once with no Python per message. What a replacement
brings past ids the old connection still owes waits for them, and goes out should the old
one stop (`stopped`).

A/B redundancy (`redundant`): two Connections feed the shard all the time, one per leg.
`trusted` are the legs whose jumps past a hole the decoder takes (both: the first arrival
wins; one: the other leg is joining, or lost the lead while stuck, and its ids past a hole
are owed by the trusted one until it is in step).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from feedhandler._ext.decoder import BOTH_LEGS, Decoder
from feedhandler._ext.listener import FeedListener
from feedhandler.supervisor.plan import Shard

if TYPE_CHECKING:
    from feedhandler.supervisor.subscriptions import SubscriptionClient

EventSink = Callable[[dict[str, Any]], None]


class ShardFeed:
    def __init__(self, shard: Shard, decoder: Decoder, publish_event: EventSink, *,
                 max_frames: int = 0, on_limit: Callable[[], None] | None = None,
                 max_message_bytes: int = 1 << 20, redundant: bool = False,
                 epochs: Iterator[int] | None = None) -> None:
        """`epochs`: the numbers of connection attempts, shared by the instance's feeds so that
        an epoch names one connection (a stream removed and added again may come back on
        another shard, or a new one)."""
        self.shard = shard
        self.decoder = decoder
        self.epoch = 0  # this feed's latest connection attempt; records carry it (Kafka header)
        self._epochs = epochs if epochs is not None else itertools.count(1)
        self.listeners: list[FeedListener] = []  # open connections feeding the decoder
        self._publish_event = publish_event
        self._max_frames = max_frames
        self._on_limit = on_limit
        self._max_message_bytes = max_message_bytes
        self._frames_before = 0  # frames of closed connections
        self._last_frame_before_ns = 0
        self._lost_at_ns = 0  # last frame (or open) of the lost connection, until the next opens
        self._orphaned = False  # a replacement's predecessor was lost: the replacement leads
        self._paused = False
        # The subscription clients of the connections feeding this shard: the decoder's
        # control replies are routed to them by request id (subscriptions.route_control).
        self.subscriptions: list[SubscriptionClient] = []
        # Per leg of the decoder, set when the exchange announces `serverShutdown` on that
        # connection: it rolls over (a redundant shard's other leg serves on).
        self.shutdown_notices = (asyncio.Event(), asyncio.Event())
        self.redundant = redundant
        self.trusted: set[int] = set()
        # Per leg, set when the other leg took the lead from it (`stopped` while open): its
        # connection waits to be back in step, then is trusted again (connection._join).
        self.demoted = (asyncio.Event(), asyncio.Event())
        self._overlap: int | None = None  # the decoder's set_overlap, while redundant

    @property
    def frames(self) -> int:
        """Data frames: the connections' frames less the replies to our subscription
        requests."""
        return self._frames_before + sum(listener.frames for listener in self.listeners) - \
            sum(client.replies for client in self.subscriptions)

    @property
    def listener(self) -> FeedListener | None:
        """The connection feeding the decoder now, if any."""
        return self.listeners[0] if self.listeners else None

    @property
    def caught_up(self) -> bool:
        """Whether each of the feed's connections has read all its socket holds. False while
        one has data waiting (the exchange sends faster than the handler reads), and when it
        cannot be known: no connection (a replay's feed, or between connections). Over TLS
        data the TLS layer took from the socket and has not yet decrypted is not seen."""
        return bool(self.listeners) and all(listener.unread() == 0
                                            for listener in self.listeners)

    @property
    def last_frame_ns(self) -> int:
        """Wall-clock time of the latest data frame of any connection; 0 before the first."""
        current = max((listener.last_frame_ns for listener in self.listeners), default=0)
        return current or self._last_frame_before_ns

    def event(self, kind: str, **fields: Any) -> None:
        self._publish_event({"type": kind, "shard": self.shard.index, "epoch": self.epoch,
                             "ts_ns": time.time_ns(), **fields})

    def report(self, event: dict[str, Any]) -> None:
        """An event given as a dict (`type` and fields) as one of this shard's events."""
        fields = dict(event)
        self.event(fields.pop("type"), **fields)

    # --- a connection's life ----------------------------------------------------------------
    def attempting(self, replacing: bool = False, leg: int | None = None,
                   leads: bool = False) -> None:
        """A new connection attempt. A replacement continues the open connection's sequences
        (one market behind both), and the overlap starts now: it may deliver as soon as its
        handshake ends, before `opened`. The old one is the primary, unless the replacement
        `leads` (the old one went silent: it owes nothing). So does a redundant `leg` while
        the other leg is open: it joins, untrusted. After a loss the sequences start over."""
        self.epoch = next(self._epochs)
        if replacing:  # (after its predecessor was lost, the attempt it waited for leads)
            self.decoder.set_overlap(self.listeners[0].leg ^ (leads or self._orphaned))
            return
        if not (self.redundant and self.listeners):
            self.decoder.reset_sequences()
        if leg is not None:  # (a joining leg's in-step counts start from zero)
            self.decoder.leg_connected(leg)
            if self.listeners:  # (with none open, the first leg to come up leads: _connected)
                self._trust({listener.leg for listener in self.listeners}, restart=True)

    def trust(self, leg: int) -> None:
        """A joining redundant leg is in step (or waited rollover_overlap_s): a peer now."""
        if any(listener.leg == leg for listener in self.listeners):
            self._trust(self.trusted | {leg})

    def hand_over(self, leg: int, max_lag_ns: int) -> bool:
        """True, and `leg` no longer trusted, when the other leg is open, trusted and keeping
        up (its latest frame at most `max_lag_ns` older than `leg`'s: one silently stuck
        would lose what `leg` still delivers): `leg` may close (a rollover) with no gap. One
        leg at a time: the other now waits for this one to be back in step."""
        other = 1 - leg
        peer = next((x for x in self.listeners if x.leg == other), None)
        mine = next((x for x in self.listeners if x.leg == leg), None)
        if other not in self.trusted or peer is None or (
                mine is not None and mine.last_frame_ns - peer.last_frame_ns > max_lag_ns):
            return False
        self._trust({other})
        return True

    def reached(self, leg: int) -> int:
        """Records `leg` emitted first, plus its copies of the last emitted ones: it is not
        behind when these grow (its copies of older ones, a backlog, count in neither)."""
        return self.decoder.leg_counts(leg)[0] + self.decoder.leg_counts(1 - leg)[1]

    def _trust(self, legs: set[int], restart: bool = False) -> None:
        self.trusted = legs
        overlap = BOTH_LEGS if len(legs) == 2 else min(legs)
        if overlap != self._overlap or restart:  # set_overlap zeroes the in-step counts
            self._overlap = overlap
            self.decoder.set_overlap(overlap)

    def new_listener(self, leg: int | None = None, url: str = "") -> FeedListener:
        """`url`: where it connects (a redundant leg's; default: the shard's)."""
        # Frames still owed under --max-messages, across reconnects.
        remaining = self._max_frames - self.frames if self._max_frames else 0
        listener = FeedListener(self.decoder, lambda opened: self._connected(opened, url),
                                max_frames=remaining, on_limit=self._limit_reached,
                                max_message_bytes=self._max_message_bytes)
        if leg is not None:  # a redundant leg
            listener.leg = leg
        elif self.listeners:  # a replacement: the other leg of the decoder
            listener.leg = 1 - self.listeners[0].leg
        return listener

    def opened(self, listener: FeedListener) -> None:
        """The supervisor serves this connection (its events went out at the handshake)."""
        self._lost_at_ns = 0  # (kept until now: a connection dropped before this repeats it)
        self.listeners.append(listener)
        self._apply_pause(listener)  # a connection made while the sink is backed up waits too

    def _connected(self, listener: FeedListener, url: str) -> None:
        """The handshake is done and none of the connection's frames is decoded yet (picows
        calls this before the rest of its read, whose batches may be handed over before
        `opened`): its events are published before any of its records. A redundant leg that
        comes up while no other leg is open leads, before any of its frames is decoded: both
        legs may have been attempting at once, the other trusted meanwhile, and this one's
        records past a hole would have been held for a leg that is not there."""
        if self.redundant and all(other.leg == listener.leg for other in self.listeners):
            self._trust({listener.leg}, restart=True)
        self.event("connected", url=url or self.shard.url, streams=len(self.shard.streams),
                   **self.leg_field(listener))
        if self._lost_at_ns:
            # Whatever the exchange sent after the last frame we had and before this
            # connection opened is gone: exactly that range, in ts_recv terms.
            self.event("gap", reason="reconnect", from_ns=self._lost_at_ns,
                       to_ns=listener.connected_ns)

    def leg_field(self, listener: FeedListener) -> dict[str, int]:
        """The `leg` of a redundant shard's connection events."""
        return {"leg": listener.leg} if self.redundant else {}

    def closed(self, listener: FeedListener) -> None:
        self.stopped(listener)
        self.listeners.remove(listener)
        self._orphaned = False
        if self.redundant:  # the open legs carry on (the decoder stays in overlap)
            open_legs = {other.leg for other in self.listeners}
            self._trust(self.trusted & open_legs or open_legs or {1 - listener.leg})
        else:
            self.end_overlap()
        self._frames_before += listener.frames
        self._last_frame_before_ns = listener.last_frame_ns or self._last_frame_before_ns
        if not self.listeners and not self._lost_at_ns:
            self._lost_at_ns = listener.last_frame_ns or listener.connected_ns

    def predecessor_lost(self, listener: FeedListener) -> None:
        """`listener`'s connection ended while its replacement was still connecting: the
        replacement, once connected, leads (nothing is owed by a connection that is gone; what
        it repeats is still dropped), and it reports what came before it as a reconnect gap."""
        self.stopped(listener)
        self.decoder.set_overlap(1 - listener.leg)  # (the overlap may not have begun)
        self._orphaned = True
        if not self._lost_at_ns:
            self._lost_at_ns = listener.last_frame_ns or listener.connected_ns

    def stopped(self, listener: FeedListener) -> None:
        """`listener`'s connection delivers no more (it ended, or is stuck): if it led, the
        records the decoder held for it to deliver the ids before them go out now, past a
        `missing` gap of exactly the ids neither connection delivered, and the other
        connection leads (a redundant leg: until this one is back in step)."""
        if self.decoder.leg_lost(listener.leg) and self.redundant:
            self.trusted = {1 - listener.leg}
            self._overlap = 1 - listener.leg
            self.demoted[listener.leg].set()

    def end_overlap(self) -> None:
        """Back to one connection's checks, unless two still feed the decoder."""
        if len(self.listeners) < 2:
            self.decoder.set_overlap(None)

    def fed(self, frames: int, last_frame_ns: int) -> None:
        """Frames given to the decoder without a listener (replay)."""
        self._frames_before += frames
        self._last_frame_before_ns = last_frame_ns

    def _limit_reached(self, _listener: FeedListener) -> None:
        if self._on_limit is not None:
            self._on_limit()

    # --- sink backpressure ------------------------------------------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    def pause_reading(self) -> None:
        """Stop reading from the exchange; holds across reconnects."""
        self._paused = True
        for listener in self.listeners:
            self._apply_pause(listener)

    def resume_reading(self) -> None:
        self._paused = False
        for listener in self.listeners:
            self._apply_pause(listener)

    def _apply_pause(self, listener: FeedListener) -> None:
        if listener.transport is not None:
            transport = listener.transport.underlying_transport
            if self._paused:
                transport.pause_reading()
            else:
                transport.resume_reading()
