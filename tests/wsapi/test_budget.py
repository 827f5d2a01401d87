"""WeightBudget: sliding window, priorities, 429 blocks, other users' weight."""

from __future__ import annotations

import asyncio

import pytest

from feedhandler.wsapi import errors
from feedhandler.wsapi.budget import NORMAL, REFRESH, RESYNC, SNAPSHOT, URGENT, WeightBudget


async def test_no_window_ever_holds_more_than_the_limit() -> None:
    budget = WeightBudget(limit=10, interval_s=0.15, margin_s=0.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    weights = [1 + i % 3 for i in range(40)]  # 79 in all: at least 7 full windows

    async def take(weight: int) -> None:
        await budget.acquire(weight)
        assert budget.used() <= 10  # what the window holds, counted at the grant
        budget.complete(weight)

    await asyncio.gather(*(take(w) for w in weights))
    assert budget.granted_total == sum(weights)
    assert loop.time() - start >= 7 * budget.window_s - 0.01


async def test_lower_priority_numbers_go_first_and_are_never_overtaken() -> None:
    budget = WeightBudget(limit=4, interval_s=0.1, margin_s=0.0)
    await budget.acquire(4)
    budget.complete(4)
    order: list[str] = []

    async def take(name: str, weight: int, priority: int) -> None:
        await budget.acquire(weight, priority)
        order.append(name)
        budget.complete(weight)

    tasks = [
        asyncio.create_task(take("snapshot", 1, SNAPSHOT)),
        asyncio.create_task(take("big-urgent", 4, URGENT)),
        asyncio.create_task(take("normal", 1, NORMAL)),
    ]
    await asyncio.sleep(0)
    assert budget.waiting() == 3
    await asyncio.gather(*tasks)
    # the big urgent request waits for a whole window; the small ones do not jump it
    assert order == ["big-urgent", "normal", "snapshot"]


async def test_block_until_stops_every_grant() -> None:
    budget = WeightBudget(limit=100, interval_s=60.0)
    loop = asyncio.get_running_loop()
    start = loop.time()
    budget.block_until(start + 0.1)
    await budget.acquire(1)
    assert loop.time() - start >= 0.099  # uvloop clocks in ms


async def test_weight_used_by_others_is_counted() -> None:
    budget = WeightBudget(limit=10, interval_s=60.0)
    await budget.acquire(3)
    budget.observe(3)  # exactly ours
    assert budget.used() == 3 and budget.external == 0
    budget.observe(9)  # someone else on our IP used 6
    assert budget.used() == 9 and budget.external == 6
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await budget.acquire(2)


async def test_a_cancelled_waiter_does_not_hold_the_queue() -> None:
    budget = WeightBudget(limit=2, interval_s=0.1, margin_s=0.0)
    await budget.acquire(2)
    budget.complete(2)
    stuck = asyncio.create_task(budget.acquire(2, URGENT))
    await asyncio.sleep(0)
    stuck.cancel()
    await budget.acquire(1, SNAPSHOT)
    assert budget.used() == 1


async def test_weight_is_held_while_in_flight_and_one_window_after_the_answer() -> None:
    # the exchange counts a request when it processes it, up to its answer: a slow exchange
    # must not let two windows' worth of requests land in one of its windows
    budget = WeightBudget(limit=3, interval_s=0.1, margin_s=0.0)
    loop = asyncio.get_running_loop()
    await budget.acquire(3)
    late = asyncio.create_task(budget.acquire(1))
    await asyncio.sleep(0.25)  # two windows pass, the first request is still unanswered
    assert not late.done()
    answered = loop.time()
    budget.complete(3)
    await late
    assert loop.time() - answered >= 0.099


async def test_a_request_sent_and_not_answered_is_held_as_if_answered_later() -> None:
    budget = WeightBudget(limit=3, interval_s=0.1, margin_s=0.0)
    loop = asyncio.get_running_loop()
    await budget.acquire(3)
    given_up = loop.time()
    budget.complete(3, pending_s=0.1)  # the exchange may count it up to 0.1 s from now
    await budget.acquire(1)
    assert loop.time() - given_up >= 0.199


async def test_a_request_heavier_than_the_budget_is_an_error() -> None:
    with pytest.raises(errors.OverBudget, match="exceeds"):
        await WeightBudget(limit=10, interval_s=1.0).acquire(11)


async def test_a_waiter_the_lowered_limit_cannot_fit_fails_and_blocks_nobody() -> None:
    """The exchange may lower its limit below a queued request's weight: that request fails
    (it would wait for ever, and every request behind it too)."""
    budget = WeightBudget(limit=300, interval_s=60.0)
    await budget.acquire(100)
    heavy = asyncio.ensure_future(budget.acquire(250, priority=0))
    light = asyncio.ensure_future(budget.acquire(50, priority=5))
    await asyncio.sleep(0)
    budget.configure(200, 60.0)
    with pytest.raises(errors.OverBudget, match="weight 250 exceeds the whole budget 200"):
        await heavy
    await asyncio.wait_for(light, 1.0)


async def test_the_live_limit_is_followed_up_to_the_configured_share() -> None:
    budget = WeightBudget(2000, 60)  # one of three replicas behind one IP
    budget.configure(6000, 60)  # what the exchange reports for the IP
    assert (budget.limit, budget.interval_s) == (2000, 60)
    budget.configure(1200, 60)  # lowered by the exchange: followed
    assert budget.limit == 1200


async def test_a_live_limit_is_followed_down_to_the_heaviest_request_only(
        caplog: pytest.LogCaptureFixture) -> None:
    """An odd or hostile `rateLimits` (limit 1) would fail every request we send, a
    connection's included, for good: it is followed down to the heaviest one, and said
    once."""
    budget = WeightBudget(6000, 60, floor=250)  # a 5000-level snapshot weighs 250
    for _ in range(3):
        budget.configure(1, 60)
    assert budget.limit == 250
    budget.configure(249, 60)
    assert budget.limit == 250
    assert [r.getMessage() for r in caplog.records] == [
        "wsapi: the exchange's REQUEST_WEIGHT limit 1 is below the heaviest request we send "
        "(250): followed down to that",
        "wsapi: the exchange's REQUEST_WEIGHT limit 249 is below the heaviest request we send "
        "(250): followed down to that"]
    await budget.acquire(250)
    budget.configure(1200, 60)
    assert budget.limit == 1200


async def test_refreshes_keep_half_the_budget_for_resyncs() -> None:
    """Weight granted is held a whole window: refreshes that took it all would hold up a gap's
    resync until then. They take half, so the resync goes at once."""
    budget = WeightBudget(limit=1000, interval_s=60.0)
    refreshes = [asyncio.ensure_future(budget.acquire(250, REFRESH)) for _ in range(4)]
    await asyncio.sleep(0)
    assert [r.done() for r in refreshes] == [True, True, False, False]
    await asyncio.wait_for(budget.acquire(250, RESYNC), 1.0)  # not behind the other two
    assert budget.used() == 750
    for refresh in refreshes[2:]:
        refresh.cancel()
    lone = WeightBudget(limit=300, interval_s=60.0)  # a refresh heavier than the half: alone
    await asyncio.wait_for(lone.acquire(250, REFRESH), 1.0)
