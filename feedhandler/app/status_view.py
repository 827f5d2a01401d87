"""What `run` shows while it runs: a live table on a terminal, otherwise a periodic stats log
line. Read from the handler's own counters once per interval: nothing is done per message."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

if TYPE_CHECKING:
    from feedhandler.app.handler import Handler

log = logging.getLogger(__name__)

SINK_KEYS = ("delivered", "failed", "in_flight", "undelivered", "records_failed")


class StatusView:
    """Snapshots of a running handler, with rates since the previous snapshot."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._started = self._at = time.monotonic()
        self._records: Counter[str] = Counter(handler.stats.records)
        self._frames = 0

    def snapshot(self) -> dict[str, Any]:
        status, stats = self.handler.status(), self.handler.stats
        now = time.monotonic()
        span = max(now - self._at, 1e-9)
        connections = status.supervisor.connections
        frames = self.handler.frames  # (shards retired at runtime included: it never falls)
        rates = {kind: round((count - self._records[kind]) / span, 1)
                 for kind, count in stats.records.items()}
        self._at, self._records, self._frames, frames_before = \
            now, Counter(stats.records), frames, self._frames
        return {
            "elapsed_s": round(now - self._started, 1),
            "frames": frames, "frames_per_s": round((frames - frames_before) / span, 1),
            "records": dict(stats.records), "records_per_s": rates,
            "errors": sum(stats.errors.values()), "gaps": stats.gaps,
            "reconnects": stats.reconnects, "paused": status.paused,
            "shards": [{"shard": c.shard, "streams": c.streams, "state": c.state,
                        "epoch": c.epoch, "frames": c.frames,
                        "failed_attempts": c.failed_attempts, "last_error": c.last_error}
                       for c in connections],
            "sink": {"backlog_bytes": status.backlog_bytes,
                     **{k: status.sink[k] for k in SINK_KEYS if k in status.sink}},
        }


def render(snap: dict[str, Any]) -> Group:
    """The live table: totals, rates per kind, one row per shard."""
    head = Table.grid(padding=(0, 2))
    sink = snap["sink"]
    head.add_row(
        f"[b]{snap['elapsed_s']:.0f} s[/]", f"frames {snap['frames']} ({snap['frames_per_s']}/s)",
        f"gaps {snap['gaps']}", f"reconnects {snap['reconnects']}", f"errors {snap['errors']}",
        "[red]PAUSED[/]" if snap["paused"] else "")
    head.add_row("[b]kafka[/]", f"backlog {sink['backlog_bytes']} B",
                 *(f"{k.replace('_', ' ')} {v}" for k, v in sink.items() if k != "backlog_bytes"))
    kinds = Table(title="records", title_justify="left")
    kinds.add_column("kind")
    kinds.add_column("records/s", justify="right")
    kinds.add_column("total", justify="right")
    for kind, total in sorted(snap["records"].items()):
        kinds.add_row(kind, f"{snap['records_per_s'].get(kind, 0.0):,.1f}", f"{total:,}")
    shards = Table(title="shards", title_justify="left")
    for name in ("shard", "streams", "state", "epoch", "frames", "last error"):
        shards.add_column(name, justify="left" if name in ("state", "last error") else "right")
    for s in snap["shards"]:
        state = {"open": "[green]open[/]", "quarantined": "[red]quarantined[/]"}.get(
            s["state"], f"[yellow]{s['state']}[/] (attempt {s['failed_attempts'] + 1})")
        shards.add_row(str(s["shard"]), str(s["streams"]), state, str(s["epoch"]),
                       f"{s['frames']:,}", s["last_error"][:60])
    return Group(head, kinds, shards)


async def report(view: StatusView, running: asyncio.Task[Any], interval_s: float,
                 live: bool) -> None:
    """Until `running` is done: refresh the live table (on stderr), or log a stats line every
    `interval_s` (0: never)."""
    if not live:
        while interval_s and not running.done():
            await asyncio.wait([running], timeout=interval_s)
            if not running.done():
                log.info("stats %s", _brief(snap := view.snapshot()), extra={"stats": snap})
        return
    console = Console(stderr=True)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.stream for h in handlers]
    try:
        with Live(render(view.snapshot()), console=console, refresh_per_second=4,
                  redirect_stderr=True) as display:
            for h in handlers:  # log lines print above the table, not through it
                h.setStream(console.file)
            while not running.done():
                await asyncio.wait([running], timeout=min(interval_s or 1.0, 1.0))
                if not running.done():  # at the end, keep the last table of the run
                    display.update(render(view.snapshot()))
    finally:
        for h, stream in zip(handlers, streams, strict=True):
            h.setStream(stream)


def _brief(snap: dict[str, Any]) -> str:
    up = sum(s["state"] == "open" for s in snap["shards"])
    return (f"frames/s={snap['frames_per_s']} frames={snap['frames']} gaps={snap['gaps']} "
            f"reconnects={snap['reconnects']} errors={snap['errors']} "
            f"shards_up={up}/{len(snap['shards'])} backlog_bytes={snap['sink']['backlog_bytes']}")
