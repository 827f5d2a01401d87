"""The README's Kafka section, generated from the schemas so that it cannot drift.

    python -m feedhandler.contract.docs > section.md

Record tables come from `SCHEMAS` (which come from the C++ layouts); topic, key and header
names from `feedhandler.contract`. A test decodes a real message with Python's `struct` from
these tables alone.
"""

from __future__ import annotations

import sys

import feedhandler.contract as c
from feedhandler.records import SCHEMAS, Schema
from feedhandler.records.schema import Field

# What a type token in the record tables means (each table's "type" column uses these).
TYPES = {
    "int64": "signed 64-bit integer, little-endian",
    "int16": "signed 16-bit integer, little-endian",
    "uint8": "unsigned 8-bit integer",
    "decimal64": "int64 little-endian count of 1e-8 units: value = int * 1e-8, exact",
    "decimal128": "128-bit two's complement count of 1e-8 units, as lo (uint64 LE, bytes 0-7) "
                  "then hi (int64 LE, bytes 8-15): int = hi * 2^64 + lo, value = int * 1e-8",
    "char[N]": "N bytes of UTF-8 text, NUL-padded on the right (never truncated)",
    "T[N]": "N consecutive values of type T",
}

NOTES = {
    "ts_recv": "local receive time, ns since the Unix epoch (CLOCK_REALTIME, one per frame)",
    "ts_event": "exchange event time (`E`), ns since the Unix epoch",
    "ts_trade": "trade time (`T`), ns",
    "ts_open": "ns", "ts_close": "ns",
    "trade_id": "`t`", "agg_id": "`a`", "first_trade_id": "`f`", "last_trade_id": "`l`",
    "update_id": "order book update id `u`",
    "first_update_id": "`U`", "last_update_id": "`u` (`lastUpdateId` for partial depth)",
    "buyer_is_maker": "1 if the buyer is the maker (`m`)",
    "side": "0 bid, 1 ask, 2 none (an event without levels)",
    "flags": "1 = first row of its event, 2 = last row (an event is rows FIRST..LAST)",
    "levels": "5, 10 or 20 from the stream name", "bid_count": "levels filled",
    "ask_count": "levels filled", "symbol": "e.g. BTCUSDT",
    "utc_offset_min": "+480 for `@+08:00` klines", "closed": "1 if the kline is final (`x`)",
}


def type_token(f: Field) -> str:
    base = {"fixed8": "decimal64", "int128": "decimal128"}.get(f.type, f.type)
    if f.type == "bytes":
        return f"char[{f.count}]"
    return f"{base}[{f.count}]" if f.count > 1 else base


def record_table(schema: Schema) -> str:
    lines = [f"#### `{schema.name}` v{schema.version} — kind `{schema.kind}`, "
             f"{schema.itemsize} bytes per record",
             "",
             "| offset | size | field | type | notes |",
             "|---:|---:|---|---|---|"]
    for f in sorted(schema.fields, key=lambda f: f.offset):
        lines.append(f"| {f.offset} | {f.size} | `{f.name}` | {type_token(f)} | "
                     f"{NOTES.get(f.name, '')} |")
    covered = sum(f.size for f in schema.fields)
    if covered < schema.itemsize:
        lines += ["", f"The other {schema.itemsize - covered} bytes are padding (zero)."]
    return "\n".join(lines)


HEADERS = [
    (c.H_SCHEMA, "data", "schema name, e.g. `binance.spot.trade`"),
    (c.H_VERSION, "data", "schema version (`1`)"),
    (c.H_ENCODING, "data", "`records`, `json` or `raw`"),
    (c.H_COUNT, "data", "records in the message"),
    (c.H_SEQ_FIRST, "data", "first sequence id covered (trade, aggTrade, bookTicker, depth, "
     "depthPartial: see below)"),
    (c.H_SEQ_LAST, "data", "last sequence id covered"),
    (c.H_INSTANCE, "all", "handler instance (host name unless configured)"),
    (c.H_EPOCH, "data", "epoch of the connection the records came on; +1 on every reconnect"),
    (c.H_FRAMES, "raw", "exchange frames in the message"),
    (c.H_RECV_NS, "raw", "receive time of each frame, ns, comma-separated"),
    (c.H_TIME_UNIT, "raw", "`ms` or `us`: the connection's `timeUnit`"),
    (c.H_EVENT, "control", "event type"),
    (c.H_REASON, "dead-letter", "why the frame was rejected, e.g. `malformed_json`"),
    (c.H_FIELD, "dead-letter", "the field at fault (empty: the frame as a whole)"),
    (c.H_STREAM, "dead-letter", "the stream name, when known"),
    (c.H_SIZE, "dead-letter", "a frame over `kafka.max_message_bytes` is truncated to it: "
     "its original size in bytes"),
    (c.H_SHA256, "dead-letter", "...and the SHA-256 of the whole frame, hex"),
]


TOPICS = [
    (c.DEFAULT_TOPIC_TEMPLATE, "symbol, e.g. `BTCUSDT`",
     "consecutive records of one symbol and kind, e.g. on `binance.spot.trade`"),
    (c.DEFAULT_CONTROL_TOPIC, "handler instance", "one JSON event: gap, reconnect, ..."),
    (c.DEFAULT_DEADLETTER_TOPIC, "stream name", "one rejected frame, byte for byte"),
]


DELIVERY = """### Delivery

One idempotent producer per worker (`enable.idempotence`, `acks=all`, `kafka.compression`
lz4 by default, `kafka.linger_ms`, `kafka.batch_bytes`); extra librdkafka settings go in
`kafka.producer`. Failed deliveries are reported one by one (counted with their record counts,
logged once per error, and published as `delivery_failed` events); successes are counted as
produced - failed - still in flight, exact once the producer is flushed, and the queue / send /
ack latency percentiles come from librdkafka's statistics (the run summary's `sink` object and
`/metrics`). Messages never time out in
the producer: a broker outage is backpressure, not loss. When librdkafka's queue
(`kafka.queue_mb`) is full, messages wait in the handler's own queue, in order; past
`kafka.backlog_limit_mb` the handler stops reading from the exchange (a `paused` event) and
resumes below half of it (`resumed`). Memory is bounded by the two limits plus one batch per
kind. If the exchange drops the connection meanwhile, the reconnect `gap` event says so. On
SIGTERM/SIGINT the handler stops reading, flushes its open batches and the producer within
`shutdown_timeout_s`, and exits 0; the summary's `sink.undelivered` is what did not make it.

Batches: the decoder hands over a kind's records after `batch.rows` records, `batch.bytes`
bytes (rows = bytes // record size) or `batch.linger_ms`, per kind in
`batch.per_kind.<kind>.{rows,bytes,linger_ms}`; the sink splits each batch by symbol, keeping
exchange order, into one message per symbol (several past `kafka.max_message_bytes`)."""

READING = """### Reading it back

```python
import feedhandler
records = feedhandler.decode(message)  # any confluent_kafka.Message of a data topic:
                                       # a numpy array of feedhandler.SCHEMAS[kind].dtype
feedhandler.to_decimal(int(records["price"][0]))  # exact: Decimal('98249.71000000')
```

```sh
feedhandler consume --from-beginning                  # every topic of binance.spot, as a table
feedhandler consume --kind trade --symbol BTCUSDT -f  # follow one symbol's trades
feedhandler consume --tail 10 --format jsonl          # last 10 messages per partition, JSON
feedhandler consume --from-beginning --format summary # per symbol: messages, records, first and
                                                      # last sequence id, gaps, repeats
```

`--topic T` reads any topic; `--kafka-bootstrap`, `--exchange`/`--market` and
`--topic-template` locate them. Without `--follow` it stops at the end offsets seen on start.
Control events and dead letters are printed as JSON lines."""


def section() -> str:
    seq = "; ".join(f"{kind}: `{a}`" + ("" if a == b else f"…`{b}`")
                    for kind, (a, b) in c.SEQUENCE_FIELDS.items())
    parts = ["""## Kafka data contract

### Topics and keys

| topic | key | value |
|---|---|---|
""" + "\n".join(f"| `{topic}` | {key} | {value} |" for topic, key, value in TOPICS) + """

The data topic template is `kafka.topic_template`; `{symbol}` (lower case) gives one topic
per stream. Keying by symbol keeps each symbol's records in exchange order within one
partition. Topics are created on start with `kafka.partitions` / `kafka.replication_factor`
(`-1`: the broker's defaults) and `kafka.topic_config`; with `kafka.create_topics: false` the
handler instead fails on start naming any missing topic. The producer is idempotent with
`acks=all`, so a retry never duplicates or reorders; a message larger than
`kafka.max_message_bytes` is split into several.

### Headers

Header values are UTF-8 text; a consumer needs nothing but the headers to decode a value.

| header | on | meaning |
|---|---|---|
""" + "\n".join(f"| `{h}` | {on} | {text} |" for h, on, text in HEADERS) + f"""

Sequence ids per kind (`{c.H_SEQ_FIRST}` of the first record … `{c.H_SEQ_LAST}` of the
last): {seq}. Trade, aggregate-trade and diff-depth ids are contiguous (next `U` = previous
`u` + 1); bookTicker and partial-depth ids only increase.

### Values

- `records` (default): the records' bytes, back to back: `{c.H_COUNT}` * record size bytes,
  laid out as in the tables below. In numpy: `np.frombuffer(value, SCHEMAS[kind].dtype)`, or
  `feedhandler.decode(message)`.
- `json`: one JSON object per record and line (each line ends in `\\n`), keys in table order.
  Integers are JSON numbers (nanosecond times exceed 2^53: parse them as 64-bit integers);
  decimals are exact strings with 8 decimals (`"-0.00010000"`); text fields are strings without
  their padding; `T[N]` fields are arrays.
- `raw`: the exchange's frames exactly as received, one per line (`\\n` after each), for
  archival; `{c.H_RECV_NS}` gives each frame's receive time. A frame of an all-market stream
  (`!miniTicker@arr`, ...) carries many symbols: it is keyed by the empty string (topic
  `{{symbol}}` = `all`). The decoder keeps each batch's frames only while this encoding is on.

### Control events

JSON objects with `type` (also in `{c.H_EVENT}`), `instance` and, from connections, `shard`,
`epoch` and `ts_ns`: `connected`, `disconnected` (`close_code`, `reason`, `by`: `peer` or
`us`), `connect_failed` (`error`, HTTP `status` if refused, `retry_in_s`), `refused` (a
permanent refusal before any connection: the handler exits 2), `quarantined` (a permanent
refusal later: that connection stops), `stale` (`cause`: `ping_timeout` or `silent`; the
connection is replaced), `never_delivered`, `protocol_violation` (`error`; closed with 1002),
`gap` (`reason: reconnect` with `from_ns`/`to_ns`: the `ts_recv` of the last record before the
drop and the time the next connection opened; anything the exchange sent in between is
missing; or `reason: missing|backwards` with `kind`, `symbol`, `expected`, `received` ids),
`exchange_control` (the exchange's own message), `paused`/`resumed` (reading from the exchange
stopped while Kafka's queue was full; nothing is lost, TCP holds the data) and `delivery_failed`
(`topic`, `key`, `records`, `error`: a message the broker rejected for good).

""" + DELIVERY + "\n\n" + READING + """

### Record layouts

All integers are little-endian; records have no header and no separator. Types:

""" + "\n".join(f"- `{t}`: {text}" for t, text in TYPES.items())]
    parts += [record_table(s) for s in SCHEMAS.values() if s.kind not in ("control", "gap")]
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    sys.stdout.write(section())
