"""Every control event the code emits is declared (and so documented), and nothing more."""

from __future__ import annotations

import re
from pathlib import Path

import feedhandler
from feedhandler.contract.docs import section
from feedhandler.contract.events import EVENT_TYPES, EVENTS

PACKAGE = Path(feedhandler.__file__).parent
# `feed.event("connected", ...)`, `_event("book_resync", ...)` and `{"type": "paused", ...}`
EMITTED = re.compile(r'\b_?event\(\s*"(\w+)"|\{\s*"type":\s*"(\w+)"')


def emitted_types() -> set[str]:
    found = set()
    for folder in ("app", "supervisor", "sinks", "book", "wsapi", "universe"):
        for path in (PACKAGE / folder).rglob("*.py"):
            found |= {a or b for a, b in EMITTED.findall(path.read_text())}
    return found


def test_emitted_events_are_the_declared_ones() -> None:
    assert emitted_types() == set(EVENT_TYPES)


def test_each_event_and_field_is_in_the_readme_section() -> None:
    text = section()
    for event in EVENTS:
        row = next(line for line in text.splitlines()
                   if line.startswith(f"| `{event.type}` | {event.source} |"))
        for name, _ in event.fields:
            assert f"`{name}`" in row, (event.type, name)
    assert "`shard`" in text and "`ts_ns`" in text and "`instance`" in text
