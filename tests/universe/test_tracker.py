"""`universe` against the in-process simulator: the handler starts from exchangeInfo (WS API),
then follows a listing and a delisting made at runtime within its refresh interval, with
`universe`, `subscribed` and `unsubscribed` events; off-grid values are counted (once a read
says the tick did not change), evented, exported and still published."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from feedhandler.app.handler import Handler
from feedhandler.config import load_config
from feedhandler.simulator.testing import SimulatorServer
from feedhandler.universe import PrecisionCheck, UniverseTracker
from feedhandler.universe import tracker as tracker_module
from tests.app.recording_sink import RecordingSink
from tests.app.test_health import free_port, get, running, until
from tests.app.uvloop_run import sync
from tests.universe.test_precision import rows

REFRESH_S = 0.5
LISTED, DELISTED = "LINKUSDT", "DOGEUSDT"


def universe_config(url: str) -> Any:
    return load_config(None, {
        "url": url, "sink": "null", "health_port": free_port(), "health_host": "127.0.0.1",
        "wsapi.url": url + "/ws-api/v3", "universe.kinds": "trade",
        "universe.quote_assets": "USDT", "universe.refresh_s": REFRESH_S,
        "connection.backoff_initial_s": 0.01, "connection.backoff_max_s": 0.05,
        "batch.linger_ms": 1.0}, environ={})


def events(sink: RecordingSink, kind: str) -> list[dict[str, Any]]:
    return [e for e in sink.events if e["type"] == kind]


def streams(sink: RecordingSink, kind: str) -> set[str]:
    return {s for e in events(sink, kind) for s in e["streams"]}


def traded(sink: RecordingSink, mark: int = 0) -> set[str]:
    return {bytes(s).decode() for kind, rows, _ in sink.batches[mark:] if kind == "trade"
            for s in rows["symbol"]}


@sync
async def test_listings_and_delistings_are_followed_live() -> None:
    async with SimulatorServer(symbols=40, rate=2000.0) as sim:
        assert sim.api is not None
        usdt = sorted(s.symbol for s in sim.market.universe if s.quote == "USDT")
        sim.api.set_status(LISTED, "BREAK")  # announced, not trading yet
        sink = RecordingSink()
        handler = Handler(universe_config(sim.url), sink)
        async with running(handler):
            start = sorted(set(usdt) - {LISTED})
            wanted = {f"{s.lower()}@trade" for s in start}
            await until(lambda: streams(sink, "subscribed") == wanted)
            assert handler.universe is not None and handler.universe.symbols == start
            (first,) = events(sink, "universe")
            assert (first["listed"], first["delisted"]) == (start, [])
            await until(lambda: {"BTCUSDT", "ETHUSDT", DELISTED} <= traded(sink))
            assert {s for c in sim.connections for s in c.subscriptions()} == wanted

            sim.api.set_status(LISTED, "TRADING")
            sim.api.set_status(DELISTED, "BREAK")
            changed, mark = time.monotonic(), len(sink.batches)
            await until(lambda: len(events(sink, "universe")) == 2
                        and f"{DELISTED.lower()}@trade" in streams(sink, "unsubscribed"))
            assert time.monotonic() - changed < REFRESH_S + 1.0  # within the interval
            update = events(sink, "universe")[1]
            assert (update["listed"], update["delisted"], update["symbols"]) == \
                ([LISTED], [DELISTED], len(start))
            assert [e["streams"] for e in events(sink, "subscribed")][-1] == ["linkusdt@trade"]
            assert [e["streams"] for e in events(sink, "unsubscribed")] == [["dogeusdt@trade"]]
            await until(lambda: LISTED in traded(sink, mark))
            assert {s for c in sim.connections for s in c.subscriptions()} == \
                wanted - {"dogeusdt@trade"} | {"linkusdt@trade"}
            assert handler.precision is not None and not handler.precision.violations

            # an over-precise price and quantity, as the exchange would send them
            feed = handler.shards[0]
            feed.decoder.decode(b'{"stream":"btcusdt@bookTicker","data":{"u":7,"s":"BTCUSDT",'
                                b'"b":"95000.005","B":"1.000001","a":"95000.01","A":"2"}}')
            feed.decoder.flush()
            # held until exchangeInfo is read again, early, in case BTCUSDT's tick changed
            assert not handler.precision.violations
            await until(lambda: handler.precision is not None and bool(
                handler.precision.violations))
            assert handler.precision.violations == {("bookTicker", "BTCUSDT"): 2}
            (violation,) = events(sink, "precision_violation")
            assert violation == {"type": "precision_violation", "kind": "bookTicker",
                                 "symbol": "BTCUSDT", "field": "bid_price",
                                 "value": "95000.00500000", "grid": "tick",
                                 "size": "0.01000000", "count": 2}
            (published,) = [rows for kind, rows, _ in sink.batches if kind == "bookTicker"]
            assert published["bid_price"][0] == 9_500_000_500_000  # as sent
            status, metrics = await get(handler, "/metrics")
            assert status == 200
            assert 'feedhandler_precision_violations_total{kind="bookTicker",' \
                   'symbol="BTCUSDT"} 2.0' in metrics
            assert f"feedhandler_universe_symbols {float(len(start))}" in metrics
            assert "feedhandler_universe_refresh_failures_total 0.0" in metrics
            assert "feedhandler_universe_held_symbols 0.0" in metrics
            assert f"feedhandler_universe_refresh_interval_seconds {float(REFRESH_S)}" in metrics
            age = float(metrics.split("\nfeedhandler_universe_refresh_age_seconds ")[1].split()[0])
            assert 0 <= age < REFRESH_S + 1.0


class FakeLive:
    def __init__(self) -> None:
        self.current: set[str] = set()
        self.changes: list[tuple[list[str], list[str]]] = []

    def streams(self) -> set[str]:
        return set(self.current)

    async def change(self, add: list[str], remove: list[str]) -> None:
        self.changes.append((add, remove))
        self.current = self.current - set(remove) | set(add)


def info(*symbols: tuple[str, str]) -> dict[str, Any]:
    return {"symbols": [{"symbol": s, "status": status, "quoteAsset": "USDT", "filters": []}
                        for s, status in symbols]}


def btc_ticked(tick: str) -> dict[str, Any]:
    """exchangeInfo of BTCUSDT alone, TRADING, with this tick size."""
    answer = info(("BTCUSDT", "TRADING"))
    answer["symbols"][0]["filters"] = [{"filterType": "PRICE_FILTER", "tickSize": tick}]
    return answer


@sync
async def test_a_failed_exchange_info_changes_nothing_and_is_retried() -> None:
    answers: list[Any] = [ConnectionError("ws-api down"), info(("BTCUSDT", "TRADING")),
                          TimeoutError("no answer"),
                          info(("BTCUSDT", "BREAK"), ("ETHUSDT", "TRADING"))]

    async def fetch() -> dict[str, Any]:
        answer = answers.pop(0) if answers else info(("ETHUSDT", "TRADING"))
        if isinstance(answer, Exception):
            raise answer
        result: dict[str, Any] = answer
        return result

    live, published = FakeLive(), []
    tracker = UniverseTracker(fetch, live, symbols="all", kinds=["trade"], quote_assets=[],
                              permissions=[], refresh_s=0.01, on_event=published.append)
    task = asyncio.create_task(tracker.run())
    await until(lambda: tracker.refreshes >= 3)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert tracker.failures == 2 and tracker.symbols == ["ETHUSDT"]
    assert tracker.refreshed_at is not None
    assert live.changes == [(["btcusdt@trade"], []), ([], ["btcusdt@trade"]),
                            (["ethusdt@trade"], [])]
    assert [(e["listed"], e["delisted"]) for e in published] == [
        (["BTCUSDT"], []), (["ETHUSDT"], ["BTCUSDT"])]


@sync
async def test_an_addition_that_fails_holds_neither_a_delisting_nor_its_listing_event() -> None:
    """E.g. a new symbol's topic cannot be created: BTCUSDT still goes, ETHUSDT is listed only
    once its stream runs (retried at each refresh)."""
    answers = [info(("BTCUSDT", "TRADING")), info(("BTCUSDT", "BREAK"), ("ETHUSDT", "TRADING"))]

    async def fetch() -> dict[str, Any]:
        return answers.pop(0) if answers else info(("ETHUSDT", "TRADING"))

    class Refusing(FakeLive):
        refuse = True

        async def change(self, add: list[str], remove: list[str]) -> None:
            if add and self.refuse and self.changes:
                self.changes.append((add, []))
                raise ValueError("kafka: missing topics x.trade.ethusdt")
            await super().change(add, remove)

    live, published = Refusing(), []
    tracker = UniverseTracker(fetch, live, symbols="all", kinds=["trade"], quote_assets=[],
                              permissions=[], refresh_s=0, on_event=published.append)
    await tracker.refresh()
    await tracker.refresh()
    assert live.streams() == set() and tracker.symbols == []
    live.refuse = False  # the topic exists now
    await tracker.refresh()
    assert live.streams() == {"ethusdt@trade"} and tracker.symbols == ["ETHUSDT"]
    assert [(e["listed"], e["delisted"]) for e in published] == [
        (["BTCUSDT"], []), ([], ["BTCUSDT"]), (["ETHUSDT"], [])]


@sync
async def test_not_ready_until_exchange_info_is_read() -> None:
    config = universe_config("ws://127.0.0.1:9")  # nothing listens: no exchangeInfo comes
    handler = Handler(config.model_copy(update={"wsapi": config.wsapi.model_copy(
        update={"url": f"ws://127.0.0.1:{free_port()}/ws-api/v3"})}), RecordingSink())
    async with running(handler):
        status, body = await get(handler, "/readyz")
        assert (status, body) == (503, "universe: no exchangeInfo yet (its streams are not "
                                       "planned)\n")
        assert handler.status().universe_symbols is None and not handler.shards


def test_a_selection_that_takes_no_symbol_is_not_ready_and_says_why(
        caplog: pytest.LogCaptureFixture) -> None:
    # (a typo in quote_assets must not pass for a handler serving its plan)
    async def main() -> None:
        async with SimulatorServer(symbols=10, rate=100.0) as sim:
            config = universe_config(sim.url)
            config = config.model_copy(update={"universe": config.universe.model_copy(
                update={"quote_assets": ["USDTT"]})})
            handler = Handler(config, RecordingSink())
            async with running(handler):
                await until(lambda: handler.status().universe_symbols == 0)
                assert await get(handler, "/readyz") == (503, "no streams: nothing to serve\n")

    sync(main)()
    warning = [r.getMessage() for r in caplog.records if "none of the" in r.getMessage()]
    assert warning and warning[0] == (
        "universe: none of the 10 symbols in exchangeInfo is chosen (symbols: all, "
        "quote_assets: ['USDTT'], permissions: any)"), warning


@sync
async def test_streams_added_by_hand_are_left_alone() -> None:
    answer = info(("BTCUSDT", "TRADING"))

    async def fetch() -> dict[str, Any]:
        return answer

    live = FakeLive()
    tracker = UniverseTracker(fetch, live, symbols="all", kinds=["trade"], quote_assets=[],
                              permissions=[], refresh_s=0, on_event=lambda event: None)
    await tracker.refresh()
    live.current |= {"!miniTicker@arr", "ethusdt@bookTicker"}  # POST /subscriptions
    live.current.discard("btcusdt@trade")
    answer = info(("BTCUSDT", "TRADING"), ("SOLUSDT", "TRADING"))
    await tracker.refresh()
    assert live.changes[-1] == (["btcusdt@trade", "solusdt@trade"], [])
    answer = info(("SOLUSDT", "TRADING"))
    await tracker.refresh()
    assert live.changes[-1] == ([], ["btcusdt@trade"])
    assert live.current == {"!miniTicker@arr", "ethusdt@bookTicker", "solusdt@trade"}


def test_a_listing_that_clashes_with_a_stream_added_by_hand_holds_no_other_listing(
        caplog: pytest.LogCaptureFixture) -> None:
    """`newusdt@depth` was added by hand before NEWUSDT listed; universe.kinds takes
    `depth@100ms`, which would interleave its ids: that stream is left out and said, the other
    listings go on, and the refresh counts as a failure whose age keeps growing (the alert)."""
    answers = [info(("BTCUSDT", "TRADING")),
               info(("BTCUSDT", "TRADING"), ("NEWUSDT", "TRADING"), ("SOLUSDT", "TRADING"))]

    async def fetch() -> dict[str, Any]:
        return answers[0] if len(answers) == 1 else answers.pop(0)

    live = FakeLive()
    tracker = UniverseTracker(fetch, live, symbols="all", kinds=["depth@100ms", "trade"],
                              quote_assets=[], permissions=[], refresh_s=60,
                              on_event=lambda event: None)

    async def main() -> None:
        await tracker.refresh()
        applied = tracker.refreshed_at
        live.current.add("newusdt@depth")  # POST /subscriptions
        await tracker.refresh()
        assert live.changes[-1] == (
            ["newusdt@trade", "solusdt@depth@100ms", "solusdt@trade"], [])
        assert tracker.symbols == ["BTCUSDT", "SOLUSDT"]  # NEWUSDT: not all its streams run
        assert (tracker.failures, tracker.refreshed_at) == (1, applied)
        live.current.discard("newusdt@depth")  # removed by hand: listed at the next refresh
        await tracker.refresh()
        assert tracker.symbols == ["BTCUSDT", "NEWUSDT", "SOLUSDT"] and tracker.failures == 1
        assert tracker.refreshed_at is not None and applied is not None
        assert tracker.refreshed_at > applied

    sync(main)()
    assert "universe: 1 streams not added, as they clash with streams already taken (remove " \
           "those): newusdt@depth@100ms" in caplog.text


class RefusingLive(FakeLive):
    """The exchange refuses the first change: the connection goes back to its streams."""

    async def change(self, add: list[str], remove: list[str]) -> None:
        self.changes.append((add, remove))
        if len(self.changes) > 1:
            self.current = self.current - set(remove) | set(add)


@sync
async def test_a_removal_the_exchange_refused_is_made_at_the_next_refresh() -> None:
    answers = [info(("BTCUSDT", "TRADING"), ("ADAUSDT", "TRADING")),
               info(("BTCUSDT", "TRADING"), ("ADAUSDT", "BREAK")),
               info(("BTCUSDT", "TRADING"), ("ADAUSDT", "BREAK"))]

    async def fetch() -> dict[str, Any]:
        return answers.pop(0)

    live = RefusingLive()
    live.current = {"btcusdt@trade", "adausdt@trade"}  # (as the first plan placed them)
    tracker = UniverseTracker(fetch, live, symbols="all", kinds=["trade"], quote_assets=[],
                              permissions=[], refresh_s=0, on_event=lambda event: None)
    await tracker.refresh()
    await tracker.refresh()  # ADAUSDT halted: its removal refused
    assert live.changes[-1] == ([], ["adausdt@trade"]) and "adausdt@trade" in live.current
    await tracker.refresh()
    assert live.changes[-1] == ([], ["adausdt@trade"]) and live.current == {"btcusdt@trade"}


@sync
async def test_a_first_plan_that_cannot_be_made_is_not_a_refresh() -> None:
    """Readiness waits for the first plan: an addition refused then is retried every RETRY_S,
    not passed over until refresh_s."""

    class Refusing(FakeLive):
        async def change(self, add: list[str], remove: list[str]) -> None:
            raise ValueError("kafka: missing topics x.trade.btcusdt")

    async def fetch() -> dict[str, Any]:
        return info(("BTCUSDT", "TRADING"))

    tracker = UniverseTracker(fetch, Refusing(), symbols="all", kinds=["trade"],
                              quote_assets=[], permissions=[], refresh_s=60,
                              on_event=lambda event: None)
    with pytest.raises(ValueError, match="missing topics"):
        await tracker.refresh()
    assert tracker.refreshes == 0 and tracker.symbols == []


def test_a_mass_delisting_is_held_until_the_symbols_trade_again(
        caplog: pytest.LogCaptureFixture) -> None:
    """An exchange-wide BREAK (maintenance) or a truncated exchangeInfo: nothing is removed,
    the refresh fails (its age: the alert), and the `universe` event names what is held. As
    they come back those still out stay held, until refresh_s passes with none back (however
    many reads come meanwhile: a precision doubt's come early)."""
    symbols = ("ADAUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT")
    trading = [(s, "TRADING") for s in symbols]
    answers = [info(*trading),
               info(*[(s, "BREAK") for s in symbols]),  # maintenance
               info(),  # a truncated answer
               info(*trading[:3], ("SOLUSDT", "BREAK")),  # coming back
               info(*trading[:3], ("SOLUSDT", "BREAK")),  # an early read: still held
               info(*trading[:3], ("SOLUSDT", "BREAK")),  # refresh_s on: SOLUSDT removed
               info(*trading[:1], ("BTCUSDT", "BREAK"), ("ETHUSDT", "BREAK"))]  # over 0.5

    async def fetch() -> dict[str, Any]:
        return answers.pop(0)

    live, published = FakeLive(), []
    tracker = UniverseTracker(fetch, live, symbols="all", kinds=["trade"], quote_assets=[],
                              permissions=[], refresh_s=0.2, on_event=published.append,
                              max_delist=0.5)

    async def main() -> None:
        await tracker.refresh()
        applied = tracker.refreshed_at
        everything = live.streams()
        for _ in range(2):
            await tracker.refresh()
            assert live.streams() == everything and len(live.changes) == 1
            assert tracker.symbols == list(symbols) and tracker.refreshed_at == applied
        assert tracker.failures == 2 and tracker.status()["universe_held"] == 4
        for _ in range(2):
            await tracker.refresh()
            assert live.streams() == everything and tracker.held == ["SOLUSDT"]
            assert tracker.failures == 2 and tracker.refreshed_at != applied
        await asyncio.sleep(0.25)  # (uvloop's timers may fire a little early)
        await tracker.refresh()
        assert live.changes[-1] == ([], ["solusdt@trade"])
        await tracker.refresh()
        assert tracker.held == ["BTCUSDT", "ETHUSDT"] and tracker.failures == 3

    sync(main)()
    assert [(e["listed"], e["delisted"], e["held"], e["symbols"]) for e in published] == [
        (list(symbols), [], [], 4),
        ([], [], list(symbols), 4),  # (once, while it holds)
        ([], [], ["SOLUSDT"], 4),
        ([], ["SOLUSDT"], [], 3),
        ([], [], ["BTCUSDT", "ETHUSDT"], 3)]
    assert caplog.text.count("universe: exchangeInfo would stop following 4 of the 4 symbols, "
                             "more than universe.max_delist (0.5): none is removed") == 2


def test_a_precision_check_in_doubt_brings_the_next_read_early(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """BTCUSDT's tick went from 0.01 to 0.001: a price on the new grid has exchangeInfo read
    again EARLY_S after the last read, not refresh_s, and is then not counted."""
    monkeypatch.setattr(tracker_module, "EARLY_S", 0.05)
    reads: list[float] = []

    async def fetch() -> dict[str, Any]:
        reads.append(time.monotonic())
        return btc_ticked("0.01" if len(reads) == 1 else "0.001")

    published: list[dict[str, Any]] = []
    precision = PrecisionCheck(published.append)
    tracker = UniverseTracker(fetch, FakeLive(), symbols="all", kinds=["trade"],
                              quote_assets=[], permissions=[], refresh_s=60,
                              on_event=published.append, precision=precision)

    async def main() -> None:
        task = asyncio.create_task(tracker.run())
        try:
            await until(lambda: tracker.refreshes == 1)
            precision.check("trade", rows("trade", symbol=[b"BTCUSDT"],
                                          price=[9_500_000_100_000], qty=[1]))
            await until(lambda: tracker.refreshes == 2)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    sync(main)()
    assert 0.05 <= reads[1] - reads[0] < 5 and not precision.violations
    assert [e["type"] for e in published] == ["universe"]


def test_held_off_values_count_when_the_read_fails_and_when_the_universe_stops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracker_module, "EARLY_S", 0.05)
    reads: list[float] = []

    async def fetch() -> dict[str, Any]:
        reads.append(time.monotonic())
        if len(reads) > 1:
            raise ConnectionError("ws-api down")
        return btc_ticked("0.01")

    precision = PrecisionCheck(lambda event: None)
    tracker = UniverseTracker(fetch, FakeLive(), symbols="all", kinds=["trade"],
                              quote_assets=[], permissions=[], refresh_s=60,
                              on_event=lambda event: None, precision=precision)
    off = rows("trade", symbol=[b"BTCUSDT"], price=[1], qty=[1])

    async def main() -> None:
        task = asyncio.create_task(tracker.run())
        try:
            await until(lambda: tracker.refreshes == 1)
            precision.check("trade", off)
            assert not precision.violations
            await until(lambda: tracker.failures == 1)
            assert precision.violations == {("trade", "BTCUSDT"): 1}
            precision.confirmed_s = 0.0
            precision.check("trade", off)  # held again
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert precision.violations == {("trade", "BTCUSDT"): 2}  # counted at the stop
        precision.check("trade", off)  # and from now on at once
        assert precision.violations == {("trade", "BTCUSDT"): 3}

    sync(main)()
