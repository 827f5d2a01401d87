"""When is an open connection stale? Pure decisions, so they are tested without a network.

- No data frame for `stale_after_s`: send our own ping (Binance counts client pings against
  its 5 messages/s, so at most one per `stale_after_s`).
- That ping unanswered for `ping_timeout_s`: the peer is gone; replace the connection.
- Pongs but no data for `max_silence_s`: the peer is alive but the feed is not; replace.
  Streams pushed on a timer (klines, tickers, partial depth, ...) are never quiet for long;
  event-driven ones (trades, book tickers, diff depth) can be, for an illiquid symbol. The
  default for a connection is the tightest of its streams' defaults.
- Open for `stale_after_s` and nothing delivered yet: a warning (and /readyz says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PERIODIC_SILENCE_S = 30.0  # pushed every 0.1-2 s: 30 s of nothing is a dead feed
EVENT_SILENCE_S = 600.0  # trades of an illiquid symbol may pause for minutes
# suffix (after the symbol's "@") -> pushed on a timer
_PERIODIC_PREFIXES = ("kline_", "ticker", "miniTicker", "avgPrice", "referencePrice",
                      "depth5", "depth10", "depth20")


def stream_silence_s(stream: str) -> float:
    """Default max silence of one stream."""
    # market-wide streams (`!miniTicker@arr`) name their kind first, others after the symbol
    name = stream[1:] if stream.startswith("!") else stream.partition("@")[2]
    return PERIODIC_SILENCE_S if name.startswith(_PERIODIC_PREFIXES) else EVENT_SILENCE_S


def default_max_silence_s(streams: tuple[str, ...] | list[str]) -> float:
    return min((stream_silence_s(s) for s in streams), default=EVENT_SILENCE_S)


Action = Literal["ok", "ping", "replace"]


@dataclass(frozen=True)
class Verdict:
    action: Action
    reason: str = ""  # for "replace"
    never_delivered: bool = False  # open past stale_after_s without a data frame
    suspect: bool = False  # a ping of ours is waiting for its pong


@dataclass(frozen=True)
class StalenessPolicy:
    stale_after_s: float
    ping_timeout_s: float
    max_silence_s: float

    def check(self, now: float, opened_at: float, last_data: float, last_pong: float,
              ping_sent: float) -> Verdict:
        """All times in seconds on one clock; 0 means never."""
        quiet_since = max(last_data, opened_at)
        silent = now - quiet_since
        never_delivered = not last_data and silent >= self.stale_after_s
        outstanding = ping_sent > last_pong and ping_sent > 0
        if outstanding and now - ping_sent >= self.ping_timeout_s:
            return Verdict("replace", f"no pong within {self.ping_timeout_s:g} s of our ping "
                                      f"(no data for {silent:.1f} s)", never_delivered, True)
        if silent >= self.max_silence_s:
            what = "nothing delivered since the connection opened" if not last_data \
                else "no data"
            return Verdict("replace", f"{what} for {silent:.1f} s (max_silence_s "
                                      f"{self.max_silence_s:g}), pings answered",
                           never_delivered, outstanding)
        if silent >= self.stale_after_s and not outstanding \
                and now - ping_sent >= self.stale_after_s:
            return Verdict("ping", never_delivered=never_delivered, suspect=True)
        return Verdict("ok", never_delivered=never_delivered, suspect=outstanding)

    def tick_s(self) -> float:
        """How often to check: fine enough for the tightest bound, rare enough to cost nothing."""
        return max(0.01, min(self.stale_after_s, self.ping_timeout_s, self.max_silence_s) / 10)
