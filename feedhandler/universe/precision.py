"""Decimals off their symbol's grid: a price that is no multiple of the symbol's tick size, a
quantity no multiple of its step size (exchangeInfo PRICE_FILTER / LOT_SIZE).

The decoder converts every decimal exactly, so such a value is what the exchange sent. The
records are published unchanged (rounding would alter exchange data); each violation is
counted per (kind, symbol) and reported by a rate-limited `precision_violation` event and log
line naming the symbol, the field and the value.

Checked per decoded batch with numpy, no Python per row: the rows are grouped by symbol in
one C pass (`group_rows`, as the Kafka sink groups them), the tick and step sizes are looked
up once per symbol and spread over the rows, then one remainder per column. Unknown symbols
and disabled rules (size 0) get the divisor 1, which every value is a multiple of. Only
batches with a violation go on to count per symbol. The columns come from the kind
declarations (`Field.grid`).

When Binance changes a tick or step size, new values are off the old grid until exchangeInfo
is read again. So with a refreshing universe a symbol's off values are first held (HELD_MAX
at most) and an early read asked for (`doubt_with`); the universe takes what is held before the
read and settles it after: values on the symbol's grid as read were the change (logged, not
counted), the rest are counted. A symbol whose sizes a read confirmed counts at once for
CONFIRMED_S, or the universe's refresh interval if longer (so a symbol that keeps sending
off-grid values brings no more than one early read an interval).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from feedhandler._ext.publish import group_rows
from feedhandler.contract.kinds import KINDS
from feedhandler.logs import Throttle
from feedhandler.records import SCHEMAS, to_str, wide_to_int
from feedhandler.universe.symbols import SymbolInfo

log = logging.getLogger(__name__)

EVENT_INTERVAL_S = 60.0  # at most one event (and log line) per (kind, symbol) this often
CONFIRMED_S = 60.0  # a symbol's violations counted at once this long after a read settled them
GRIDS = {"tick": 0, "step": 1}  # position in the per-symbol divisors
_ONE_ROW = np.array([0, 1], np.int64)  # group_rows' bounds of a one-row batch
_NO_ROWS = np.zeros(0, np.int64)
# Level quantities the engine caps (since 2022-05-23; protocol doc §4.12): (2**63 - 1) x
# 10**-precision for a base asset of that precision, meaning "this much or more", in 1e-8
# units. Off any step grid, and not a violation.
QTY_CAPS = tuple((2**63 - 1) * 10 ** (8 - precision) for precision in range(9))

HELD_MAX = 100_000  # off values held for a read at most; past it they count at once
Off = tuple[str, str, int, np.ndarray]  # column, grid, its size, the off values (rows)
Held = dict[tuple[str, str], list[Off]]  # (kind, symbol) -> off values awaiting a read

# kind -> ((column, "tick" | "step"), ...): the columns bound to a grid
GRID_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    k.name: tuple((f.name, f.grid) for f in k.fields if f.grid is not None)
    for k in KINDS if k.name in SCHEMAS and any(f.grid for f in k.fields)
}


class PrecisionCheck:
    def __init__(self, on_event: Callable[[dict[str, Any]], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.violations: Counter[tuple[str, str]] = Counter()  # (kind, symbol) -> count
        # symbol -> divisors (tick, step); 1 where the rule is off: every value is a multiple
        self._divisors: dict[bytes, tuple[int, int]] = {}
        self._on_event = on_event
        self._events = Throttle(EVENT_INTERVAL_S, clock)  # per (kind, symbol)
        self._clock = clock
        self._on_doubt: Callable[[], None] | None = None  # see doubt_with
        self._held: Held = {}  # what awaits that read
        self._held_rows = 0
        self._confirmed: dict[str, float] = {}  # symbol -> when a read settled its violations
        self.confirmed_s = CONFIRMED_S

    def doubt_with(self, ask: Callable[[], None], interval_s: float = 0.0) -> None:
        """Hold off-grid values and `ask()` for an early exchangeInfo read (the universe, when
        it refreshes every `interval_s`); a symbol that a read confirmed counts at once for
        that interval, or CONFIRMED_S if longer."""
        self._on_doubt = ask
        self.confirmed_s = max(CONFIRMED_S, interval_s)

    def stop_doubting(self) -> None:
        """No read comes any more: what is held counts, and from now on at once."""
        self._on_doubt = None
        self.settle(self.take())

    def update(self, symbols: Iterable[SymbolInfo]) -> None:
        """Tick and step sizes from the latest exchangeInfo (per refresh, not per batch)."""
        for info in symbols:
            self._divisors[info.symbol.encode()] = (info.tick or 1, info.step or 1)

    def take(self) -> Held:
        """The violations held so far, for settle() once a read is made (those held meanwhile
        wait for the next: the read may predate their size change)."""
        held, self._held, self._held_rows = self._held, {}, 0
        return held

    def settle(self, held: Held) -> None:
        """Count the held off-grid values, except those on their symbol's grid as it is now:
        the size changed (after a read; after a failed one every one counts)."""
        now = self._clock()
        changed: Counter[tuple[str, str, str, str, int, int]] = Counter()
        for (kind, symbol), entries in held.items():
            self._confirmed[symbol] = now
            sizes = self._divisors.get(symbol.encode(), (1, 1))
            off: list[Off] = []
            for column, grid, size, values in entries:
                new = sizes[GRIDS[grid]]
                still = _off_rows(values, new, grid) if new != size else None
                if still is not None:
                    changed[(kind, symbol, column, grid, size, new)] += len(values) - len(still)
                    values = values[still]
                if len(values):
                    off.append((column, grid, new, values))
            if off:
                self._count(kind, symbol, off)
        for (kind, symbol, column, grid, size, new), count in changed.items():
            if count:  # (a size of 1: exchangeInfo turned the check off)
                log.info("%s %s: the %s size changed from %s to %s; %d %s values off the old "
                         "one are on the new one, not counted", kind, symbol, grid,
                         to_str(size), to_str(new) if new > 1 else "none (not checked)",
                         count, column)

    def check(self, kind: str, records: np.ndarray) -> None:
        """Count the batch's off-grid values; vectorised, per batch."""
        columns = GRID_COLUMNS.get(kind)
        if not columns or not self._divisors or not len(records):
            return
        symbols = records["symbol"]
        # rows by symbol in one C pass (the Kafka sink's grouping); Python per symbol only
        order, bounds = (None, _ONE_ROW) if len(records) == 1 else group_rows(symbols)
        firsts = bounds[:-1] if order is None else order[bounds[:-1]]
        grids = [self._divisors.get(name, (1, 1)) for name in symbols[firsts].tolist()]
        # each row's group (symbol); one symbol: none needed, a scalar divisor does
        group = None if order is None else _group_of_rows(order, bounds)
        found: dict[int, list[Off]] = {}  # group -> its off values, per column
        for column, grid in columns:
            sizes = [g[GRIDS[grid]] for g in grids]
            if max(sizes) == 1:
                continue
            divisor = sizes[0] if group is None else np.array(sizes, np.int64)[group]
            rows = _off_rows(records[column], divisor, grid)
            if not len(rows):  # the common case ends here
                continue
            of_row = np.zeros(len(rows), np.int64) if group is None else group[rows]
            by = np.argsort(of_row, kind="stable")
            groups, starts = np.unique(of_row[by], return_index=True)
            for g, part in zip(groups.tolist(), np.split(rows[by], starts[1:]), strict=True):
                found.setdefault(g, []).append((column, grid, sizes[g], records[column][part]))
        for g, off in sorted(found.items()):  # per symbol with violations
            symbol = bytes(symbols[firsts[g]]).decode(errors="replace")
            confirmed = self._confirmed.get(symbol)
            if self._on_doubt is None or self._held_rows >= HELD_MAX or (
                    confirmed is not None and self._clock() - confirmed < self.confirmed_s):
                self._count(kind, symbol, off)
            else:  # (its size may have changed since the last read)
                self._held.setdefault((kind, symbol), []).extend(off)
                self._held_rows += _values(off)
                self._on_doubt()

    def _count(self, kind: str, symbol: str, off: list[Off]) -> None:
        """Count a symbol's off values; the event names the first."""
        key = (kind, symbol)
        count = _values(off)
        self.violations[key] += count
        since = self._events.due(key, count)
        if since is None:
            return
        column, grid, size, values = off[0]
        event = {"type": "precision_violation", "kind": kind, "symbol": symbol,
                 "field": column, "value": to_str(_first_off(values[0], size, grid)),
                 "grid": grid,
                 "size": to_str(size), "count": since}
        log.warning("%s %s: %s %s is not a multiple of the %s size %s (%d off-grid values "
                    "since the last report; published as sent, counted)", kind, symbol,
                    column, event["value"], grid, event["size"], event["count"])
        self._on_event(event)


def _values(off: list[Off]) -> int:
    """How many off values (rows) `off` holds."""
    return sum(len(values) for *_, values in off)


def _off_rows(values: np.ndarray, divisor: int | np.ndarray, grid: str) -> np.ndarray:
    """The rows of `values` with an element off its grid (`divisor`: see _remainders)."""
    rest = _remainders(values, divisor)
    if not np.count_nonzero(rest):  # (the common case: no caps to look for)
        return _NO_ROWS
    if grid == "step":
        rest = _without_caps(values, rest)
    return np.flatnonzero(rest.reshape(len(rest), -1).any(axis=1))


def _group_of_rows(order: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """group_rows' (order, bounds) -> each row's group number, in row order."""
    out = np.empty(len(order), np.int64)
    out[order] = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    return out


def _remainders(values: np.ndarray, divisor: int | np.ndarray) -> np.ndarray:
    """Each value (each element of a sub-array) modulo its row's divisor (1 where nothing is
    checked; a scalar: the same for every row): nonzero where off the grid."""
    if isinstance(divisor, np.ndarray):  # a row's divisor for each of its elements
        divisor = divisor.reshape(-1, *([1] * (values.ndim - 1)))
    if not values.dtype.names:
        return np.asarray(np.remainder(values, divisor))
    # int128 as (lo uint64, hi int64): quantities, never negative
    lo, hi = values["lo"], values["hi"]
    rest = np.asarray(np.remainder(lo, np.asarray(divisor).astype(np.uint64)))
    if np.count_nonzero(hi):  # beyond 2**64 units (1.8e11): rare, checked exactly in Python
        rest = rest.astype(object)
        sizes = np.broadcast_to(divisor, hi.shape)
        for index in zip(*np.nonzero(hi), strict=True):
            rest[index] = wide_to_int(values[index]) % int(sizes[index])
    return rest


def _without_caps(values: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """`rest` with 0 where the quantity is a cap (QTY_CAPS)."""
    if values.dtype.names:  # int128 as (lo uint64, hi int64)
        capped = np.zeros(values.shape, bool)
        for cap in QTY_CAPS:
            capped |= (values["lo"] == cap & (2**64 - 1)) & (values["hi"] == cap >> 64)
    else:  # (int64: only precision 8's fits)
        capped = values == QTY_CAPS[-1]
    return np.where(capped, 0, rest)


def _first_off(value: Any, size: int, grid: str) -> int:
    """The first off-grid element of one row's value (a scalar or a sub-array), as an int; a
    capped quantity is not one."""
    items = np.atleast_1d(value)
    for item in items:
        number = wide_to_int(item) if items.dtype.names else int(item)
        if size and number % size and not (grid == "step" and number in QTY_CAPS):
            return number
    return 0
