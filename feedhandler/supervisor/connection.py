"""One exchange connection as a supervised child: attempt, serve, watch, restart by policy.

Restart policy, by failure class (failures.py):
- transient: capped full-jitter backoff, for ever; the backoff resets only once a connection
  has delivered data for `backoff_reset_after_s`, so a peer that accepts and closes at once
  sees growing delays;
- throttled (429/418): the shared limiter blocks every attempt of the process for the
  Retry-After (or ban) time;
- permanent (400/401/403): before the first successful connection, `start_refusal` is set and
  the child ends (the supervisor stops the handler: exit 2); later, the child is quarantined.

Live subscriptions: each connection has a SubscriptionClient; `set_streams` applies a
runtime change on the open link with SUBSCRIBE / UNSUBSCRIBE. The URL of every attempt
carries the shard's streams as they are then (unless that URL would be too long: then they
are subscribed once connected); once a shard was changed at runtime, every (re)connect also
reconciles them against LIST_SUBSCRIPTIONS (a change may have come while the attempt was
under way). An unchanged shard whose URL names its streams sends nothing, and every frame it
gets is data. The control topic hears of each stream's arrival and departure once
(`subscribed` / `unsubscribed`), not of a reconnect's re-subscriptions.

Make-before-break rollover: at `max_lifetime_s - rollover_lead_s`, or when the exchange
announces `serverShutdown`, a replacement opens on the same ShardFeed while the old connection
still serves; the decoder drops what both deliver. Once the replacement is in step (its
sequenced records meet the ones already emitted, with no hole in between), or after
`rollover_overlap_s`, the old one is closed. Only if the old one dies before the replacement
connects is there a reconnect (and a `gap`).

A/B redundancy (`leg` 0 or 1): two Connections serve one ShardFeed, each with its own
backoff; leg 1 may use `url_b`'s host. A leg that (re)connects while the other serves joins
it as a rollover's replacement does (trusted once in step, or after `rollover_overlap_s`).
A leg's lifetime or `serverShutdown` is a hand-over, not make-before-break: once the other
leg is open and in step, this one closes and reconnects at once (no backoff), one leg at a
time; its `rollover` event follows when it is back in step.

Every attempt goes through the process's AttemptLimiter. `connect` and `clock` are injectable,
so the state machine runs in tests without a network.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import random
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal, TypeVar

from picows import WSMsgType

from feedhandler._ext.listener import FeedListener
from feedhandler.config import ConnectionConfig
from feedhandler.contract import stream_kind
from feedhandler.contract.kinds import KIND_BY_NAME
from feedhandler.supervisor.backoff import Backoff
from feedhandler.supervisor.clock import SYSTEM_CLOCK, Clock
from feedhandler.supervisor.failures import Failure
from feedhandler.supervisor.feed import ShardFeed
from feedhandler.supervisor.limiter import AttemptLimiter
from feedhandler.supervisor.plan import MAX_URL_BYTES, Shard, leg_url
from feedhandler.supervisor.staleness import StalenessPolicy, Verdict, default_max_silence_s
from feedhandler.supervisor.subscriptions import ExchangeError, RequestTimeout, SubscriptionClient
from feedhandler.supervisor.transport import Link, LinkFailed, open_link

log = logging.getLogger(__name__)

T = TypeVar("T")
State = Literal["idle", "connecting", "open", "quarantined", "stopped"]
Connector = Callable[[str, Callable[[], FeedListener], ConnectionConfig,
                      ssl.SSLContext | None], Awaitable[Link]]
CLOSE_TIMEOUT_S = 1.0  # for the peer's reply to our close frame
OVERLAP_POLL_S = 0.05  # how often an overlap checks whether the replacement is in step
# A rollover's old connection that delivers nothing this long while its replacement delivers
# is stuck: the switch comes then, not after rollover_overlap_s (meanwhile the replacement's
# records past ids the old one owes are held, which costs their latency). A redundant leg
# does not hand over to a leg that lags this long behind it.
OLD_STALL_S = 0.5
# Replaced make-before-break: at the end of its lifetime or on the exchange's notice, and a
# silent one too, as it answers pings and may only be quiet (an illiquid symbol): a break
# would publish its whole silence as a reconnect gap. (A redundant leg hands over to the
# other leg for the first two only: a silent leg is replaced at once, as the other may be down.)
SCHEDULED_CAUSES = ("lifetime", "server_shutdown")
ROLLOVER_CAUSES = (*SCHEDULED_CAUSES, "silent")


class Stopped(Exception):
    """The supervisor asked the child to stop while it waited."""


class Connection:
    def __init__(self, feed: ShardFeed, config: ConnectionConfig, limiter: AttemptLimiter, *,
                 clock: Clock = SYSTEM_CLOCK, connect: Connector = open_link,
                 ssl_context: ssl.SSLContext | None = None,
                 rng: random.Random | None = None, leg: int | None = None) -> None:
        self.feed = feed
        self.leg = leg  # A/B redundancy: 0 or 1; None: the shard's only connection
        self.config = config
        self.limiter = limiter
        self.clock = clock
        self.state: State = "idle"
        self.link: Link | None = None
        self.failed_attempts = 0  # since the last successful connection (for /readyz)
        self.last_error = ""  # why the last attempt or connection failed
        self.start_refusal: Failure | None = None  # permanent refusal before any connection
        self.quarantine: Failure | None = None
        self.retired = False  # its streams went to none: stopped for good, not a shutdown
        self.replaced: Counter[str] = Counter()  # stale connections we replaced, by cause
        self.violations = 0  # connections we closed with 1002
        self.rollovers: Counter[str] = Counter()  # make-before-break replacements, by cause
        self.verdict = Verdict("ok")  # the latest staleness check of the open connection
        self.opened_at = 0.0
        self._connect = connect
        self._ssl_context = ssl_context
        self._connected_once = False
        # A permanent refusal before any connection means a bad plan: exit 2. A connection
        # opened for a runtime change is quarantined instead (the handler runs on).
        self.at_start = True
        self._backoff = Backoff(config.backoff_initial_s, config.backoff_max_s, rng)
        self.policy = StalenessPolicy(
            config.stale_after_s, config.ping_timeout_s,
            config.max_silence_s or default_max_silence_s(feed.shard.streams))
        self.subscriptions = SubscriptionClient(self, self._subscription_event)
        feed.subscriptions.append(self.subscriptions)
        # The streams the control topic was told are on this connection: the plan's at
        # start (a connection opened for a runtime change starts empty).
        self.announced = set(feed.shard.streams)
        self._subscribed: tuple[Link, set[str]] | None = None  # the exchange's, per link
        self._changed_live = False
        self._syncing = asyncio.Lock()
        self._handed_over = ""  # a redundant leg's rollover cause, until it is back in step
        self._reconnect_now = False  # after a hand-over: no backoff
        self._join_started = 0.0
        self._refused_replacement = False  # a permanent refusal of a rollover's replacement
        self._close_reported = False  # the rollover reported its old connection's end
        self._dialled = feed.shard  # the shard as the last attempt's URL named it

    @property
    def index(self) -> int:
        return self.feed.shard.index

    @property
    def listener(self) -> FeedListener | None:
        return self.link.listener if self.link is not None else None

    @property
    def max_silence_s(self) -> float:
        return self.policy.max_silence_s

    @property
    def url(self) -> str:
        url = self.feed.shard.url
        return leg_url(url, self.config.url_b) if self.leg == 1 and self.config.url_b else url

    # --- the child's life -------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set() and self.state not in ("quarantined", "stopped"):
                link = await self._attempt(stop)
                if link is not None:
                    await self._serve(link, stop)
                    if self.state == "open":  # lost: not open while the backoff runs
                        self.state = "connecting"  # (quarantined or stopped stay)
                    at_once, self._reconnect_now = self._reconnect_now, False
                    if not stop.is_set() and not at_once:
                        await self._pause(stop, self._backoff.next_delay())
        except Stopped:
            pass
        finally:
            if self.state != "quarantined":
                self.state = "stopped"

    async def _attempt(self, stop: asyncio.Event, replacing: bool = False,
                       leads: bool = False) -> Link | None:
        if not replacing:  # a rollover's connection stays open meanwhile
            self.state = "connecting"
            # an announcement to the lost one is moot (the other leg's is not)
            for leg, notice in enumerate(self.feed.shutdown_notices):
                if self.leg in (None, leg):
                    notice.clear()
        if stop.is_set():
            raise Stopped
        try:
            # the wait for the limiter's room too: a stop must not wait out a 418's block
            return await _unless(stop, self._connect_in_slot(replacing, leads))
        except LinkFailed as exc:
            await self._failed(exc.failure, stop, replacing)
            return None

    async def _connect_in_slot(self, replacing: bool, leads: bool = False) -> Link:
        async with self.limiter.attempt():
            self.feed.attempting(replacing, self.leg, leads)
            self._join_started = self.clock.now()
            self._dialled = self.feed.shard  # the streams its URL names (after the wait)
            try:
                return await self._connect(
                    self.url, functools.partial(self.feed.new_listener, self.leg, self.url),
                    self.config, self._ssl_context)
            except LinkFailed as exc:
                if exc.failure.kind == "throttled":  # blocked before the slot frees: no
                    self._throttled(exc.failure)  # attempt waiting for it may go first
                raise

    async def _failed(self, failure: Failure, stop: asyncio.Event, replacing: bool) -> None:
        self.failed_attempts += 1
        self.last_error = failure.reason
        shard, url = self.index, self.url
        if failure.kind == "permanent" and replacing:
            # the connection it would replace still serves: it is kept until it ends, and
            # only a refusal then quarantines the shard
            self._refused_replacement = True
            log.error("shard %d: %s refused the rollover's replacement: %s; the connection "
                      "serves until it ends", shard, url, failure.reason)
            self.feed.event("connect_failed", error=failure.reason, status=failure.status,
                            retry_in_s=None)
            return
        if failure.kind == "permanent":
            if self.at_start and not self._connected_once:
                self.start_refusal = failure
                self.state = "stopped"
                log.error("shard %d: %s refused the connection: %s", shard, url, failure.reason)
                self.feed.event("refused", status=failure.status, error=failure.reason)
            else:
                self.quarantine = failure
                self.state = "quarantined"
                log.error("shard %d: quarantined, %s refused the connection for good: %s "
                          "(streams: %s)", shard, url, failure.reason,
                          ",".join(self.feed.shard.streams))
                self.feed.event("quarantined", status=failure.status, error=failure.reason)
            return
        if failure.kind == "throttled":  # (the block is in place: _throttled)
            return
        delay = self._backoff.next_delay()
        log.warning("shard %d: connect to %s failed (%s); retrying in %.2fs", shard, url,
                    failure.reason, delay)
        self.feed.event("connect_failed", error=failure.reason, status=failure.status,
                        retry_in_s=round(delay, 3))
        await self._pause(stop, delay)

    def _throttled(self, failure: Failure) -> None:
        """A 429/418: the exchange counts per IP, so every attempt of this process waits, at
        least the backoff (a Retry-After of 0 must not turn the attempt budget into a burst)."""
        wait_s = max(failure.retry_after_s, self._backoff.next_delay())
        self.limiter.block_for(wait_s)
        log.warning("shard %d: connect to %s throttled (%s); all attempts wait %.1f s",
                    self.index, self.url, failure.reason, wait_s)
        self.feed.event("connect_failed", error=failure.reason, status=failure.status,
                        retry_in_s=round(wait_s, 3))

    async def _pause(self, stop: asyncio.Event, delay: float) -> None:
        await _unless(stop, self.clock.sleep(delay))

    async def _serve(self, link: Link, stop: asyncio.Event) -> None:
        self.feed.opened(link.listener)
        successor: Link | None = link
        while successor is not None:
            successor = await self._serve_one(successor, stop)

    async def _serve_one(self, link: Link, stop: asyncio.Event) -> Link | None:
        """Serve `link` (already feeding) until it ends; returns its rollover successor, open
        and feeding, or None when the connection is lost, replaced as stale, or stopped."""
        listener = link.listener
        self.link, self.state = link, "open"
        self.failed_attempts, self.last_error = 0, ""
        self._connected_once = True
        self.opened_at = self.clock.now()
        self.verdict = Verdict("ok")
        reconciling = asyncio.ensure_future(self._reconcile())  # this link's streams
        joining = asyncio.ensure_future(self._join(link, stop)) if self.leg is not None \
            else None
        replaced, successor, handed_over = "", None, False
        try:
            replaced = await self._watch(link, stop)
            if replaced in ROLLOVER_CAUSES:
                if self.leg is None:
                    successor = await self._roll_over(link, replaced, stop)
                    if successor is None and self._refused_replacement:
                        # no replacement to be had: it serves, watched as before, until it ends
                        self._refused_replacement = False
                        replaced = await self._watch(link, stop, roll=False)
                elif replaced in SCHEDULED_CAUSES and await self._hand_over(link, stop):
                    self._handed_over, self._reconnect_now = replaced, True
                    handed_over = True
        finally:
            reconciling.cancel()
            if joining is not None:
                joining.cancel()
            self.subscriptions.connection_lost()
            if stop.is_set() or not link.closed().done():
                reason = self._stop_reason() if stop.is_set() else \
                    "rollover" if successor is not None or self._reconnect_now else "stale"
                await link.close(CLOSE_TIMEOUT_S, 1000, reason)
            self.feed.closed(listener)
            self.link = None
        if successor is None and not self._close_reported:
            # a redundant leg's hand-over is a rollover (reported once it is back in step),
            # not a lost connection; a reconnect in place of a rollover is one
            self._report_close(link, replaced, stop.is_set() or handed_over)
        self._close_reported = False
        return successor

    async def _roll_over(self, old: Link, cause: str, stop: asyncio.Event) -> Link | None:
        """Open a replacement while `old` serves, overlap them until the replacement is in
        step (or `rollover_overlap_s`), and return it; None if `old` ends first."""
        if not self.feed.shard.by_url:
            # The replacement's URL would name no stream: it would deliver nothing until
            # subscribed, which only the adopted link is. A plain reconnect (its gap reported)
            # is honest; make-before-break needs the streams in the URL.
            log.warning("shard %d: %s: no make-before-break for a shard subscribed after "
                        "connecting (URL over %d bytes); reconnecting", self.index, cause,
                        MAX_URL_BYTES)
            self._reconnect_now = True  # (closed as a rollover, not as stale; no backoff)
            return None
        log.info("shard %d: rolling over (%s): opening the replacement", self.index, cause)
        duplicates = self.feed.decoder.duplicates
        try:
            while not old.closed().done():
                # a silent connection owes nothing: the replacement leads from its first frame
                attempt = asyncio.ensure_future(
                    self._attempt(stop, replacing=True, leads=cause == "silent"))
                racing: set[asyncio.Future[Any]] = {attempt, old.closed()}
                await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
                if not attempt.done():
                    # The old one ended first, as Binance may close soon after serverShutdown:
                    # the attempt under way is the reconnect (no backoff, no second handshake)
                    # and leads from its first frame; what came between is a reconnect gap.
                    self._report_close(old, "", planned=False)
                    self._close_reported = True
                    self.state = "connecting"
                    self.feed.predecessor_lost(old.listener)
                    await attempt
                    # (a failed attempt waited its backoff already: none more after it)
                    self._reconnect_now = attempt.result() is None
                new = attempt.result()
                if self._refused_replacement:
                    return None
                if new is None:
                    continue
                opened_for = self._dialled  # (a change during the limiter's wait is in it)
                if await self._overlap(old, new, cause, duplicates, opened_for, stop):
                    return new
                if self.feed.shard is opened_for:  # the replacement ended first: not at once
                    self.feed.end_overlap()  # (one connection feeds the decoder meanwhile)
                    pause = asyncio.ensure_future(self.clock.sleep(self._backoff.next_delay()))
                    try:
                        await _unless(stop, asyncio.wait({pause, old.closed()},
                                                         return_when=asyncio.FIRST_COMPLETED))
                    finally:
                        pause.cancel()
        finally:
            self.feed.end_overlap()  # when no replacement joined
            self.feed.shutdown_notices[old.listener.leg].clear()  # the old one's, now moot
        log.warning("shard %d: no replacement (%s) before the connection ended", self.index,
                    cause)
        return None

    async def _join(self, link: Link, stop: asyncio.Event) -> None:
        """A redundant leg: trusted once in step with the other (at once when alone). Should
        the other leg take the lead from it (it delivered nothing for OLD_STALL_S while the
        other did), trusted again only once its records are back in step and reached the
        last emitted ones: meanwhile its ids past a hole are the leader's to deliver, and the
        leader's holes are not its to fill."""
        feed, leg = self.feed, link.listener.leg
        duplicates = feed.decoder.duplicates
        demoted = feed.demoted[leg]
        demoted.clear()  # (this leg's previous connection's)
        try:
            in_step: bool | None = True
            if leg not in feed.trusted:
                # (the leg it joins: stuck, it is `stopped` and this one leads, holding nothing)
                peer = next((other for other in feed.listeners if other.leg != leg), None)
                in_step = await self._until_in_step(lambda: leg in feed.trusted, link,
                                                    self._join_started, stop, peer)
                if in_step is None:
                    return  # this connection ended first
                feed.trust(leg)
            if self._handed_over:
                cause, self._handed_over = self._handed_over, ""
                self.rollovers[cause] += 1
                feed.event("rollover", cause=cause, leg=leg, in_step=in_step,
                           overlap_s=round(self.clock.now() - self._join_started, 3),
                           duplicates=feed.decoder.duplicates - duplicates)
            while True:  # (cancelled when the link ends)
                await demoted.wait()
                demoted.clear()
                # No time limit, and no taking the lead back from a quiet leader (the leader's
                # own watch replaces it if it is dead): trusting a leg still stuck, or still
                # replaying what it missed, would hold the leader's records past a hole for
                # it, or hand over to it.
                since, reached = link.listener.frames, feed.reached(leg)
                while leg not in feed.trusted:  # (it is again once the leader closed)
                    in_step = await self._until_in_step(lambda: leg in feed.trusted, link,
                                                        self.clock.now(), stop, since=since)
                    if in_step is None:
                        return
                    if in_step and feed.reached(leg) > reached:
                        feed.trust(leg)
                        log.info("shard %d: leg %d back in step: trusted again", self.index,
                                 leg)
        except Stopped:
            return

    async def _hand_over(self, link: Link, stop: asyncio.Event) -> bool:
        """A redundant leg's rollover: True once the other leg took over (then this one
        closes and reconnects at once); False if this link ended first. Not to a leg that
        lags OLD_STALL_S behind this one (it may be stuck)."""
        while not link.closed().done():
            if self.feed.hand_over(link.listener.leg, int(OLD_STALL_S * 1e9)):
                log.info("shard %d: leg %d rolls over; the other leg serves meanwhile",
                         self.index, link.listener.leg)
                return True
            await _unless(stop, self.clock.sleep(OVERLAP_POLL_S))
        return False

    async def _overlap(self, old: Link, new: Link, cause: str, duplicates: int,
                       opened_for: Shard, stop: asyncio.Event) -> bool:
        """Both feed the decoder until `new` is in step; False (and `new` closed) if `new`
        ended first, or the streams changed while it connected or overlapped (its URL names
        the old ones; the old link got the change: a fresh replacement follows).
        `duplicates`: the decoder's count before the rollover."""
        feed = self.feed
        feed.opened(new.listener)  # the second listener (the decoder's overlap is on already)
        started = self.clock.now()
        in_step: bool | None = None
        try:
            in_step = await self._until_in_step(old.closed().done, new, started, stop,
                                                old.listener)
            if feed.shard is not opened_for:
                in_step = None
        finally:
            if in_step is None:
                await new.close(CLOSE_TIMEOUT_S, 1000, self._stop_reason() if stop.is_set() else "")
                feed.closed(new.listener)
        if in_step is None:
            log.warning("shard %d: the replacement %s during the overlap", self.index,
                        "is stale: the streams changed" if feed.shard is not opened_for
                        else "closed")
            return False
        overlap_s = self.clock.now() - started
        self.rollovers[cause] += 1
        log.info("shard %d: rolled over (%s) after %.3f s of overlap", self.index, cause,
                 overlap_s)
        feed.event("rollover", cause=cause, overlap_s=round(overlap_s, 3), in_step=in_step,
                   duplicates=feed.decoder.duplicates - duplicates)
        return True

    async def _until_in_step(self, old_done: Callable[[], bool], new: Link, started: float,
                             stop: asyncio.Event, old: FeedListener | None = None,
                             since: int = 0) -> bool | None:
        """True once `new` is in step: its sequenced records met the last emitted ones, and
        none came past a hole since the previous look (the old one owes nothing more). False
        when the old one ended (`old_done`), delivered nothing for OLD_STALL_S while `new`
        delivered (`old`, a rollover's or the leg a redundant one joins: then it is `stopped`,
        as `closed` does once it ended, so what `new` brought past the ids it owed goes out),
        or `rollover_overlap_s` passed first; None if `new` ended. `since`: the frames `new`
        delivered before (a demoted leg's connection); only later ones show that it delivers."""
        leg, ahead = new.listener.leg, -1
        sequenced = any(KIND_BY_NAME[stream_kind(s)[0]].sequence is not None
                        for s in self.feed.shard.streams)
        opened_for = self.feed.shard
        # the old one's frames when they last moved, then, and the new one's frames then
        old_frames, old_moved, new_frames = old.frames if old else 0, started, since
        while not new.closed().done():
            if self.feed.shard is not opened_for:
                return False  # (the caller starts over)
            in_step, now_ahead = self.feed.decoder.overlap_counts(leg)
            if in_step and now_ahead == ahead:
                return True
            if not sequenced and new.listener.frames > since:
                return True  # nothing to line up: a frame shows it delivers
            now = self.clock.now()
            if old_done() or now - started >= self.config.rollover_overlap_s:
                return False
            if old is not None:
                if old.frames != old_frames:
                    old_frames, old_moved, new_frames = old.frames, now, new.listener.frames
                elif now - old_moved >= OLD_STALL_S and new.listener.frames > new_frames:
                    log.warning("shard %d: %s delivered nothing for %.1f s while %s did: "
                                "switching now", self.index,
                                "the old connection" if self.leg is None else f"leg {old.leg}",
                                now - old_moved,
                                "its replacement" if self.leg is None else f"leg {leg}")
                    self.feed.stopped(old)
                    return False
            ahead = now_ahead
            await _unless(stop, self.clock.sleep(OVERLAP_POLL_S))
        return None

    async def _watch(self, link: Link, stop: asyncio.Event, roll: bool = True) -> str:
        """Until the link closes or stop; returns why we replaced it ("" if we did not):
        a staleness cause, or (unless not `roll`) a rollover cause (its lifetime, the
        exchange's shutdown)."""
        listener, clock = link.listener, self.clock
        last_data = last_pong = ping_sent = 0.0
        frames, pong_ns = 0, 0
        replies = self.subscriptions.replies  # replies to our requests are not data
        warned = reset = False
        roll_at = self.opened_at + self.config.max_lifetime_s - self.config.rollover_lead_s \
            if roll else math.inf
        stopper = asyncio.ensure_future(stop.wait())
        shutdown = asyncio.ensure_future(self.feed.shutdown_notices[listener.leg].wait()) \
            if roll else asyncio.get_running_loop().create_future()  # (never done)
        try:
            while not stop.is_set():
                policy = self.policy  # set_streams may change it
                tick = asyncio.ensure_future(
                    clock.sleep(min(policy.tick_s(), roll_at - clock.now())))
                waits: set[asyncio.Future[Any]] = {link.closed(), stopper, shutdown, tick}
                await asyncio.wait(waits,
                                   return_when=asyncio.FIRST_COMPLETED)
                tick.cancel()
                if link.closed().done() or stop.is_set():
                    return ""
                now = clock.now()
                if shutdown.done() or now >= roll_at:
                    return "server_shutdown" if shutdown.done() else "lifetime"
                delivered = listener.frames - (self.subscriptions.replies - replies)
                if delivered != frames:  # sampled per tick: costs nothing per frame
                    frames, last_data = delivered, now
                if listener.last_pong_ns != pong_ns:
                    pong_ns, last_pong = listener.last_pong_ns, now
                if self.feed.paused:
                    # Reads paused by the sink's backpressure: the silence is ours, not the
                    # link's (frames and pongs wait unread). Judged afresh once reads resume.
                    last_data = last_pong = now
                    ping_sent = 0.0
                    continue
                self.verdict = verdict = policy.check(now, self.opened_at, last_data,
                                                      last_pong, ping_sent)
                if verdict.never_delivered and not warned:
                    warned = True
                    log.warning("shard %d: connected %.0f s ago and nothing delivered yet "
                                "(streams: %s)", self.index, now - self.opened_at,
                                ",".join(self.feed.shard.streams))
                    self.feed.event("never_delivered", after_s=round(now - self.opened_at, 3))
                if verdict.action == "ping":
                    ping_sent = now
                    link.transport.send_ping()
                    self.subscriptions.budget.note()  # pings count against 5 messages/s
                elif verdict.action == "replace":
                    cause = "ping_timeout" if verdict.reason.startswith("no pong") else "silent"
                    self.replaced[cause] += 1
                    log.warning("shard %d: replacing the connection: %s", self.index,
                                verdict.reason)
                    self.feed.event("stale", cause=cause, error=verdict.reason)
                    self.last_error = verdict.reason
                    return cause
                if not reset and frames and now - self.opened_at >= \
                        self.config.backoff_reset_after_s:
                    reset = True  # it delivered for a while: the next drop starts over
                    self._backoff.reset()
            return ""
        finally:
            stopper.cancel()
            shutdown.cancel()

    def _report_close(self, link: Link, replaced: str, planned: bool) -> None:
        """A connection ended: a `disconnected` event unless `planned` (a shutdown, or a
        redundant leg's hand-over)."""
        code, reason, who = link.close_info()
        listener = link.listener
        violation = listener.violation
        if violation is not None:
            self.violations += 1
            self.feed.event("protocol_violation", error=violation)
            log.error("shard %d: protocol violation, closed with %s: %s", self.index,
                      code if who == "us" else 1002, violation)
        if listener.oversized:
            log.error("shard %d: %d fragmented message(s) over max_frame_bytes were dropped "
                      "(counted as oversized)", self.index, listener.oversized)
        detail = f"code {code}" if code is not None else "no close code"
        detail += f", reason {reason!r}" if reason else ""
        if planned:
            log.info("shard %d: closed (%s, by %s)", self.index, detail, who)
            return
        if not replaced and violation is None:
            self.last_error = f"closed by {who}: {detail}"
        log.warning("shard %d: connection closed by %s (%s); reconnecting", self.index, who,
                    detail)
        self.feed.event("disconnected", close_code=code, reason=reason, by=who,
                        **self.feed.leg_field(listener))

    # --- live subscriptions -----------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        """One text frame on the open link: the subscription client's transport."""
        if self.link is None:
            raise ConnectionError(f"shard {self.index}: not connected")
        self.link.transport.send(WSMsgType.TEXT, payload)

    def _subscription_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind in ("subscribed", "unsubscribed"):
            # only news: a reconnect re-subscribing what was announced is not a change
            news = [s for s in event["streams"] if (s in self.announced) == (kind != "subscribed")]
            if not news:
                return
            if kind == "subscribed":
                self.announced.update(news)
            else:
                self.announced.difference_update(news)
            event = {**event, "streams": news}
        self.feed.report(event)

    def _stop_reason(self) -> str:
        """The close reason once stopped: the exchange and the log tell a retired connection
        from a handler's shutdown."""
        return "retired" if self.retired else "shutdown"

    def revive(self) -> bool:
        """A quarantined connection whose streams changed may try again (the stream the
        exchange refused may be gone from them): True if it was quarantined, and is now idle
        for its supervisor to run again."""
        if self.state != "quarantined":
            return False
        self.quarantine, self.state = None, "idle"
        return True

    async def set_streams(self, shard: Shard) -> bool:
        """Make `shard` (this index, new streams and URL) the connection's. True once the
        exchange applied the change; False when not open: the next connect applies it."""
        self.feed.shard = shard
        self.at_start = False  # not the plan checked at start: a refusal quarantines it
        self._changed_live = True
        if not self.config.max_silence_s:  # the default follows the streams
            self.policy = replace(self.policy,
                                  max_silence_s=default_max_silence_s(shard.streams))
        try:
            return await self._sync()
        except ConnectionError:
            return False

    async def _reconcile(self) -> None:
        try:
            await self._sync()
        except ConnectionError:
            return  # closed meanwhile: the next connect reconciles
        except (ExchangeError, RequestTimeout) as exc:  # reported as events by the client
            log.warning("shard %d: reconciling subscriptions failed: %s", self.index, exc)

    async def _sync(self) -> bool:
        """Subscribe and unsubscribe until the exchange has the shard's streams; False if
        there is no link. Once per link, the exchange is asked what it has
        (LIST_SUBSCRIPTIONS), unless the link's URL named exactly these streams."""
        async with self._syncing:
            link = self.link
            if link is None:
                return False
            if self._subscribed is None or self._subscribed[0] is not link:
                shard = self.feed.shard
                listed = await self.subscriptions.list_subscriptions() \
                    if self._changed_live or not shard.by_url else shard.streams
                self._subscribed = link, set(listed)
            have, want = self._subscribed[1], set(self.feed.shard.streams)
            try:
                await self.subscriptions.update(sorted(want - have), sorted(have - want))
            except BaseException:
                self._subscribed = None  # maybe partly applied: ask the exchange next time
                raise
            self._subscribed = link, want
            # What no reply reported: the URL's part (a new connection's streams, a change
            # made while connecting).
            added, removed = sorted(want - self.announced), sorted(self.announced - want)
            if added:
                self.feed.event("subscribed", streams=added, id=None)
            if removed:
                self.feed.event("unsubscribed", streams=removed, id=None)
            self.announced = want
            return True


async def _unless(stop: asyncio.Event, awaitable: Awaitable[T]) -> T:
    """Await `awaitable`, or cancel it and raise Stopped as soon as `stop` is set."""
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # cancelled: stop() cancels a child that is not serving yet
        await _close_late_link(task)
        raise
    finally:
        stopper.cancel()
    if not task.done():
        await _close_late_link(task)
        raise Stopped
    return task.result()


async def _close_late_link(task: asyncio.Future[Any]) -> None:
    """Cancel `task`; a link it opened all the same (the connect finished first) is closed as
    at shutdown, with a close frame, never left open or cut."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        result = await task
        if isinstance(result, Link):
            await result.close(CLOSE_TIMEOUT_S, 1000, "shutdown")
