"""`feedhandler consume --format summary` and the schema it formats with, without a broker."""

from __future__ import annotations

import io

import numpy as np

from feedhandler._ext.book import SNAPSHOT_FLAG
from feedhandler.consume.cli import Output, StreamSummary
from feedhandler.contract import data_schema, decode_value, fixed_headers, header_dict, raw_headers
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
    snapshot = rows("depth", [(150, 150)], flags=SNAPSHOT_FLAG | 3)
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
