"""Async tests of the handler run on uvloop, the loop production runs (feedhandler.app.run)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import uvloop


def sync(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """Run an async test on a fresh uvloop event loop (no plugin needed)."""
    def wrapper() -> None:
        uvloop.run(test())

    wrapper.__name__ = test.__name__
    return wrapper
