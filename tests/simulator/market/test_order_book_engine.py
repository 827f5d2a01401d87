"""The per-symbol matching-engine model, checked event by event."""

from __future__ import annotations

import pytest

from feedhandler.simulator.market.engine import TOP, TRADED, OrderBookEngine
from feedhandler.simulator.market.universe import SymbolSpec, Universe

START_US = 1_767_225_600_000_000
UNIVERSE = Universe.generate(2, 400)


def _symbols() -> list[SymbolSpec]:
    cheapest = min(UNIVERSE.symbols[30:], key=lambda spec: spec.ref_price // spec.tick_size)
    two_dp_quote = next(spec for spec in UNIVERSE if spec.price_decimals == 2)
    return [UNIVERSE["BTCUSDT"], UNIVERSE["SHIBUSDT"], UNIVERSE["XRPBTC"], cheapest, two_dp_quote]


@pytest.mark.parametrize("spec", _symbols(), ids=lambda spec: spec.symbol)
def test_every_event_keeps_the_book_consistent(spec: SymbolSpec) -> None:
    engine = OrderBookEngine(spec, 9, START_US)
    tick, step = spec.tick_size, spec.step_size
    trade_id, agg_id = engine.trade_id, engine.agg_id
    kinds = {"top": 0, "traded": 0}
    for _ in range(20_000):
        before = engine.top()
        update_id, now = engine.update_id, engine.next_us
        flags = engine.step()
        assert engine.update_id == update_id + 1  # one id per event
        assert engine.now_us == now < engine.next_us
        top = engine.top()
        assert bool(flags & TOP) == (top != before)
        # the book: sorted, uncrossed, on the tick/step grid, matching the reported changes
        bids, asks = engine.bid_keys, engine.ask_keys
        assert bids == sorted(bids) and asks == sorted(asks)
        assert set(engine.levels) == set(bids) | set(asks)
        assert tick <= top[0] < top[2]
        assert engine.changes
        for key, qty in engine.changes:  # keys are signed prices in ticks
            assert qty % step == 0 and engine.levels.get(key, 0) == qty
        if flags & TRADED:
            kinds["traded"] += 1
            buy = engine.buyer_taker
            assert [fill[0] for fill in engine.fills] == list(
                range(trade_id + 1, trade_id + 1 + len(engine.fills))
            )
            trade_id = engine.trade_id
            covered = []
            for agg in engine.aggs:
                agg_id += 1
                assert agg[0] == agg_id
                fills = [fill for fill in engine.fills if agg[1] <= fill[0] <= agg[2]]
                assert {fill[1] for fill in fills} == {agg[3]}
                assert sum(fill[2] for fill in fills) == agg[4]
                covered += fills
                # a buyer takes asks from the best up; a seller takes bids from the best down
                assert agg[3] >= before[2] if buy else agg[3] <= before[0]
            assert covered == engine.fills
            assert all(qty > 0 and qty % step == 0 for _, _, qty in engine.fills)
            assert engine.stats.last_id == trade_id
        kinds["top"] += bool(flags & TOP)
    assert kinds["traded"] > 1000 and 10_000 < kinds["top"] < 18_000


def test_same_seed_and_symbol_same_events() -> None:
    spec = UNIVERSE["ETHUSDT"]
    first, second = OrderBookEngine(spec, 4, START_US), OrderBookEngine(spec, 4, START_US)
    other_seed = OrderBookEngine(spec, 5, START_US)
    for _ in range(5000):
        assert first.step() == second.step()
        other_seed.step()
        assert first.changes == second.changes
    assert first.book_snapshot(50) == second.book_snapshot(50)
    assert first.book_snapshot(50) != other_seed.book_snapshot(50)


def test_advance_to_replays_exactly() -> None:
    spec = UNIVERSE["SOLUSDT"]
    stepped, advanced = OrderBookEngine(spec, 4, START_US), OrderBookEngine(spec, 4, START_US)
    target = START_US + 3_000_000
    while stepped.next_us < target:
        stepped.step()
    advanced.advance_to(target)
    assert advanced.next_us >= target > advanced.now_us
    assert advanced.book_snapshot(1000) == stepped.book_snapshot(1000)
    assert (advanced.trade_id, advanced.agg_id) == (stepped.trade_id, stepped.agg_id)


def test_book_snapshot_is_best_first_and_limited() -> None:
    engine = OrderBookEngine(UNIVERSE["BNBUSDT"], 1, START_US)
    for _ in range(1000):
        engine.step()
    update_id, bids, asks = engine.book_snapshot(10)
    assert update_id == engine.update_id
    assert len(bids) == len(asks) == 10
    assert [price for price, _ in bids] == sorted((price for price, _ in bids), reverse=True)
    assert [price for price, _ in asks] == sorted(price for price, _ in asks)
    assert (bids[0][0], bids[0][1], asks[0][0], asks[0][1]) == engine.top()
    full = engine.book_snapshot(100_000)
    assert len(full[1]) == len(engine.bid_keys) and len(full[2]) == len(engine.ask_keys)
