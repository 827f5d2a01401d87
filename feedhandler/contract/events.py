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
          (("close_code", "the WebSocket close code the exchange sent, or null"),),
          "a connection dropped; it reconnects with backoff"),
    Event("connect_failed", "connection",
          (("error", "why, as text"), ("retry_in_s", "seconds until the next attempt")),
          "an attempt to connect failed"),
    Event("gap", "connection",
          (("reason", "`reconnect`"),
           ("from_ns", "when the previous connection was lost, ns since the Unix epoch"),
           ("to_ns", "when the new one was up, ns since the Unix epoch")),
          "data of every stream of the shard may be missing between from_ns and to_ns"),
    Event("rollover", "connection",
          (("cause", "`lifetime` (max_lifetime_s - rollover_lead_s) or `server_shutdown`"),
           ("overlap_s", "how long both connections ran"),
           ("in_step", "true: the replacement had caught up; false: rollover_overlap_s "
                       "ran out or the old connection ended first"),
           ("duplicates", "records both delivered, dropped once")),
          "a connection was replaced make-before-break: no gap; the new epoch starts at the "
          "replacement's `connected`"),
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
