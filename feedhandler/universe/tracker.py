"""The stream plan from exchangeInfo: `universe.symbols` x `universe.kinds`, followed live.

At start the plan is empty; the first exchangeInfo (WebSocket API) fills it through the live
subscription path (`app.live.LiveStreams.change`), which opens the connections and reports
their streams as `subscribed`. Every `refresh_s` exchangeInfo is read again: symbols that are
newly TRADING are subscribed, symbols that left TRADING (delisted, halted) or the exchange
dropped are unsubscribed, each change as `subscribed` / `unsubscribed` events of the
connections concerned plus one `universe` event naming the symbols. A refresh that would drop
more than `max_delist` of the followed symbols at once drops none (`held`): an exchange-wide
BREAK (maintenance) ends within hours, and streams dropped then would return only at the
first refresh after it. While they come back, those still out stay held; once refresh_s
passes with none coming back, the rest are removed (if within the limit). Streams added by
`POST /subscriptions` are left alone; a universe stream removed that way comes back at the
next refresh. A failed read changes
no stream: it is logged and retried (every RETRY_S until the first one succeeds). A precision
check in doubt (a tick size may have changed) has the next read come early, EARLY_S after
the last at the soonest, and the read settles the off values held until then.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from feedhandler.contract.streams import apart
from feedhandler.universe.precision import PrecisionCheck
from feedhandler.universe.symbols import parse_exchange_info, select, streams_for

log = logging.getLogger(__name__)

RETRY_S = 5.0
EARLY_S = 10.0  # a read asked for early comes no sooner than this after the last one


class StreamChanger(Protocol):
    """What the tracker needs of `LiveStreams`."""

    def streams(self) -> set[str]: ...
    async def change(self, add: list[str], remove: list[str]) -> Any: ...


class UniverseTracker:
    def __init__(self, fetch: Callable[[], Awaitable[dict[str, Any]]], live: StreamChanger, *,
                 symbols: str | list[str], kinds: list[str], quote_assets: list[str],
                 permissions: list[str], refresh_s: float,
                 on_event: Callable[[dict[str, Any]], None],
                 precision: PrecisionCheck | None = None, max_delist: float = 1.0) -> None:
        self._fetch = fetch
        self._live = live
        self._wanted, self._kinds = symbols, kinds
        self._quotes, self._permissions = quote_assets, permissions
        self.refresh_s = refresh_s
        self._on_event = on_event
        self.precision = precision
        self._early = asyncio.Event()  # a read asked for before refresh_s is up
        if precision is not None and refresh_s:
            precision.doubt_with(self._early.set, refresh_s)
        self.max_delist = max_delist
        self.symbols: list[str] = []  # followed now
        self.held: list[str] = []  # delisted by exchangeInfo, still followed (max_delist)
        self._returned_at = 0.0  # time.monotonic() when held symbols last came back
        self._planned: set[str] = set()  # the streams it asked for (not those of POSTs)
        self.refreshes = 0  # successful exchangeInfo reads
        self.failures = 0
        self.refreshed_at: float | None = None  # time.monotonic() of the last one

    def status(self) -> dict[str, Any]:
        """HandlerStatus's universe fields."""
        return {"universe_symbols": len(self.symbols) if self.refreshes else None,
                "universe_failures": self.failures, "universe_held": len(self.held),
                "universe_age_s": time.monotonic() - self.refreshed_at
                if self.refresh_s and self.refreshed_at is not None else None,
                "universe_refresh_s": self.refresh_s}

    async def run(self) -> None:
        """Refresh now, then every refresh_s (0: once); until cancelled."""
        try:
            await self._refreshes()
        finally:
            if self.precision is not None:
                self.precision.stop_doubting()

    async def _refreshes(self) -> None:
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the exchange's or ours: logged, retried
                self.failures += 1
                log.error("universe: exchangeInfo not applied (%s: %s); the plan stays as it "
                          "is", type(exc).__name__, exc)
                if not self.refreshes:
                    await asyncio.sleep(min(RETRY_S, self.refresh_s or RETRY_S))
                    continue
            if not self.refresh_s:
                return
            await self._next_read()

    async def _next_read(self) -> None:
        """Until refresh_s is up, or EARLY_S (at most refresh_s) after the last read if one is
        asked for early."""
        start = time.monotonic()
        try:  # (not wait_for: in 3.11 it can swallow a cancel that comes as the event is set)
            async with asyncio.timeout(self.refresh_s):
                await self._early.wait()
        except TimeoutError:
            return
        # (until the clock says so: uvloop's timers, in whole ms of a cached loop time, can
        # end a sleep up to a millisecond early)
        while (left := min(EARLY_S, self.refresh_s) - (time.monotonic() - start)) > 0:
            await asyncio.sleep(left)

    def _hold(self, delisted: list[str], followed: int) -> tuple[list[str], bool]:
        """Of the symbols exchangeInfo delisted, those still followed (max_delist), and whether
        that is because there are too many (the refresh is then a failure)."""
        if len(delisted) > max(1.0, self.max_delist * followed):
            log.error("universe: exchangeInfo would stop following %d of the %d symbols, "
                      "more than universe.max_delist (%g): none is removed (an exchange-wide "
                      "BREAK, or a truncated exchangeInfo?); a restart applies it: %s",
                      len(delisted), followed, self.max_delist,
                      ", ".join(delisted[:10]) + (", ..." if len(delisted) > 10 else ""))
            return delisted, True
        if set(self.held) - set(delisted):
            self._returned_at = time.monotonic()
        # coming back: those still out stay held until refresh_s passes with none back (a
        # time, not a count of reads: a precision doubt's early reads come sooner)
        if time.monotonic() - self._returned_at < self.refresh_s:
            return sorted(set(delisted) & set(self.held)), False
        return [], False

    async def refresh(self) -> None:
        self._early.clear()  # (this read answers what was asked so far)
        doubted = self.precision.take() if self.precision is not None else {}
        try:
            info = parse_exchange_info(await self._fetch())
            if self.precision is not None:
                self.precision.update(info.values())
        finally:  # against the sizes read (or, when the read failed, those before)
            if self.precision is not None and doubted:
                self.precision.settle(doubted)
        chosen = select(info, self._wanted, self._quotes, self._permissions)
        if not chosen:  # (/readyz says so too)
            named = self._wanted if isinstance(self._wanted, str) else ",".join(self._wanted)
            log.warning("universe: none of the %d symbols in exchangeInfo is chosen (symbols: "
                        "%s, quote_assets: %s, permissions: %s)", len(info), named,
                        self._quotes or "any", self._permissions or "any")
        known = set(self.symbols)  # (followed before this refresh)
        delisted = sorted(known - set(chosen))
        held, over_limit = self._hold(delisted, len(known))
        chosen, delisted = sorted({*chosen, *held}), sorted(set(delisted) - set(held))
        wanted, current = set(streams_for(chosen, self._kinds)), self._live.streams()
        add, remove = wanted - current, (self._planned - wanted) & current
        if remove:  # alone, first: an addition that cannot be made must not hold a delisting
            await self._live.change([], sorted(remove))
        # A stream added by hand (POST /subscriptions) may clash with a listing's (`depth` and
        # `depth@100ms`): that one is left out, not the whole refresh's additions.
        adding = set(apart([*sorted(self._live.streams()), *sorted(add)])) & add
        clashing = add - adding
        if clashing:
            log.error("universe: %d streams not added, as they clash with streams already "
                      "taken (remove those): %s", len(clashing), ", ".join(sorted(clashing)))
        failed = bool(clashing or over_limit)
        if adding:
            try:
                await self._live.change(sorted(adding), [])
            except Exception as exc:  # (its topics cannot be had, ...): retried next refresh
                if not self.refreshes:
                    raise  # the first plan: not ready, retried every RETRY_S (run)
                failed = True
                log.error("universe: %d streams not added (%s: %s); retried at the next "
                          "refresh", len(adding), type(exc).__name__, exc)
        live = self._live.streams()
        # a listing counts once its streams run (one refused is retried, and listed then)
        chosen = [s for s in chosen if s in known or set(streams_for([s], self._kinds)) <= live]
        listed = sorted(set(chosen) - known)
        # a removal the exchange refused (the connection went back to its streams) stays
        # planned, so the next refresh removes it again; a refused addition is retried anyway
        self.symbols, self._planned = chosen, wanted | (remove & live)
        self.refreshes += 1
        # a listing not followed is a failure, and does not count as applied (the age's alert)
        self.failures += failed
        if not failed or self.refreshed_at is None:
            self.refreshed_at = time.monotonic()
        if listed or delisted or held != self.held:
            log.info("universe: %d symbols; listed %s; delisted %s; held %s", len(chosen),
                     listed, delisted, held)
            self._on_event({"type": "universe", "symbols": len(chosen), "listed": listed,
                            "delisted": delisted, "held": held, "ts_ns": time.time_ns()})
        self.held = held
