"""A/B redundancy: one shard's two Connections (legs 0 and 1) as one child of the tree.

Each leg connects, backs off and reconnects on its own (through the shared limiter); the
pair reports the shard as open while either leg is, and starts and stops both together.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

from feedhandler._ext.listener import FeedListener
from feedhandler.supervisor.connection import Connection
from feedhandler.supervisor.failures import Failure
from feedhandler.supervisor.feed import ShardFeed
from feedhandler.supervisor.staleness import Verdict


class LegPair:
    def __init__(self, feed: ShardFeed, make_leg: Callable[[int], Connection]) -> None:
        self.feed = feed
        self.legs = (make_leg(0), make_leg(1))

    @property
    def _serving(self) -> Connection:
        """The leg to report for the shard: an open one if any (the first otherwise)."""
        return next((leg for leg in self.legs if leg.state == "open"), self.legs[0])

    @property
    def index(self) -> int:
        return self.feed.shard.index

    @property
    def state(self) -> str:
        return self._serving.state

    @property
    def listener(self) -> FeedListener | None:
        return self._serving.listener

    @property
    def failed_attempts(self) -> int:
        return min(leg.failed_attempts for leg in self.legs)

    @property
    def last_error(self) -> str:
        return "; ".join(f"leg {i}: {leg.last_error}" for i, leg in enumerate(self.legs)
                         if leg.last_error)

    @property
    def start_refusal(self) -> Failure | None:
        return next((leg.start_refusal for leg in self.legs if leg.start_refusal), None)

    @property
    def replaced(self) -> Counter[str]:
        return self.legs[0].replaced + self.legs[1].replaced

    @property
    def violations(self) -> int:
        return sum(leg.violations for leg in self.legs)

    @property
    def rollovers(self) -> Counter[str]:
        return self.legs[0].rollovers + self.legs[1].rollovers

    @property
    def verdict(self) -> Verdict:
        return self._serving.verdict

    @property
    def max_silence_s(self) -> float:
        return self._serving.max_silence_s

    @property
    def opened_at(self) -> float:
        return self._serving.opened_at

    async def run(self, stop: asyncio.Event) -> None:
        """Both legs until `stop`; or until one is refused at start (a wrong url_b, a key the
        exchange refuses): both end then, so that the supervisor stops the handler as for
        any refusal at start, instead of running on without redundancy. (`stop` is this
        child's own: the supervisor makes one per child.)"""

        async def run_leg(leg: Connection) -> None:
            await leg.run(stop)
            if leg.start_refusal is not None:
                stop.set()

        await asyncio.gather(*(run_leg(leg) for leg in self.legs))
