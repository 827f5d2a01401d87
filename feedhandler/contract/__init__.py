"""The Kafka data contract: topic names, keys, message headers and value encodings.

Producer (feedhandler.sinks.kafka) and consumers (feedhandler.consume) share this module; the
README restates it for other languages (its record tables come from feedhandler.contract.docs).
Header values are UTF-8 text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from feedhandler.contract.json_lines import decode_json
from feedhandler.contract.kinds import KIND_BY_NAME, Role, Rule, kinds_by_rule, sequence_fields
from feedhandler.records import SCHEMAS, Schema, in_current_layout, schema_by_name
from feedhandler.records.schema import compact_row, copied_into

if TYPE_CHECKING:
    from feedhandler.contract.schemas import arrow_schema as arrow_schema
    from feedhandler.contract.schemas import arrow_table as arrow_table
    from feedhandler.contract.schemas import json_schema as json_schema


def __getattr__(name: str) -> Any:
    # Imported when first asked for: `python -m feedhandler.contract.schemas` would otherwise
    # find its module loaded already, and runpy warns
    if name in ("arrow_schema", "arrow_table", "json_schema"):
        from feedhandler.contract import schemas
        return getattr(schemas, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# --- headers -------------------------------------------------------------------------------
H_SCHEMA: Final = "fh.schema"  # data: schema name, e.g. binance.spot.trade
H_VERSION: Final = "fh.version"  # data: schema version, e.g. 1
H_ENCODING: Final = "fh.encoding"  # data: records | compact | json | jsonrecord | raw
H_COUNT: Final = "fh.count"  # data: records in the message
H_SEQ_FIRST: Final = "fh.seq.first"  # data: first/last sequence id covered (kinds that have one)
H_SEQ_LAST: Final = "fh.seq.last"
H_INSTANCE: Final = "fh.instance"  # every topic: the handler instance that produced it
H_SYMBOL: Final = "fh.symbol"  # compact: the symbol its records left out
H_EPOCH: Final = "fh.epoch"  # data: epoch of the connection the records came on; it bumps
# on every (re)connect, and one (kind, symbol) always comes on one connection of an instance
H_FRAMES: Final = "fh.frames"  # raw: exchange frames in the message
H_RECV_NS: Final = "fh.recv_ns"  # raw: receive time of each frame, comma-separated ns
H_TIME_UNIT: Final = "fh.time_unit"  # raw: ms | us, the connection's timeUnit
H_EVENT: Final = "fh.event"  # control: the event type
H_REASON: Final = "fh.reason"  # dead-letter: why the frame was rejected
H_FIELD: Final = "fh.field"  # dead-letter: the field at fault ("" = the frame as a whole)
H_STREAM: Final = "fh.stream"  # dead-letter: the exchange stream name, when known
H_SIZE: Final = "fh.size"  # dead-letter, truncated frames only: the frame's original size
H_SHA256: Final = "fh.sha256"  # dead-letter, truncated frames only: hex digest of the whole frame

# What confluent_kafka.Message.headers() returns (and produce() takes).
KafkaHeaders = Sequence[tuple[str, str | bytes | None]] | Mapping[str, str | bytes | None] | None

# Values of fh.encoding (kafka.encoding): record bytes, record bytes without the symbol (the
# fh.symbol header carries it), JSON lines, one JSON record per message, the exchange's frames.
ENCODINGS: Final = ("records", "compact", "json", "jsonrecord", "raw")
# The encodings whose records the Kafka sink copies into messages in C (produce_records).
BINARY_ENCODINGS: Final = ("records", "compact")

# Bits of a `depth` row's `flags` (the kind's declaration says what each means).
DEPTH_FIRST: Final = 1  # the first row of its event
DEPTH_LAST: Final = 2  # the last
DEPTH_SNAPSHOT: Final = 4  # a row of a published depth snapshot
DEPTH_CUT: Final = 8  # a snapshot row of a side its request's limit cut

# --- topics and keys -----------------------------------------------------------------------
DEFAULT_TOPIC_TEMPLATE: Final = "{exchange}.{market}.{kind}"
DEFAULT_CONTROL_TOPIC: Final = "{exchange}.{market}.control"
DEFAULT_DEADLETTER_TOPIC: Final = "{exchange}.{market}.deadletter"
# Key of raw messages whose frames carry several symbols (all-market `!…@arr` streams); such
# messages go to the `{symbol}` = "all" topic of one-topic-per-symbol templates.
ALL_SYMBOLS: Final = ""

# The id each kind is sequenced by: (column giving the first id, column giving the last id).
SEQUENCE_FIELDS: Final[dict[str, tuple[str, str]]] = sequence_fields()
# Kinds whose ids leave no hole between consecutive events (the others' ids only increase).
CONTIGUOUS_KINDS: Final[frozenset[str]] = kinds_by_rule(Rule.CONTIGUOUS)
# Kinds whose next id may equal the previous one (the same state restated).
RESTATING_KINDS: Final[frozenset[str]] = kinds_by_rule(Rule.NON_DECREASING)


def topic_for(kind: str, symbol: str = ALL_SYMBOLS, template: str = DEFAULT_TOPIC_TEMPLATE,
              exchange: str = "binance", market: str = "spot") -> str:
    return template.format(exchange=exchange, market=market, kind=kind,
                           symbol=symbol.lower() or "all")


def stream_kind(stream: str) -> tuple[str, str]:
    """A Binance stream name -> (kind, SYMBOL); the symbol is ALL_SYMBOLS for `!…@arr` streams.

    >>> stream_kind("btcusdt@depth20@100ms"), stream_kind("!ticker_1h@arr")
    (('depthPartial', 'BTCUSDT'), ('windowTicker', ''))
    """
    head, _, rest = stream.partition("@")
    if head.startswith("!"):
        symbol, name = ALL_SYMBOLS, head[1:]
    else:
        symbol, name = head.upper(), rest.partition("@")[0]
    if name.startswith("kline_"):
        kind = "kline"
    elif name.startswith("ticker_"):
        kind = "windowTicker"
    elif name in ("depth5", "depth10", "depth20"):
        kind = "depthPartial"
    else:
        kind = name
    if kind not in KIND_BY_NAME or KIND_BY_NAME[kind].role is not Role.MARKET:
        raise ValueError(f"not a market data stream: {stream!r}")
    return kind, symbol


def data_topics(streams: Iterable[str], template: str = DEFAULT_TOPIC_TEMPLATE,
                exchange: str = "binance", market: str = "spot",
                derived: Iterable[str] = ()) -> set[str]:
    """The data topics these streams publish to, and those of the `derived` kinds the handler
    makes from them (e.g. `book` per depth stream's symbol). With a `{symbol}` template, an
    all-market stream's symbols are unknown up front; only its "all" topic (raw encoding) is
    listed."""
    pairs = [stream_kind(s) for s in streams]
    sources = {KIND_BY_NAME[d].derived_from: d for d in derived}
    pairs += [(sources[kind], symbol) for kind, symbol in pairs if kind in sources]
    return {topic_for(kind, symbol, template, exchange, market) for kind, symbol in pairs}


# --- values ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Frames:
    """The exchange frames a batch was decoded from, in order (for the `raw` encoding).

    Frame i is payload[offsets[i]:offsets[i + 1]] and produced records[rows[i]:rows[i + 1]] of
    the batch: both int64 arrays hold one entry per frame plus one, starting at 0 and ending at
    len(payload) and len(records).
    """

    payload: bytes
    offsets: np.ndarray
    rows: np.ndarray


def padding(schema: Schema) -> list[tuple[int, int]]:
    """Byte ranges [start, end) of a record that no field covers."""
    covered = np.zeros(schema.itemsize, bool)
    for f in schema.fields:
        covered[f.offset : f.offset + f.size] = True
    edges = np.flatnonzero(np.diff(np.concatenate(([0], ~covered, [0]), dtype=np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))  # start, end


_PADDING = {schema.name: padding(schema) for schema in SCHEMAS.values()}


def wire_records(schema: Schema, records: np.ndarray) -> np.ndarray:
    """`records` as their wire bytes: the schema's exact layout with zero padding.

    Decoder batches are that already (rows are zeroed before they are written); arrays that
    went through numpy copies are not: np.concatenate packs the dtype, and copy()/astype()/
    concatenate(dtype=...) leave the padding bytes uninitialised. Zeroes the padding in place
    when it can (the sink owns its batches), else copies.
    """
    if records.dtype != schema.dtype or not (records.flags.writeable
                                             and records.flags.c_contiguous):
        return copied_into(schema, records)
    raw = records.view(np.uint8).reshape(len(records), schema.itemsize)
    for start, end in _PADDING[schema.name]:
        raw[:, start:end] = 0
    return records


@lru_cache(maxsize=1024)
def fixed_headers(name: str, version: int, encoding: str,
                  instance: str) -> tuple[tuple[str, bytes], ...]:
    """The headers a data message starts with; count, epoch, the sequence range and, in the
    compact encoding, the symbol follow (feedhandler._ext.publish adds them per message)."""
    return ((H_SCHEMA, name.encode()), (H_VERSION, b"%d" % version),
            (H_ENCODING, encoding.encode()), (H_INSTANCE, instance.encode()))


def raw_headers(recv_ns: np.ndarray, time_unit: str) -> list[tuple[str, bytes]]:
    """The extra headers of a `raw` message: what decoding its frames again needs."""
    return [(H_FRAMES, b"%d" % len(recv_ns)),
            (H_RECV_NS, ",".join(map(str, recv_ns.tolist())).encode()),
            (H_TIME_UNIT, time_unit.encode())]


def header_dict(headers: KafkaHeaders) -> dict[str, str]:
    """A message's headers (as confluent_kafka gives them) as text; DecodeError for one that
    is not UTF-8."""
    text = {}
    for key, value in headers.items() if isinstance(headers, Mapping) else headers or ():
        try:
            text[key] = value.decode() if isinstance(value, bytes) else value or ""
        except UnicodeDecodeError:
            raise DecodeError(f"header {key} is not UTF-8") from None
    return text


def data_schema(headers: dict[str, str]) -> Schema:
    """The schema of a data message's records once decoded: the current version of the kind
    its headers name (a message of an earlier version is decoded into it)."""
    return SCHEMAS[schema_by_name(headers[H_SCHEMA], int(headers[H_VERSION])).kind]


def decode_raw(schema: Schema, headers: dict[str, str], value: bytes) -> np.ndarray:
    """Raw frames -> the records the handler decoded from them (`schema`: the current one of
    their kind, `data_schema`), receive times included."""
    from feedhandler._ext.decoder import Decoder  # the live decoder, applied once more

    frames = value.split(b"\n")[:-1]  # every frame ends in "\n"
    recv_ns = [int(t) for t in headers[H_RECV_NS].split(",") if t]  # ("" for no frame)
    if len(frames) != len(recv_ns):
        raise ValueError(f"{len(frames)} frames but {len(recv_ns)} receive times")
    parts: list[np.ndarray] = []
    decoder = Decoder(lambda kind, rows: parts.append(rows) if kind == schema.kind else None,
                      time_unit=headers.get(H_TIME_UNIT, "ms"), batch_rows=1 << 16,
                      linger_ms=None)
    for frame, ts in zip(frames, recv_ns, strict=True):
        decoder.decode(frame, ts)
    decoder.flush()
    return wire_records(schema, np.concatenate(parts)) if parts else np.empty(0, schema.dtype)


def _uncompacted(schema: Schema, headers: dict[str, str], value: bytes) -> np.ndarray:
    """A `compact` value's records in `schema`'s layout, the symbol from its header."""
    row = compact_row(schema)  # (ValueError for a kind without a symbol)
    if H_SYMBOL not in headers:
        raise ValueError(f"a compact message without its {H_SYMBOL} header")
    symbol = headers[H_SYMBOL].encode()
    if len(symbol) > schema.dtype["symbol"].itemsize:  # (numpy would cut it)
        raise ValueError(f"{H_SYMBOL} is longer than a {schema.kind} record's symbol")
    records = copied_into(schema, np.frombuffer(value, dtype=row))
    records["symbol"] = symbol
    return records


class DecodeError(ValueError):
    """A data message this build cannot decode: a schema or encoding it does not know, or a
    value that does not match its headers."""


def decode_value(headers: dict[str, str], value: bytes) -> np.ndarray:
    """A data message's value -> its records, from the message's headers alone; DecodeError
    when that cannot be done."""
    try:
        return _decode_value(headers, value)
    except KeyError as exc:  # an unknown schema
        raise DecodeError(exc.args[0] if exc.args else str(exc)) from None
    except (ValueError, ImportError) as exc:  # (raw frames need the decoder extension)
        raise DecodeError(str(exc)) from None


def _decode_value(headers: dict[str, str], value: bytes) -> np.ndarray:
    if H_SCHEMA not in headers:
        raise ValueError("not a data message (no fh.schema header): control or dead-letter?")
    written = schema_by_name(headers[H_SCHEMA], int(headers[H_VERSION]))  # (maybe earlier)
    schema = SCHEMAS[written.kind]
    encoding = headers.get(H_ENCODING, "records")
    if encoding == "records":
        records = np.frombuffer(value, dtype=written.dtype)
    elif encoding == "compact":
        records = _uncompacted(written, headers, value)
    elif encoding in ("json", "jsonrecord"):
        records = decode_json(written, value)
    elif encoding == "raw":  # (this build's decoder decodes the frames again)
        records = decode_raw(schema, headers, value)
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    count = headers.get(H_COUNT)
    if count is not None and int(count) != len(records):
        raise ValueError(f"header says {count} records, value holds {len(records)}")
    return in_current_layout(schema.kind, records)
