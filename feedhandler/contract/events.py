"""The control topic's events: every `type`, who emits it and its fields.

The README's control-event table is generated from this list, and a test checks it against the
event types the code emits (feedhandler/app, feedhandler/supervisor, feedhandler/sinks).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    type: str
    source: str  # "connection": also carries CONNECTION_FIELDS; else "handler" or "sink"
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
    Event("connected", "connection",
          (("url", "the URL connected to, `/stream?streams=...` included"),
           ("streams", "number of streams subscribed on it (an integer, not their names)")),
          "a connection is up; its epoch starts"),
    Event("disconnected", "connection",
          (("close_code", "the WebSocket close code, or null"),
           ("reason", "the close reason, as text"), ("by", "`peer` or `us`")),
          "a connection dropped; it reconnects with backoff"),
    Event("connect_failed", "connection",
          (("error", "why, as text"), ("status", "the HTTP status of the upgrade, or null"),
           ("retry_in_s", "seconds until the next attempt")),
          "an attempt to connect failed"),
    Event("refused", "connection",
          (("status", "HTTP status (400, 401, 403)"), ("error", "the status and body")),
          "the exchange refused the first connection for good: the handler exits 2"),
    Event("quarantined", "connection",
          (("status", "HTTP status (400, 401, 403)"), ("error", "the status and body")),
          "a connection that worked before is refused for good: it is not retried"),
    Event("never_delivered", "connection",
          (("after_s", "seconds since it opened"),),
          "a connection has been open `stale_after_s` without delivering anything"),
    Event("stale", "connection",
          (("cause", "`ping_timeout` or `silent`"), ("error", "the staleness check, as text")),
          "a connection was replaced: no pong to our ping, or pongs but no data"),
    Event("protocol_violation", "connection", (("error", "what the exchange did"),),
          "the exchange broke the WebSocket protocol; we closed with 1002 and reconnect"),
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
    Event("gap", "connection",
          (("reason", "`reconnect`"),
           ("from_ns", "when the previous connection was lost, ns since the Unix epoch"),
           ("to_ns", "when the new one was up, ns since the Unix epoch")),
          "data of every stream of the shard may be missing between from_ns and to_ns"),
    Event("gap", "handler",
          (("reason", "`missing` (ids skipped) or `backwards` (old or repeated ids)"),
           ("kind", "the record kind, e.g. `trade`"), ("symbol", "e.g. `BTCUSDT`"),
           ("expected", "the next id the sequence owed"),
           ("received", "the first id that came instead"),
           ("ts_recv", "receive time of the frame that showed it, ns since the Unix epoch")),
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
)

EVENT_TYPES = frozenset(e.type for e in EVENTS)
