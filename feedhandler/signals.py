"""The process's SIGINT, SIGTERM and SIGHUP handlers, kept to be given back after a run that
set its own (the command line's and an in-process caller's come back that way)."""

from __future__ import annotations

import signal
from collections.abc import Callable

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SavedHandlers:
    """The handlers as they are now; restore() gives them back."""

    def __init__(self) -> None:
        self._handlers = {sig: signal.getsignal(sig) for sig in HANDLED}

    def restore(self, unset: Callable[[int], object] = lambda sig: None) -> None:
        """Each handler as it was; `unset(sig)` for one not set from Python (getsignal gave
        None), e.g. one an event loop installed."""
        for sig, handler in self._handlers.items():
            if handler is None:
                unset(sig)
            else:
                signal.signal(sig, handler)
