"""The handler against a peer that misbehaves in every way a connection can (issue 9).

Each case: the handler survives (no exception escapes, no stray traceback), counts and
reports what happened, and loses none of the good frames around the bad ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
import struct
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from feedhandler.app.handler import Handler
from feedhandler.app.metrics import exposition
from feedhandler.config import ConfigError, load_config
from feedhandler.simulator.server.tls import write_self_signed
from feedhandler.supervisor.feed import ShardFeed
from tests.app.recording_sink import RecordingSink
from tests.supervisor.hostile import (
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    HostilePeer,
    Script,
    Session,
    frame,
    trade_frame,
)

MiB = 1 << 20


def config(url: str, **overrides: Any) -> Any:
    return load_config(None, {"url": url, "streams": "btcusdt@trade", "sink": "null",
                              "connection.backoff_initial_s": 0.01,
                              "connection.backoff_max_s": 0.05, "batch.linger_ms": 1.0,
                              **overrides}, environ={})


async def run_until(handler: Handler, predicate: Callable[[], bool],
                    timeout: float = 10.0) -> None:
    task = asyncio.create_task(handler.run())
    try:
        async with asyncio.timeout(timeout):
            while not predicate() and not task.done():
                await asyncio.sleep(0.01)
    finally:
        handler.stop()
        await task
    assert handler.error is None


def against(script: Script, trades: int, until_event: str = "", until_trade: int = 0,
            **overrides: Any) -> tuple[RecordingSink, Handler, HostilePeer]:
    """Run a handler against `script` until it decoded `trades` trades (or, if given, trade
    `until_trade`; and published an `until_event` event), then stop it; every good trade (ids
    1..trades, however the script spreads them) must be there."""
    def done(sink: RecordingSink) -> bool:
        ids = trade_ids(sink)
        return (until_trade in ids if until_trade else len(ids) == trades) and (
            not until_event or bool(events(sink, until_event)))

    async def main() -> tuple[RecordingSink, Handler, HostilePeer]:
        async with HostilePeer(script) as peer:
            sink = RecordingSink()
            handler = Handler(config(peer.url, **overrides), sink)
            await run_until(handler, lambda: done(sink))
        return sink, handler, peer

    sink, handler, peer = asyncio.run(main())
    if not until_trade:
        assert trade_ids(sink) == list(range(1, trades + 1)), "no good frame lost"
    return sink, handler, peer


def against_ab(script: Script, until: Callable[[RecordingSink, ShardFeed], bool],
               **overrides: Any) -> RecordingSink:
    """Run a handler with both A/B legs on `script` until `until(sink, feed)`, then stop it."""
    async def main() -> RecordingSink:
        async with HostilePeer(script) as peer:
            sink = RecordingSink()
            handler = Handler(config(peer.url, **{"connection.redundancy": 2,
                                                  "connection.url_b": peer.url,
                                                  **overrides}), sink)
            feed = handler.supervisor.children[0].feed
            await run_until(handler, lambda: until(sink, feed))
        return sink

    return asyncio.run(main())


def trade_ids(sink: RecordingSink) -> list[int]:
    batches = [r for k, r, _ in sink.batches if k == "trade"]
    return [int(t) for t in np.concatenate(batches)["trade_id"]] if batches else []


def events(sink: RecordingSink, kind: str) -> list[dict[str, Any]]:
    return [e for e in sink.events if e["type"] == kind]


@pytest.fixture
def no_stray_tracebacks(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.INFO)
    yield caplog
    stray = [r.getMessage() for r in caplog.records
             if r.name == "asyncio" or "never retrieved" in r.getMessage()]
    assert not stray


# --- failed upgrades of every shape ---------------------------------------------------------
def test_a_peer_closing_during_the_upgrade_is_a_failed_attempt(no_stray_tracebacks: Any) -> None:
    async def script(session: Session) -> None:
        if session.attempt <= 2:  # read the request, then hang up without an answer
            await session.read_request()
            session.drop()
            return
        await session.accept()
        await session.trades(range(1, 11))
        await session.read_until_close()

    sink, _, _ = against(script, 10)
    failed = events(sink, "connect_failed")
    assert [e["error"] for e in failed] == ["peer closed the connection during the upgrade"] * 2


def test_a_ws_url_aimed_at_a_tls_port_is_a_failed_attempt(no_stray_tracebacks: Any) -> None:
    async def script(session: Session) -> None:
        await session.read_request()

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
            write_self_signed(cert, key, "127.0.0.1")
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(cert, key)
            async with HostilePeer(script, tls) as peer:
                sink = RecordingSink()
                handler = Handler(config(peer.url), sink)
                await run_until(handler, lambda: len(events(sink, "connect_failed")) >= 3)
        assert handler.supervisor.status().connections[0].state == "stopped"
        assert all(e["status"] is None for e in events(sink, "connect_failed"))

    asyncio.run(main())


@pytest.mark.parametrize(("status", "body"), [
    (400, b'{"code":-1121,"msg":"Invalid symbol."}'),
    (401, b'{"code":-2015,"msg":"Invalid API-key, IP, or permissions for action."}'),
    (403, b"<html>WAF: request blocked</html>"),
])
def test_a_permanent_refusal_at_start_stops_with_its_status_and_body(status: int,
                                                                    body: bytes) -> None:
    async def script(session: Session) -> None:
        await session.refuse(status, body)

    async def main() -> None:
        async with HostilePeer(script) as peer:
            sink = RecordingSink()
            handler = Handler(config(peer.url), sink)
            with pytest.raises(ConfigError) as refused:
                async with asyncio.timeout(5):
                    await handler.run()
            assert peer.attempts == 1, "no retry of a permanent refusal"
        message = str(refused.value)
        assert f"HTTP {status}: {body.decode()}" in message and "\n" not in message
        assert events(sink, "refused")[0]["status"] == status
        assert sink.closed

    asyncio.run(main())


def test_a_permanent_refusal_later_quarantines_only_that_connection() -> None:
    async def script(session: Session) -> None:
        request = await session.read_request()
        eth = b"ethusdt" in request
        if eth and seen["eth"]:
            session.writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 7\r\n\r\nbanned!")
            await session.writer.drain()
            return
        seen["eth" if eth else "btc"] += 1
        session.request = request
        session.writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " +
                             session._key() + b"\r\n\r\n")
        if eth:
            session.drop()  # the first eth connection drops; its reconnect is refused
            return
        for start in range(1, 10_000, 10):
            await session.trades(range(start, start + 10))
            await asyncio.sleep(0.01)

    async def main() -> None:
        async with HostilePeer(script) as peer:
            sink = RecordingSink()
            handler = Handler(config(peer.url, streams="btcusdt@trade,ethusdt@trade", **{
                "connection.streams_per_connection": 1}), sink)
            snapshots = []

            def quarantined_and_delivering() -> bool:
                snapshots.append(handler.supervisor.status())
                return bool(events(sink, "quarantined")) and len(trade_ids(sink)) > 50

            await run_until(handler, quarantined_and_delivering)
            status = snapshots[-1]
        metrics = exposition(handler)
        (quarantined,) = events(sink, "quarantined")
        assert 'feedhandler_connection_quarantined{shard="1"} 1.0' in metrics
        assert 'feedhandler_connection_quarantined{shard="0"} 0.0' in metrics
        assert quarantined["shard"] == 1 and quarantined["status"] == 403
        assert quarantined["error"] == "HTTP 403: banned!"
        assert status.quarantined == 1
        assert [c.state for c in status.connections] == ["open", "quarantined"]
        ids = trade_ids(sink)
        assert ids == list(range(1, len(ids) + 1)), "the other connection kept delivering"

    seen = {"eth": 0, "btc": 0}
    asyncio.run(main())


# --- transport hygiene ----------------------------------------------------------------------
def vm_rss() -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024  # type: ignore[union-attr]


def test_a_never_ending_fragmented_message_is_bounded_and_counted_as_oversized() -> None:
    chunk = b"x" * (64 << 10)
    rss: list[int] = []

    async def script(session: Session) -> None:
        await session.accept()
        await session.trades(range(1, 6))
        await session.send(frame(OP_TEXT, b'{"stream":"btcusdt@trade","data":{"p":"', fin=False))
        for i in range(40 * MiB // len(chunk)):  # 40 MiB into one message
            await session.send(frame(OP_CONT, chunk, fin=False))
            if i % 64 == 0:
                rss.append(vm_rss())
        await session.send(frame(OP_CONT, b'"}}'))
        await session.trades(range(6, 11))
        await session.read_until_close()

    async def main() -> None:
        async with HostilePeer(script) as peer:
            sink = RecordingSink()
            handler = Handler(config(peer.url, **{"connection.max_frame_bytes": MiB}), sink)
            baseline = vm_rss()
            await run_until(handler, lambda: len(trade_ids(sink)) == 10, timeout=30)
        assert trade_ids(sink) == list(range(1, 11)), "neighbours of the bad message kept"
        assert handler.stats.errors["oversized"] == 1
        ((reason, _, _, dead),) = sink.dead
        assert reason == "oversized" and len(dead) == MiB + 1  # a prefix, never more
        assert max(rss) - baseline < 24 * MiB, f"RSS grew {(max(rss) - baseline) / MiB:.0f} MiB"

    asyncio.run(main())


def test_a_fragmented_message_at_and_past_max_messages_stops_cleanly() -> None:
    """--max-messages 2, the second message fragmented and a third (fragmented) in the same
    read: the limit fires once the second is whole, and the third is dropped with its
    continuation, not taken for a protocol violation."""
    def fragmented(trade_id: int) -> bytes:
        payload = trade_frame(trade_id)
        return frame(OP_TEXT, payload[:20], fin=False) + frame(OP_CONT, payload[20:])

    async def script(session: Session) -> None:
        await session.accept()
        await session.send(frame(OP_TEXT, trade_frame(1)) + fragmented(2) + fragmented(3))
        await session.read_until_close()

    async def main() -> None:
        async with HostilePeer(script) as peer:
            sink = RecordingSink()
            handler = Handler(config(peer.url, max_messages=2), sink)
            async with asyncio.timeout(10):
                await handler.run()  # (it stops by itself at the limit)
            assert handler.error is None and trade_ids(sink) == [1, 2]
            (conn,) = handler.supervisor.status().connections
            assert conn.violations == 0 and conn.frames == 2

    asyncio.run(main())


def bad_then_echo(bad: bytes, closes: list[bytes]) -> Callable[[Session], Awaitable[None]]:
    """A peer that sends trades 1-5, then `bad`, and echoes our close frame (kept in
    `closes`): the echo is not a close of its own. Trades 6-10 on the reconnect."""
    async def script(session: Session) -> None:
        await session.accept()
        first = session.attempt == 1
        await session.trades(range(1, 6) if first else range(6, 11))
        if first:
            await session.send(bad)
        reply = await session.read_until_close()
        if reply is not None:
            closes.append(reply[1])
            await session.send(frame(OP_CLOSE, reply[1]))

    return script


@pytest.mark.parametrize(("bad", "violation"), [
    (frame(OP_CONT, b"orphan"), "continuation frame without a message to continue"),
    (frame(OP_TEXT, b"{", fin=False) + frame(OP_TEXT, b"{}"),
     "new message inside a fragmented one"),
    (frame(OP_TEXT, trade_frame(99), rsv1=True), "RSV bit set, no extension negotiated"),
    *((frame(OP_CLOSE, struct.pack("!H", code) + b"bye"),
       f"close code {code} is not one an endpoint may send") for code in (0, 1006, 5000)),
])
def test_protocol_violations_close_with_1002_counted_and_evented(
        bad: bytes, violation: str, no_stray_tracebacks: Any) -> None:
    closes: list[bytes] = []
    sink, handler, _ = against(bad_then_echo(bad, closes), 10)
    assert struct.unpack("!H", closes[0][:2])[0] == 1002
    assert closes[0][2:].decode() == violation
    assert [e["error"] for e in events(sink, "protocol_violation")] == [violation]
    assert handler.supervisor.status().connections[0].violations == 1
    assert 'feedhandler_protocol_violations_total{shard="0"} 1.0' in exposition(handler)


def test_a_violation_picows_finds_is_counted_evented_and_ours(no_stray_tracebacks: Any) -> None:
    masked = bytes([0x81, 0x80 | 2]) + b"\x01\x02\x03\x04" + bytes(
        c ^ k for c, k in zip(b"{}", b"\x01\x02", strict=True))  # servers never mask
    sink, handler, _ = against(bad_then_echo(masked, []), 10)
    (violation,) = [e["error"] for e in events(sink, "protocol_violation")]
    assert violation.endswith("(found by picows)")
    (dropped,) = events(sink, "disconnected")
    assert (dropped["close_code"], dropped["by"]) == (1002, "us")
    assert handler.supervisor.status().connections[0].violations == 1


@pytest.mark.parametrize(("close", "code", "reason"), [
    (b"", None, "empty close frame"),
    (struct.pack("!H", 1009) + b"message too big", 1009, "message too big"),
    (struct.pack("!H", 1002) + b"you broke it", 1002, "you broke it"),
])
def test_closes_from_the_peer_are_answered_and_logged_with_code_and_reason(
        close: bytes, code: int | None, reason: str, no_stray_tracebacks: Any) -> None:
    replies: list[bytes] = []

    async def script(session: Session) -> None:
        await session.accept()
        await session.trades(range(1, 4) if session.attempt == 1 else range(4, 7))
        if session.attempt == 1:
            await session.send(frame(OP_CLOSE, close))
        reply = await session.read_until_close()
        if reply is not None:
            replies.append(reply[1])

    sink, _, _ = against(script, 6)
    # the reply echoes the code; an empty close frame gets an empty one (never code 0)
    assert replies[0] == close[:2]
    (dropped,) = events(sink, "disconnected")
    assert (dropped["close_code"], dropped["reason"], dropped["by"]) == (code, reason, "peer")
    logged = [r.getMessage() for r in no_stray_tracebacks.records
              if "connection closed by peer" in r.getMessage()]
    assert len(logged) == 1 and (f"code {code}" if code else "no close code") in logged[0]
    # the graceful stop of the second connection sent a close frame: 1000
    assert struct.unpack("!H", replies[1][:2])[0] == 1000


# --- rollover --------------------------------------------------------------------------------
def test_a_rollover_whose_old_connection_stalls_switches_without_waiting_out_the_overlap() -> None:
    """serverShutdown, then the old connection goes quiet (pongs answered) while the
    replacement delivers: the switch comes after OLD_STALL_S, not rollover_overlap_s; what the
    replacement brought meanwhile is kept, and only what neither delivered is a `missing`
    gap."""
    async def script(session: Session) -> None:
        await session.accept()
        if session.attempt == 1:
            await session.trades(range(1, 4))
            await session.send(frame(OP_TEXT, b'{"e":"serverShutdown","E":1}'))
        else:
            await session.trades(range(6, 9))  # past 4 and 5, which the old one still owes
            await asyncio.sleep(1.5)
            await session.trades(range(9, 11))
        while (await session.read_frame())[0] != OP_CLOSE:  # (pings answered by no one)
            pass

    sink, _, _ = against(script, 0, "rollover", until_trade=10,
                         **{"connection.rollover_overlap_s": 8.0})
    (rollover,) = events(sink, "rollover")
    assert rollover["in_step"] is False and rollover["overlap_s"] < 2.0
    assert trade_ids(sink) == [1, 2, 3, 6, 7, 8, 9, 10]
    (gap,) = events(sink, "gap")
    assert (gap["reason"], gap["expected"], gap["received"]) == ("missing", 4, 6)


def test_a_rollover_in_step_on_one_stream_keeps_what_another_still_owed() -> None:
    """The replacement is in step on btcusdt while ethusdt's ids 4 and 5 are still owed by the
    old connection, which is then closed without them: the replacement's ethusdt 6 and 7,
    held for it, go out at the close, after a `missing` gap of 4 and 5 only."""
    async def script(session: Session) -> None:
        await session.accept()
        eth = [frame(OP_TEXT, trade_frame(i, "ethusdt")) for i in range(1, 9)]
        if session.attempt == 1:
            await session.trades(range(1, 4))
            await session.send(b"".join(eth[:3]))
            await session.send(frame(OP_TEXT, b'{"e":"serverShutdown","E":1}'))
            opcode, payload = (await session.read_until_close()) or (0, b"")
            if opcode == OP_CLOSE:
                await session.send(frame(OP_CLOSE, payload))
            return
        await session.trades(range(3, 6))
        await session.send(b"".join(eth[5:7]))  # past 4 and 5, which the old one owes
        await asyncio.sleep(1.0)
        await session.send(eth[7] + frame(OP_TEXT, trade_frame(6)))
        await session.read_until_close()

    sink, _, _ = against(script, 0, "rollover", until_trade=6,
                         streams="btcusdt@trade,ethusdt@trade")
    (rollover,) = events(sink, "rollover")
    assert rollover["in_step"] is True
    rows = np.concatenate([r for k, r, _ in sink.batches if k == "trade"])
    eth = [int(t) for t in rows[rows["symbol"] == b"ETHUSDT"]["trade_id"]]
    assert eth == [1, 2, 3, 6, 7, 8]
    (gap,) = events(sink, "gap")
    assert (gap["reason"], gap["symbol"], gap["expected"], gap["received"]) == \
        ("missing", "ETHUSDT", 4, 6)


Then = Callable[[Session], Awaitable[None]]


async def _nothing(_: Session) -> None:
    pass


def one_leg_stuck_after_3(joined: Then, stuck: Then = _nothing) -> Script:
    """A/B: both legs deliver trades 1-3; one then goes quiet (stuck) and does `stuck`; the
    other drops and reconnects past 4 and 5, which the stuck leg owes: 6-8, then `joined`."""
    async def script(session: Session) -> None:
        await session.accept()
        if session.attempt <= 2:
            await session.trades(range(1, 4))
            if session.attempt == 2:
                await asyncio.sleep(0.1)
                session.drop()
                return
            await stuck(session)
        else:
            await session.trades(range(6, 9))
            await joined(session)
        await session.read_until_close()

    return script


def test_an_ab_leg_joining_a_stuck_leg_takes_the_lead_without_losing_what_it_brought() -> None:
    """A/B: one leg drops and reconnects past ids the other leg owes, and the other leg has
    gone quiet (stuck): after OLD_STALL_S the joining leg leads, what it brought comes out
    after a `missing` gap of only the ids neither delivered, and what follows is not dropped
    as owed by the stuck leg."""
    async def joined(session: Session) -> None:
        await asyncio.sleep(1.2)
        await session.trades(range(9, 11))

    sink = against_ab(one_leg_stuck_after_3(joined), lambda sink, _: 10 in trade_ids(sink))
    assert trade_ids(sink) == [1, 2, 3, 6, 7, 8, 9, 10]
    (gap,) = events(sink, "gap")
    assert (gap["reason"], gap["expected"], gap["received"]) == ("missing", 4, 6)


def switches_and_trusts(caplog: pytest.LogCaptureFixture) -> tuple[int, int]:
    """How often a leg took the lead from a stuck one, and how often one was trusted again."""
    messages = [r.getMessage() for r in caplog.records]
    return (sum("switching now" in m for m in messages),
            sum("back in step: trusted again" in m for m in messages))


def test_an_ab_leg_that_lost_the_lead_while_stuck_is_trusted_again_once_back_in_step(
        no_stray_tracebacks: pytest.LogCaptureFixture) -> None:
    """A/B: the stuck leg of the case above comes back, behind (what it missed: duplicates).
    Once it reached the last emitted id it is trusted again (not while it replays older ones),
    so a hole in the other leg (11) waits for it and is filled, where an untrusted leg's copy
    would come too late and be dropped, leaving a gap."""
    b_at_10, a_back, b_past_11 = asyncio.Event(), asyncio.Event(), asyncio.Event()
    feeds: list[ShardFeed] = []
    trusted_behind: list[int] = []

    def until(sink: RecordingSink, feed: ShardFeed) -> bool:
        feeds[:] = [feed]
        return 12 in trade_ids(sink)

    async def stuck(session: Session) -> None:  # until the other leg led for a while
        await b_at_10.wait()
        await session.trades(range(4, 8))  # older than the last emitted (10): still behind
        await asyncio.sleep(0.3)
        trusted_behind.append(len(feeds[0].trusted))
        await session.trades(range(8, 11))
        a_back.set()
        await b_past_11.wait()
        await asyncio.sleep(0.2)
        await session.trades(range(11, 13))

    async def joined(session: Session) -> None:  # takes the lead after OLD_STALL_S
        await asyncio.sleep(1.2)
        await session.trades(range(9, 11))
        b_at_10.set()
        await a_back.wait()
        while len(feeds[0].trusted) < 2:  # the stuck leg back in step: trusted again
            await asyncio.sleep(0.01)
        await session.trades(range(12, 13))  # past 11
        b_past_11.set()

    sink = against_ab(one_leg_stuck_after_3(joined, stuck), until)
    assert trusted_behind == [1]
    assert trade_ids(sink) == [1, 2, 3, 6, 7, 8, 9, 10, 11, 12]
    (gap,) = events(sink, "gap")
    assert (gap["reason"], gap["expected"], gap["received"]) == ("missing", 4, 6)
    assert switches_and_trusts(no_stray_tracebacks) == (1, 1)


def test_an_ab_leg_stuck_for_good_neither_takes_the_lead_back_nor_is_trusted_again(
        no_stray_tracebacks: pytest.LogCaptureFixture) -> None:
    """A/B: the stuck leg stays stuck, and the leg that took the lead goes quiet (an illiquid
    stream) for longer than OLD_STALL_S and rollover_overlap_s: the lead does not go back to
    the stuck leg, nor is it trusted again, so the leader's own hole (9) is a gap as soon as
    10 comes, not after a hold for a leg that will not fill it."""
    async def joined(session: Session) -> None:
        await asyncio.sleep(2.0)
        await session.trades(range(10, 11))  # past 9

    def until(sink: RecordingSink, feed: ShardFeed) -> bool:
        trusted.append(len(feed.trusted))  # (as it was then: closing the legs changes it)
        return 10 in trade_ids(sink)

    trusted: list[int] = []
    sink = against_ab(one_leg_stuck_after_3(joined), until,
                      **{"connection.rollover_overlap_s": 1.0})
    assert trusted[-1] == 1, "the stuck leg was trusted again"
    assert trade_ids(sink) == [1, 2, 3, 6, 7, 8, 10]
    assert [(g["reason"], g["expected"], g["received"]) for g in events(sink, "gap")] == \
        [("missing", 4, 6), ("missing", 9, 10)]
    assert switches_and_trusts(no_stray_tracebacks) == (1, 0)


def test_an_ab_leg_does_not_hand_over_to_a_leg_that_went_silent() -> None:
    """A/B: both legs in step, then one goes silent (stuck) while the other still delivers and
    is told to roll over (serverShutdown): it keeps serving instead of handing over to the
    silent leg and closing, which would lose what it still had to deliver (7 and 8)."""
    async def script(session: Session) -> None:
        await session.accept()
        await session.trades(range(1, 6))
        if session.attempt == 1:
            await asyncio.sleep(1.0)  # (the other leg is in step, then silent)
            await session.trades(range(6, 7))
            await session.send(frame(OP_TEXT, b'{"e":"serverShutdown","E":1}'))
            with contextlib.suppress(TimeoutError):  # (a closed connection delivers no more)
                await asyncio.wait_for(session.read_until_close(), 0.5)
                return
            await session.trades(range(7, 9))
        await session.read_until_close()

    sink = against_ab(script, lambda sink, _: 8 in trade_ids(sink))
    assert trade_ids(sink) == list(range(1, 9))
    assert not events(sink, "gap")


# --- staleness ------------------------------------------------------------------------------
@pytest.mark.parametrize(("answer_pings", "cause"), [(True, "silent"), (False, "ping_timeout")])
def test_a_silent_connection_is_pinged_then_replaced(answer_pings: bool, cause: str) -> None:
    async def script(session: Session) -> None:
        await session.accept()
        await session.trades(range(1, 4) if session.attempt == 1 else range(4, 7))
        while True:  # then silence, with or without pongs
            opcode, payload = await session.read_frame()
            if opcode == OP_PING and answer_pings:
                await session.send(frame(OP_PONG, payload))
            if opcode == OP_CLOSE:
                return

    sink, handler, peer = against(script, 6, "rollover" if cause == "silent" else "",
                                  **{"connection.stale_after_s": 0.2,
                                     "connection.ping_timeout_s": 0.3,
                                     "connection.max_silence_s": 1.0})
    (stale,) = events(sink, "stale")
    assert stale["cause"] == cause
    assert f'feedhandler_connection_replaced_total{{cause="{cause}",shard="0"}} 1.0' in \
        exposition(handler)
    pings = [p for op, p in peer.sessions[0].received if op == OP_PING]
    # one ping per stale_after_s at most (Binance counts them): 1 s of silence, <= 5
    assert 1 <= len(pings) <= 5
    if cause == "silent":  # it answers pings, so it may only be quiet: make-before-break,
        (rollover,) = events(sink, "rollover")  # the replacement leading; no id was missed
        assert rollover["cause"] == "silent" and not events(sink, "gap")
    else:
        assert events(sink, "gap")[0]["reason"] == "reconnect"


def test_reads_paused_by_backpressure_are_no_stale_connection() -> None:
    """While the sink's backlog pauses exchange reads nothing can arrive: the watchdog neither
    pings nor replaces the connection for a silence the handler makes itself, and what the
    peer sent meanwhile is read once reads resume."""
    paused = asyncio.Event()

    async def script(session: Session) -> None:
        await session.accept()
        await session.trades(range(1, 4))
        await paused.wait()
        await session.trades(range(4, 7))  # they wait in TCP
        await session.read_until_close()  # (and no pong: a ping would replace the link)

    async def main() -> tuple[RecordingSink, HostilePeer]:
        async with HostilePeer(script) as peer:
            sink = RecordingSink()
            handler = Handler(config(peer.url, **{"connection.stale_after_s": 0.2,
                                                  "connection.ping_timeout_s": 0.3,
                                                  "connection.max_silence_s": 1.0}), sink)

            async def pause() -> None:
                while len(trade_ids(sink)) < 3:
                    await asyncio.sleep(0.01)
                for shard in handler.shards:
                    shard.pause_reading()
                paused.set()
                await asyncio.sleep(2.0)  # past stale_after + ping_timeout and max_silence
                assert trade_ids(sink) == [1, 2, 3]
                for shard in handler.shards:
                    shard.resume_reading()

            pauser = asyncio.create_task(pause())
            await run_until(handler, lambda: len(trade_ids(sink)) == 6)
            await pauser
        return sink, peer

    sink, peer = asyncio.run(main())
    assert trade_ids(sink) == list(range(1, 7))
    assert events(sink, "stale") == [] and len(peer.sessions) == 1
    assert not [p for op, p in peer.sessions[0].received if op == OP_PING]


def test_the_exchange_s_pings_are_answered_with_their_payload() -> None:
    """Binance pings every 20 s and drops a connection whose pong does not come: the listener
    answers (picows's auto-pong is off, so that it sees every frame, a read's last one too)."""
    async def script(session: Session) -> None:
        await session.accept()
        await session.send(b"".join(frame(OP_TEXT, trade_frame(i)) for i in range(1, 4)) +
                           frame(OP_PING, b"1700000000000"))
        while (await session.read_frame())[0] != OP_PONG:
            pass
        await session.trades(range(4, 7))
        await session.read_until_close()

    _, _, peer = against(script, 6)
    assert (OP_PONG, b"1700000000000") in peer.sessions[0].received


# --- our own limits -------------------------------------------------------------------------
def test_a_frame_beyond_picows_limit_is_closed_with_1009_by_us(no_stray_tracebacks: Any) -> None:
    async def script(session: Session) -> None:
        await session.accept()
        first = session.attempt == 1
        await session.trades(range(1, 4) if first else range(4, 7))
        if first:  # announce a 64 MiB frame: refused from its header, never buffered
            await session.send(struct.pack("!BBQ", 0x81, 127, 64 * MiB) + b"{")
        await session.read_until_close()

    sink, _, _ = against(script, 6)
    (dropped,) = events(sink, "disconnected")
    assert (dropped["close_code"], dropped["by"]) == (1009, "us")


def test_a_silent_handshake_times_out_and_duration_cancels_the_next_one() -> None:
    async def script(session: Session) -> None:
        await session.read_request()  # and never answer
        await session.reader.read()  # until the handler (or the test) hangs up

    async def main() -> None:
        async with HostilePeer(script) as peer:
            sink = RecordingSink()
            handler = Handler(config(peer.url, duration_s=1.0, **{
                "connection.handshake_timeout_s": 0.3, "connection.backoff_initial_s": 0.5,
                "connection.backoff_max_s": 0.5}), sink)
            started = asyncio.get_running_loop().time()
            async with asyncio.timeout(5):
                await handler.run()
            took = asyncio.get_running_loop().time() - started
        failed = events(sink, "connect_failed")
        assert failed and failed[0]["error"] == "handshake timed out"
        assert peer.attempts >= 2  # the last one was pending when the duration ran out
        assert took < 1.5, f"--duration 1 took {took:.2f} s"

    asyncio.run(main())
