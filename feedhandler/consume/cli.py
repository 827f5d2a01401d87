"""`feedhandler consume`: read our topics and print decoded records."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any, TextIO

import numpy as np
import orjson
from confluent_kafka import Consumer, KafkaError, Message

from feedhandler.consume.decode import decode
from feedhandler.contract import H_SCHEMA, header_dict
from feedhandler.records import to_decimal, wide_to_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--topic", action="append", required=True, help="topic (repeatable)")
    p.add_argument("--kafka-bootstrap", default="127.0.0.1:9092")
    p.add_argument("--from-beginning", action="store_true", help="start at the earliest offset")
    p.add_argument("--follow", action="store_true", help="keep waiting for new messages")
    p.add_argument("--idle-timeout", type=float, default=5.0,
                   help="without --follow: stop after this many seconds without messages")
    p.add_argument("--max-records", type=int, default=0, help="stop after this many records")
    p.add_argument("--symbol", action="append", help="only these symbols (repeatable)")
    p.add_argument("--format", choices=["table", "jsonl", "summary"], default="table")
    p.add_argument("--group", help="consumer group (default: a fresh one, so nothing is committed)")


def messages(consumer: Consumer, follow: bool, idle_timeout: float) -> Iterator[Message]:
    idle = 0.0
    while follow or idle < idle_timeout:
        msg = consumer.poll(0.5)
        if msg is None:
            idle += 0.5
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise RuntimeError(f"consume failed: {msg.error()}")
        idle = 0.0
        yield msg


def row_to_json(records: np.ndarray, i: int) -> dict[str, Any]:
    """One record as JSON-ready values: decimals as exact strings, symbols as text."""
    row: dict[str, Any] = {}
    dtype = records.dtype
    for name in dtype.names or ():
        value = records[name][i]
        if dtype[name].kind == "S":
            row[name] = bytes(value).decode()
        elif dtype[name].names:  # 128-bit decimal
            row[name] = str(to_decimal(wide_to_int(value)))
        elif np.ndim(value):
            row[name] = [int(v) for v in value]
        else:
            row[name] = int(value)
    return row


def print_records(out: TextIO, schema: str, records: np.ndarray, fmt: str) -> None:
    for i in range(len(records)):
        row = row_to_json(records, i)
        if fmt == "jsonl":
            out.write(orjson.dumps({"schema": schema, **row}).decode() + "\n")
        else:
            out.write(schema + " " + " ".join(f"{k}={v}" for k, v in row.items()) + "\n")


def run(args: argparse.Namespace) -> int:
    consumer = Consumer({
        "bootstrap.servers": args.kafka_bootstrap,
        "group.id": args.group or f"feedhandler-consume-{uuid.uuid4()}",
        "auto.offset.reset": "earliest" if args.from_beginning else "latest",
        "enable.auto.commit": bool(args.group),
        "enable.partition.eof": False,
    })
    consumer.subscribe(args.topic)
    symbols = {s.upper().encode() for s in args.symbol or ()}
    counts: Counter[str] = Counter()
    total = 0
    try:
        for msg in messages(consumer, args.follow, args.idle_timeout):
            headers = header_dict(msg.headers())
            if H_SCHEMA not in headers:  # control / dead-letter topics carry raw payloads
                sys.stdout.write(f"{msg.topic()} {(msg.value() or b'').decode(errors='replace')}\n")
                continue
            records = decode(msg)
            if symbols:
                records = records[np.isin(records["symbol"], list(symbols))]
            counts[headers[H_SCHEMA]] += len(records)
            if args.format != "summary":
                print_records(sys.stdout, headers[H_SCHEMA], records, args.format)
            total += len(records)
            if args.max_records and total >= args.max_records:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    sys.stderr.write(f"consumed {total} records: {dict(counts)}\n")
    return 0
