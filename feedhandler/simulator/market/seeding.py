"""Derived seeds: one independent, reproducible random stream per (seed, label).

Python's `hash()` of a str changes per process, so labels are hashed with BLAKE2b. Only
`random()`-based draws are used from the resulting generators, whose output Python keeps
stable across versions for integer seeds.
"""

from __future__ import annotations

import hashlib
import random


def derive_int(seed: int, label: str) -> int:
    """A 64-bit integer determined by `seed` and `label`."""
    digest = hashlib.blake2b(f"{seed}:{label}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def derive_rng(seed: int, label: str) -> random.Random:
    """A Mersenne Twister seeded from (`seed`, `label`)."""
    return random.Random(derive_int(seed, label))
