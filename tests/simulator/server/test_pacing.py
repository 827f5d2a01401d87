"""RatePacer: the rate holds whatever the batch size."""

from __future__ import annotations

from feedhandler.simulator.server.pacing import RatePacer


def test_events_due_beyond_one_batch_go_on_the_next_loop_turn() -> None:
    pacer, now, sent = RatePacer(5000, batch=2, now=0.0), 0.0, 0
    while now < 1.0:  # a loop that wakes when told, each turn taking 10 µs
        allowed = pacer.allowance(now)
        pacer.consumed(allowed)
        sent += allowed
        wakeup = pacer.next_wakeup(now)
        assert wakeup is not None
        now = max(wakeup, now + 10e-6)
    assert 4990 <= sent <= 5010
