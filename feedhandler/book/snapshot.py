"""A depth snapshot (`{"lastUpdateId","bids","asks"}`) as records of the `depth` kind.

Snapshots travel on the depth topic itself, keyed by symbol like the diffs, as one event of
rows flagged `DEPTH_SNAPSHOT` (plus FIRST..LAST) with `first_update_id = last_update_id =
lastUpdateId`: bids best first, then asks; a side without levels is absent, and an empty
book is one `side = 2` row. The rows of a side that filled the request's `limit` are also
flagged `DEPTH_CUT`: the exchange has levels beyond its last that the snapshot does not show,
so a book must not take a later diff's level there as the next one. A consumer that sees
such an event knows where a valid book can start (`feedhandler.book.BookBuilder` does it for
you).

Prices (int64) and quantities (128-bit, as in the depth layout) are parsed exactly into 1e-8
units; a value with a ninth non-zero decimal or beyond its field is refused, never rounded
(the snapshot is then not published).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from feedhandler.contract import DEPTH_CUT, DEPTH_FIRST, DEPTH_LAST, DEPTH_SNAPSHOT
from feedhandler.records import SCHEMAS

DEPTH = SCHEMAS["depth"]
_INT64_MAX = 2**63 - 1
_INT128_MAX = 2**127 - 1
_LOW64 = 2**64 - 1


class SnapshotError(ValueError):
    pass


def decimal_units(text: str, wide: bool = False) -> int:
    """Exact 1e-8 units of a non-negative decimal string ("98249.71000000"); at most int64,
    or int128 when `wide`."""
    whole, _, frac = text.partition(".")
    if len(frac) > 8:
        if frac[8:].strip("0"):
            raise SnapshotError(f"more than 8 decimals: {text!r}")
        frac = frac[:8]
    digits = whole + frac
    if not digits or not digits.isascii() or not digits.isdigit():
        raise SnapshotError(f"not a decimal: {text!r}")
    value = int(whole or "0") * 10**8 + int(frac.ljust(8, "0") or "0")
    if value > (_INT128_MAX if wide else _INT64_MAX):
        raise SnapshotError(f"beyond {'int128' if wide else 'int64'} at 1e-8: {text!r}")
    return value


def _levels(levels: Sequence[Sequence[str]]) -> np.ndarray:
    """(price, qty lo, qty hi) per level."""
    out = np.empty((len(levels), 3), np.int64)
    qtys = [decimal_units(qty, wide=True) for _, qty in levels]
    out[:, 0] = [decimal_units(price) for price, _ in levels]
    out[:, 1] = np.array([q & _LOW64 for q in qtys], np.uint64).view(np.int64)
    out[:, 2] = [q >> 64 for q in qtys]
    return out


def snapshot_records(symbol: str, result: dict[str, Any], ts_recv: int = 0,
                     limit: int = 0) -> np.ndarray:
    """The snapshot event's rows (`depth` dtype); `limit`: the levels a side requested (0:
    whole sides)."""
    last = int(result["lastUpdateId"])
    bids, asks = _levels(result["bids"]), _levels(result["asks"])
    count = max(1, len(bids) + len(asks))
    rows = np.zeros(count, DEPTH.dtype)
    rows["ts_recv"] = ts_recv or time.time_ns()
    rows["first_update_id"] = rows["last_update_id"] = last
    rows["symbol"] = symbol.encode()
    rows["flags"] = DEPTH_SNAPSHOT
    if len(bids) + len(asks) == 0:
        rows["side"] = 2
    else:
        levels = np.concatenate((bids, asks))
        rows["side"][len(bids):] = 1
        if limit and len(bids) >= limit:
            rows["flags"][:len(bids)] |= DEPTH_CUT
        if limit and len(asks) >= limit:
            rows["flags"][len(bids):] |= DEPTH_CUT
        rows["price"] = levels[:, 0]
        rows["qty"]["lo"] = levels[:, 1].view(np.uint64)
        rows["qty"]["hi"] = levels[:, 2]
    rows["flags"][0] |= DEPTH_FIRST
    rows["flags"][-1] |= DEPTH_LAST
    return rows
