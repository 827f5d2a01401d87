"""SnapshotSync: per-symbol resync on gaps, stale snapshots fetched again, a 1,000-symbol
storm within the exchange's weight limit, and books rebuilt from what the handler published
equal to the simulator's true books."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from typing import Any, cast

import numpy as np
import pytest

from feedhandler._ext.book import Books
from feedhandler.app.handler import Handler
from feedhandler.book import BookBuilder
from feedhandler.book.live import HandlerBooks
from feedhandler.book.rest import RestDepth
from feedhandler.book.sync import SnapshotSync
from feedhandler.config import BookConfig, load_config
from feedhandler.contract import wire_records
from feedhandler.records import SCHEMAS
from feedhandler.simulator.testing import SimulatorServer
from feedhandler.sinks.base import Sink
from feedhandler.supervisor.failures import retry_after_s
from feedhandler.wsapi import WeightBudget, WsApiClient, errors
from feedhandler.wsapi.budget import REFRESH, RESYNC, SNAPSHOT
from tests.app.recording_sink import RecordingSink
from tests.book.test_builder import diff, pairs, snap
from tests.http_answer import answering


class FakeDepth:
    """Snapshots on demand: `ids[symbol]` is the lastUpdateId of the next answers."""

    def __init__(self, ids: dict[str, list[int]]) -> None:
        self.ids = ids
        self.calls: list[tuple[str, int, int]] = []

    async def depth(self, symbol: str, limit: int = 100, *, priority: int = 10) -> Any:
        self.calls.append((symbol, limit, priority))
        await asyncio.sleep(0)
        last = self.ids[symbol].pop(0)
        return {"lastUpdateId": last, "bids": [["1.0", "2.0"]], "asks": [["1.1", "3.0"]]}


def batch(*events: np.ndarray) -> np.ndarray:
    return np.concatenate(events)


async def test_only_the_symbol_with_a_gap_is_resynced_and_stale_snapshots_are_refetched() -> None:
    source = FakeDepth({"AAA": [11, 30], "BBB": [8, 21]})  # BBB's first answer is too old
    published: list[np.ndarray] = []
    events: list[dict[str, Any]] = []
    sync = SnapshotSync(source, published.append, limit=500, on_event=events.append)
    sync.on_depth(batch(diff("AAA", 10, 12), diff("BBB", 10, 10), diff("BBB", 11, 11)))
    while sync.pending():
        await asyncio.sleep(0.001)
    assert [c[0] for c in source.calls] == ["AAA", "BBB", "BBB"]
    assert sync.symbols["BBB"].stale == 1 and sync.symbols["BBB"].snapshot_id == 21
    sync.on_depth(batch(diff("AAA", 13, 14), diff("BBB", 12, 13), diff("AAA", 16, 17)))
    while sync.pending():
        await asyncio.sleep(0.001)
    assert [c[0] for c in source.calls] == ["AAA", "BBB", "BBB", "AAA"]
    assert source.calls[-1][2] < source.calls[0][2]  # a resync goes before initial snapshots
    gap = [e for e in events if e["type"] == "book_resync" and e["reason"] == "gap"]
    assert gap == [{**gap[0], "symbol": "AAA", "expected": 15, "received": 16}]
    assert [int(p["last_update_id"][0]) for p in published] == [11, 21, 30]
    assert all(p["symbol"][0] == p["symbol"][-1] for p in published)
    await sync.close()


async def test_a_gap_in_the_batch_that_brings_the_first_diff_is_covered() -> None:
    source = FakeDepth({"AAA": [107, 112]})  # 107 falls in the gap: too old, fetched again
    published: list[np.ndarray] = []
    events: list[dict[str, Any]] = []
    sync = SnapshotSync(source, published.append, on_event=events.append)
    sync.on_depth(batch(diff("AAA", 100, 105), diff("AAA", 110, 115)))
    while sync.pending():
        await asyncio.sleep(0.001)
    # the book was never valid: one interval, from the first diff, that the snapshot covering
    # the gap ends
    resyncs = [(e["reason"], e["expected"], e["received"]) for e in events
               if e["type"] == "book_resync"]
    assert resyncs == [("start", 0, 100)]
    assert sync.symbols["AAA"].stale == 1
    assert [int(p["last_update_id"][0]) for p in published] == [112]
    await sync.close()


async def test_an_interval_starts_at_the_first_of_several_gaps_in_one_batch() -> None:
    source = FakeDepth({"AAA": [10, 58]})
    published: list[np.ndarray] = []
    events: list[dict[str, Any]] = []
    sync = SnapshotSync(source, published.append, on_event=events.append)
    sync.on_depth(batch(diff("AAA", 11, 20)))
    while sync.pending():
        await asyncio.sleep(0.001)
    sync.on_depth(batch(diff("AAA", 25, 30), diff("AAA", 31, 40), diff("AAA", 50, 60)))
    while sync.pending():
        await asyncio.sleep(0.001)
    resyncs = [(e["reason"], e["expected"], e["received"]) for e in events
               if e["type"] == "book_resync"]
    assert resyncs == [("start", 0, 11), ("gap", 21, 25)]  # invalid from 21 on, not from 41
    assert [int(p["last_update_id"][0]) for p in published] == [10, 58]  # 58 covers 50
    await sync.close()


class FlakyDepth(FakeDepth):
    """Its first answer is not JSON, as a proxy's error page served with status 200 would be."""

    async def depth(self, symbol: str, limit: int = 100, *, priority: int = 10) -> Any:
        if not self.calls:
            self.calls.append((symbol, limit, priority))
            raise ValueError("unexpected character: line 1 column 1 (char 0)")
        return await super().depth(symbol, limit, priority=priority)


async def test_a_failed_snapshot_of_any_kind_is_counted_and_fetched_again() -> None:
    source = FlakyDepth({"AAA": [10]})
    published: list[np.ndarray] = []
    sync = SnapshotSync(source, published.append, retry_delay_s=0.01)
    sync.on_depth(diff("AAA", 10, 10))
    async with asyncio.timeout(5):
        while sync.pending():
            await asyncio.sleep(0.001)
    assert sync.failures == 1 and len(source.calls) == 2
    assert [int(p["last_update_id"][0]) for p in published] == [10]


class QueuedRefresh(FakeDepth):
    """A refresh waits in the budget's queue for good; others answer at once."""

    async def depth(self, symbol: str, limit: int = 100, *, priority: int = 10) -> Any:
        if priority == REFRESH:
            self.calls.append((symbol, limit, priority))
            await asyncio.Event().wait()
        return await super().depth(symbol, limit, priority=priority)


class Deep(FakeDepth):
    """Answers with the bids 100, 99, ... 96, those above `cut_at` left out once the answer is
    newer than `deleted_after` (they were deleted)."""

    def __init__(self, ids: dict[str, list[int]], deleted_after: int, cut_at: int) -> None:
        super().__init__(ids)
        self.deleted_after, self.cut_at = deleted_after, cut_at

    async def depth(self, symbol: str, limit: int = 100, *, priority: int = 10) -> Any:
        answer = await super().depth(symbol, limit, priority=priority)
        prices = range(100, 95, -1)
        if answer["lastUpdateId"] > self.deleted_after:
            prices = range(self.cut_at, 95, -1)
        return {**answer, "bids": [[str(p), "1"] for p in prices], "asks": [["101", "1"]]}


def handler_books(sync_ids: dict[str, list[int]], deleted_after: int, cut_at: int,
                  ) -> tuple[HandlerBooks, SnapshotSync, Deep, list[dict[str, Any]]]:
    """top_n 2, max_levels 4: the handler's books fed by their own SnapshotSync."""
    events: list[dict[str, Any]] = []
    source = Deep(sync_ids, deleted_after, cut_at)
    sync = SnapshotSync(source, lambda rows: live.on_depth(rows), on_event=events.append)
    live = HandlerBooks(BookConfig(snapshots=True, publish=True, top_n=2, max_levels=4),
                        lambda rows: None, events.append, sync.want)
    return live, sync, source, events


async def settle(live: HandlerBooks, sync: SnapshotSync) -> None:
    live.service()
    while sync.pending():
        await asyncio.sleep(0.001)
        live.service()


def both(live: HandlerBooks, sync: SnapshotSync, records: np.ndarray) -> None:
    """A decoded batch, in the handler's order: SnapshotSync first, then the books (which
    take the wire layout, as the decoder hands it over)."""
    sync.on_depth(records)
    live.on_depth(wire_records(SCHEMAS["depth"], records))


async def started(monkeypatch: pytest.MonkeyPatch, ids: list[int], cut_at: int,
                  wait: float = 0.0,
                  ) -> tuple[HandlerBooks, SnapshotSync, Deep, list[dict[str, Any]]]:
    """handler_books of X (answers `ids`, SHORT_RESYNC_S = `wait`), valid from its snapshot
    at 10."""
    monkeypatch.setattr("feedhandler.book.sync.SHORT_RESYNC_S", wait)
    live, sync, source, events = handler_books({"X": ids}, deleted_after=11, cut_at=cut_at)
    both(live, sync, diff("X", 10, 10))
    await settle(live, sync)
    return live, sync, source, events


THINNED = diff("X", 11, 13, bids=[("100", "0"), ("99", "0"), ("98", "0")])  # 97 left
EMPTIED = diff("X", 11, 13, bids=[("100", "0"), ("99", "0"), ("98", "0"), ("97", "0")])


async def test_a_handler_book_whose_side_runs_thin_stays_valid_and_is_refreshed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """max_levels 4, top_n 2: 96 is forgotten at the start; once 100, 99 and 98 are deleted
    the bids hold 97 alone above it. The book stays valid (97 is right) and records its diffs;
    the snapshot SnapshotSync fetches, no sooner than SHORT_RESYNC_S after the last one,
    rebuilds it to full depth."""
    live, sync, source, events = await started(monkeypatch, [10, 13], 97, wait=0.2)
    began = time.monotonic()
    both(live, sync, THINNED)
    status = live.books.status("X")
    assert status["state"] == "valid" and status["recording"] and status["refreshes"] == 1
    assert pairs(live.books.levels("X", 0)) == [(97 * 10**8, 10**8)]
    await settle(live, sync)
    assert time.monotonic() - began >= 0.15  # waited out the rest of SHORT_RESYNC_S
    assert [(e["type"], e.get("last_update_id")) for e in events] == [
        ("book_resync", None), ("book_snapshot", 10), ("book_snapshot", 13)]
    assert [c[2] for c in source.calls] == [SNAPSHOT, REFRESH]
    status = live.books.status("X")
    assert status["state"] == "valid" and not status["recording"] and status["shorts"] == 0
    assert pairs(live.books.levels("X", 0)) == [(p * 10**8, 10**8) for p in (97, 96)]
    assert sync.symbols["X"].refreshes == 1
    await sync.close()


async def test_a_handler_book_whose_side_empties_is_invalid_until_a_snapshot(
        monkeypatch: pytest.MonkeyPatch) -> None:
    live, sync, _, events = await started(monkeypatch, [10, 13], 96)
    both(live, sync, EMPTIED)  # the best bid may now be 96, or one never seen
    assert live.books.status("X")["state"] == "short"
    await settle(live, sync)
    assert [(e["type"], e.get("reason")) for e in events] == [
        ("book_resync", "start"), ("book_snapshot", None), ("book_resync", "short"),
        ("book_snapshot", None)]
    status = live.books.status("X")
    assert status["state"] == "valid" and status["update_id"] == 13 and status["shorts"] == 1
    assert pairs(live.books.levels("X", 0)) == [(96 * 10**8, 10**8)]
    await sync.close()


async def test_a_short_does_not_lower_the_id_a_gap_in_the_same_batch_needs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the answer 13 covers the short (at 13) but not the gap (U 20): fetched again
    live, sync, source, events = await started(monkeypatch, [10, 13, 21], 96)
    both(live, sync, batch(EMPTIED, diff("X", 20, 21)))
    await settle(live, sync)
    assert [e["reason"] for e in events if e["type"] == "book_resync"] == \
        ["start", "gap", "short"]
    assert sync.symbols["X"].stale == 1 and [c[0] for c in source.calls] == ["X"] * 3
    assert live.books.status("X")["state"] == "valid"
    assert live.books.status("X")["update_id"] == 21
    await sync.close()


async def test_a_snapshot_whose_replay_leaves_the_book_short_is_evented_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("feedhandler.book.sync.SHORT_RESYNC_S", 0.0)
    live, sync, _, events = handler_books({"X": [10, 13]}, deleted_after=11, cut_at=96)
    # buffered before the first snapshot, whose replay empties the bids: short at once
    both(live, sync, diff("X", 9, 10))
    both(live, sync, EMPTIED)
    await settle(live, sync)
    assert [(e["type"], e.get("reason"), e.get("last_update_id")) for e in events] == [
        ("book_resync", "start", None), ("book_snapshot", None, 10),
        ("book_resync", "short", None), ("book_snapshot", None, 13)]
    assert live.books.status("X")["state"] == "valid"
    await sync.close()


async def test_a_short_that_a_snapshot_already_ended_asks_for_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    live, sync, source, events = await started(monkeypatch, [10], 96)
    both(live, sync, EMPTIED)
    # a refresh lands before the service tick reports the short
    live.on_depth(snap("X", 13, [("96", "1")], [("101", "1")]))
    await settle(live, sync)
    assert live.books.status("X")["state"] == "valid" and len(source.calls) == 1
    assert [e["reason"] for e in events if e["type"] == "book_resync"] == ["start"]
    await sync.close()


async def test_a_book_whose_buffer_overflowed_past_its_snapshot_gets_a_newer_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The book went short at 13, then buffered 14..20 in a buffer of 2 rows: it keeps the
    newest, so the snapshot fetched for the short (14) is too old for them: stale, and
    SnapshotSync, which knew only of the short, fetches again."""
    monkeypatch.setattr("feedhandler.book.sync.SHORT_RESYNC_S", 0.0)
    live, sync, source, events = handler_books({"X": [10, 14, 30]}, deleted_after=11,
                                               cut_at=96)
    live.books = Books(4, max_buffer=2, min_levels=1, refresh_levels=2, wants=True)
    both(live, sync, diff("X", 10, 10))
    await settle(live, sync)
    both(live, sync, EMPTIED)
    for update_id in range(14, 21):
        both(live, sync, diff("X", update_id, update_id))
    await settle(live, sync)
    await settle(live, sync)  # the stale snapshot's want, on the next tick
    # (the short's snapshot ahead of periodic refreshes: its book is invalid meanwhile)
    assert [c[2] for c in source.calls] == [SNAPSHOT, SNAPSHOT, RESYNC]
    assert [int(e["last_update_id"]) for e in events if e["type"] == "book_snapshot"] == \
        [10, 14, 30]
    assert sync.symbols["X"].stale == 1
    # invalid past the stale snapshot's book_snapshot: a new interval, evented
    marks = [(e["type"], e.get("reason"), e.get("expected"), e.get("received"))
             for e in events if e["type"] in ("book_resync", "book_snapshot")]
    assert marks == [("book_resync", "start", 0, 10), ("book_snapshot", None, None, None),
                     ("book_resync", "short", 14, 14), ("book_snapshot", None, None, None),
                     ("book_resync", "stale", 15, 20), ("book_snapshot", None, None, None)]
    assert live.books.status("X")["state"] == "valid"
    assert live.books.status("X")["update_id"] == 30
    await sync.close()


async def test_a_gap_goes_ahead_of_a_short_still_waiting_its_second() -> None:
    source = FakeDepth({"AAA": [10, 20]})
    published: list[np.ndarray] = []
    sync = SnapshotSync(source, published.append)
    sync.on_depth(diff("AAA", 10, 10))
    async with asyncio.timeout(5):
        while not published:
            await asyncio.sleep(0.001)
        sync.want("AAA", 11, "short")  # waits out SHORT_RESYNC_S after that snapshot
        await asyncio.sleep(0.01)
        sync.on_depth(diff("AAA", 15, 15))  # 11..14 missed: at once, not after the short's wait
        while len(published) < 2:
            await asyncio.sleep(0.001)
    assert [c[2] for c in source.calls] == [SNAPSHOT, RESYNC]
    await sync.close()


async def test_a_gap_goes_ahead_of_a_refresh_already_queued() -> None:
    source = QueuedRefresh({"AAA": [10, 20, 30]})
    published: list[np.ndarray] = []
    sync = SnapshotSync(source, published.append, refresh_s=0.01)
    sync.on_depth(diff("AAA", 10, 10))
    async with asyncio.timeout(5):
        while not any(c[2] == REFRESH for c in source.calls):
            await asyncio.sleep(0.001)
        sync.on_depth(diff("AAA", 15, 15))  # 11..14 missed
        while len(published) < 2:
            await asyncio.sleep(0.001)
    assert [c[2] for c in source.calls[:3]] == [SNAPSHOT, REFRESH, RESYNC]
    assert [int(p["last_update_id"][0]) for p in published[:2]] == [10, 20]
    await sync.close()


async def test_synced_symbols_get_a_fresh_snapshot_every_refresh_interval() -> None:
    source = FakeDepth({"AAA": [10, 20, 30, 40]})
    published: list[np.ndarray] = []
    sync = SnapshotSync(source, published.append, refresh_s=0.05)
    sync.on_depth(diff("AAA", 10, 10))
    async with asyncio.timeout(5):
        while len(published) < 3:
            await asyncio.sleep(0.01)
    await sync.close()
    assert [int(p["last_update_id"][0]) for p in published[:3]] == [10, 20, 30]
    assert source.calls[1][2] > source.calls[0][2]  # refreshes queue behind everything else


class InFlight(FakeDepth):
    """Every request is sent at once and answered 50 ms later."""

    async def depth(self, symbol: str, limit: int = 100, *, priority: int = 10) -> Any:
        await asyncio.sleep(0.05)
        return await super().depth(symbol, limit, priority=priority)


async def test_a_gap_awaits_the_snapshot_already_in_flight() -> None:
    source = InFlight({"AAA": [20, 30]})
    published: list[np.ndarray] = []
    sync = SnapshotSync(source, published.append)
    sync.on_depth(diff("AAA", 10, 10))
    await asyncio.sleep(0.01)  # the start snapshot is on its way
    sync.on_depth(diff("AAA", 15, 15))  # 11..14 missed: its answer (20) covers them
    async with asyncio.timeout(5):
        while sync.pending():
            await asyncio.sleep(0.001)
    assert [c[2] for c in source.calls] == [SNAPSHOT]
    assert [int(p["last_update_id"][0]) for p in published] == [20]
    await sync.close()


async def test_only_streamed_symbols_are_refreshed() -> None:
    """A symbol unsubscribed since (or delisted) costs no refresh round's weight."""
    source = FakeDepth({"AAA": [10, 20, 30], "BBB": [10, 20, 30]})
    published: list[np.ndarray] = []
    streamed = {"AAA", "BBB"}
    sync = SnapshotSync(source, published.append, refresh_s=0.02, streamed=lambda: streamed)
    sync.on_depth(diff("AAA", 10, 10))
    sync.on_depth(diff("BBB", 10, 10))
    async with asyncio.timeout(5):
        while len(published) < 2:
            await asyncio.sleep(0.001)
        streamed.discard("BBB")  # unsubscribed
        while len(published) < 4:
            await asyncio.sleep(0.001)
    await sync.close()
    assert [bytes(p["symbol"][0]) for p in published[2:4]] == [b"AAA", b"AAA"]


async def test_a_delisted_symbol_is_not_refreshed_again() -> None:
    class Delisted(FakeDepth):
        async def depth(self, symbol: str, limit: int = 100, *, priority: int = 10) -> Any:
            if priority == REFRESH:
                self.calls.append((symbol, limit, priority))
                raise errors.BadSymbol("Invalid symbol.", status=400, code=-1121)
            return await super().depth(symbol, limit, priority=priority)

    source = Delisted({"AAA": [10]})
    events: list[dict[str, Any]] = []
    sync = SnapshotSync(source, lambda rows: None, refresh_s=0.01, on_event=events.append)
    sync.on_depth(diff("AAA", 10, 10))
    async with asyncio.timeout(5):
        while not any(e["type"] == "book_snapshot_failed" for e in events):
            await asyncio.sleep(0.001)
    await asyncio.sleep(0.1)  # ten refresh intervals
    await sync.close()
    assert [c[2] for c in source.calls] == [SNAPSHOT, REFRESH]


async def test_no_refresh_while_the_sink_is_backed_up() -> None:
    source = FakeDepth({"AAA": [10, 20]})
    published: list[np.ndarray] = []
    paused = [False]
    sync = SnapshotSync(source, published.append, refresh_s=0.01, paused=lambda: paused[0])
    sync.on_depth(diff("AAA", 10, 10))
    while not published:
        await asyncio.sleep(0.001)
    paused[0] = True
    await asyncio.sleep(0.1)  # ten refresh intervals
    assert len(source.calls) == 1
    paused[0] = False
    async with asyncio.timeout(5):
        while len(published) < 2:
            await asyncio.sleep(0.001)
    await sync.close()


async def test_a_thousand_symbols_resynced_at_once_stay_within_the_weight_limit() -> None:
    async with SimulatorServer(api_weight_limit=1200, api_weight_interval=1) as sim:
        assert sim.api is not None and sim.api.market is not None
        symbols = [spec.symbol for spec in sim.api.market.universe][:1000]
        budget = WeightBudget(1200, 1.0, margin_s=0.5)  # margin: the server lags under load
        client = WsApiClient(sim.url + "/ws-api/v3", budget)
        published: list[np.ndarray] = []
        sync = SnapshotSync(client, published.append, limit=100)
        async with client:
            await client.wait_ready(5)
            sync.on_depth(np.concatenate([diff(s, 1, 1) for s in symbols]))
            assert sync.pending() == 1000
            async with asyncio.timeout(30):
                while sync.pending():
                    await asyncio.sleep(0.05)
        assert len(published) == 1000 and sync.failures == 0
        assert sim.api.limiter.refused == 0 and client.stats.rate_limited == 0
        assert sim.api.limiter.charged == 1000 * 5 + 2 + 1


def synced_handler(sim: SimulatorServer, stream: str,
                   **settings: Any) -> tuple[Handler, SnapshotSync, RecordingSink]:
    """A handler of `stream` on `sim` with book snapshots, into a RecordingSink."""
    sink = RecordingSink()
    config = load_config(None, {
        "url": sim.url, "streams": stream, "sink": "null", "batch.linger_ms": 1.0,
        "book.snapshots": True, "wsapi.url": sim.url + "/ws-api/v3", **settings,
    }, environ={})
    handler = Handler(config, cast(Sink, sink))  # RecordingSink: a duck-typed Sink
    assert handler.book_sync is not None
    return handler, handler.book_sync, sink


@pytest.mark.parametrize("source", ["wsapi", "rest"])
async def test_books_rebuilt_from_the_published_records_equal_the_true_books(source: str) -> None:
    # one symbol: when the market stops, its engine is exactly at its last pushed diff, so the
    # true book is comparable level by level (with several, an engine runs past its last push)
    stream = "btcusdt@depth@100ms"
    async with SimulatorServer(rate=200.0) as sim:
        handler, sync, sink = synced_handler(
            sim, stream, **{"book.snapshot_source": source,
                            "book.rest_url": sim.url.replace("ws:", "http:")})
        task = asyncio.create_task(handler.run())
        async with asyncio.timeout(20):
            while sync.snapshots < 1:
                await asyncio.sleep(0.01)
            sim.faults.gap(stream=stream, n=3)
            while sync.snapshots < 2 or sync.pending():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            sim.market.stop()
            frames = -1
            while frames != sum(s.frames for s in handler.shards):  # until the stream is idle
                frames = sum(s.frames for s in handler.shards)
                await asyncio.sleep(0.2)
        handler.stop()
        await task
        builder = BookBuilder()
        for kind, records, _ in sink.batches:
            if kind == "depth":
                builder.apply(records)
        last, bids, asks = sim.market.true_books(["BTCUSDT"])["BTCUSDT"]
        assert builder.valid("BTCUSDT"), builder.why_not("BTCUSDT")
        assert builder.status("BTCUSDT")["update_id"] == last
        got_bids, got_asks = builder.levels("BTCUSDT")
        assert pairs(got_bids) == bids and pairs(got_asks) == asks
        assert builder.status("BTCUSDT")["gaps"] == 1
        reasons = [e["reason"] for e in sink.events if e["type"] == "book_resync"]
        assert reasons == ["start", "gap"]
        assert (handler.wsapi is None) == (source == "rest")


async def test_rest_depth_errors_map_to_their_class() -> None:
    async with SimulatorServer() as sim:
        rest = RestDepth(sim.url.replace("ws:", "http:"), WeightBudget(100, 1.0))
        with pytest.raises(errors.BadSymbol):
            await rest.depth("NOSUCHPAIR", 5)
        assert len((await rest.depth("ETHUSDT", 7))["bids"]) == 7
        assert rest.budget.used() == 10


async def test_a_rest_snapshot_given_up_keeps_its_weight_until_its_timeout_could_end() -> None:
    """Cancelled (a resync replacing a refresh), its GET still goes out from its thread: the
    exchange may count it as late as the request's timeout."""
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)  # no answer meanwhile
        writer.close()

    server = await asyncio.start_server(never, "127.0.0.1", 0)
    async with server:
        budget = WeightBudget(6000, 60.0)
        rest = RestDepth(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", budget,
                         timeout_s=2.0)
        fetch = asyncio.create_task(rest.depth("BTCUSDT", 5000))
        await asyncio.sleep(0.1)
        fetch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fetch
        (expires, weight), = budget._done
        assert weight == 250
        assert expires - asyncio.get_running_loop().time() >= 2.0 + budget.window_s - 0.05


@pytest.mark.parametrize(("status", "blocked_s"), [(429, 60.0), (418, 120.0)])
async def test_a_rest_throttle_without_retry_after_blocks_as_a_connection_would(
        status: int, blocked_s: float) -> None:
    async with answering(status, b'{"code":-1003,"msg":"Too many requests"}') as port:
        budget = WeightBudget(6000, 60.0)
        with pytest.raises(errors.RateLimited):
            await RestDepth(f"http://127.0.0.1:{port}", budget).depth("BTCUSDT", 5)
    waits = budget._next_room(asyncio.get_running_loop().time(), 1, budget.limit)
    assert waits is not None
    assert blocked_s - 1 < waits - asyncio.get_running_loop().time() <= blocked_s


async def test_rest_snapshots_share_the_ips_weight_and_see_what_others_used() -> None:
    """The exchange counts REST and WebSocket API weight per IP together, and says in
    X-MBX-USED-WEIGHT-1M what the IP used: another process's share is held as ours is."""
    async with SimulatorServer(api_weight_limit=300, api_weight_interval=60) as sim:
        assert sim.api is not None
        limiter, now = sim.api.limiter, sim.api.now_ms
        if now() % 60_000 > 55_000:  # (its windows are calendar minutes: all in one)
            await asyncio.sleep(6)
        limiter.charge("127.0.0.1", 200, now())  # another process behind this IP
        budget = WeightBudget(300, 60.0)
        rest = RestDepth(sim.url.replace("ws:", "http:"), budget)
        assert len((await rest.depth("BTCUSDT", 5))["bids"]) == 5
        assert limiter.count("127.0.0.1", now()) == 205
        assert budget.external == 200 and budget.used() == 205
        limiter.charge("127.0.0.1", 95, now())  # the IP's window is full
        with pytest.raises(errors.RateLimited):
            await RestDepth(rest.base_url, WeightBudget(6000, 60.0)).depth("BTCUSDT", 5)


def test_a_retry_after_is_seconds_or_an_http_date() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert [retry_after_s(v, 60.0) for v in (None, "5", "soon")] == [60.0, 5.0, 60.0]
    assert 28 <= retry_after_s(later, 60.0) <= 30


async def test_a_lost_stream_makes_its_books_invalid_at_once_until_a_snapshot_after_it() -> None:
    source = FakeDepth({"AAA": [10, 40], "BBB": list(range(10, 200))})
    published: list[np.ndarray] = []
    events: list[dict[str, Any]] = []
    sync = SnapshotSync(source, published.append, on_event=events.append, refresh_s=0.02)
    sync.on_depth(batch(diff("AAA", 10, 10), diff("BBB", 10, 10)))
    async with asyncio.timeout(5):
        while len(published) < 2:
            await asyncio.sleep(0.001)
    sync.lost({"AAA", "CCC"})  # (CCC: no book of it)
    sync.lost({"AAA"})  # already lost: nothing more
    resyncs = [(e["symbol"], e["reason"], e["expected"]) for e in events
               if e["type"] == "book_resync"]
    assert resyncs == [("AAA", "start", 0), ("BBB", "start", 0), ("AAA", "disconnected", 11)]
    sync.want("AAA", 11, "short")  # (its handler book ran short meanwhile: it waits too)
    await asyncio.sleep(0.2)  # refresh rounds: BBB's, none of AAA's while its stream is down
    assert [c[0] for c in source.calls].count("AAA") == 1
    assert [c[0] for c in source.calls].count("BBB") > 3
    late = diff("AAA", 11, 11)  # received before the loss, in a batch that lingered
    sync.on_depth(late)
    await asyncio.sleep(0.05)
    assert [c[0] for c in source.calls].count("AAA") == 1 and sync.symbols["AAA"].lost
    back = diff("AAA", 12, 12)  # back, and following on: a snapshot all the same
    back["ts_recv"] = time.time_ns()
    sync.on_depth(back)
    async with asyncio.timeout(5):
        while not any(e["type"] == "book_snapshot" and e["last_update_id"] == 40
                      for e in events):
            await asyncio.sleep(0.001)
    await sync.close()
    assert [c[2] for c in source.calls if c[0] == "AAA"] == [SNAPSHOT, RESYNC]
    assert [(e["symbol"], e["reason"]) for e in events if e["type"] == "book_resync"] == [
        ("AAA", "start"), ("BBB", "start"), ("AAA", "disconnected")]


async def test_a_wall_clock_stepped_back_during_a_reconnect_does_not_hold_a_book_invalid(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Records' ts_recv is CLOCK_REALTIME: after an NTP step back of an hour during the
    reconnect, the first diff after it is still after the loss."""
    source = FakeDepth({"AAA": [10, 40]})
    events: list[dict[str, Any]] = []
    sync = SnapshotSync(source, lambda rows: None, on_event=events.append)
    sync.on_depth(diff("AAA", 10, 10))
    async with asyncio.timeout(5):
        while sync.snapshots < 1:
            await asyncio.sleep(0.001)
    sync.lost({"AAA"})
    real = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real() - 3600 * 10**9)
    back = diff("AAA", 12, 12)
    back["ts_recv"] = time.time_ns()
    sync.on_depth(back)
    assert not sync.symbols["AAA"].lost
    async with asyncio.timeout(5):
        while sync.snapshots < 2:
            await asyncio.sleep(0.001)
    await sync.close()
    assert [e.get("reason") for e in events] == ["start", None, "disconnected", None]


async def test_a_lost_connection_is_a_resync_at_once_and_a_snapshot_after_it() -> None:
    async with SimulatorServer(rate=200.0) as sim:
        handler, sync, sink = synced_handler(sim, "btcusdt@depth@100ms",
                                             **{"book.publish": True, "book.interval_ms": 10})
        task = asyncio.create_task(handler.run())
        async with asyncio.timeout(20):
            while sync.snapshots < 1 or not any(kind == "book" for kind, _, _ in sink.batches):
                await asyncio.sleep(0.01)
            assert sim.faults.drop() == 1  # the stream's connection (not the WS API's)
            while sync.snapshots < 2:
                await asyncio.sleep(0.01)
            mark = len(sink.batches)  # (and a top after it)
            while not any(kind == "book" for kind, _, _ in sink.batches[mark:]):
                await asyncio.sleep(0.01)
        handler.stop()
        await task
    kinds = ("disconnected", "connected", "book_resync", "book_snapshot")
    told = [(e["type"], e.get("reason")) for e in sink.events
            if e["type"] in kinds and "/ws-api/" not in e.get("url", "")]  # (the stream's)
    # invalid from the loss itself, not from the first diff after the reconnect; valid again
    # only from a snapshot taken after it
    assert told == [("connected", None), ("book_resync", "start"), ("book_snapshot", None),
                    ("disconnected", "TCP closed without a close frame"),
                    ("book_resync", "disconnected"), ("connected", None),
                    ("book_snapshot", None)]
    # and the handler's own books published no top meanwhile
    lost = next(e["ts_ns"] for e in sink.events if e.get("reason") == "disconnected"
                and e["type"] == "book_resync")
    synced = next(e["ts_ns"] for e in sink.events if e["type"] == "book_snapshot"
                  and e["ts_ns"] > lost)
    tops = np.concatenate([rows["ts"] for kind, rows, _ in sink.batches if kind == "book"])
    assert len(tops[tops < lost]) and len(tops[tops > synced])
    assert not len(tops[(tops > lost) & (tops < synced)])


async def test_a_symbol_refused_as_invalid_is_asked_again_while_its_diffs_come() -> None:
    """One -1121 (a new listing streamed before the API serves its depth) must not leave its
    book unsynced for good; asked again with backoff, and no longer once it is unsubscribed."""
    class NotYet(FakeDepth):
        refusals = 2

        async def depth(self, symbol: str, limit: int = 100, *, priority: int = 10) -> Any:
            if self.refusals:
                self.refusals -= 1
                self.calls.append((symbol, limit, priority))
                raise errors.BadSymbol("Invalid symbol.", status=400, code=-1121)
            return await super().depth(symbol, limit, priority=priority)

    source = NotYet({"AAA": [10]})
    events: list[dict[str, Any]] = []
    published: list[np.ndarray] = []
    sync = SnapshotSync(source, published.append, retry_delay_s=0.01, on_event=events.append)
    sync.on_depth(diff("AAA", 10, 10))
    async with asyncio.timeout(5):
        while not published:
            await asyncio.sleep(0.001)
    assert len(source.calls) == 3 and sync.failures == 2
    assert [e["type"] for e in events] == ["book_resync", "book_snapshot_failed",
                                           "book_snapshot"]  # (failed: once a streak)
    gone = NotYet({"BBB": []})
    gone.refusals = 10**6
    streamed = {"BBB"}
    sync = SnapshotSync(gone, published.append, retry_delay_s=0.01, streamed=lambda: streamed)
    sync.on_depth(diff("BBB", 10, 10))
    async with asyncio.timeout(5):
        while len(gone.calls) < 3:
            await asyncio.sleep(0.001)
        streamed.clear()  # unsubscribed (delisted): no more
        while sync.pending():
            await asyncio.sleep(0.001)
    calls = len(gone.calls)
    await asyncio.sleep(0.2)
    assert len(gone.calls) == calls < 10  # (backing off: 10, 20, 40, 80 ... ms)
    await sync.close()
