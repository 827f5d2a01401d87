"""`feedhandler consume`: read our topics back, decoded.

Without --topic/--kind it reads every `{exchange}.{market}.*` topic, control and dead-letter
included. Without --follow it stops at the end offsets seen when it started.
"""

from __future__ import annotations

import argparse
import base64
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

import numpy as np
import orjson
from confluent_kafka import KafkaException, Message

from feedhandler.argtypes import number, topic_template
from feedhandler.consume.decode import decode
from feedhandler.consume.reader import ReadError, SettingError, read_messages
from feedhandler.contract import (
    ALL_SYMBOLS,
    CONTIGUOUS_KINDS,
    DEFAULT_TOPIC_TEMPLATE,
    DEPTH_FIRST,
    DEPTH_SNAPSHOT,
    H_EPOCH,
    H_EVENT,
    H_FIELD,
    H_INSTANCE,
    H_REASON,
    H_SCHEMA,
    H_STREAM,
    RESTATING_KINDS,
    SEQUENCE_FIELDS,
    DecodeError,
    data_schema,
    header_dict,
    topic_for,
)
from feedhandler.contract.json_lines import encode_json
from feedhandler.records import SCHEMAS, Schema

UNDECODABLE_EXIT = 3  # read to the end, but some data messages could not be decoded


def undecodable(msg: Message, exc: Exception) -> None:
    """One line for a message this build cannot decode, which the read skips."""
    print(f"feedhandler consume: skipped {msg.topic()} partition {msg.partition()} offset "
          f"{msg.offset()}: {exc}", file=sys.stderr)


def read_failed(exc: Exception) -> int:
    """One line for a read that failed; the exit code: 2 for a refused -X setting (usage),
    1 for a broker that cannot be read."""
    print(f"feedhandler consume: {exc}", file=sys.stderr)
    return 2 if isinstance(exc, SettingError) else 1


def undecodable_end(skipped: int) -> int:
    """The exit code once the read is done; says how many messages were skipped."""
    if skipped:
        print(f"feedhandler consume: {skipped} messages could not be decoded", file=sys.stderr)
    return UNDECODABLE_EXIT if skipped else 0


EXAMPLES = """\
examples:
  feedhandler consume --from-beginning                  # everything there now, as a table
  feedhandler consume --kind trade --symbol BTCUSDT -f  # follow one symbol's trades
  feedhandler consume --tail 10 --format jsonl          # last 10 messages per partition
  feedhandler consume --from-time 15m --format summary  # the last 15 minutes: counts, gaps
  feedhandler consume --from-time 2026-12-03T08:00:00Z --kind depth --max-records 100
  feedhandler consume --book BTCUSDT --depth 5         # the order book rebuilt from Kafka
  feedhandler consume --kafka-bootstrap broker:9093 -X security.protocol=SASL_SSL \\
      -X sasl.mechanism=SCRAM-SHA-512 -X sasl.username=reader -X sasl.password=...

Exit: 0 done, 1 the broker could not be read (one line on stderr), 2 bad usage, 3 read to the
end but skipped messages it could not decode (each named on stderr).
"""

_AGO = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def from_time_ms(text: str, now_s: float | None = None) -> int:
    """`--from-time`: ISO 8601 (UTC unless it says otherwise), or a duration ago: 90s, 15m,
    2h, 1d. Milliseconds since the epoch."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if match:
        ago = float(match[1]) * _AGO[match[2]]
        return int(((time.time() if now_s is None else now_s) - ago) * 1000)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 time (2026-12-03T08:00:00Z) or a duration ago (15m), "
            f"not {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def librdkafka_setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, not {text!r}")
    return key.strip(), value


def add_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_argument_group("where")
    where.add_argument("--kafka-bootstrap", default="127.0.0.1:9092", metavar="HOST:PORT",
                       help="Kafka bootstrap servers")
    where.add_argument("-X", dest="settings", action="append", default=[],
                       type=librdkafka_setting, metavar="KEY=VALUE",
                       help="librdkafka setting, e.g. security.protocol=SASL_SSL (repeatable)")
    where.add_argument("--timeout", type=number(float), default=10.0, metavar="S",
                       help="give up when the broker does not answer within S seconds")
    what = p.add_argument_group("what")
    what.add_argument("--topic", action="append", default=[], help="topic (repeatable)")
    what.add_argument("--kind", action="append", default=[],
                      help="record kind, e.g. trade: its topic by --topic-template (repeatable)")
    what.add_argument("--topic-template", default=DEFAULT_TOPIC_TEMPLATE, type=topic_template,
                      help="the handler's kafka.topic_template")
    what.add_argument("--exchange", default="binance", help="{exchange} in topic names")
    what.add_argument("--market", default="spot", help="{market} in topic names")
    what.add_argument("--symbol", action="append", default=[],
                      help="only this symbol (repeatable)")
    start = p.add_argument_group("from where").add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true",
                       help="start at the earliest offset (the default without --follow)")
    start.add_argument("--tail", type=int, default=None, metavar="N",
                       help="start N messages before the end of each partition")
    start.add_argument("--from-time", type=from_time_ms, metavar="TIME",
                       help="start at the first message at or after TIME: ISO 8601 "
                            "(2026-12-03T08:00:00Z) or a duration ago (15m, 2h)")
    until = p.add_argument_group("until when")
    until.add_argument("-f", "--follow", action="store_true",
                       help="keep waiting for new messages")
    until.add_argument("--idle-timeout", type=number(float), default=10.0, metavar="S",
                       help="without --follow: also stop after S seconds without a message")
    until.add_argument("--max-records", type=int, default=0, metavar="N",
                       help="stop after the message that reaches N records, whole (0: no "
                            "limit)")
    p.add_argument("--format", choices=["table", "jsonl", "summary"], default="table",
                   help="table: aligned columns; jsonl: one JSON object per record or event, "
                        "with topic, partition and offset; summary: counts and sequence "
                        "checks per symbol")
    p.add_argument("--book", metavar="SYMBOL",
                   help="the symbol's order book rebuilt from the depth topic (top --depth)")
    p.add_argument("--depth", type=int, default=10, metavar="N", help="levels shown by --book")


def _topics(args: argparse.Namespace) -> tuple[list[str], str]:
    """(topic names, regex) to read."""
    names = {"exchange": args.exchange, "market": args.market}
    topics, patterns = list(args.topic), []
    for kind in args.kind:
        if kind not in SCHEMAS:
            raise ValueError(f"unknown kind {kind!r}; known: {', '.join(SCHEMAS)}")
        if "{symbol}" not in args.topic_template:
            topics.append(topic_for(kind, ALL_SYMBOLS, args.topic_template, **names))
        elif args.symbol:
            topics += [topic_for(kind, s, args.topic_template, **names) for s in args.symbol]
        else:  # the kind's topic of every symbol (and, following, of those created since)
            each = topic_for(kind, "\0", args.topic_template, **names)
            patterns.append("^" + re.escape(each).replace("\0", "[^.]+") + "$")
    if patterns or topics:
        return topics, "|".join(patterns)
    return topics, "^" + re.escape("{exchange}.{market}.".format(**names))


@dataclass
class StreamSummary:
    """One (schema, symbol) stream as read: counts, and sequence continuity within each
    (instance, epoch) its messages came from, as the contract says to check it."""

    messages: int = 0
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    gaps: int = 0  # holes between consecutive events (contiguous kinds)
    repeats: int = 0  # events whose id does not move forward (book: moves back): duplicates or
    # reordering
    last_by_origin: dict[tuple[str, str], int] = field(default_factory=dict)

    def add(self, kind: str, records: np.ndarray, origin: tuple[str, str] = ("", "")) -> None:
        """`origin`: the message's (fh.instance, fh.epoch)."""
        self.messages += 1
        self.records += len(records)
        seq = SEQUENCE_FIELDS.get(kind)
        if kind == "depth":  # a snapshot restates the book: its ids are not on the diffs' sequence
            records = records[(records["flags"] & DEPTH_SNAPSHOT) == 0]
        if seq is None or not len(records):
            return
        first, last = records[seq[0]].astype(np.int64), records[seq[1]].astype(np.int64)
        # Rows of one depth event (flagged FIRST..LAST) share their ids, even across messages.
        starts = (np.flatnonzero(records["flags"] & DEPTH_FIRST) if kind == "depth"
                  else np.arange(len(records)))
        ids = first[starts]
        # The last id before each event: of the row before it, or of the previous message of
        # the same origin.
        previous = self.last_by_origin.get(origin)
        before = np.concatenate(([previous or 0], last))[starts]
        if previous is None and len(starts) and starts[0] == 0:
            ids, before = ids[1:], before[1:]  # an origin's first event has nothing before it
        self.repeats += int((ids < before if kind in RESTATING_KINDS else ids <= before).sum())
        if kind in CONTIGUOUS_KINDS:
            self.gaps += int((ids > before + 1).sum())
        if self.first_seq is None:
            self.first_seq = int(first[0])
        self.last_seq = self.last_by_origin[origin] = int(last[-1])


class Output:
    def __init__(self, out: BinaryIO, fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self.streams: dict[tuple[str, str], StreamSummary] = {}
        self.events: dict[str, int] = {}
        self._widths: dict[str, list[int]] = {}
        self._last_schema = ""

    def data(self, schema: Schema, records: np.ndarray, position: bytes = b"",
             origin: tuple[str, str] = ("", "")) -> None:
        """`position`: `"topic":..,"partition":..,"offset":..,` of the message (jsonl);
        `origin`: its (fh.instance, fh.epoch)."""
        for symbol in np.unique(records["symbol"]):
            rows = records[records["symbol"] == symbol]
            key = (schema.name, bytes(symbol).decode())
            self.streams.setdefault(key, StreamSummary()).add(schema.kind, rows, origin)
        if self.fmt == "jsonl":
            lead = position + b'"schema":' + orjson.dumps(schema.name) + b","
            self.out.write(encode_json(schema, records, lead))
        elif self.fmt == "table":
            self._table(schema, records)

    def event(self, topic: str, headers: dict[str, str], value: bytes,
              position: dict[str, int] | None = None) -> None:
        """A control event or a dead letter; orjson.JSONDecodeError for an event that is not
        JSON (in every format: a summary must not count what the others skip)."""
        dead = H_REASON in headers
        event = None if dead else orjson.loads(value)
        kind = headers.get(H_EVENT) or ("dead_letter" if dead else "message")
        self.events[f"{topic} {kind}"] = self.events.get(f"{topic} {kind}", 0) + 1
        if self.fmt == "summary":
            return
        if dead:  # the frame as text; one that is not UTF-8 (binary) exactly, in base64
            try:
                frame = {"frame": value.decode()}
            except UnicodeDecodeError:
                frame = {"frame_base64": base64.b64encode(value).decode()}
            line = {"topic": topic, **(position or {}), "reason": headers[H_REASON],
                    "field": headers.get(H_FIELD), "stream": headers.get(H_STREAM), **frame}
        else:
            line = {"topic": topic, **(position or {}), "event": event}
        self.out.write(orjson.dumps(line) + b"\n")

    def _table(self, schema: Schema, records: np.ndarray) -> None:
        if not len(records):  # (e.g. no row of --symbol's in a raw all-market frame)
            return  # no columns to size: they come with the first row
        kind = schema.kind
        rows = [orjson.loads(line) for line in encode_json(schema, records).splitlines()]
        cells = [[_cell(v) for v in row.values()] for row in rows]
        names = list(rows[0])
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
        if symbols and key and key not in symbols and _is_data(msg):
            continue
        yield msg


def _is_data(msg: Message) -> bool:
    """(a message whose headers cannot be read is the read loop's to report)"""
    try:
        return bool(header_dict(msg.headers()).get(H_SCHEMA))
    except DecodeError:
        return False


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
    start_at_end = args.follow or args.tail is not None or args.from_time is not None
    messages = read_messages(args.kafka_bootstrap, topics, pattern=pattern,
                             from_beginning=args.from_beginning or not start_at_end,
                             tail=args.tail or 0, from_time_ms=args.from_time,
                             follow=args.follow, idle_timeout=args.idle_timeout,
                             timeout=args.timeout,
                             settings=dict(args.settings))
    total = skipped = 0
    try:
        for msg in _selected(messages, symbols):
            try:
                headers = header_dict(msg.headers())
            except DecodeError as exc:
                undecodable(msg, exc)
                skipped += 1
                continue
            position = {"partition": msg.partition() or 0, "offset": msg.offset() or 0}
            if H_SCHEMA not in headers:
                try:
                    output.event(msg.topic() or "", headers, msg.value() or b"", position)
                except orjson.JSONDecodeError as exc:  # (a control event is JSON)
                    undecodable(msg, exc)
                    skipped += 1
                continue
            try:
                records = decode(msg)
            except DecodeError as exc:  # (e.g. a newer schema version: the rest still reads)
                undecodable(msg, exc)
                skipped += 1
                continue
            schema = data_schema(headers)
            if symbols:  # raw messages of all-market streams mix symbols
                records = records[np.isin(records["symbol"], list(symbols))]
            output.data(schema, records, orjson.dumps({"topic": msg.topic(), **position})[1:-1]
                        + b",", (headers.get(H_INSTANCE, ""), headers.get(H_EPOCH, "")))
            total += len(records)
            if args.max_records and total >= args.max_records:
                break
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    except (ReadError, KafkaException) as exc:
        return read_failed(exc)
    finally:
        messages.close()
    if args.format == "summary":
        sys.stdout.write(output.summary())
    sys.stderr.write(f"consumed {total} records\n")
    return undecodable_end(skipped)
