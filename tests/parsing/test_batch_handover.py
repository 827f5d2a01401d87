"""Smart batching (RecordBuffers, burst mode): a batch leaves when the event loop has decoded
the current read burst, when full, or at its linger cap; never on a timer alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from picows import WSMsgType
from picows.picows import _make_test_ws_frame

from feedhandler._ext.decoder import Decoder
from feedhandler._ext.listener import FeedListener
from tests.parsing.test_parse_gaps import book, trade

Batches = list[tuple[str, list[int]]]


def burst_decoder(batches: Batches, **options: object) -> Decoder:
    def on_batch(kind: str, records: np.ndarray) -> None:
        field = "update_id" if kind == "bookTicker" else "trade_id"
        batches.append((kind, records[field].tolist()))

    return Decoder(on_batch, burst=True, **options)  # type: ignore[arg-type]


async def one_loop_turn() -> None:
    await asyncio.sleep(0)  # the burst-end callback was queued before this task resumes


def test_an_idle_frame_leaves_at_the_end_of_its_burst_not_after_linger() -> None:
    async def scenario() -> Batches:
        batches: Batches = []
        decoder = burst_decoder(batches, linger_ms=60_000.0)
        decoder.decode(trade(1))
        assert batches == []  # still inside the burst
        await one_loop_turn()
        assert decoder.buffers.bursts == 1
        return batches

    assert asyncio.run(scenario()) == [("trade", [1])]


def test_a_burst_becomes_one_batch_per_kind() -> None:
    async def scenario() -> Batches:
        batches: Batches = []
        decoder = burst_decoder(batches)
        decoder.decode_many([trade(t) for t in range(1, 301)] + [book(7), book(8)])
        await one_loop_turn()
        decoder.decode_many([trade(301), trade(302)])  # the next burst
        await one_loop_turn()
        assert decoder.buffers.bursts == 2
        return batches

    assert asyncio.run(scenario()) == [
        ("trade", list(range(1, 301))), ("bookTicker", [7, 8]), ("trade", [301, 302])]


def test_full_batches_leave_at_once_and_the_rest_at_the_burst_end() -> None:
    async def scenario() -> list[int]:
        batches: Batches = []
        decoder = burst_decoder(batches, batch_rows=10)
        decoder.decode_many([trade(t) for t in range(1, 26)])
        sizes = [len(ids) for _, ids in batches]
        await one_loop_turn()
        return [*sizes, len(batches[-1][1])]

    assert asyncio.run(scenario()) == [10, 10, 5]


@pytest.mark.parametrize("linger_ms", [0.0, None])
def test_linger_zero_means_no_cap_not_wait_until_full(linger_ms: float | None) -> None:
    async def scenario() -> Batches:
        batches: Batches = []
        decoder = burst_decoder(batches, linger_ms=linger_ms)
        for t in range(1, 4):  # one burst: no per-frame batches...
            decoder.decode(trade(t), ts_recv=t * 10**9)
        assert batches == []
        await one_loop_turn()  # ...and no waiting for a full batch
        return batches

    assert asyncio.run(scenario()) == [("trade", [1, 2, 3])]


def test_linger_caps_a_batch_age_within_a_long_burst() -> None:
    async def scenario() -> Batches:
        batches: Batches = []
        decoder = burst_decoder(batches, linger_ms=1.0)
        for t in range(1, 6):  # frames 0.4 ms apart, all in one burst
            decoder.decode(trade(t), ts_recv=10**9 + t * 400_000)
        capped = list(batches)
        await one_loop_turn()
        assert capped == [("trade", [1, 2, 3, 4])]  # 4 is 1.2 ms after 1
        return batches

    assert asyncio.run(scenario())[1:] == [("trade", [5])]


def test_a_batch_is_not_held_when_the_wall_clock_steps_back() -> None:
    """ts_recv is CLOCK_REALTIME: without burst hand-over, a quiet stream's batch whose first
    row looks younger than the clock after an NTP step leaves at the next tick, not once the
    clock has caught up."""
    batches: Batches = []
    decoder = Decoder(lambda kind, rows: batches.append((kind, rows["trade_id"].tolist())),
                      linger_ms=5.0)
    start = 1_800_000_000 * 10**9
    decoder.decode(trade(1), ts_recv=start)
    decoder.flush_expired(start - 2 * 10**9)  # the service tick after a step back of 2 s
    assert batches == [("trade", [1])]


def test_the_pending_burst_end_keeps_the_decoder_alive() -> None:
    async def scenario() -> Batches:
        batches: Batches = []
        burst_decoder(batches).decode(trade(1))  # no reference kept
        await one_loop_turn()
        return batches

    assert asyncio.run(scenario()) == [("trade", [1])]


def test_after_burst_runs_once_every_kind_of_the_burst_is_handed_over() -> None:
    async def scenario() -> list[object]:
        events: list[object] = []
        decoder = Decoder(lambda kind, records: events.append(kind), burst=True,
                          after_burst=lambda: events.append("after"))
        decoder.decode_many([trade(1), book(7), trade(2)])
        await one_loop_turn()
        await one_loop_turn()  # an idle turn: nothing handed over, nothing after
        decoder.decode(trade(3))
        await one_loop_turn()
        return events

    assert asyncio.run(scenario()) == ["trade", "bookTicker", "after", "trade", "after"]


def test_after_burst_runs_after_a_burst_whose_batches_all_left_full() -> None:
    async def scenario() -> list[object]:
        events: list[object] = []
        decoder = Decoder(lambda kind, records: events.append(len(records)), burst=True,
                          batch_rows=2, after_burst=lambda: events.append("after"))
        decoder.decode_many([trade(1), trade(2)])  # full at once: nothing left for the end
        await one_loop_turn()
        return events

    assert asyncio.run(scenario()) == [2, "after"]


def test_the_last_frame_of_a_socket_read_hands_the_burst_over_at_once() -> None:
    async def scenario() -> list[object]:
        events: list[object] = []
        decoder = Decoder(lambda kind, records: events.append((kind, len(records))), burst=True,
                          after_burst=lambda: events.append("after"))
        listener = FeedListener(decoder)
        decoder.decode(trade(1))  # an earlier frame of the read
        last = _make_test_ws_frame(WSMsgType.TEXT, trade(2), True, False)
        assert last.last_in_buffer
        listener.on_ws_frame(None, last)
        handed = list(events)  # before the loop's next turn
        await one_loop_turn()  # the burst-end callback was cancelled: nothing more
        assert events == handed and decoder.buffers.bursts == 1
        return handed

    assert asyncio.run(scenario()) == [("trade", 2), "after"]


def test_a_ping_that_ends_a_read_hands_the_burst_over_at_once() -> None:
    async def scenario() -> list[object]:
        events: list[object] = []
        decoder = Decoder(lambda kind, records: events.append((kind, len(records))), burst=True)
        listener = FeedListener(decoder)
        decoder.decode(trade(1))
        listener.on_ws_frame(None, _make_test_ws_frame(WSMsgType.PING, b"x", True, False))
        return list(events)  # before the loop's next turn

    assert asyncio.run(scenario()) == [("trade", 1)]


def test_rows_a_raising_sink_left_behind_leave_at_the_next_read_end() -> None:
    async def scenario() -> list[object]:
        handed: list[object] = []

        def on_batch(kind: str, records: np.ndarray) -> None:
            if not handed:
                handed.append("raised")
                raise RuntimeError("sink bug")
            handed.append(kind)

        decoder = Decoder(on_batch, burst=True)
        listener = FeedListener(decoder)
        decoder.decode_many([trade(1), book(7)])
        with pytest.raises(RuntimeError, match="sink bug"):  # (picows logs it, and drops)
            listener.on_ws_frame(None, _make_test_ws_frame(WSMsgType.TEXT, trade(2), True, False))
        assert decoder.buffers.pending_rows  # the second kind, no burst end armed any more
        listener.on_ws_frame(None, _make_test_ws_frame(WSMsgType.PONG, b"", True, False))
        assert not decoder.buffers.pending_rows
        return handed

    handed = asyncio.run(scenario())
    assert handed[0] == "raised" and len(handed) == 2


def test_a_batch_kept_is_never_written_again_and_one_let_go_is_reused() -> None:
    kept: list[tuple[int, np.ndarray]] = []
    addresses: list[int] = []

    def on_batch(kind: str, records: np.ndarray) -> None:
        addresses.append(records.__array_interface__["data"][0])
        if records["trade_id"][0] % 3 == 0:  # every third batch is kept, as a sink may
            kept.append((int(records["trade_id"][0]), records))

    decoder = Decoder(on_batch, linger_ms=0.0)  # a batch per frame
    for t in range(1, 301):
        decoder.decode(trade(t))
    assert [int(records["trade_id"][0]) for _, records in kept] == [t for t, _ in kept]
    assert all(records["trade_id"].tolist() == [t] for t, records in kept)
    # batches let go share two arrays; each kept one holds its own
    assert len(set(addresses)) <= len(kept) + 3
