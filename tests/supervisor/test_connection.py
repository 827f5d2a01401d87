"""A connection child's restart policy, on a virtual clock: Retry-After and ban lengths,
the limiter's rate against a peer that accepts and closes, cancellation on stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from feedhandler._ext.decoder import Decoder
from feedhandler._ext.listener import FeedListener
from feedhandler.config import ConfigError, ConnectionConfig, load_config
from feedhandler.supervisor.failures import Failure, classify, refused
from feedhandler.supervisor.feed import ShardFeed
from feedhandler.supervisor.plan import plan
from feedhandler.supervisor.transport import Link, LinkFailed
from feedhandler.supervisor.tree import Supervisor
from tests.supervisor.fake_clock import FakeClock
from tests.supervisor.hostile import OP_CLOSE, HostilePeer, Session, frame

CONFIG = ConnectionConfig(backoff_initial_s=1.0, backoff_max_s=30.0)


def supervisor(url: str, clock: FakeClock, config: ConnectionConfig = CONFIG,
               events: list[dict[str, Any]] | None = None, **kwargs: Any) -> Supervisor:
    sink = events if events is not None else []
    feeds = [ShardFeed(shard, Decoder(lambda *a: None), sink.append)
             for shard in plan(url, ["btcusdt@trade"], 200)]
    return Supervisor(feeds, config, clock=clock, **kwargs)


async def run_until(sup: Supervisor, predicate: Callable[[], bool], timeout: float = 10) -> None:
    stopped: list[asyncio.Task[None]] = []
    sup.start(stopped.append)
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.005)
    finally:
        sup.stop()
        await sup.wait_stopped()


@pytest.mark.parametrize(("status", "header", "wait_s"), [
    (429, "Retry-After: 30", 30.0),
    (418, "Retry-After: 300", 300.0),
    (418, "", 120.0),  # no header: the documented shortest ban
    (429, "Retry-After: Wed, 21 Oct 2026 07:28:00 GMT", 60.0),  # unusable: one minute
])
def test_throttling_holds_every_attempt_for_retry_after(status: int, header: str,
                                                       wait_s: float) -> None:
    clock = FakeClock()
    seen: list[float] = []

    async def script(session: Session) -> None:
        seen.append(clock.now())
        if len(seen) == 1:
            await session.refuse(status, b'{"code":-1003,"msg":"Too many requests"}',
                                 *([header] if header else []))
            return
        await session.accept()
        await session.read_until_close()

    async def main() -> None:
        async with HostilePeer(script) as peer:
            events: list[dict[str, Any]] = []
            sup = supervisor(peer.url, clock, events=events)
            await run_until(sup, lambda: len(seen) == 2 and sup.children[0].state == "open")
        assert seen[1] - seen[0] >= wait_s, "no attempt within Retry-After"
        assert seen[1] - seen[0] < wait_s + 1
        failed = events[0]
        assert failed["type"] == "connect_failed" and failed["status"] == status
        assert failed["retry_in_s"] == wait_s and "Too many requests" in failed["error"]

    asyncio.run(main())


def test_a_refused_probe_blocks_the_attempts_waiting_behind_it() -> None:
    """Four connections wait out a block; one probes, is refused again (Retry-After 3): the
    others wait for that block too, instead of going out together right after the refusal."""
    clock = FakeClock()
    seen: list[float] = []

    async def script(session: Session) -> None:
        seen.append(clock.now())
        if len(seen) == 1:
            await session.refuse(429, b'{"code":-1003,"msg":"Too many requests"}',
                                 "Retry-After: 3")
            return
        await session.accept()
        await session.read_until_close()

    async def main() -> None:
        async with HostilePeer(script) as peer:
            feeds = [ShardFeed(shard, Decoder(lambda *a: None), lambda e: None) for shard in
                     plan(peer.url, [f"s{i}usdt@trade" for i in range(4)], 1)]
            sup = Supervisor(feeds, CONFIG, clock=clock)
            t0 = clock.now()
            sup.limiter.block_for(1.0)
            await run_until(sup, lambda: all(c.state == "open" for c in sup.children))
        # the refused one tries again: five attempts, none inside the second block
        assert seen[0] - t0 == pytest.approx(1.0)
        assert len(seen) == 5 and min(seen[1:]) >= seen[0] + 3.0, [t - t0 for t in seen]

    asyncio.run(main())


def test_a_retry_after_of_zero_still_waits_the_growing_backoff() -> None:
    """A 429 with `Retry-After: 0` again and again: attempts follow the backoff, not each
    other at once until the attempt budget is gone (300 refusals in 0.3 s before)."""
    clock = FakeClock()
    seen: list[float] = []

    async def script(session: Session) -> None:
        seen.append(clock.now())
        await session.refuse(429, b'{"code":-1003,"msg":"Too many requests"}', "Retry-After: 0")

    async def main() -> None:
        async with HostilePeer(script) as peer:
            sup = supervisor(peer.url, clock)
            await run_until(sup, lambda: len(seen) >= 6, timeout=30)

    asyncio.run(main())
    # full jitter over 1, 2, 4, 8, 16 s: the five pauses sum to under 1 s about once in 10^5
    assert seen[5] - seen[0] >= 1.0, seen


def test_a_peer_that_accepts_and_closes_is_retried_at_the_limiters_rate_with_growing_backoff(
) -> None:
    clock = FakeClock()
    seen: list[float] = []

    async def script(session: Session) -> None:
        seen.append(clock.now())
        await session.accept()
        await session.send(frame(OP_CLOSE, b"\x03\xe8"))
        await session.read_until_close()

    async def main() -> None:
        async with HostilePeer(script) as peer:
            sup = supervisor(peer.url, clock, CONFIG.model_copy(
                update={"backoff_max_s": 4.0, "attempt_limit": 5, "attempt_window_s": 60.0}))
            await run_until(sup, lambda: len(seen) >= 16, timeout=30)
        child = sup.children[0]
        # never delivered for backoff_reset_after_s: the backoff never starts over
        assert child._backoff.failures >= 15 and child._backoff.ceiling() == 4.0
        for t in seen:
            assert sum(1 for u in seen if t <= u < t + 60.0) <= 5
        assert seen[-1] - seen[0] >= 3 * 60.0  # 16 attempts at 5 per minute
        assert sup.status().attempt_waits >= 3  # each 6th attempt waited for the window

    asyncio.run(main())


def test_a_lost_connection_is_not_open_while_its_backoff_runs() -> None:
    sups: list[Supervisor] = []
    open_without_link: list[float] = []

    class Watching(FakeClock):  # looks at the child whenever anything waits
        async def sleep(self, seconds: float) -> None:
            child = sups[0].children[0]
            if child.state == "open" and child.link is None:
                open_without_link.append(self.now())
            await super().sleep(seconds)

    async def script(session: Session) -> None:
        await session.accept()
        await session.send(frame(OP_CLOSE, b"\x03\xe8"))
        await session.read_until_close()

    async def main() -> None:
        async with HostilePeer(script) as peer:
            sups.append(supervisor(peer.url, Watching()))
            await run_until(sups[0], lambda: sups[0].children[0]._backoff.failures >= 3)

    asyncio.run(main())
    assert open_without_link == []


# --- without a network: a fake connector ---------------------------------------------------
def test_a_pending_connect_is_cancelled_at_stop() -> None:
    cancelled = asyncio.Event()

    async def hangs(url: str, factory: Callable[[], FeedListener], config: ConnectionConfig,
                    context: Any) -> Link:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()
        raise AssertionError("unreachable")

    async def main() -> None:
        sup = supervisor("ws://nowhere.invalid:1", FakeClock(), connect=hangs)
        sup.start(lambda task: None)
        await asyncio.sleep(0.01)
        assert sup.children[0].state == "connecting"
        sup.stop()
        async with asyncio.timeout(0.5):
            await sup.wait_stopped()
        state: str = sup.children[0].state
        assert cancelled.is_set() and state == "stopped"

    asyncio.run(main())


class ClosingLink(Link):
    """A connected link that records how it was ended."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, int]] = []

    async def close(self, timeout_s: float, code: int = 1000, reason: str = "") -> None:
        self.ended.append((reason, code))

    def abort(self) -> None:
        self.ended.append(("abort", 0))


def test_a_connect_that_completes_as_the_stop_cancels_it_is_closed_with_a_close_frame() -> None:
    link = ClosingLink()

    async def main() -> None:
        sup: Supervisor

        async def connects(url: str, factory: Callable[[], FeedListener],
                           config: ConnectionConfig, context: Any) -> Link:
            sup.stop()  # the stop comes in as the handshake completes: still "connecting"
            return link

        sup = supervisor("ws://nowhere.invalid:1", FakeClock(), connect=connects)
        sup.start(lambda task: None)
        async with asyncio.timeout(1):
            await sup.wait_stopped()

    asyncio.run(main())
    assert link.ended == [("shutdown", 1000)]


def refusing(connect: Any) -> tuple[Supervisor, FakeClock, list[dict[str, Any]], list[str]]:
    """A supervisor of one shard connecting through `connect`: it, its clock, its events and
    the start refusals it reported."""
    clock = FakeClock()
    events: list[dict[str, Any]] = []
    sup = supervisor("ws://x:1", clock, events=events, connect=connect)
    refusals: list[str] = []
    sup.on_start_refusal = lambda: refusals.append(sup.start_refusal)
    return sup, clock, events, refusals


def test_transient_failures_back_off_then_a_permanent_one_at_start_stops_the_child() -> None:
    failures = [Failure("transient", "ECONNREFUSED")] * 3 + [refused(401, b"bad key")]

    async def scripted(url: str, factory: Callable[[], FeedListener],
                       config: ConnectionConfig, context: Any) -> Link:
        raise LinkFailed(failures.pop(0))

    async def main() -> None:
        sup, clock, events, refusals = refusing(scripted)
        await run_until(sup, lambda: bool(refusals))
        child = sup.children[0]
        assert [e["type"] for e in events] == ["connect_failed"] * 3 + ["refused"]
        assert len(clock.slept) == 3 and all(0 <= d <= 4.0 for d in clock.slept)
        assert child.state == "stopped" and child.failed_attempts == 4
        assert refusals == ["shard 0: ws://x:1/stream?streams=btcusdt@trade refused: "
                            "HTTP 401: bad key"]
        assert sup.status().connections[0].last_error == "HTTP 401: bad key"

    asyncio.run(main())


def test_a_refusal_after_a_runtime_change_quarantines_a_shard_that_never_connected() -> None:
    """A live change to a start shard still backing off: a stream the exchange refuses must
    not stop the handler as a bad start plan would (exit 2)."""
    async def scripted(url: str, factory: Callable[[], FeedListener],
                       config: ConnectionConfig, context: Any) -> Link:
        raise LinkFailed(refused(400, b"Invalid request") if "nosuchcoin" in url
                         else Failure("transient", "ECONNREFUSED"))

    async def main() -> None:
        sup, _, events, refusals = refusing(scripted)
        child = sup.children[0]

        async def change() -> bool:
            while not events:  # its first attempt failed
                await asyncio.sleep(0.001)
            (shard,) = plan("ws://x:1", ["btcusdt@trade", "nosuchcoin@trade"], 200)
            return await child.set_streams(shard)

        changed = asyncio.ensure_future(change())
        await run_until(sup, lambda: child.state in ("stopped", "quarantined"))
        assert not await changed  # not open: the next connect applies it
        assert child.state == "quarantined" and not refusals
        assert events[-1]["type"] == "quarantined"

    asyncio.run(main())


def test_failures_are_classified_whatever_their_shape() -> None:
    assert classify(ConnectionRefusedError(111, "Connection refused")).reason == \
        "ConnectionRefusedError: [Errno 111] Connection refused"
    assert classify(TimeoutError()).reason == "handshake timed out"
    assert classify(RuntimeError("")).kind == "transient"
    assert refused(503, b"<html>\n  down\n</html>").reason == "HTTP 503: <html> down </html>"
    assert refused(400, b"x" * 1000).reason.endswith("...")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("connection.ca_file", "/nonexistent/ca.pem", "connection.ca_file: no such file"),
    ("connection.attempt_limit", 0, "connection.attempt_limit: must be >= 1"),
    ("connection.stale_after_s", 0, "connection.stale_after_s: must be > 0"),
    ("connection.backoff_max_s", 0.1, "connection.backoff_max_s: must be >= "),
])
def test_connection_settings_are_checked_at_load(key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, {key: value}, environ={})
