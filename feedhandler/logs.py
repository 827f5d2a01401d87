"""Log lines on stderr: text for people, or one JSON object per line for collectors."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any

import orjson

LOG_FORMATS = ("auto", "text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...}`; `extra={"stats": {...}}` adds fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname,
                                "logger": record.name, "msg": record.getMessage()}
        for key in ("stats", "event"):
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def wants_json(log_format: str) -> bool:
    return log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())


def setup_logging(level: str, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if wants_json(log_format)
                         else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)


class Throttle:
    """At most one report per key every `interval_s` (of `clock`, by default the monotonic
    one): due(key, n) adds n to the key's tally and, when a report is due, returns the tally
    since the last one (this n included); else None."""

    def __init__(self, interval_s: float, clock: Callable[[], float] | None = None) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._keys: dict[Hashable, tuple[float, int]] = {}  # -> (last report, tally since)

    def due(self, key: Hashable, n: int = 1) -> int | None:
        now = self._clock() if self._clock is not None else time.monotonic()
        last, tally = self._keys.get(key, (-self.interval_s, 0))
        if now - last < self.interval_s:
            self._keys[key] = (last, tally + n)
            return None
        self._keys[key] = (now, 0)
        return tally + n

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)
