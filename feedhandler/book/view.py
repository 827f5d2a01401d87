"""`feedhandler consume --book SYMBOL`: the symbol's book rebuilt from the depth topic, top N.

Reads the depth topic from the beginning (a book needs the snapshot the handler published)
through `BookBuilder`; prints the book once at the end, or after every message with
`--follow`. `--format jsonl` prints one JSON object per view for scripts:
`{"symbol","valid","why_not","update_id","bids":[["price","qty"],…],"asks":[…]}`.
"""

from __future__ import annotations

import argparse
import sys
from typing import IO

import orjson
from confluent_kafka import KafkaException

from feedhandler.book.builder import BookBuilder
from feedhandler.consume.cli import read_failed, undecodable, undecodable_end
from feedhandler.consume.reader import ReadError, read_messages
from feedhandler.contract import DecodeError, topic_for


def view(builder: BookBuilder, symbol: str, depth: int) -> dict[str, object]:
    """The top-`depth` view of `symbol` as JSON-ready values (decimals as exact strings)."""
    if symbol not in builder.symbols():
        return {"symbol": symbol, "valid": False, "why_not": builder.why_not(symbol),
                "update_id": None, "bids": [], "asks": []}
    top = builder.top(symbol, depth)
    return {
        "symbol": symbol,
        "valid": top.valid,
        "why_not": builder.why_not(symbol),
        "update_id": top.update_id,
        "bids": [[str(p), str(q)] for p, q in top.bids],
        "asks": [[str(p), str(q)] for p, q in top.asks],
    }


def render(book: dict[str, object], fmt: str) -> str:
    if fmt == "jsonl":
        return orjson.dumps(book).decode() + "\n"
    state = "valid" if book["valid"] else f"NOT VALID: {book['why_not']}"
    lines = [f"{book['symbol']} @ {book['update_id']} ({state})",
             f"{'bid qty':>24} {'bid':>20} | {'ask':<20} {'ask qty':<24}"]
    bids, asks = book["bids"], book["asks"]
    assert isinstance(bids, list) and isinstance(asks, list)
    for i in range(max(len(bids), len(asks))):
        bid = bids[i] if i < len(bids) else ["", ""]
        ask = asks[i] if i < len(asks) else ["", ""]
        lines.append(f"{bid[1]:>24} {bid[0]:>20} | {ask[0]:<20} {ask[1]:<24}")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, out: IO[str] = sys.stdout) -> int:
    symbol = args.book.upper()
    topic = topic_for("depth", symbol, args.topic_template, exchange=args.exchange,
                      market=args.market)
    builder = BookBuilder()
    messages = read_messages(args.kafka_bootstrap, [topic], from_beginning=True,
                             follow=args.follow, idle_timeout=args.idle_timeout,
                             timeout=args.timeout, settings=dict(args.settings))
    fmt = "jsonl" if args.format == "jsonl" else "table"
    skipped = 0
    try:
        for message in messages:
            if message.key() != symbol.encode():  # the depth topic holds data messages only
                continue
            try:
                builder.apply_message(message)
            except DecodeError as exc:  # the builder sees the hole in the update ids
                undecodable(message, exc)
                skipped += 1
                continue
            if args.follow:
                out.write(render(view(builder, symbol, args.depth), fmt))
                out.flush()
    except KeyboardInterrupt:
        pass
    except (ReadError, KafkaException) as exc:
        return read_failed(exc)
    finally:
        messages.close()
    if not args.follow:
        out.write(render(view(builder, symbol, args.depth), fmt))
    return undecodable_end(skipped)
