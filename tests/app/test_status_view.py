"""The status view's numbers: rates between snapshots, shard states, sink figures."""

from __future__ import annotations

import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

from rich.console import Console

from feedhandler.app.status_view import StatusView, render


def fake_handler() -> Any:
    connection = SimpleNamespace(shard=0, streams=2, state="connecting", epoch=3, frames=0,
                                 failed_attempts=2, last_error="refused")
    stats = SimpleNamespace(records=Counter({"trade": 10}), errors=Counter({"bad_decimal": 1}),
                            gaps=4, reconnects=2)
    status = SimpleNamespace(
        supervisor=SimpleNamespace(connections=[connection]), backlog_bytes=4096, paused=False,
        sink={"delivered": 7, "failed": 1, "in_flight": 2, "undelivered": 3, "errors": {}})
    return SimpleNamespace(stats=stats, status=lambda: status, connection=connection, frames=0)


def test_snapshot_rates_are_since_the_previous_snapshot() -> None:
    handler = fake_handler()
    view = StatusView(handler)
    handler.stats.records["trade"] += 50
    handler.connection.frames = 25
    handler.frames = 40  # the handler's count: 15 more from a shard retired meanwhile
    time.sleep(0.05)
    snap = view.snapshot()
    assert 0 < snap["records_per_s"]["trade"] <= 50 / 0.05
    assert snap["frames"] == 40 and snap["records"] == {"trade": 60}
    assert (snap["errors"], snap["gaps"], snap["reconnects"]) == (1, 4, 2)
    assert snap["shards"] == [{"shard": 0, "streams": 2, "state": "connecting", "epoch": 3,
                               "frames": 25, "failed_attempts": 2, "last_error": "refused"}]
    assert snap["sink"] == {"backlog_bytes": 4096, "delivered": 7, "failed": 1, "in_flight": 2,
                            "undelivered": 3}
    assert view.snapshot()["records_per_s"]["trade"] == 0.0  # nothing new since


def test_render_shows_every_figure() -> None:
    console = Console(width=120, record=True, color_system=None)
    console.print(render(StatusView(fake_handler()).snapshot()))
    text = console.export_text()
    for part in ("gaps 4", "reconnects 2", "errors 1", "backlog 4096 B", "delivered 7",
                 "failed 1", "in flight 2", "trade", "connecting (attempt 3)", "refused"):
        assert part in text, part
