"""Sequence discontinuities: trade / aggTrade ids, depth U/u, bookTicker u, per symbol."""

from __future__ import annotations

from typing import Any

import numpy as np

from feedhandler._ext.decoder import KIND_NAMES, Decoder
from tests.parsing.helpers import assert_same, run_decoder, run_reference
from tests.parsing.strategies import encode

MISSING, BACKWARDS = 1, 2


def trade(t: int, s: str = "BTCUSDT") -> bytes:
    return encode({"e": "trade", "E": 1, "s": s, "t": t, "p": "1", "q": "1", "T": 1, "m": True})


def agg(a: int, s: str = "BTCUSDT") -> bytes:
    return encode({"e": "aggTrade", "E": 1, "s": s, "a": a, "p": "1", "q": "1", "f": a * 2,
                   "l": a * 2 + 1, "T": 1, "m": False})  # fmt: skip


def depth(first: int, last: int, s: str = "BTCUSDT") -> bytes:
    return encode({"e": "depthUpdate", "E": 1, "s": s, "U": first, "u": last,
                   "b": [["1", "1"]], "a": []})  # fmt: skip


def book(u: int, s: str = "BTCUSDT") -> bytes:
    return encode({"u": u, "s": s, "b": "1", "B": "1", "a": "2", "A": "1"})


def gaps(frames: list[bytes], **options: Any) -> list[tuple[str, int, int, str, bytes]]:
    """(kind, expected, received, reason, symbol) of each gap row, checked against the
    reference on the way."""
    decoded = run_decoder(frames, **options)
    assert_same(decoded, run_reference(frames))
    return [
        (KIND_NAMES[r["kind"]], r["expected"], r["received"],
         {MISSING: "missing", BACKWARDS: "backwards"}[r["reason"]], r["symbol"])
        for r in decoded.rows("gap")
    ]  # fmt: skip


def test_trade_id_skip_and_duplicate() -> None:
    frames = [trade(1), trade(2), trade(5), trade(5), trade(4), trade(6)]
    assert gaps(frames) == [
        ("trade", 3, 5, "missing", b"BTCUSDT"),  # 3 and 4 never came
        ("trade", 6, 5, "backwards", b"BTCUSDT"),  # duplicate
        ("trade", 6, 4, "backwards", b"BTCUSDT"),  # late: the high-water mark stays at 5
    ]
    # Every trade is still recorded: gap rows are information, not filtering.
    assert run_decoder(frames).array("trade")["trade_id"].tolist() == [1, 2, 5, 5, 4, 6]


def test_agg_trade_ids() -> None:
    assert gaps([agg(10), agg(11), agg(13), agg(12)]) == [
        ("aggTrade", 12, 13, "missing", b"BTCUSDT"),
        ("aggTrade", 14, 12, "backwards", b"BTCUSDT"),
    ]


def test_depth_update_id_continuity() -> None:
    frames = [depth(1, 5), depth(6, 9), depth(12, 15), depth(13, 14), depth(14, 20), depth(21, 21)]
    assert gaps(frames) == [
        ("depth", 10, 12, "missing", b"BTCUSDT"),  # U > last u + 1
        ("depth", 16, 13, "backwards", b"BTCUSDT"),  # u <= last u: stale event
    ]  # (14, 20) overlaps the last u = 15 but ends past it: levels are absolute, not a gap


def test_book_ticker_update_id_only_has_to_increase() -> None:
    frames = [book(100), book(105), book(105), book(104), book(200)]
    assert gaps(frames) == [
        ("bookTicker", 106, 105, "backwards", b"BTCUSDT"),
        ("bookTicker", 106, 104, "backwards", b"BTCUSDT"),
    ]


def test_sequences_are_per_symbol_and_per_kind() -> None:
    frames = [trade(1, "BTCUSDT"), trade(100, "ETHUSDT"), trade(2, "BTCUSDT"),
              trade(101, "ETHUSDT"), agg(1, "BTCUSDT"), book(1, "BTCUSDT"), depth(1, 1),
              trade(103, "ETHUSDT")]  # fmt: skip
    assert gaps(frames) == [("trade", 102, 103, "missing", b"ETHUSDT")]


def test_each_of_many_symbols_keeps_its_own_sequence() -> None:
    # 600 symbols outgrow the state table several times over; the last two are 32 bytes long
    # and differ only in the last.
    symbols = [f"S{i:04d}USDT" for i in range(598)] + ["L" * 31 + "A", "L" * 31 + "B"]
    frames = [trade(i * 10 + step, s) for step in (0, 1) for i, s in enumerate(symbols)]
    frames += [trade(597 * 10 + 3, symbols[597]), trade(599 * 10 + 5, symbols[599]),
               trade(598 * 10 + 2, symbols[598])]  # fmt: skip
    assert gaps(frames) == [("trade", 5972, 5973, "missing", symbols[597].encode()),
                            ("trade", 5992, 5995, "missing", symbols[599].encode())]


def test_gap_rows_are_batched_with_ts_recv_and_their_own_linger() -> None:
    batches: list[tuple[str, np.ndarray]] = []
    decoder = Decoder(lambda k, r: batches.append((k, r)), linger_ms={"gap": 0.0, "trade": None})
    decoder.decode(trade(1), 7)
    decoder.decode(trade(3), 8)
    assert [(k, r.tolist()) for k, r in batches] == [
        ("gap", [(8, 2, 3, KIND_NAMES.index("trade"), MISSING, b"BTCUSDT")])
    ]


def test_reset_sequences_starts_a_new_epoch() -> None:
    batches: list[str] = []
    decoder = Decoder(lambda k, r: batches.append(k), linger_ms=None)
    decoder.decode(trade(1), 1)
    decoder.reset_sequences()
    decoder.decode(trade(50), 1)  # a reconnect: no gap against the old connection
    decoder.flush()
    assert batches == ["trade"]


def test_rejected_frames_do_not_move_the_sequence() -> None:
    bad = trade(3)[:-1] + b',"x":}'
    assert gaps([trade(1), trade(2), bad, trade(3), trade(4)]) == []
    wrong_symbol_type = trade(3).replace(b'"s":"BTCUSDT"', b'"s":1')
    assert gaps([trade(2), wrong_symbol_type, trade(3)]) == []
