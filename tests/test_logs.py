from __future__ import annotations

from feedhandler.logs import Throttle


class Clock:
    """A clock for Throttle and its users: `now` is set by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_key_reports_at_once_then_once_an_interval_with_the_tally_since() -> None:
    clock = Clock(1000.0)
    throttle = Throttle(10.0, clock)
    assert throttle.due("a") == 1  # the first: at once
    assert throttle.due("a", 3) is None
    clock.now += 9.999
    assert throttle.due("a") is None
    clock.now += 0.001  # an interval after the last report
    assert throttle.due("a", 2) == 1 + 3 + 2  # what came since it, this one included
    assert throttle.due("a") is None


def test_keys_are_throttled_apart() -> None:
    clock = Clock(5.0)
    throttle = Throttle(10.0, clock)
    assert throttle.due(("depth", "BTCUSDT")) == 1
    assert throttle.due(("depth", "ETHUSDT")) == 1
    assert throttle.due(("depth", "BTCUSDT")) is None
    assert ("depth", "ETHUSDT") in throttle and ("trade", "BTCUSDT") not in throttle
    assert len(throttle) == 2


def test_a_clock_near_zero_still_reports_the_first_at_once() -> None:
    # (a fresh boot's monotonic clock: below one interval)
    throttle = Throttle(10.0, Clock(0.0))
    assert throttle.due("a") == 1
    assert throttle.due("a") is None


def test_the_monotonic_clock_by_default() -> None:
    throttle = Throttle(3600.0)
    assert throttle.due("a") == 1
    assert throttle.due("a") is None
