"""The control topic's events: every `type`, who emits it and its fields.

The README's control-event table is generated from this list, and a test checks it against the
event types the code emits (feedhandler/app, supervisor, sinks, book, wsapi). Events of the
WebSocket API client carry `"source": "wsapi"` (their types may repeat a connection's).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    type: str
    source: str  # "connection": also carries CONNECTION_FIELDS; else who emits it
    fields: tuple[tuple[str, str], ...]  # (name, meaning), beyond `type` and `instance`
    meaning: str


# Every event: `type` (also the fh.event header) and `instance` (the handler instance).
COMMON_FIELDS = (
    ("type", "the event type, as in the `fh.event` header"),
    ("instance", "the handler instance, as in `fh.instance` (also the message key)"),
)
# Events of a connection also carry:
CONNECTION_FIELDS = (
    ("shard", "index of the connection (shard of the stream list) in this instance"),
    ("epoch", "that connection's epoch, as in `fh.epoch`: +1 on every (re)connect"),
    ("ts_ns", "when the event happened, ns since the Unix epoch (CLOCK_REALTIME)"),
)

EVENTS: tuple[Event, ...] = (
    Event("started", "handler",
          (("ts_ns", "when, ns since the Unix epoch"), ("version", "the handler's version"),
           ("streams", "streams it was started with (a count)")),
          "the handler (re)started, before its first connection: what the instance missed "
          "since its last `stopped` (or, after a crash, since its last record) is in no "
          "`gap` event; the ids of sequenced kinds still show it to a consumer's checks"),
    Event("stopped", "handler",
          (("ts_ns", "when, ns since the Unix epoch"),
           ("frames", "exchange frames it read in all")),
          "the handler stopped reading (SIGTERM, --duration); its records up to here follow "
          "while it flushes"),
    Event("connected", "connection",
          (("url", "the URL connected to, `/stream?streams=...` included"),
           ("streams", "number of streams subscribed on it (an integer, not their names)"),
           ("leg", "A/B redundancy only: which of the shard's two connections (0, 1)")),
          "a connection is up; its epoch starts"),
    Event("disconnected", "connection",
          (("close_code", "the WebSocket close code, or null"), ("reason", "the close reason"),
           ("by", "`peer` or `us` (we close a stale connection)"),
           ("leg", "A/B redundancy only: which of the shard's two connections (0, 1)")),
          "a connection dropped; it reconnects with backoff"),
    Event("connect_failed", "connection",
          (("error", "why, as text"), ("status", "the HTTP status of a refused upgrade, or null"),
           ("retry_in_s", "seconds until the next attempt; null for a refused rollover "
                          "replacement (the connection it would replace serves on)")),
          "an attempt to connect failed"),
    Event("refused", "connection",
          (("status", "HTTP status"), ("error", "why")),
          "the exchange refused the first connection for good (400/401/403): the handler "
          "exits 2"),
    Event("quarantined", "connection",
          (("status", "HTTP status"), ("error", "why")),
          "the exchange refused a later connection for good: that connection stops"),
    Event("stale", "connection",
          (("cause", "`ping_timeout` (no pong: replaced after it is closed, a `gap` "
                     "follows) or `silent` (pongs but no data: replaced make-before-break, "
                     "a `rollover` follows; an A/B leg is replaced at once)"),
           ("error", "what was seen")),
          "the connection is replaced"),
    Event("never_delivered", "connection",
          (("after_s", "seconds since the connection opened"),),
          "a connection is open but has delivered no data frame yet"),
    Event("protocol_violation", "connection", (("error", "what the peer did"),),
          "we closed the connection with 1002"),
    Event("gap", "connection",
          (("reason", "`reconnect`"),
           ("from_ns", "when the previous connection was lost, ns since the Unix epoch"),
           ("to_ns", "when the new one was up, ns since the Unix epoch")),
          "data of every stream of the shard may be missing between from_ns and to_ns"),
    Event("rollover", "connection",
          (("cause", "`lifetime` (max_lifetime_s - rollover_lead_s), `server_shutdown`, or "
                     "`silent` (after a `stale` event: pongs but no data; the replacement "
                     "leads from its first frame, and what it shows missing is a `missing` "
                     "gap)"),
           ("overlap_s", "how long both connections ran"),
           ("in_step", "true: the replacement had caught up; false: rollover_overlap_s "
                       "ran out, the old connection ended first, or it delivered nothing for 0.5 s "
                       "while the replacement did"),
           ("duplicates", "records both delivered, dropped once, until the replacement was "
                          "in step (what the old connection delivers until it is closed is "
                          "dropped too, and counted only in `feedhandler_duplicates_dropped_"
                          "total` and the summary)"),
           ("leg", "A/B redundancy only: the leg (0, 1) that closed and rejoined while the "
                   "other served")),
          "a connection was replaced make-before-break: no gap; the new epoch starts with "
          "the replacement's attempt (records of both connections carry it while they "
          "overlap, their ids continuing)"),
    Event("gap", "handler",
          (("reason", "`missing` (ids skipped) or `backwards` (old or repeated ids)"),
           ("kind", "the record kind, e.g. `trade`"), ("symbol", "e.g. `BTCUSDT`"),
           ("expected", "the next id the sequence owed"),
           ("received", "the first id that came instead"),
           ("ts_recv", "receive time of the frame that showed it, ns since the Unix epoch"),
           ("shard", "the connection it came on, as a connection event's `shard`"),
           ("epoch", "that connection's epoch, as in the `fh.epoch` of the records around it")),
          "a sequence discontinuity within one connection's epoch"),
    Event("exchange_control", "handler",
          (("message", "the exchange's message, as text (subscribe reply, error, "
                       "serverShutdown)"),),
          "the exchange sent a control message"),
    Event("paused", "handler", (("backlog_bytes", "bytes waiting for Kafka"),),
          "reading from the exchange stopped: Kafka's queue is full (nothing is lost, TCP "
          "holds the data)"),
    Event("resumed", "handler", (("backlog_bytes", "bytes waiting for Kafka"),),
          "reading from the exchange resumed"),
    Event("delivery_failed", "sink",
          (("topic", "the message's topic"), ("key", "its key, as text"),
           ("records", "records it carried"), ("error", "librdkafka's error name")),
          "the broker rejected a message for good: its records are lost"),
    Event("subscribed", "connection",
          (("streams", "the stream names, a list"),
           ("id", "the SUBSCRIBE request's id; null for streams the connection's URL "
                  "subscribed (a new connection's, or a change made while it connected)")),
          "streams added at runtime (`POST /subscriptions`, SIGHUP) now flow on the shard"),
    Event("unsubscribed", "connection",
          (("streams", "the stream names, a list"),
           ("id", "the UNSUBSCRIBE request's id; null when the connection's URL left them "
                  "out (a change made while it connected) or it was closed, left without "
                  "streams")),
          "streams removed at runtime no longer flow"),
    Event("subscription_error", "connection",
          (("code", "the exchange's error code"), ("msg", "its message"),
           ("id", "the request's id, or null"),
           ("method", "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`; null if no request "
                      "of ours claims the reply")),
          "the exchange answered a subscription request with an error"),
    Event("subscription_timeout", "connection",
          (("method", "the request's method"), ("id", "its id")),
          "no reply to a subscription request within 10 s"),
    Event("book_resync", "book",
          (("symbol", "e.g. `BTCUSDT`"),
           ("reason", "`start` (first diff seen), `gap` (its `U` does not follow on), "
                      "`short` (a side of the handler's book, `book.publish`, has no level left "
                      "while levels beyond are unknown), `stale` (the handler's book waited "
                      "past `book.max_buffer` diffs, kept the newest, and the snapshot just "
                      "published is older than those) or `disconnected` (the connection that "
                      "streamed its diffs was lost, and no other leg streams them: evented at "
                      "the loss; the snapshot that ends it is taken after the reconnect)"),
           ("expected", "the next update id the book owed (`start`: 0, none yet; `stale`: "
                        "the snapshot's lastUpdateId + 1)"),
           ("received", "the first update id that came instead (`short`: the same as "
                        "`expected`; `stale`: the first the book kept; `disconnected`: 0, "
                        "none yet)"), ("ts_ns", "when")),
          "that symbol's book is invalid until its next snapshot (it alone is resynced)"),
    Event("book_snapshot", "book",
          (("symbol", "e.g. `BTCUSDT`"),
           ("last_update_id", "the snapshot's lastUpdateId (its rows' U = u)"),
           ("levels", "price levels it carried"), ("ts_ns", "when")),
          "a depth snapshot was published: the symbol's book is valid from here"),
    Event("book_snapshot_failed", "book",
          (("symbol", "e.g. `BTCUSDT`"), ("error", "why"), ("ts_ns", "when")),
          "the exchange has no such symbol (delisted, or not served yet): a refresh is not "
          "asked again; a resync is, with backoff up to 60 s, while the symbol's diffs are "
          "streamed (evented once a streak)"),
    Event("book_crossed", "book",
          (("symbol", "e.g. `BTCUSDT`"), ("count", "crossed or locked events since the last "
                                                   "book_crossed of this symbol"),
           ("total", "since start"), ("update_id", "the book's update id at the last one"),
           ("bid", "best bid then (decimal text)"), ("ask", "best ask then"), ("ts_ns", "when")),
          "the handler's book had best bid >= best ask after a depth event (`book.publish`; "
          "at most one per symbol per `book.alert_interval_s`)"),
    Event("book_ticker_mismatch", "book",
          (("symbol", "e.g. `BTCUSDT`"), ("count", "disagreements since the last event of "
                                                   "this symbol"),
           ("total", "since start"), ("update_id", "the bookTicker's `u` at the last one"),
           ("ticker", "its [bid, bid qty, ask, ask qty] (decimal text)"),
           ("book", "the book's at the same update id"), ("ts_ns", "when")),
          "a bookTicker disagreed with the handler's book at its own update id (`book.publish`; "
          "at most one per symbol per `book.alert_interval_s`)"),
    Event("universe", "universe",
          (("symbols", "how many symbols it follows now"),
           ("listed", "symbols newly followed (TRADING and selected), a list"),
           ("delisted", "symbols no longer followed (left TRADING or exchangeInfo), a list"),
           ("held", "symbols that left TRADING or exchangeInfo but are still followed, as more "
                    "than `universe.max_delist` of those followed left at once (an "
                    "exchange-wide BREAK); empty once they are back or removed (then in "
                    "`delisted`), a list"),
           ("ts_ns", "when")),
          "exchangeInfo changed the universe; the streams follow as `subscribed` / "
          "`unsubscribed` events of the connections"),
    Event("precision_violation", "universe",
          (("kind", "the record kind"), ("symbol", "e.g. `BTCUSDT`"),
           ("field", "the column, e.g. `price`"), ("value", "the first such value, as text"),
           ("grid", "`tick` (PRICE_FILTER tickSize) or `step` (LOT_SIZE stepSize)"),
           ("size", "the symbol's tick or step size, as text"),
           ("count", "off-grid values of this kind and symbol since its previous event")),
          "a value with more precision than its symbol allows; the records are published as "
          "sent (at most one event per kind and symbol a minute)"),
    Event("connected", "wsapi", (("url", "the WebSocket API URL"), ("ts_ns", "when")),
          "the WebSocket API connection is up"),
    Event("disconnected", "wsapi", (("ts_ns", "when"),),
          "the WebSocket API connection dropped; requests in flight fail, it reconnects"),
    Event("connect_failed", "wsapi",
          (("error", "why"), ("retry_in_s", "seconds until the next attempt; null when the "
                                            "exchange refused for good (400/401/403): no "
                                            "more attempts"),
           ("ts_ns", "when")),
          "an attempt to connect to the WebSocket API failed"),
    Event("rate_limited", "wsapi",
          (("status", "429 or 418"), ("code", "the exchange's error code"),
           ("wait_s", "seconds no request is sent"), ("ts_ns", "when")),
          "the exchange throttled us: every request waits"),
    Event("exchange_error", "wsapi",
          (("status", "HTTP-like status"), ("code", "error code"), ("msg", "message"),
           ("ts_ns", "when")),
          "the exchange sent an error no request asked for (e.g. a revoked session key)"),
    Event("exchange_event", "wsapi", (("event", "its `e`, e.g. `serverShutdown`"),
                                      ("ts_ns", "when")),
          "the exchange sent an event on the WebSocket API connection"),
    Event("logged_on", "wsapi", (("ts_ns", "when"),),
          "the authenticated session was (re)established"),
    Event("logon_failed", "wsapi",
          (("code", "error code"), ("msg", "message"), ("ts_ns", "when")),
          "logging on again after a reconnect failed: refused for good (the session is "
          "gone until `logon()` succeeds) or for now (the client reconnects and tries again)"),
)

EVENT_TYPES = frozenset(e.type for e in EVENTS)
