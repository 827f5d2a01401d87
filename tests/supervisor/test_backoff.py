"""Backoff: full jitter below a doubling, capped ceiling; reset only when told."""

from __future__ import annotations

import random

import pytest

from feedhandler.supervisor.backoff import Backoff


def test_ceiling_doubles_to_the_cap_and_draws_stay_below_it() -> None:
    backoff = Backoff(0.5, 4.0, random.Random(7))
    ceilings = []
    for _ in range(6):
        ceiling = backoff.ceiling()
        ceilings.append(ceiling)
        assert 0 <= backoff.next_delay() <= ceiling
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.failures == 6


def test_full_jitter_spreads_over_the_whole_range() -> None:
    draws = []
    for seed in range(200):
        backoff = Backoff(1.0, 8.0, random.Random(seed))
        backoff.failures = 3
        draws.append(backoff.next_delay())
    assert min(draws) < 1.0 and max(draws) > 7.0  # not "ceiling +- a little"


def test_reset_starts_over_and_huge_failure_counts_do_not_overflow() -> None:
    backoff = Backoff(0.1, 30.0)
    backoff.failures = 10_000
    assert backoff.ceiling() == 30.0
    backoff.reset()
    assert backoff.failures == 0 and backoff.ceiling() == 0.1


def test_nonsense_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="initial"):
        Backoff(5.0, 1.0)
    with pytest.raises(ValueError, match="initial"):
        Backoff(0.0, 1.0)
