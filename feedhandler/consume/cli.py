"""`feedhandler consume`: read our topics back, decoded.

    feedhandler consume --from-beginning                       # everything there now, as a table
    feedhandler consume --kind trade --symbol BTCUSDT -f       # follow one symbol's trades
    feedhandler consume --tail 10 --format jsonl               # last 10 messages per partition
    feedhandler consume --from-beginning --format summary      # counts, sequence gaps/repeats

Without --topic/--kind it reads every `{exchange}.{market}.*` topic, control and dead-letter
included. Without --follow it stops at the end offsets seen when it started.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import orjson
from confluent_kafka import Message

from feedhandler.consume.decode import decode
from feedhandler.consume.reader import read_messages
from feedhandler.contract import (
    ALL_SYMBOLS,
    DEFAULT_TOPIC_TEMPLATE,
    H_EVENT,
    H_FIELD,
    H_REASON,
    H_SCHEMA,
    H_STREAM,
    H_VERSION,
    SEQUENCE_FIELDS,
    header_dict,
    topic_for,
)
from feedhandler.contract.json_lines import encode_json
from feedhandler.records import SCHEMAS, Schema, schema_by_name

# Kinds whose ids leave no hole between consecutive events (bookTicker and partial depth ids
# only increase).
CONTIGUOUS = frozenset({"trade", "aggTrade", "depth"})
DEPTH_FIRST = 1  # depth `flags`: the first row of an event


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kafka-bootstrap", default="127.0.0.1:9092")
    p.add_argument("--topic", action="append", default=[], help="topic (repeatable)")
    p.add_argument("--kind", action="append", default=[],
                   help="record kind, e.g. trade: its topic by --topic-template (repeatable)")
    p.add_argument("--topic-template", default=DEFAULT_TOPIC_TEMPLATE)
    p.add_argument("--exchange", default="binance")
    p.add_argument("--market", default="spot")
    p.add_argument("--symbol", action="append", default=[], help="only this symbol (repeatable)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true",
                       help="start at the earliest offset (the default without --follow)")
    start.add_argument("--tail", type=int, default=0, metavar="N",
                       help="start N messages before the end of each partition")
    p.add_argument("-f", "--follow", action="store_true", help="keep waiting for new messages")
    p.add_argument("--idle-timeout", type=float, default=10.0,
                   help="without --follow: also stop after this many seconds without a message")
    p.add_argument("--max-records", type=int, default=0, help="stop after this many records")
    p.add_argument("--format", choices=["table", "jsonl", "summary"], default="table")
    p.add_argument("--book", metavar="SYMBOL",
                   help="the symbol's order book rebuilt from the depth topic (top --depth)")
    p.add_argument("--depth", type=int, default=10, metavar="N", help="levels shown by --book")


def _topics(args: argparse.Namespace) -> tuple[list[str], str]:
    """(topic names, regex) to read."""
    names = {"exchange": args.exchange, "market": args.market}
    topics = list(args.topic)
    for kind in args.kind:
        if kind not in SCHEMAS:
            raise ValueError(f"unknown kind {kind!r}; known: {', '.join(SCHEMAS)}")
        symbols = args.symbol if "{symbol}" in args.topic_template else [ALL_SYMBOLS]
        topics += [topic_for(kind, s, args.topic_template, **names) for s in symbols]
    pattern = "" if topics else "^" + re.escape("{exchange}.{market}.".format(**names))
    return topics, pattern


@dataclass
class StreamSummary:
    """One (schema, symbol) stream as read: counts and sequence continuity."""

    messages: int = 0
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    gaps: int = 0  # holes between consecutive events (contiguous kinds)
    repeats: int = 0  # events whose id does not move forward: duplicates or reordering

    def add(self, kind: str, records: np.ndarray) -> None:
        self.messages += 1
        self.records += len(records)
        seq = SEQUENCE_FIELDS.get(kind)
        if seq is None or not len(records):
            return
        first, last = records[seq[0]].astype(np.int64), records[seq[1]].astype(np.int64)
        # Rows of one depth event (flagged FIRST..LAST) share their ids, even across messages.
        starts = (np.flatnonzero(records["flags"] & DEPTH_FIRST) if kind == "depth"
                  else np.arange(len(records)))
        ids = first[starts]
        # The last id before each event: of the row before it, or of the previous message.
        before = np.concatenate(([self.last_seq or 0], last))[starts]
        if self.last_seq is None and len(starts) and starts[0] == 0:
            ids, before = ids[1:], before[1:]  # the very first event has nothing before it
        self.repeats += int((ids <= before).sum())
        if kind in CONTIGUOUS:
            self.gaps += int((ids > before + 1).sum())
        if self.first_seq is None:
            self.first_seq = int(first[0])
        self.last_seq = int(last[-1])


class Output:
    def __init__(self, out: BinaryIO, fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self.streams: dict[tuple[str, str], StreamSummary] = {}
        self.events: dict[str, int] = {}
        self._widths: dict[str, list[int]] = {}
        self._last_schema = ""

    def data(self, schema: Schema, records: np.ndarray) -> None:
        for symbol in np.unique(records["symbol"]):
            rows = records[records["symbol"] == symbol]
            key = (schema.name, bytes(symbol).decode())
            self.streams.setdefault(key, StreamSummary()).add(schema.kind, rows)
        if self.fmt == "jsonl":
            lead = b'"schema":' + orjson.dumps(schema.name) + b","
            self.out.write(encode_json(schema, records, lead))
        elif self.fmt == "table":
            self._table(schema, records)

    def event(self, topic: str, headers: dict[str, str], value: bytes) -> None:
        kind = headers.get(H_EVENT) or ("dead_letter" if H_REASON in headers else "message")
        self.events[f"{topic} {kind}"] = self.events.get(f"{topic} {kind}", 0) + 1
        if self.fmt == "summary":
            return
        if H_REASON in headers:  # dead letter: the frame as text, whatever it holds
            line = {"topic": topic, "reason": headers[H_REASON], "field": headers.get(H_FIELD),
                    "stream": headers.get(H_STREAM),
                    "frame": value.decode("utf-8", "replace")}
        else:
            line = {"topic": topic, "event": orjson.loads(value)}
        self.out.write(orjson.dumps(line) + b"\n")

    def _table(self, schema: Schema, records: np.ndarray) -> None:
        kind = schema.kind
        rows = [orjson.loads(line) for line in encode_json(schema, records).splitlines()]
        cells = [[_cell(v) for v in row.values()] for row in rows]
        names = list(rows[0]) if rows else []
        widths = self._widths.setdefault(kind, [len(n) for n in names])
        grown = False
        for row in cells:
            for i, text in enumerate(row):
                if len(text) > widths[i]:
                    widths[i], grown = len(text), True
        if grown or kind != self._last_schema:
            self._line(["kind", *names], [12, *widths])
            self._last_schema = kind
        for row in cells:
            self._line([kind, *row], [12, *widths])

    def _line(self, texts: list[str], widths: list[int]) -> None:
        self.out.write((" ".join(t.rjust(w) for t, w in zip(texts, widths, strict=True))
                        + "\n").encode())

    def summary(self) -> str:
        lines = [f"{'schema':<28} {'symbol':<12} {'messages':>9} {'records':>10} "
                 f"{'first seq':>14} {'last seq':>14} {'gaps':>6} {'repeats':>7}"]
        for (schema, symbol), s in sorted(self.streams.items()):
            lines.append(f"{schema:<28} {symbol:<12} {s.messages:>9} {s.records:>10} "
                         f"{_opt(s.first_seq):>14} {_opt(s.last_seq):>14} {s.gaps:>6} "
                         f"{s.repeats:>7}")
        lines += [f"{name}: {count}" for name, count in sorted(self.events.items())]
        return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _selected(messages: Iterator[Message], symbols: set[bytes]) -> Iterator[Message]:
    """Skip data messages of other symbols by key, before decoding anything."""
    for msg in messages:
        key = msg.key()
        if symbols and key and key not in symbols and header_dict(msg.headers()).get(H_SCHEMA):
            continue
        yield msg


def run(args: argparse.Namespace) -> int:
    if args.book:
        from feedhandler.book import view  # loads the book extension only when asked

        return view.run(args)
    try:
        topics, pattern = _topics(args)
    except ValueError as exc:
        print(f"feedhandler consume: {exc}", file=sys.stderr)
        return 2
    symbols = {s.upper().encode() for s in args.symbol}
    output = Output(sys.stdout.buffer, args.format)
    messages = read_messages(args.kafka_bootstrap, topics, pattern=pattern,
                             from_beginning=args.from_beginning or not (args.follow or args.tail),
                             tail=args.tail, follow=args.follow, idle_timeout=args.idle_timeout)
    total = 0
    try:
        for msg in _selected(messages, symbols):
            headers = header_dict(msg.headers())
            if H_SCHEMA not in headers:
                output.event(msg.topic() or "", headers, msg.value() or b"")
                continue
            records = decode(msg)
            schema = schema_by_name(headers[H_SCHEMA], int(headers[H_VERSION]))
            if symbols:  # raw messages of all-market streams mix symbols
                records = records[np.isin(records["symbol"], list(symbols))]
            output.data(schema, records)
            total += len(records)
            if args.max_records and total >= args.max_records:
                break
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        messages.close()
    if args.format == "summary":
        sys.stdout.write(output.summary())
    sys.stderr.write(f"consumed {total} records\n")
    return 0
