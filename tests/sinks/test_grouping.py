from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from feedhandler.sinks import grouping
from feedhandler.sinks.grouping import group_rows, key_words


def runs(keys: np.ndarray) -> list[list[int]]:
    order, bounds = group_rows(key_words(keys))
    index = np.arange(len(keys)) if order is None else order
    return [index[a:b].tolist() for a, b in pairwise(bounds)]


def expected_runs(keys: np.ndarray) -> list[list[int]]:
    by_key: dict[bytes, list[int]] = {}
    for i, key in enumerate(keys.tolist()):
        by_key.setdefault(key, []).append(i)
    return list(by_key.values())


@pytest.mark.parametrize("seed", range(5))
def test_groups_are_exact_and_keep_row_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    symbols = np.array([b"BTCUSDT", b"BTCUSD", b"ETHUSDT", b"A", b"X" * 32, b"X" * 31 + b"Y"],
                       dtype="S32")
    keys = symbols[rng.integers(0, len(symbols), 1000)]
    assert sorted(runs(keys)) == sorted(expected_runs(keys))


def test_one_key_needs_no_reordering() -> None:
    keys = np.array([b"BTCUSDT"] * 5, dtype="S32")
    assert group_rows(key_words(keys)) == (None, [0, 5])
    assert group_rows(key_words(keys[:0])) == (None, [0, 0])


def test_keys_of_any_width() -> None:
    keys = np.array([b"1m", b"5m", b"1m", b"15m"], dtype="S4")
    assert sorted(runs(keys)) == [[0, 2], [1], [3]]


def test_hash_collisions_fall_back_to_exact_grouping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(grouping, "_hash32", lambda words: np.zeros(len(words), np.uint32))
    keys = np.array([b"B", b"A", b"B", b"C", b"A"], dtype="S32")
    assert sorted(runs(keys)) == [[0, 2], [1, 4], [3]]
