"""results.md: what the run was, stated with its numbers."""

from __future__ import annotations

from typing import Any

from feedhandler.bench.latency import GIVEN_OFFSET, SAME_CLOCK
from feedhandler.bench.report import markdown

META: dict[str, Any] = {
    "command": "feedhandler bench latency --clock-note 'chrony: 3 µs'", "date": "2026-12-06",
    "machine": "test", "symbols": 8, "kinds": ["trade"], "streams": 8, "duration_s": 5.0,
    "settle_s": 1.0}


def test_an_offset_given_is_stated_with_its_value() -> None:
    text = markdown({"meta": {**META, "clock": GIVEN_OFFSET, "clock_offset_us": -5.0,
                              "clock_offset_given": True}, "runs": []})
    assert "- Clock offset applied: -5.0 µs (given by --clock-offset-us)" in text
    assert "`feedhandler bench latency --clock-note 'chrony: 3 µs'`" in text
    same = markdown({"meta": {**META, "clock": SAME_CLOCK, "clock_offset_us": 0.0,
                              "clock_offset_given": False}, "runs": []})
    assert "Clock offset applied" not in same and f"- Clock: {SAME_CLOCK}" in same
