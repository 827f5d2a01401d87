"""Decimals off their symbol's grid: a price that is no multiple of the symbol's tick size, a
quantity no multiple of its step size (exchangeInfo PRICE_FILTER / LOT_SIZE).

The decoder converts every decimal exactly, so such a value is what the exchange sent. The
records are published unchanged (rounding would alter exchange data); each violation is
counted per (kind, symbol) and reported by a rate-limited `precision_violation` event and log
line naming the symbol, the field and the value.

Checked per decoded batch with numpy: one `np.unique` of the symbol column, a Python lookup
per distinct symbol, vectorised remainders per column. The columns come from the kind
declarations (`Field.grid`).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from feedhandler.contract.kinds import KINDS
from feedhandler.records import SCHEMAS, to_str, wide_to_int
from feedhandler.universe.symbols import SymbolInfo

log = logging.getLogger(__name__)

EVENT_INTERVAL_S = 60.0  # at most one event (and log line) per (kind, symbol) this often

# kind -> ((column, "tick" | "step"), ...): the columns bound to a grid
GRID_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    k.name: tuple((f.name, f.grid) for f in k.fields if f.grid is not None)
    for k in KINDS if k.name in SCHEMAS and any(f.grid for f in k.fields)
}


class PrecisionCheck:
    def __init__(self, on_event: Callable[[dict[str, Any]], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.violations: Counter[tuple[str, str]] = Counter()  # (kind, symbol) -> count
        self._grids: dict[bytes, tuple[int, int]] = {}  # symbol -> (tick, step)
        self._on_event = on_event
        self._clock = clock
        self._reported: dict[tuple[str, str], tuple[float, int]] = {}  # -> (when, count then)

    def update(self, symbols: Iterable[SymbolInfo]) -> None:
        """Tick and step sizes from the latest exchangeInfo."""
        for info in symbols:
            self._grids[info.symbol.encode()] = (info.tick, info.step)

    def check(self, kind: str, records: np.ndarray) -> None:
        """Count the batch's off-grid values; vectorised, per batch."""
        columns = GRID_COLUMNS.get(kind)
        if not columns or not self._grids or not len(records):
            return
        names, inverse = np.unique(records["symbol"], return_inverse=True)
        inverse = inverse.reshape(-1)
        known = [self._grids.get(bytes(n), (0, 0)) for n in names]  # per symbol, not per row
        sizes = {"tick": np.array([g[0] for g in known], np.int64),
                 "step": np.array([g[1] for g in known], np.int64)}
        counts = np.zeros(len(names), np.int64)
        first: dict[int, tuple[str, str, int, int]] = {}  # symbol -> its first off value
        for column, grid in columns:
            per_symbol = sizes[grid]
            if not per_symbol.any():
                continue
            size = per_symbol[inverse]
            off = _off_grid(records[column], size)
            if not off.any():
                continue
            counts += np.bincount(inverse[off], minlength=len(names))
            for row in np.flatnonzero(off)[np.unique(inverse[off], return_index=True)[1]]:
                first.setdefault(int(inverse[row]), (
                    column, grid, _first_off(records[column][row], int(size[row])),
                    int(size[row])))
        for position, found in sorted(first.items()):  # per symbol with violations
            self._count(kind, bytes(names[position]).decode(errors="replace"),
                        int(counts[position]), *found)

    def _count(self, kind: str, symbol: str, count: int, column: str, grid: str, value: int,
               size: int) -> None:
        key = (kind, symbol)
        self.violations[key] += count
        now = self._clock()
        when, then = self._reported.get(key, (-EVENT_INTERVAL_S, 0))
        if now - when < EVENT_INTERVAL_S:
            return
        self._reported[key] = (now, self.violations[key])
        event = {"type": "precision_violation", "kind": kind, "symbol": symbol,
                 "field": column, "value": to_str(value), "grid": grid, "size": to_str(size),
                 "count": self.violations[key] - then}
        log.warning("%s %s: %s %s is not a multiple of the %s size %s (%d off-grid values "
                    "since the last report; published as sent, counted)", kind, symbol,
                    column, event["value"], grid, event["size"], event["count"])
        self._on_event(event)


def _off_grid(values: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Rows with a value (any element of a sub-array) that is no multiple of its row's size;
    size 0: not checked."""
    divisor = np.where(size > 0, size, 1)
    if values.dtype.names:  # int128 as (lo uint64, hi int64): quantities, never negative
        lo, hi = values["lo"], values["hi"]
        divisor_u = divisor.astype(np.uint64).reshape(-1, *([1] * (lo.ndim - 1)))
        rest = (lo % divisor_u) != 0
        wide = hi != 0  # beyond 2**64 units (1.8e11): rare, checked exactly in Python
        if wide.any():
            for index in zip(*np.nonzero(wide), strict=True):
                number = wide_to_int(values[index])
                rest[index] = number % int(divisor[index[0]]) != 0
    else:
        rest = (values % divisor.reshape(-1, *([1] * (values.ndim - 1)))) != 0
    if rest.ndim > 1:
        rest = rest.reshape(len(rest), -1).any(axis=1)
    return np.asarray(rest & (size > 0))


def _first_off(value: Any, size: int) -> int:
    """The first off-grid element of one row's value (a scalar or a sub-array), as an int."""
    items = np.atleast_1d(value)
    for item in items:
        number = wide_to_int(item) if items.dtype.names else int(item)
        if size and number % size:
            return number
    return 0
