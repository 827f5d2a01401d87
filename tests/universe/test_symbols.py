"""exchangeInfo -> symbols, tick and step sizes, and the selection `universe` asks for; on a
real captured exchangeInfo (corpus) and on the simulator's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from feedhandler.universe import SymbolInfo, parse_exchange_info, select, streams_for

CORPUS = Path("../shared/corpus/binance")


@pytest.fixture(scope="module")
def captured() -> dict[str, Any]:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus/binance is absent (the shared folder next to the repo)")
    info: dict[str, Any] = json.loads((CORPUS / "rest_exchangeInfo.jsonl").read_text())
    return info


def test_a_captured_exchange_info_gives_each_symbols_grid_and_status(
        captured: dict[str, Any]) -> None:
    symbols = parse_exchange_info(captured)
    assert len(symbols) == 1695
    assert symbols["BTCUSDT"] == SymbolInfo("BTCUSDT", "TRADING", "USDT",
                                            frozenset({"SPOT", "MARGIN"}), 1_000_000, 1_000)
    assert symbols["BCCBTC"].status == "BREAK"
    # tick sizes as the exchange wrote them, 2 decimals included ("1.00")
    short = [s for s in captured["symbols"] if any(
        f.get("tickSize") == "1.00" for f in s["filters"])]
    assert short and symbols[short[0]["symbol"]].tick == 100_000_000


def test_a_captured_universe_is_filtered_by_status_quote_and_permission(
        captured: dict[str, Any]) -> None:
    symbols = parse_exchange_info(captured)
    assert len(select(symbols)) == 1262  # TRADING of 1695; 433 are BREAK
    usdt = select(symbols, quote_assets=["USDT"])
    assert len(usdt) == 315 and "BTCUSDT" in usdt and "BCCUSDT" not in usdt
    assert len(select(symbols, quote_assets=["USDT"], permissions=["MARGIN"])) == 153
    assert select(symbols, ["ETHBTC", "BCCBTC", "NOSUCH"]) == ["ETHBTC"]  # BREAK, unknown: out


def test_permission_sets_the_current_format() -> None:
    info = {"symbols": [
        {"symbol": "BNBBTC", "status": "TRADING", "quoteAsset": "BTC",
         "permissionSets": [["SPOT", "MARGIN"], ["TRD_GRP_004"]],
         "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.00000100"},
                     {"filterType": "LOT_SIZE", "stepSize": "0.00100000"}]},
        {"symbol": "ODDUSDT", "status": "TRADING", "quoteAsset": "USDT", "permissionSets": [],
         "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.000000001"}]}]}
    symbols = parse_exchange_info(info)
    assert symbols["BNBBTC"].permissions == {"SPOT", "MARGIN", "TRD_GRP_004"}
    assert (symbols["BNBBTC"].tick, symbols["BNBBTC"].step) == (100, 100_000)
    # 9 decimals cannot be held at 1e-8: no grid (logged), never a rounded one
    assert (symbols["ODDUSDT"].tick, symbols["ODDUSDT"].step) == (0, 0)
    assert select(symbols, permissions=["TRD_GRP_004"]) == ["BNBBTC"]


def test_streams_are_symbol_times_kind() -> None:
    assert streams_for(["BTCUSDT", "ETHBTC"], ["trade", "depth@100ms"]) == [
        "btcusdt@trade", "btcusdt@depth@100ms", "ethbtc@trade", "ethbtc@depth@100ms"]
