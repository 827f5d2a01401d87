"""The README's Kafka section, generated from the declarations so that it cannot drift.

    python -m feedhandler.contract.docs   # rewrites its section of README.md

Record tables and their notes come from the kind declarations (`feedhandler.contract.kinds`)
through `SCHEMAS`; topic, key and header names from `feedhandler.contract`; control events
from `feedhandler.contract.events`. A test decodes a real message with Python's `struct` from
these tables alone.
"""

from __future__ import annotations

import feedhandler.contract as c
from feedhandler.contract.events import COMMON_FIELDS, CONNECTION_FIELDS, EVENTS
from feedhandler.contract.kinds import DATA_ROLES, KIND_BY_NAME, Rule
from feedhandler.readme import rewrite
from feedhandler.records import SCHEMAS, Schema
from feedhandler.records.schema import HISTORY, Field, compact_row

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

DATA_KINDS = [s for s in SCHEMAS.values() if KIND_BY_NAME[s.kind].role in DATA_ROLES]
BUSY_KINDS = ("trade", "aggTrade", "bookTicker", "depth")  # most of a market's records


def type_token(f: Field) -> str:
    base = {"fixed8": "decimal64", "int128": "decimal128"}.get(f.type, f.type)
    if f.type == "bytes":
        return f"char[{f.count}]"
    return f"{base}[{f.count}]" if f.count > 1 else base


def padding_text(schema: Schema) -> str:
    ranges = [f"{a}" if b - a == 1 else f"{a}-{b - 1}" for a, b in c.padding(schema)]
    if not ranges:
        return "No padding."
    return f"Padding (always zero): byte{'s' if len(ranges) > 1 or '-' in ranges[0] else ''} " \
           f"{', '.join(ranges)}."


def record_table(schema: Schema, compact: bool = True) -> str:
    """A layout's table; `compact`: with its size in the compact encoding (current layouts)."""
    kind = KIND_BY_NAME[schema.kind]
    lines = [f"#### `{schema.name}` v{schema.version} — kind `{schema.kind}`, "
             f"{schema.itemsize} bytes per record",
             ""]
    if kind.notes:
        lines += [kind.notes, ""]
    lines += ["| offset | size | field | type | notes |", "|---:|---:|---|---|---|"]
    for f in sorted(schema.fields, key=lambda f: f.offset):
        lines.append(f"| {f.offset} | {f.size} | `{f.name}` | {type_token(f)} | "
                     f"{kind.field(f.name).doc} |")
    tail = f" In `compact` messages a record is its first {compact_row(schema).itemsize} " \
           "bytes." if compact else ""
    lines += ["", padding_text(schema) + tail]
    return "\n".join(lines)


HEADERS = [
    (c.H_SCHEMA, "data", "schema name, e.g. `binance.spot.trade`: the kind's, whatever the "
                         "topic's `{market}` (`binance.sim.trade` carries it too)"),
    (c.H_VERSION, "data", "schema version (each table below names its own)"),
    (c.H_ENCODING, "data", "`records`, `compact`, `json`, `jsonrecord` or `raw`"),
    (c.H_COUNT, "data", "records in the message (`raw`: the records its frames decode to)"),
    (c.H_SEQ_FIRST, "data, kinds with ids", "first sequence id covered (see Sequence ids); "
     "absent on kinds without ids"),
    (c.H_SEQ_LAST, "data, kinds with ids", "last sequence id covered"),
    (c.H_INSTANCE, "all", "handler instance (host name unless configured)"),
    (c.H_EPOCH, "data", "epoch of the connection the records came on; +1 on every reconnect; "
                        "0: not from a stream (depth snapshots, `book` records)"),
    (c.H_SYMBOL, "compact", "the records' symbol, which their bytes leave out (also the key)"),
    (c.H_FRAMES, "raw", "exchange frames in the message"),
    (c.H_RECV_NS, "raw", "receive time of each frame, ns, comma-separated"),
    (c.H_TIME_UNIT, "raw", "`ms` or `us`: the connection's `timeUnit`"),
    (c.H_EVENT, "control", "event type"),
    (c.H_REASON, "dead-letter", "why the frame was rejected, e.g. `malformed_json`"),
    (c.H_FIELD, "dead-letter", "the field at fault (empty: the frame as a whole)"),
    (c.H_STREAM, "dead-letter",
     "the stream name, when known (its first 256 characters; also the key)"),
    (c.H_SIZE, "dead-letter", "a frame over `kafka.max_message_bytes` is truncated to it: "
     "its original size in bytes"),
    (c.H_SHA256, "dead-letter", "...and the SHA-256 of the whole frame, hex"),
]


TOPICS = [
    (c.DEFAULT_TOPIC_TEMPLATE, "symbol, e.g. `BTCUSDT`",
     "consecutive records of one symbol and kind, e.g. on `binance.spot.trade`"),
    (c.DEFAULT_CONTROL_TOPIC, "handler instance", "one JSON event: gap, reconnect, ..."),
    (c.DEFAULT_DEADLETTER_TOPIC, "stream name (empty when the frame names none that is known)",
     "one rejected frame, byte for byte"),
]


def sequence_section() -> str:
    rows = []
    for kind in (KIND_BY_NAME[s.kind] for s in DATA_KINDS):
        if kind.sequence is None:
            continue
        seq = kind.sequence
        ids = f"`{seq.first}`" + ("" if seq.first == seq.last else f" … `{seq.last}`")
        rule = {Rule.CONTIGUOUS: "contiguous: next first = previous last + 1",
                Rule.INCREASING: "increasing: next first > previous last (steps may skip)",
                Rule.NON_DECREASING: "non-decreasing: next first >= previous last (steps may "
                                     "skip; an equal id restates the book after a rebuild, "
                                     "e.g. more levels known after a snapshot)"}[seq.rule]
        rows.append(f"| `{kind.name}` | {ids} | {rule} |")
    without = ", ".join(f"`{s.kind}`" for s in DATA_KINDS
                        if KIND_BY_NAME[s.kind].sequence is None)
    return f"""### Sequence ids

| kind | `{c.H_SEQ_FIRST}` … `{c.H_SEQ_LAST}` (first record's … last record's) | rule |
|---|---|---|
""" + "\n".join(rows) + f"""

Kinds without ids ({without}) carry no `fh.seq.*` headers.

- **Per symbol, not per partition.** Continuity holds per message key (symbol) within one
  kind: a partition interleaves many symbols, so compare a message's `{c.H_SEQ_FIRST}` with
  the `{c.H_SEQ_LAST}` of the previous message of the same topic, key, `{c.H_INSTANCE}` and
  `{c.H_EPOCH}`. The headers give only a message's first and last ids: a skip or a repeat
  between two records of one message shows only in the records' own ids (compare each with
  the one before), and as the `gap` event (reason `missing` or `backwards`) the handler
  publishes for every discontinuity it saw; the records around it are published as they
  came. So one
  stream carries a symbol's ids of a kind: two that would interleave them (`btcusdt@depth`
  and `btcusdt@depth@100ms`, `btcusdt@depth5` and `btcusdt@depth20`, `!bookTicker` and
  `btcusdt@bookTicker`) are refused at start and by `POST /subscriptions`.
- **Epochs.** `{c.H_EPOCH}` is the number of the connection a symbol's records came on. Every
  connection attempt of an instance, on any of its connections, takes the next number from 1,
  so an epoch names one connection; compare epochs for equality only (one symbol and kind come
  on one connection of an instance at a time, but a stream removed and added again may come
  back on an older connection, whose epoch is lower). The handler's sequence checks restart with
  each epoch, so the first message of a new epoch need not follow on from the last of the
  previous one: whatever the exchange sent between the two connections is lost, and a `gap`
  event with `reason: reconnect` (`from_ns`, `to_ns`) says so. Consumers restart their own
  checks when the epoch or the instance changes. An order book built from the diffs need not
  be dropped then: it continues while the new epoch's first diff follows on (its
  `first_update_id` ≤ the book's update id + 1), and needs a snapshot only when the ids
  break, as within an epoch (`BookBuilder` does this).
  Epoch 0 marks records that came from no stream connection: depth snapshots on the depth
  topic (`book.snapshots`, rows flagged 4, and 8 too on a side the snapshot's limit cut) and
  `book` records; they are not on the diffs' sequence.
- **Rollover.** A connection replaced make-before-break (its lifetime, or the exchange's
  `serverShutdown`) also starts a new epoch, but without a loss: both connections run for a
  moment, each id is published once (the one that arrived first), and the new epoch's first
  message follows on from the previous epoch's last; a `rollover` event, not a `gap`, marks
  it (an old connection that stops with ids still owed leaves a `missing` gap of only the ids
  neither connection delivered). Kinds without ids may repeat a record across the two epochs
  during that moment.
- **A/B redundancy** (`connection.redundancy: 2`). Each leg's connection attempt also takes
  the next epoch, and the records of both legs carry the shard's newest one, their ids
  continuing as in a rollover: an epoch then names the shard's latest attempt, not one leg's
  connection. A `connected` event reports the epoch current when it is sent, so both legs'
  first ones may say 2 (epoch 1 then carries no records).
- **Events and messages.** A frame's records never straddle two decoder batches. A diff-depth
  event (`depth`: one row per price level, `flags` 1 on its first row and 2 on its last) spans
  two or more Kafka messages only when one symbol's run exceeds `kafka.max_message_bytes`:
  they are consecutive messages of the same key, in order, and each carries the `U`/`u` of
  its rows, so a message whose first row lacks flag 1 continues the previous message's last
  event, and its `{c.H_SEQ_FIRST}` is that event's `U` (the previous message's own
  `{c.H_SEQ_FIRST}` only when that message began with the same event): check continuity
  between events, not between such messages. Every other kind is one record per event (an
  all-market `!…@arr` frame is one record per symbol, each in its symbol's message)."""


TIMES = """### Times

Every time in a record is an int64 count of nanoseconds since the Unix epoch (1970-01-01
00:00 UTC), whatever the connection's `timeUnit`: the exchange's milliseconds (or, with
`connection.time_unit: us`, microseconds) are multiplied exactly, so they keep that
precision. `ts_recv` is the handler's receive time (CLOCK_REALTIME, read once per frame: all
records of a frame share it); every other time is the exchange's. A kline's `ts_close` is
inclusive: the bar's last millisecond, `ts_open` + span - 1 ms (a 1m bar opened at 12:00:00
closes at 12:00:59.999), or its last microsecond in time unit `us` (12:00:59.999999). The
Kafka timestamp of a message is its produce time (librdkafka's CreateTime when the handler
hands the message over; or the broker's append time on a topic with
`message.timestamp.type=LogAppendTime`), never an exchange time."""


def events_section() -> str:
    def fields(pairs: tuple[tuple[str, str], ...]) -> str:
        return "; ".join(f"`{name}`: {text}" for name, text in pairs)

    rows = [f"| `{e.type}` | {e.source} | {e.meaning} | {fields(e.fields)} |" for e in EVENTS]
    return f"""### Control events

One JSON object per message. Every event has {fields(COMMON_FIELDS)}. Events of a connection
(source `connection`) also have {fields(CONNECTION_FIELDS)}. Events of the WebSocket API
client (source `wsapi`) also have `"source": "wsapi"`: that is what tells its `connected`,
`disconnected` and `connect_failed` from a connection's; a handler `gap` has a `kind`, a
connection's has `reason: reconnect`. Integers are JSON numbers and may exceed 2^53 (times in
ns, update ids): parse them as 64-bit integers (JavaScript's `JSON.parse` rounds them).

| `type` | source | meaning | fields |
|---|---|---|---|
""" + "\n".join(rows)


DELIVERY = """### Delivery

One idempotent producer per worker (`enable.idempotence`, `acks=all`). `kafka.profile`
chooses the producer's defaults: `throughput` (default: `linger.ms` 5, lz4, and each symbol's
message held 5 ms, `kafka.hold_ms`) or `latency` (`linger.ms` 0, no compression, Nagle off,
nothing held, and librdkafka's threads at nice 10, `kafka.thread_nice`); `kafka.compression`,
`kafka.linger_ms`, `kafka.hold_ms`, `kafka.thread_nice` and `kafka.batch_bytes` win over the
profile. `kafka.producer` takes other librdkafka settings
(SASL, TLS, ...), not those the delivery guarantee rests on (`enable.idempotence`, `acks`,
`retries`, `max.in.flight`, `message.timeout.ms`, their aliases) nor those a `kafka` key sets
(`linger.ms`, `compression.type`, `batch.size`, `message.max.bytes`, their aliases): they
fail at start, and so does a `kafka.max_message_bytes` that librdkafka's queue
(`kafka.queue_mb`) could not take with its key and headers. `kafka.hold_ms` (`records` and
`compact` encodings; 0: each batch's messages leave with it) keeps each symbol's message
open across batches while the handler is behind the exchange (at the end of a read burst its
connection's socket still holds data not read), for up to that long (checked every 2 ms) or
until the kind's held records fill `kafka.batch_bytes`. Once the handler has read what was
sent, held messages go at once: at rates it keeps up with, nothing waits (checked at the end
of each read burst, and over every connection at the 2 ms service tick; over TLS, data the TLS
layer took from the socket but has not decrypted is not seen, which only ends a hold sooner; a
replay, with no socket to ask, holds for the full time). A symbol's rows from another
connection (another epoch) send its held message first, and shutdown sends them all. At
saturation on the benchmark VM the throughput profile's 5 ms made a third as many messages (a
third as many `decode()` calls for a consumer) and less handler CPU per record with Kafka
(1.44x and 1.47x the null sink's against 1.61x and 1.54x without holding, in two runs); at
1k and 10k msgs/s its end to end latency stayed the same (p50 4.0 and 3.8 ms either way).
The latency profile holds nothing: under load, holding adds up to `kafka.hold_ms`
(`bench/BENCHMARKS.md`, "Kafka path", thirtieth session). What is left at saturation is
per byte: the rows' copy into messages, librdkafka's CRC32C and socket copy on the handler's
core, and the broker's work. Without compression `kafka.encoding: compact` (33-44 % fewer
bytes) gave 1.35x, 1.36x and 1.33x the null sink's handler CPU per record against 1.42x,
1.44x and 1.60x with `records` in the same runs, and the broker's CPU per record 0.65-0.73x
(thirty-first session). With linger 0 a `produce()` into an empty queue wakes librdkafka's
broker thread, which at the same priority tends to preempt the decoding thread on a shared
core message by message; at nice 10 it mostly runs once the read's hand-over is done and
sends its messages together (a weight, not an order: on an idle core it runs at once). On the
2-vCPU benchmark VM at 10k msgs/s the handler's receive → produce p99 went from 1.7-1.9 ms to
0.17-0.20 ms (`bench/BENCHMARKS.md`). The cost: on a busy core librdkafka gets a small share;
with a linger it is then late to its timer, so the throughput profile leaves it at 0.
librdkafka's idempotent producer sends a partition's next produce request only once fewer than
5 of its messages are in flight (in effect one request at a time; librdkafka pull request
#4989), and while a ready batch waits for that acknowledgement its broker thread polls
without sleeping. A batch is ready once it has waited `linger.ms` or filled `batch.size`, so
the thread spins whenever acknowledgements take longer than either (a busy, cold or distant
broker; in the latency profile, linger 0, at moderate rates already): `top -H` shows it as
`rdk:broker…`. On the benchmark VM that thread took 0.53-0.58 s of CPU for 1.5 M frames
against a cold broker, 0.13-0.24 s against a warm one; in the latency profile at 10k msgs/s
it polled 37 times per request sent. The handler measures it from librdkafka's statistics:
poll-loop wake-ups per request sent (`sink.wakeups_per_request` in the summary,
`feedhandler_sink_broker_wakeups_per_request`; 3-4 while the thread sleeps between requests,
tens to thousands while it spins) and says so in its log when a thread spins (at most every
10 minutes; a warning, or information with linger 0, whose known price it is). By
librdkafka's source a `kafka.linger_ms` above the acknowledgement time, with a
`kafka.batch_bytes` that holds a linger's messages, lets the thread sleep, at that much more
latency when rates are low (`bench/BENCHMARKS.md`, "Kafka path").
Failed deliveries are reported one by one (counted with their record counts,
logged once per error, and published as `delivery_failed` events); successes are counted as
produced - failed - still in flight, exact once the producer is flushed, and the queue / send /
ack latency percentiles come from librdkafka's statistics (the run summary's `sink` object and
`/metrics`). Messages never time out in
the producer: a broker outage is backpressure, not loss. When librdkafka's queue
(`kafka.queue_mb`) is full, messages wait in the handler's own queue, in order; past
`kafka.backlog_limit_mb` the handler stops reading from the exchange (a `paused` event) and
resumes below half of it (`resumed`). Memory is bounded by the two limits plus one batch per
kind. While paused, the handler does not judge its connections stale (the silence is its
own), but the exchange's pings go unanswered too: Binance drops a connection whose pong has
not come within a minute, and the reconnect `gap` event then says what was lost. On
SIGTERM/SIGINT the handler stops reading, flushes its open batches and the producer within
`shutdown_timeout_s`, and exits 0, or 3 when messages were left undelivered (out of time, or
refused by the broker while closing, when their `delivery_failed` events can no longer be
published): the summary's `sink.undelivered` says how many, and the log says so at ERROR.

Batches (smart batching): the decoder hands over a kind's records as soon as it has decoded
the current socket read (picows's last whole frame of the read), so under load bursts make
big batches and when idle each frame leaves at once; earlier when a batch reaches
`batch.rows` records or `batch.bytes` bytes (rows = bytes // record size); `batch.linger_ms`
only caps a batch's age within one long burst (0: no cap). Per kind in
`batch.per_kind.<kind>.{rows,bytes,linger_ms}`; `batch.burst: false` restores full-or-linger
only. The sink splits each batch by symbol, keeping exchange order, into one message per
symbol (several past `kafka.max_message_bytes`). With `kafka.hold_ms` (`records` and
`compact` encodings; the throughput profile's 5 ms) a symbol's message stays open across
batches of its epoch while the handler is behind the exchange, for up to that long or until
the kind's held records fill `kafka.batch_bytes`: fewer, bigger messages under load, no wait
once it has caught up."""

READING = """### Reading it back

```python
import feedhandler
records = feedhandler.decode(message)  # any confluent_kafka.Message of a data topic:
                                       # a numpy array of feedhandler.SCHEMAS[kind].dtype
feedhandler.to_str(int(records["price"][0]))      # exact text: '98249.71000000'
feedhandler.to_decimal(int(records["price"][0]))  # exact: Decimal('98249.71000000')
```

`feedhandler.decode` needs only numpy and orjson: it works from a plain `pip install` with no
compiler (`FEEDHANDLER_PURE=1` builds the package without its extensions); only the `raw`
encoding needs the compiled decoder.

```sh
feedhandler consume --from-beginning                  # every topic of binance.spot, as a table
feedhandler consume --kind trade --symbol BTCUSDT -f  # follow one symbol's trades
feedhandler consume --tail 10 --format jsonl          # last 10 messages per partition, JSON
feedhandler consume --from-beginning --format summary # per symbol: messages, records, first and
                                                      # last sequence id, gaps, repeats
```

`--topic T` reads any topic; `--kafka-bootstrap` (default `127.0.0.1:9092`), `--exchange`/
`--market` (default `binance`/`spot`; `--market sim` for `examples/simulator.yaml`) and
`--topic-template` locate them. Without `--follow` it stops at the end offsets seen on start.
Control events and dead letters are printed as JSON lines."""


def _compact(kind: str) -> str:
    return f"{compact_row(SCHEMAS[kind]).itemsize} of a `{kind}` record's {SCHEMAS[kind].itemsize}"


def _saved() -> str:
    """How much smaller compact records are than whole ones, over the busy kinds."""
    saved = [round(100 - 100 * compact_row(SCHEMAS[k]).itemsize / SCHEMAS[k].itemsize)
             for k in BUSY_KINDS]
    return f"{min(saved)}-{max(saved)} %"


def values_section() -> str:
    return f"""### Values

- `records` (default): the records' bytes, back to back: `{c.H_COUNT}` * record size bytes,
  laid out as in the tables below. In numpy: `np.frombuffer(value, SCHEMAS[kind].dtype)`, or
  `feedhandler.decode(message)`. Padding bytes are zero; so are the unused slots of fixed
  sub-arrays (`depthPartial` levels past `bid_count`/`ask_count`).
- `compact`: the same records cut before their `symbol`, every kind's last field: each is its
  first bytes up to the symbol's offset (the tables give it: {_compact("trade")},
  {_compact("depth")}), back to back, and `{c.H_SYMBOL}` carries the symbol once. Without
  compression {_saved()} fewer bytes than `records` for the busy kinds, for the broker, its
  disks and consumers alike, and less handler CPU per record (see Delivery; with compression
  the symbol compresses well, and the difference is smaller). Rows are then not aligned (a
  `trade` every 49 bytes): read fields with unaligned loads, or copy each row into a full
  record. In numpy: `np.frombuffer(value, feedhandler.records.compact_row(SCHEMAS[kind]))`,
  or `feedhandler.decode(message)`, which gives the symbol back. A consumer that reads values
  as `records` must check `{c.H_ENCODING}`: some compact values are a whole number of full
  records long too.
- `json`: one JSON object per record and line (each line ends in `\\n`), keys in table order.
  Integers are JSON numbers (nanosecond times exceed 2^53: parse them as 64-bit integers);
  decimals are exact strings with 8 decimals and no exponent (`"-0.00010000"`, `"0.00000000"`:
  `feedhandler.to_str`); text fields are strings without their padding; `T[N]` fields are
  arrays (all N slots).
- `jsonrecord`: the same JSON object, one record per Kafka message (`{c.H_COUNT}` = 1, no
  newline), so that stock JSON converters (Kafka Connect, ksqlDB, Flink) read a topic as
  rows. `feedhandler.contract.json_schema(kind)` gives its JSON Schema.
- `raw`: the exchange's frames exactly as received, one per line (`\\n` after each), for
  archival; `{c.H_RECV_NS}` gives each frame's receive time. A frame of an all-market stream
  (`!miniTicker@arr`, ...) carries many symbols: it is keyed by the empty string (topic
  `{{symbol}}` = `all`). The decoder keeps each batch's frames only while this encoding is on.
  A message never splits a frame: `kafka.max_message_bytes` (plus the 64 KiB librdkafka
  allows beyond it) must hold the largest frame the decoder takes, `connection.max_frame_bytes`,
  and so must librdkafka's whole queue, `kafka.queue_mb` (both checked at start), and the
  topics' `max.message.bytes` (the broker's default, 1 MiB, less the batch's framing and the
  message's headers).

Machine-readable schemas, generated from the same declarations:
`python -m feedhandler.contract.schemas json [KIND]` prints the JSON Schema of each kind's
`json`/`jsonrecord` object, `python -m feedhandler.contract.schemas arrow [KIND]` the Arrow
schema of its `records` (`feedhandler.contract.arrow_schema(kind)`, and
`arrow_table(kind, records)` for a decoded batch; needs pyarrow): times as
`timestamp[ns, UTC]`, decimal64 as `decimal128(19, 8)` and decimal128 as `decimal256(39, 8)`
(exact), text as `string`, `T[N]` as fixed-size lists."""


def section() -> str:
    parts = ["""## Kafka data contract

### Topics and keys

| topic | key | value |
|---|---|---|
""" + "\n".join(f"| `{topic}` | {key} | {value} |" for topic, key, value in TOPICS) + """

The data topic template is `kafka.topic_template`; `{symbol}` (lower case) gives one topic per
stream (an all-market stream, whose symbols are the whole market, only with `kafka.encoding:
raw`: a configuration with both fails on start). Keying by symbol keeps each symbol's records
in exchange order within one partition. Topics are created on start with `kafka.partitions` /
`kafka.replication_factor` (`-1`: the broker's defaults) and `kafka.topic_config`; with
`kafka.create_topics: false` the handler instead fails on start naming any missing topic. The
producer is idempotent with `acks=all`, so a retry never duplicates or reorders; a message
larger than `kafka.max_message_bytes` is split into several.

### Headers

Header values are UTF-8 text; a consumer needs nothing but the headers to decode a value.

| header | on | meaning |
|---|---|---|
""" + "\n".join(f"| `{h}` | {on} | {text} |" for h, on, text in HEADERS),
             sequence_section(), values_section(), TIMES, events_section(), DELIVERY, READING,
             """### Record layouts

All integers are little-endian; records have no header and no separator. Fields sit in
declared order, each at its natural alignment, a decimal128 at 8 (two 8-byte words, not the
16 of C's `__int128` or Rust's `i128`: take the offsets from the tables); the padding bytes
this leaves are listed under each table. Types:

""" + "\n".join(f"- `{t}`: {text}" for t, text in TYPES.items())]
    parts += [record_table(s) for s in DATA_KINDS]
    parts += ["""### Earlier record layouts

A message produced before its kind's layout changed names that version in `fh.version` and
decodes with its table here (`feedhandler.decode` reads these too, into the current layout)."""]
    parts += [record_table(s, compact=False) for _, s in sorted(HISTORY.items())]
    return "\n\n".join(parts) + "\n"


def readme_section() -> str:
    """`section()` as it stands in the README, a blank line before the next heading."""
    return section().rstrip() + "\n\n"


if __name__ == "__main__":
    rewrite("feedhandler.contract.docs", readme_section())
