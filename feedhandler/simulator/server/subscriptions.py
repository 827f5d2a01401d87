"""The stream set of one connection, shared by the URL handshake and SUBSCRIBE/UNSUBSCRIBE.

Behaviour past the 1024-stream limit is undocumented (protocol doc §2). Our choice, an
assumption: a change that would exceed the limit is rejected as a whole — an error reply with
code 2 for SUBSCRIBE, HTTP 400 for a URL — and the set stays as it was. Unknown stream names get
`Invalid request: invalid stream`, the text real servers send (third-party captures).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class SubscriptionError(ValueError):
    """A rejected change; the message is the `msg` of a code-2 error reply."""


class Subscriptions:
    """Insertion-ordered set of stream names (LIST_SUBSCRIPTIONS answers in this order)."""

    def __init__(self, max_streams: int, is_valid: Callable[[str], bool]) -> None:
        self._max = max_streams
        self._is_valid = is_valid
        self._names: dict[str, None] = {}

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def names(self) -> list[str]:
        return list(self._names)

    def add(self, names: Iterable[str]) -> list[str]:
        """Add all of `names` or none; returns the ones that were not subscribed yet."""
        new = [name for name in dict.fromkeys(names) if name not in self._names]
        invalid = [name for name in new if not self._is_valid(name)]
        if invalid:
            raise SubscriptionError("Invalid request: invalid stream")
        if len(self._names) + len(new) > self._max:
            raise SubscriptionError(f"Invalid request: too many streams (max {self._max})")
        self._names.update(dict.fromkeys(new))
        return new

    def remove(self, names: Iterable[str]) -> list[str]:
        """Remove `names`; unknown ones are ignored. Returns the ones actually removed."""
        gone = [name for name in dict.fromkeys(names) if name in self._names]
        for name in gone:
            del self._names[name]
        return gone
