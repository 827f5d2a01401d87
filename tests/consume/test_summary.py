"""`feedhandler consume`'s formats, topics and the schema it formats with, without a broker."""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys

import numpy as np

from feedhandler.consume.cli import Output, StreamSummary, _topics
from feedhandler.contract import (
    DEPTH_SNAPSHOT,
    data_schema,
    decode_value,
    fixed_headers,
    header_dict,
    raw_headers,
)
from feedhandler.records import SCHEMAS


def rows(kind: str, ids: list[tuple[int, int]], flags: int = 3) -> np.ndarray:
    """One row per (first id, last id) of `kind`, each its own event."""
    first, last = {"trade": ("trade_id",) * 2, "blockTrade": ("trade_id",) * 2,
                   "depth": ("first_update_id", "last_update_id")}[kind]
    records = np.zeros(len(ids), SCHEMAS[kind].dtype)
    records["symbol"] = b"BTCUSDT"
    records[first] = [i[0] for i in ids]
    records[last] = [i[1] for i in ids]
    if kind == "depth":
        records["flags"] = flags
    return records


def summary(kind: str, *messages: tuple[np.ndarray, tuple[str, str]]) -> tuple[int, int]:
    stream = StreamSummary()
    for records, origin in messages:
        stream.add(kind, records, origin)
    return stream.gaps, stream.repeats


def test_every_contiguous_kind_counts_its_gaps() -> None:
    for kind in ("trade", "blockTrade"):
        assert summary(kind, (rows(kind, [(1, 1), (2, 2), (10, 10)]), ("a", "1"))) == (1, 0)


def test_a_snapshot_on_the_depth_topic_is_no_gap_and_no_repeat() -> None:
    snapshot = rows("depth", [(150, 150)], flags=DEPTH_SNAPSHOT | 3)
    assert summary("depth", (rows("depth", [(100, 110)]), ("a", "1")),
                   (rows("depth", [(111, 160)]), ("a", "1")),
                   (snapshot, ("a", "0")),  # epoch 0: not from a stream connection
                   (rows("depth", [(161, 170)]), ("a", "1"))) == (0, 0)


def test_continuity_is_checked_within_each_instance_and_epoch() -> None:
    assert summary("trade", (rows("trade", [(1, 1), (2, 2)]), ("a", "1")),
                   (rows("trade", [(1, 1), (2, 2)]), ("b", "1")),  # a second instance
                   (rows("trade", [(3, 3)]), ("a", "1")),
                   (rows("trade", [(3, 3)]), ("b", "1")),
                   (rows("trade", [(9, 9)]), ("a", "2"))) == (0, 0)  # after a reconnect
    assert summary("trade", (rows("trade", [(1, 1)]), ("a", "1")),
                   (rows("trade", [(3, 3)]), ("a", "1")),
                   (rows("trade", [(3, 3)]), ("a", "1"))) == (1, 1)


def test_raw_frames_of_an_older_schema_are_shown_in_todays_layout() -> None:
    frame = (b'{"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000",'
             b'"a":"25.36520000","A":"40.66000000"}\n')
    headers = header_dict([*fixed_headers("binance.spot.bookTicker", 1, "raw", "x"),
                           *raw_headers(np.array([7]), "ms")])
    records = decode_value(headers, frame)
    assert SCHEMAS["bookTicker"].version == 2  # the message names version 1
    assert data_schema(headers) is SCHEMAS["bookTicker"]
    out = io.BytesIO()
    Output(out, "table").data(data_schema(headers), records)
    assert b"BNBUSDT" in out.getvalue() and b"31.21" in out.getvalue()


def test_a_table_starts_with_the_first_message_that_has_rows() -> None:
    """A raw all-market frame may hold no row of --symbol's: nothing to show, no columns."""
    out = io.BytesIO()
    table = Output(out, "table")
    trade = SCHEMAS["trade"]
    table.data(trade, np.zeros(0, trade.dtype))
    table.data(trade, rows("trade", [(7, 7)]))
    header, row = out.getvalue().decode().splitlines()
    assert header.split()[:2] == ["kind", "ts_recv"] and row.split()[0] == "trade"


def test_a_kind_without_symbols_reads_every_symbols_topic_of_that_kind() -> None:
    args = argparse.Namespace(exchange="binance", market="spot", topic=[], kind=["trade"],
                              symbol=[], topic_template="{exchange}.{market}.{kind}.{symbol}")
    topics, pattern = _topics(args)
    assert topics == [] and [name for name in (
        "binance.spot.trade.btcusdt", "binance.spot.trade.all", "binance.spot.depth.btcusdt",
        "binance.spot.control", "binance.spot.trade.btcusdt.x") if re.search(pattern, name)] == [
        "binance.spot.trade.btcusdt", "binance.spot.trade.all"]
    args.symbol = ["BTCUSDT"]
    assert _topics(args) == (["binance.spot.trade.btcusdt"], "")
    args.kind = args.symbol = []
    assert _topics(args) == ([], r"^binance\.spot\.")  # everything of the market


def test_the_command_loads_without_the_extensions() -> None:
    """A pure install (FEEDHANDLER_PURE=1) reads records and JSON topics with it too."""
    blocked = ("import importlib.abc, sys\n"
               "class Pure(importlib.abc.MetaPathFinder):\n"
               "    def find_spec(self, name, path, target=None):\n"
               "        if name.startswith('feedhandler._ext.'):\n"
               "            raise ImportError(name)\n"
               "sys.meta_path.insert(0, Pure())\n"
               "import feedhandler.consume.cli\n")
    subprocess.run([sys.executable, "-c", blocked], check=True, timeout=60)
