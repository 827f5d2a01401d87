"""Values off their symbol's tick or step grid are counted per (kind, symbol) and reported by
rate-limited events naming symbol, field and value; the batch is never changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from feedhandler.parsing import parse
from feedhandler.records import SCHEMAS
from feedhandler.universe import PrecisionCheck, SymbolInfo, parse_exchange_info, precision
from feedhandler.universe.precision import CONFIRMED_S, EVENT_INTERVAL_S, GRID_COLUMNS
from tests.test_logs import Clock

CORPUS = Path("../shared/corpus/binance")
BTC = SymbolInfo("BTCUSDT", "TRADING", "USDT", frozenset({"SPOT"}), 1_000_000, 1_000)  # .01
NOGRID = SymbolInfo("FREEUSDT", "TRADING", "USDT", frozenset(), 0, 0)  # rules disabled


def rows(kind: str, **columns: Any) -> np.ndarray:
    n = len(next(iter(columns.values())))
    table = np.zeros(n, SCHEMAS[kind].dtype)
    for name, values in columns.items():
        if table.dtype[name].names:  # int128: (lo, hi) from Python ints
            table[name] = [(v & (2**64 - 1), v >> 64) for v in values]
        else:
            table[name] = values
    return table


def checker() -> tuple[PrecisionCheck, list[dict[str, Any]], Clock]:
    events: list[dict[str, Any]] = []
    clock = Clock()
    check = PrecisionCheck(events.append, clock)
    check.update([BTC, NOGRID])
    return check, events, clock


def test_grid_columns_come_from_the_kind_declarations() -> None:
    assert GRID_COLUMNS["trade"] == (("price", "tick"), ("qty", "step"))
    assert GRID_COLUMNS["depth"] == (("price", "tick"), ("qty", "step"))
    assert ("price_change_pct", "tick") not in GRID_COLUMNS["ticker"]  # a percentage
    assert ("weighted_avg_price", "tick") not in GRID_COLUMNS["ticker"]  # an average
    assert "avgPrice" not in GRID_COLUMNS and "gap" not in GRID_COLUMNS


def test_off_grid_trades_are_counted_per_symbol_and_the_first_is_named() -> None:
    check, events, clock = checker()
    batch = rows("trade", symbol=[b"BTCUSDT", b"BTCUSDT", b"FREEUSDT", b"ETHUSDT", b"BTCUSDT"],
                 price=[9_500_000_000_000, 9_500_000_500_000, 1, 1, 9_500_001_000_000],
                 qty=[100_000, 100_000, 7, 7, 100_001])
    before = batch.copy()
    check.check("trade", batch)
    # FREEUSDT has no grid (size 0), ETHUSDT no exchangeInfo entry: neither is checked
    assert check.violations == {("trade", "BTCUSDT"): 2}
    assert events == [{"type": "precision_violation", "kind": "trade", "symbol": "BTCUSDT",
                       "field": "price", "value": "95000.00500000", "grid": "tick",
                       "size": "0.01000000", "count": 2}]  # the price and the qty
    assert np.array_equal(batch, before)  # published as sent
    # within the interval: counted, not reported; after it: one event with the count since
    check.check("trade", batch)
    assert check.violations == {("trade", "BTCUSDT"): 4} and len(events) == 1
    clock.now += EVENT_INTERVAL_S
    check.check("trade", batch)
    assert check.violations == {("trade", "BTCUSDT"): 6}
    assert events[-1]["count"] == 4  # since the first event: this batch's and the silent one
    assert len(events) == 2


def test_wide_quantities_and_level_arrays_are_checked_exactly() -> None:
    check, events, _ = checker()
    big = (1 << 70) // 1000 * 1000  # beyond 2**64 units: the high word is set
    depth = rows("depth", symbol=[b"BTCUSDT"] * 4, price=[1_000_000] * 4,
                 qty=[2_000, big, big + 1, 0])
    check.check("depth", depth)
    assert check.violations == {("depth", "BTCUSDT"): 1}
    assert events[0]["field"] == "qty" and events[0]["value"] == \
        f"{(big + 1) // 10**8}.{(big + 1) % 10**8:08d}"

    partial = np.zeros(2, SCHEMAS["depthPartial"].dtype)
    partial["symbol"] = b"BTCUSDT"
    partial["bid_price"][:, :3] = 2_000_000  # unused slots hold 0: on every grid
    partial["ask_price"][1, 19] = 2_000_001
    check.check("depthPartial", partial)
    assert check.violations[("depthPartial", "BTCUSDT")] == 1
    assert events[-1]["field"] == "ask_price" and events[-1]["value"] == "0.02000001"


def test_capped_level_quantities_are_no_violation() -> None:
    """The engine caps a level's quantity at (2**63 - 1) x 10**-precision ("this much or
    more"), which is on no step grid."""
    check, _, _ = checker()
    caps = [(2**63 - 1) * 10 ** (8 - p) for p in (8, 7, 6)]  # 1e-8 units; the last two wide
    depth = rows("depth", symbol=[b"BTCUSDT"] * 4, price=[1_000_000] * 4,
                 qty=[*caps, caps[0] - 1])
    check.check("depth", depth)
    assert check.violations == {("depth", "BTCUSDT"): 1}  # the one below the cap


def test_nothing_is_checked_before_the_universe_is_known() -> None:
    check = PrecisionCheck(lambda event: None)
    check.check("trade", rows("trade", symbol=[b"BTCUSDT"], price=[1], qty=[1]))
    assert not check.violations


def test_captured_streams_against_a_later_exchange_info(captured_frames: Any) -> None:
    """The corpus's streams (2021-04/05) against its exchangeInfo (2021-10): Binance changed
    tick and step sizes in between, and levels resting from before stay off the new grid.
    That is why such values are counted and published, never dropped or rounded."""
    info, tables = captured_frames
    events: list[dict[str, Any]] = []
    check = PrecisionCheck(events.append)
    check.update(info.values())
    for kind, table in tables:
        check.check(kind, table)
    assert check.violations[("trade", "WAVESUSDT")] == 5
    assert check.violations[("depth", "ETHUSDT")] == 37
    (waves,) = (e for e in events if (e["kind"], e["symbol"]) == ("trade", "WAVESUSDT"))
    # "p":"37.84900000","q":"1.85300000" on a 0.01 grid; both counted, the price named
    assert {k: waves[k] for k in ("field", "value", "grid", "size")} == \
        {"field": "price", "value": "37.84900000", "grid": "tick", "size": "0.01000000"}
    assert not check.violations.keys() - {(e["kind"], e["symbol"]) for e in events}


@pytest.fixture
def captured_frames() -> tuple[dict[str, SymbolInfo], list[tuple[str, np.ndarray]]]:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus/binance is absent (the shared folder next to the repo)")
    info = parse_exchange_info(json.loads((CORPUS / "rest_exchangeInfo.jsonl").read_text()))
    tables = []
    for name in ("combined", "trade", "aggTrade", "bookTicker", "depthUpdate", "depth_partial"):
        lines = (CORPUS / f"{name}.jsonl").read_text().splitlines()
        parsed = parse([line.encode() for line in lines])
        tables += [(kind, parsed[kind]) for kind in parsed if kind in GRID_COLUMNS]
    return info, tables


def test_a_one_row_batch_and_a_one_symbol_batch_take_the_scalar_path() -> None:
    check, events, _ = checker()
    check.check("aggTrade", rows("aggTrade", symbol=[b"BTCUSDT"], price=[1_500_000],
                                 qty=[1_000]))
    assert check.violations == {("aggTrade", "BTCUSDT"): 1}
    assert (events[0]["field"], events[0]["value"]) == ("price", "0.01500000")
    check.check("bookTicker", rows("bookTicker", symbol=[b"BTCUSDT"] * 3,
                                   bid_price=[1_000_000] * 3, ask_price=[2_000_000] * 3,
                                   bid_qty=[1_000, 1_500, 2_000], ask_qty=[1_000, 1, 1]))
    assert check.violations[("bookTicker", "BTCUSDT")] == 3  # bid_qty of row 1, ask_qty of 1, 2


def test_with_a_refreshing_universe_violations_wait_for_a_read_that_says_if_the_tick_changed(
        caplog: pytest.LogCaptureFixture) -> None:
    """Binance made BTCUSDT's tick 0.001: its new prices are off the tick read before, so they
    are held until exchangeInfo is read again (asked for early), then not counted; what is
    off the new tick, or off the unchanged step, is counted."""
    caplog.set_level("INFO", "feedhandler.universe.precision")
    check, events, clock = checker()
    doubts: list[float] = []
    check.doubt_with(lambda: doubts.append(clock()))
    check.check("trade", rows("trade", symbol=[b"BTCUSDT"] * 4,
                              price=[9_500_000_100_000, 9_500_000_110_000, 9_500_000_100_000,
                                     9_500_000_000_000],
                              qty=[100_000, 100_000, 100_001, 100_000]))
    assert doubts == [1000.0] and not check.violations and not events
    held = check.take()
    check.check("depth", rows("depth", symbol=[b"BTCUSDT"], price=[1_000_000], qty=[100_001]))
    assert len(doubts) == 2  # held during the read: the next one settles it
    check.update([SymbolInfo("BTCUSDT", "TRADING", "USDT", frozenset(), 100_000, 1_000)])
    check.settle(held)
    assert check.violations == {("trade", "BTCUSDT"): 2}  # 95000.0011, and the qty
    assert [(e["field"], e["value"], e["size"], e["count"]) for e in events] == [
        ("price", "95000.00110000", "0.00100000", 2)]
    assert "trade BTCUSDT: the tick size changed from 0.01000000 to 0.00100000; 2 price " \
           "values off the old one are on the new one, not counted" in caplog.text
    check.settle(check.take())  # the next read
    assert check.violations[("depth", "BTCUSDT")] == 1
    # Confirmed a moment ago: counted at once, no read asked for; a minute later, held again
    check.check("trade", rows("trade", symbol=[b"BTCUSDT"], price=[1], qty=[1_000]))
    assert check.violations[("trade", "BTCUSDT")] == 3 and len(doubts) == 2
    clock.now += CONFIRMED_S
    check.check("trade", rows("trade", symbol=[b"BTCUSDT"], price=[1], qty=[1_000]))
    assert check.violations[("trade", "BTCUSDT")] == 3 and len(doubts) == 3


def test_a_failed_read_counts_what_was_held(monkeypatch: pytest.MonkeyPatch) -> None:
    check, events, _ = checker()
    check.doubt_with(lambda: None)
    check.check("trade", rows("trade", symbol=[b"BTCUSDT"], price=[1], qty=[1_000]))
    assert not check.violations
    check.settle(check.take())  # (no update: the read failed)
    assert check.violations == {("trade", "BTCUSDT"): 1} and len(events) == 1
    # Past HELD_MAX values held, the rest count at once
    monkeypatch.setattr(precision, "HELD_MAX", 2)
    check.update([SymbolInfo("ETHUSDT", "TRADING", "USDT", frozenset(), 1_000_000, 1_000)])
    two = rows("trade", symbol=[b"ETHUSDT"] * 2, price=[1, 1], qty=[1_000, 1_000])
    check.check("trade", two)
    assert ("trade", "ETHUSDT") not in check.violations
    check.check("trade", two)
    assert check.violations[("trade", "ETHUSDT")] == 2


def test_held_level_quantities_are_judged_on_the_new_step() -> None:
    """Wide (int128) level quantities of depthPartial, held: BTCUSDT's step went from 0.00001
    to 0.000001; the quantity on the new step is not counted, the one off it and the capped one
    beside it are told apart."""
    check, events, _ = checker()
    check.doubt_with(lambda: None)
    partial = np.zeros(2, SCHEMAS["depthPartial"].dtype)
    partial["symbol"] = b"BTCUSDT"
    cap = (2**63 - 1) * 10**2  # precision 6's cap: wide, on no grid
    partial["bid_qty"][0, :2] = [(100, 0), (cap & (2**64 - 1), cap >> 64)]  # on the new step
    partial["bid_qty"][1, :2] = [(cap & (2**64 - 1), cap >> 64), (101, 0)]  # off both
    check.check("depthPartial", partial)
    held = check.take()
    check.update([SymbolInfo("BTCUSDT", "TRADING", "USDT", frozenset(), 1_000_000, 100)])
    check.settle(held)
    assert check.violations == {("depthPartial", "BTCUSDT"): 1}
    assert (events[0]["field"], events[0]["value"], events[0]["size"]) == \
        ("bid_qty", "0.00000101", "0.00000100")
