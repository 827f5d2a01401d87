"""Splitting a batch into runs of equal keys (symbols) with no Python step per record."""

from __future__ import annotations

import numpy as np

# Odd 64-bit multipliers of a multiply-xor hash of the key words; the grouping checks the
# result against the keys themselves, so a collision costs time, never correctness.
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0x27D4EB2F165667C5], np.uint64)


def key_words(keys: np.ndarray) -> np.ndarray:
    """Fixed-width byte keys (e.g. the NUL-padded `symbol` column) -> (n, words) uint64."""
    n, width = len(keys), keys.dtype.itemsize
    raw = np.zeros((n, -(-width // 8) * 8), np.uint8)
    raw[:, :width] = np.ascontiguousarray(keys).view(np.uint8).reshape(n, width)
    return raw.view(np.uint64)


def _hash32(words: np.ndarray) -> np.ndarray:
    mixed = words[:, 0] * _MIX[0]
    for j in range(1, words.shape[1]):
        mixed ^= words[:, j] * _MIX[j % len(_MIX)]
    return (mixed >> np.uint64(32)).astype(np.uint32)


def group_rows(words: np.ndarray) -> tuple[np.ndarray | None, list[int]]:
    """Rows with equal words -> (order, bounds): rows order[bounds[i]:bounds[i+1]] form group i,
    in their original relative order. `order` is None when all rows are one group."""
    n = len(words)
    if n == 0:
        return None, [0, 0]
    keys = _hash32(words)
    if (keys == keys[0]).all() and (words == words[0]).all():
        return None, [0, n]  # one symbol: the batch is one run as it is
    # A stable LSD radix sort on the 32-bit hash, 16 bits at a time (numpy radix-sorts 16-bit
    # keys when asked for a stable sort): equal hashes end up adjacent, in row order.
    order = np.argsort(keys.astype(np.uint16), kind="stable")  # the low 16 bits
    order = order[np.argsort((keys >> np.uint32(16)).astype(np.uint16)[order], kind="stable")]
    ordered = keys[order]
    starts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
    run_of = np.zeros(n, np.intp)
    run_of[starts] = 1
    first_row = order[np.concatenate(([0], starts))][np.cumsum(run_of)]
    # (np.take: 2-D fancy indexing is an order of magnitude slower)
    if not (np.take(words, order, axis=0) == np.take(words, first_row, axis=0)).all():
        return _exact(words)  # a hash collision: group exactly
    return order, [0, *starts.tolist(), n]


def _exact(words: np.ndarray) -> tuple[np.ndarray, list[int]]:
    void = np.ascontiguousarray(words).view(f"V{words.shape[1] * 8}").reshape(-1)
    ids = np.unique(void, return_inverse=True)[1].reshape(-1)
    order = np.argsort(ids, kind="stable")
    bounds = np.zeros(ids.max() + 2, np.intp)
    np.cumsum(np.bincount(ids), out=bounds[1:])
    return order, bounds.tolist()
