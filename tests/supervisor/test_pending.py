"""Id-matched requests: replies in any order, late and foreign replies unclaimed, timeouts,
and every waiter failed when the connection goes."""

from __future__ import annotations

import asyncio

import pytest

from feedhandler.supervisor.pending import PendingRequests


def test_replies_in_any_order_late_and_foreign_ones_unclaimed() -> None:
    async def main() -> None:
        pending: PendingRequests[str] = PendingRequests()
        first, second = pending.open("a"), pending.open("b")
        waiters = [asyncio.ensure_future(pending.answer(i, 1.0)) for i in (first, second)]
        assert pending.settle(second, "B") == "b"
        assert pending.settle(first, error=ValueError("no")) == "a"
        assert pending.settle(first, "again") is None  # answered already
        assert pending.settle(99, "x") is None and pending.settle("1", "x") is None
        with pytest.raises(ValueError, match="no"):
            await waiters[0]
        assert await waiters[1] == "B" and len(pending) == 0

        third = pending.open("c")
        with pytest.raises(TimeoutError):
            await pending.answer(third, 0.01)
        assert pending.settle(third, "late") is None and len(pending) == 0

        waiting = [pending.open(tag) for tag in ("x", "y")]
        answers = asyncio.gather(*(pending.answer(i, 1.0) for i in waiting),
                                 return_exceptions=True)
        await asyncio.sleep(0)
        pending.fail_all(lambda tag: ConnectionError(f"{tag}: connection lost"))
        assert [str(e) for e in await answers] == ["x: connection lost", "y: connection lost"]

        sent: list[int] = []

        def gone(request_id: int) -> None:
            sent.append(request_id)
            raise ConnectionError("connection lost")

        with pytest.raises(ConnectionError):  # its send raised: nothing waits, nothing is left
            pending.sent("z", gone)
        (unsent,) = sent
        assert len(pending) == 0 and pending.settle(unsent, "late") is None

    asyncio.run(main())
