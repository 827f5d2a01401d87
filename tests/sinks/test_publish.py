"""The sink's C loops: grouping rows by symbol, slicing records, headers, producing."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from confluent_kafka import KafkaError
from hypothesis import given, settings
from hypothesis import strategies as st

from feedhandler._ext.producer import Producer
from feedhandler._ext.publish import (
    Counts,
    MessageBatch,
    Outlet,
    RecordLayout,
    group_rows,
    produce_messages,
    produce_records,
)
from feedhandler.contract import (
    BINARY_ENCODINGS,
    H_SYMBOL,
    SEQUENCE_FIELDS,
    decode_value,
    fixed_headers,
    header_dict,
    padding,
    wire_records,
)
from feedhandler.records import SCHEMAS, compact_row


def runs(keys: np.ndarray) -> list[list[int]]:
    order, bounds = group_rows(keys)
    index = np.arange(len(keys)) if order is None else order
    return [index[a:b].tolist() for a, b in pairwise(bounds)]


def expected_runs(keys: np.ndarray) -> list[list[int]]:
    by_key: dict[bytes, list[int]] = {}
    for i, key in enumerate(keys.tolist()):
        by_key.setdefault(key, []).append(i)
    return list(by_key.values())


@pytest.mark.parametrize("seed", range(5))
def test_groups_are_exact_and_keep_row_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    symbols = np.array([b"BTCUSDT", b"BTCUSD", b"ETHUSDT", b"A", b"X" * 32, b"X" * 31 + b"Y"],
                       dtype="S32")
    keys = symbols[rng.integers(0, len(symbols), 1000)]
    assert runs(keys) == expected_runs(keys)


def test_one_key_needs_no_reordering() -> None:
    keys = np.array([b"BTCUSDT"] * 5, dtype="S32")
    order, bounds = group_rows(keys)
    assert order is None and bounds.tolist() == [0, 5]
    order, bounds = group_rows(keys[:0])
    assert order is None and bounds.tolist() == [0]  # no rows, no groups


def test_keys_of_any_width() -> None:
    keys = np.array([b"1m", b"5m", b"1m", b"15m"], dtype="S4")
    assert runs(keys) == [[0, 2], [1], [3]]
    keys = np.array([b"A" * 11, b"B" * 11, b"A" * 11], dtype="S11")  # not a multiple of 8
    assert runs(keys) == [[0, 2], [1]]


def test_a_column_of_records_is_grouped_in_place() -> None:
    records = np.zeros(6, SCHEMAS["trade"].dtype)
    records["symbol"] = [b"ETHUSDT", b"BTCUSDT", b"ETHUSDT", b"X" * 32, b"BTCUSDT", b"X" * 32]
    assert records["symbol"].strides[0] == records.itemsize  # strided, not copied
    assert runs(records["symbol"]) == [[0, 2], [1, 4], [3, 5]]


def test_a_reversed_column_is_grouped_too() -> None:
    keys = np.array([b"A", b"B", b"A", b"C"], dtype="S32")[::-1]  # negative stride
    assert runs(keys) == [[0], [1, 3], [2]]


def test_only_arrays_of_fixed_width_byte_keys() -> None:
    with pytest.raises(TypeError, match="fixed-width bytes"):
        group_rows(np.arange(3))
    with pytest.raises(TypeError, match="fixed-width bytes"):
        group_rows([b"A", b"B"])


def test_groups_come_in_order_of_first_appearance() -> None:
    keys = np.array([b"C", b"A", b"C", b"B", b"A"], dtype="S32")
    assert runs(keys) == [[0, 2], [1, 4], [3]]


def test_many_distinct_keys() -> None:
    # more keys than the table's first size: probing and growth must stay exact
    rng = np.random.default_rng(7)
    keys = np.array([b"S%05d" % i for i in rng.integers(0, 5000, 20_000)], dtype="S32")
    assert runs(keys) == expected_runs(keys)


# --- messages ---------------------------------------------------------------------------------
def produced(producer: Producer) -> list[tuple[str, bytes, bytes, dict[str, str]]]:
    """What a capturing producer was given: (topic, key, value, headers as a dict)."""
    assert producer.captured is not None
    return [(topic, key, value, header_dict(headers))
            for topic, key, value, headers in producer.captured]


def produce(producer: Producer, values: list[bytes], counts: list[int],
            seq: tuple[list[int], list[int]] | None = None, full: bool = False,
            extra: list[list[tuple[str, bytes]]] | None = None) -> tuple[Any, ...]:
    backlog: list[tuple[Any, ...]] = []
    failed: list[tuple[Any, ...]] = []
    firsts, lasts = (None, None) if seq is None else (np.array(seq[0]), np.array(seq[1]))
    topics = [f"t{i}" for i in range(len(values))]
    keys = [b"K%d" % i for i in range(len(values))]
    outlet = Outlet(producer, lambda *m: backlog.append(m), lambda *f: failed.append(f))
    batch = MessageBatch(topics, keys, values, np.array(counts, np.int64),
                         fixed_headers("binance.spot.depth", 1, "records", "host-a"), 7,
                         firsts, lasts, extra)
    produce_messages(outlet, batch, full)
    return (batch.produced, batch.records, batch.buffer_full), backlog, failed


def test_headers_of_a_data_message() -> None:
    producer = Producer.capturing()
    result, backlog, failed = produce(producer, [b"v0", b"v1"], [3, 1],
                                      seq=([10, 16], [15, 2**62]))
    assert result == (2, 4, 0) and not backlog and not failed
    assert produced(producer)[0] == ("t0", b"K0", b"v0", {
        "fh.schema": "binance.spot.depth", "fh.version": "1", "fh.encoding": "records",
        "fh.instance": "host-a", "fh.count": "3", "fh.epoch": "7",
        "fh.seq.first": "10", "fh.seq.last": "15"})
    assert produced(producer)[1][3]["fh.seq.last"] == str(2**62)


@pytest.mark.parametrize("value", [0, 7, 10, 99, 1_000_000, 2**63 - 1, -1, -10, -(2**63)])
def test_sequence_headers_are_the_ids_in_decimal(value: int) -> None:
    producer = Producer.capturing()
    produce(producer, [b"v"], [1], seq=([value], [value]))
    headers = produced(producer)[0][3]
    assert headers["fh.seq.first"] == headers["fh.seq.last"] == str(value)


def test_kinds_without_a_sequence_carry_no_sequence_headers() -> None:
    producer = Producer.capturing()
    produce(producer, [b"v"], [1], extra=[[("fh.frames", b"1")]])
    assert produced(producer)[0][3] == {
        "fh.schema": "binance.spot.depth", "fh.version": "1", "fh.encoding": "records",
        "fh.instance": "host-a", "fh.count": "1", "fh.epoch": "7", "fh.frames": "1"}


def test_a_full_queue_sends_this_and_every_later_message_to_the_backlog() -> None:
    producer = Producer.capturing(room=2)
    result, backlog, _ = produce(producer, [b"a", b"b", b"c", b"d"], [1, 2, 3, 4])
    assert result == (2, 3, 1)
    assert [(m[0], m[2], m[4]) for m in backlog] == [("t2", b"c", 3), ("t3", b"d", 4)]
    assert header_dict(backlog[0][3])["fh.count"] == "3"
    # behind a backlog nothing is produced, even with room
    result, backlog, _ = produce(Producer.capturing(), [b"a"], [1], full=True)
    assert result == (0, 0, 0) and len(backlog) == 1


def test_a_refused_message_is_reported_and_the_rest_go_on() -> None:
    producer = Producer.capturing(max_bytes=5)
    result, backlog, failed = produce(producer, [b"a", b"too large", b"c"], [1, 5, 1])
    assert result == (2, 2, 0) and not backlog
    ((topic, key, count, error),) = failed
    assert (topic, key, count) == ("t1", b"K1", 5)
    assert error.code() == KafkaError.MSG_SIZE_TOO_LARGE


def trades(symbols: list[bytes]) -> np.ndarray:
    records = np.zeros(len(symbols), SCHEMAS["trade"].dtype)
    records["symbol"] = symbols
    records["trade_id"] = np.arange(100, 100 + len(symbols))
    return records


def produce_batch(producer: Producer, records: np.ndarray, most: int = 1000,
                  full: bool = False) -> tuple[Counts, list[tuple[Any, ...]], dict[bytes, str]]:
    backlog: list[tuple[Any, ...]] = []
    topics = {b"ETHUSDT": "known.eth"}

    def new_topic(symbol: bytes) -> str:
        topics[symbol] = f"new.{symbol.decode()}"
        return topics[symbol]

    outlet = Outlet(producer, lambda *m: backlog.append(m), print)
    counts = Counts()
    layout = RecordLayout(SCHEMAS["trade"].dtype, SEQUENCE_FIELDS["trade"],
                          padding(SCHEMAS["trade"]))
    produce_records(outlet, layout, records, most, topics, new_topic,
                    fixed_headers("binance.spot.trade", 2, "records", "host-a"), 7, full,
                    counts)
    return counts, backlog, topics


def test_a_batch_becomes_one_message_per_symbol_run_of_whole_records() -> None:
    records = trades([b"BTCUSDT", b"ETHUSDT", b"BTCUSDT", b"BTCUSDT", b"ETHUSDT"])
    producer = Producer.capturing()
    counts, backlog, topics = produce_batch(producer, records)
    assert (counts.produced, counts.records, counts.buffer_full) == (2, 5, 0) and not backlog
    (btc_topic, btc_key, btc_value, btc), (eth_topic, eth_key, eth_value, eth) = produced(producer)
    assert (btc_topic, btc_key, eth_topic, eth_key) == ("new.BTCUSDT", b"BTCUSDT", "known.eth",
                                                        b"ETHUSDT")
    assert btc_value == np.take(records, [0, 2, 3]).tobytes()  # gathered, in row order
    assert eth_value == np.take(records, [1, 4]).tobytes()
    assert (btc["fh.count"], btc["fh.seq.first"], btc["fh.seq.last"]) == ("3", "100", "103")
    assert (eth["fh.count"], eth["fh.seq.first"], eth["fh.seq.last"]) == ("2", "101", "104")
    assert btc["fh.epoch"] == "7" and btc["fh.schema"] == "binance.spot.trade"
    assert topics[b"BTCUSDT"] == "new.BTCUSDT"  # made once, then known


def test_a_symbol_with_a_nul_inside_is_keyed_whole() -> None:
    """Keyed as numpy reads the column (and the other encodings key): cut at its first NUL it
    would share AB's key in a message of its own, out of order with AB's."""
    records = trades([b"AB", b"AB\x00C", b"AB", b"A" * 32])
    producer = Producer.capturing()
    produce_batch(producer, records)
    assert [(m[1], m[3]["fh.seq.first"], m[3]["fh.seq.last"]) for m in produced(producer)] == [
        (b"AB", "100", "102"), (b"AB\x00C", "101", "101"), (b"A" * 32, "103", "103")]


def test_a_long_run_is_cut_into_messages_of_at_most_most_records() -> None:
    records = trades([b"BTCUSDT"] * 7)
    producer = Producer.capturing()
    counts, _, _ = produce_batch(producer, records, most=3)
    assert counts.produced == 3
    assert [m[2] for m in produced(producer)] == [records[0:3].tobytes(), records[3:6].tobytes(),
                                                 records[6:].tobytes()]
    assert [m[3]["fh.seq.first"] for m in produced(producer)] == ["100", "103", "106"]


def test_records_behind_a_full_queue_go_to_the_backlog_in_order() -> None:
    records = trades([b"BTCUSDT", b"ETHUSDT", b"XRPUSDT"])
    producer = Producer.capturing(room=1)
    counts, backlog, _ = produce_batch(producer, records)
    assert (counts.produced, counts.records, counts.buffer_full) == (1, 1, 1)
    assert [(m[1], m[4]) for m in backlog] == [(b"ETHUSDT", 1), (b"XRPUSDT", 1)]
    counts, backlog, _ = produce_batch(Producer.capturing(), records, full=True)
    assert counts.produced == 0 and len(backlog) == 3


@pytest.mark.parametrize("symbols", [[b"BTCUSDT"] * 3, [b"BTCUSDT", b"ETHUSDT", b"BTCUSDT"]])
def test_messages_carry_zero_padding_whatever_the_rows_hold(symbols: list[bytes]) -> None:
    records = trades(symbols)
    (start, end), = padding(SCHEMAS["trade"])
    raw = records.view(np.uint8).reshape(len(records), -1)
    raw[:, start:end] = 0xAB  # e.g. left uninitialised by a numpy copy
    before = records.tobytes()
    producer = Producer.capturing()
    produce_batch(producer, records)
    for _, _, value, _ in produced(producer):
        rows = np.frombuffer(value, np.uint8).reshape(-1, records.itemsize)
        assert not rows[:, start:end].any() and rows[:, :start].any()
    assert b"".join(m[2] for m in produced(producer)) == wire_records(
        SCHEMAS["trade"], np.concatenate([records[records["symbol"] == s] for s in
                                          dict.fromkeys(symbols)])).tobytes()
    assert records.tobytes() == before, "the caller's rows are left as they were"


@pytest.mark.parametrize("symbols", [[b"A"] * 3, [b"A", b"B", b"A"]])
def test_a_row_width_not_a_multiple_of_eight_keeps_its_last_bytes(symbols: list[bytes]) -> None:
    # rows are gathered 8 bytes at a time: the 13th byte is a tail, and bytes 8-11 padding
    dtype = np.dtype({"names": ["symbol", "flag"], "formats": ["S8", "u1"], "offsets": [0, 12],
                      "itemsize": 13})
    raw = np.full((len(symbols), 13), 0xAB, np.uint8)
    records = raw.view(dtype).reshape(-1)
    records["symbol"], records["flag"] = symbols, np.arange(1, len(symbols) + 1)
    producer = Producer.capturing()
    outlet = Outlet(producer, print, print)
    produce_records(outlet, RecordLayout(dtype, None, [(8, 12)]), records, 1000, {},
                    lambda symbol: symbol.decode(), (), 1, False, Counts())
    rows = {key: np.frombuffer(value, np.uint8).reshape(-1, 13)
            for _, key, value, _ in produced(producer)}
    for key, got in rows.items():
        mine = raw[[s == key for s in symbols]]
        assert (got[:, :8] == mine[:, :8]).all() and (got[:, 12] == mine[:, 12]).all()
        assert not got[:, 8:12].any()


def test_a_compact_layout_needs_the_symbol_last() -> None:
    dtype = np.dtype([("symbol", "S8"), ("flag", "u1")])
    with pytest.raises(ValueError, match="rows cut before their symbol"):
        RecordLayout(dtype, None, (), 1)
    assert RecordLayout(dtype).row_bytes == 9


@pytest.mark.parametrize("encoding", BINARY_ENCODINGS)
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 199), max_size=300),
                          st.integers(1, 9) | st.just(2**63 - 1)),  # (no cut at all)
                min_size=1, max_size=4))
def test_batches_through_one_layout_are_cut_and_filled_as_numpy_would(
        encoding: str, batches: list[tuple[list[int], int]]) -> None:
    """Batch after batch through one layout (its symbol table kept: a batch of up to 200
    symbols, then one of few), each group's rows in row order, cut every `most`; a compact
    message holds each row's bytes before the symbol, and decodes to the same records."""
    schema = SCHEMAS["trade"]
    row_bytes = schema.dtype.fields["symbol"][1] if encoding == "compact" else schema.itemsize
    layout = RecordLayout(schema.dtype, SEQUENCE_FIELDS["trade"], padding(schema),
                          compact_row(schema).itemsize if encoding == "compact" else -1)
    assert (layout.row_bytes, layout.compact) == (row_bytes, encoding == "compact")
    fixed = fixed_headers(schema.name, schema.version, encoding, "host-a")
    for picks, most in batches:
        records = trades([b"S%d" % i for i in picks])
        producer = Producer.capturing()
        counts = Counts()
        produce_records(Outlet(producer, print, print), layout, records, most, {},
                        lambda symbol: symbol.decode(), fixed, 1, False, counts)
        expected = []
        for symbol in dict.fromkeys(picks):
            run = records[np.array(picks) == symbol]
            expected += [(b"S%d" % symbol, run[i:i + most]) for i in range(0, len(run), most)]
        got = produced(producer)
        wire = [(key, wire_records(schema, rows)) for key, rows in expected]
        assert [(key, value) for _, key, value, _ in got] == [
            (key, rows.view(np.uint8).reshape(len(rows), -1)[:, :row_bytes].tobytes())
            for key, rows in wire]
        assert [(h["fh.count"], h["fh.seq.first"], h["fh.seq.last"]) for *_, h in got] == [
            (str(len(rows)), str(rows["trade_id"][0]), str(rows["trade_id"][-1]))
            for _, rows in expected]
        assert [h.get(H_SYMBOL) for *_, h in got] == [
            key.decode() if encoding == "compact" else None for key, _ in expected]
        for (*_, value, headers), (_, rows) in zip(got, wire, strict=True):
            assert decode_value(headers, value).tobytes() == rows.tobytes()
        assert (counts.produced, counts.records) == (len(expected), len(picks))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 30), max_size=120), st.booleans()),
                min_size=1, max_size=6),
       st.integers(1, 9) | st.just(2**63 - 1))
def test_held_rows_stay_in_their_symbols_open_messages_until_full_or_released(
        calls: list[tuple[list[int], bool]], most: int) -> None:
    """With `hold`, a call sends only messages of `most` rows; the rest stay open across
    calls, each symbol's rows in order, until a call without it (None: no new rows)."""
    schema = SCHEMAS["trade"]
    layout = RecordLayout(schema.dtype, SEQUENCE_FIELDS["trade"], padding(schema))
    order: list[bytes] = []  # symbols with held rows, in order of first appearance
    held: dict[bytes, list[np.ndarray]] = {}
    first_id = 0
    for picks, hold in [*calls, ([], False)]:
        records = trades([b"S%d" % i for i in picks])
        records["trade_id"] = np.arange(first_id, first_id + len(picks))
        first_id += len(picks)
        producer = Producer.capturing()
        produce_records(Outlet(producer, print, print), layout, records if picks else None,
                        most, {}, lambda symbol: symbol.decode(), (), 1, False, Counts(),
                        hold)
        for row in records:
            key = bytes(row["symbol"])
            if not held.get(key):
                order.append(key)
            held.setdefault(key, []).append(row)
        expected = []
        for key in order:
            rows = held[key]
            cut = len(rows) - len(rows) % most if hold else len(rows)
            expected += [(key, rows[i:min(i + most, cut)]) for i in range(0, cut, most)]
            held[key] = rows[cut:]
        order = [key for key in order if held[key]]
        assert [(key, value) for _, key, value, _ in produced(producer)] == [
            (key, wire_records(schema, np.array(rows)).tobytes()) for key, rows in expected]
        assert layout.held == sum(map(len, held.values()))
    assert layout.held == 0


def test_a_held_message_carries_one_epoch() -> None:
    """Another connection's rows (another epoch) finish a symbol's held message; the other
    symbols' stay open."""
    schema = SCHEMAS["trade"]
    layout = RecordLayout(schema.dtype, SEQUENCE_FIELDS["trade"], padding(schema))
    producer = Producer.capturing()
    records = trades([b"A", b"B", b"A", b"A"])

    def call(rows: np.ndarray | None, epoch: int, hold: bool) -> None:
        produce_records(Outlet(producer, print, print), layout, rows, 1000, {},
                        lambda symbol: symbol.decode(), (), epoch, False, Counts(), hold)

    call(records[:3], 4, True)
    assert not produced(producer) and layout.held == 3
    call(records[3:], 5, True)
    assert [(m[1], m[2], m[3]["fh.epoch"]) for m in produced(producer)] == [
        (b"A", np.take(records, [0, 2]).tobytes(), "4")]
    call(None, 0, False)
    assert [(m[1], m[2], m[3]["fh.epoch"]) for m in produced(producer)][1:] == [
        (b"A", records[3:].tobytes(), "5"), (b"B", records[1:2].tobytes(), "4")]
    assert layout.held == 0


def test_a_raising_topic_callback_sends_nothing_after_it_and_the_layout_goes_on() -> None:
    schema = SCHEMAS["trade"]
    layout = RecordLayout(schema.dtype, SEQUENCE_FIELDS["trade"], padding(schema))
    records = trades([b"A", b"B", b"A", b"C"])
    producer = Producer.capturing()

    def new_topic(symbol: bytes) -> str:
        if symbol == b"B":
            raise RuntimeError("no topic for B")
        return symbol.decode()

    counts = Counts()
    with pytest.raises(RuntimeError, match="no topic for B"):
        produce_records(Outlet(producer, print, print), layout, records, 1000, {}, new_topic,
                        (), 1, False, counts)
    assert [m[1] for m in produced(producer)] == [b"A"] and counts.records == 2
    produce_records(Outlet(producer, print, print), layout, records[3:], 1000, {}, new_topic,
                    (), 1, False, Counts())
    assert [m[1] for m in produced(producer)] == [b"A", b"C"]


def test_produce_records_takes_only_whole_contiguous_rows_of_its_layout() -> None:
    records = trades([b"BTCUSDT"] * 4)
    for bad, most in ((records[::2], 10), (records.view(np.uint8), 10), (records, 0)):
        with pytest.raises(ValueError):
            produce_batch(Producer.capturing(), bad, most)
    counts, _, _ = produce_batch(Producer.capturing(), records[:0])
    assert counts.produced == 0
    narrow = np.dtype([("trade_id", np.int32), ("symbol", "S8")])  # reads must stay in a row
    with pytest.raises(ValueError, match="int64"):
        RecordLayout(narrow, ("trade_id", "trade_id"))
    with pytest.raises(ValueError, match="outside"):
        RecordLayout(narrow, None, [(10, 13)])


def test_counts_hold_when_a_callback_raises() -> None:
    producer = Producer.capturing(room=1)

    def backlog(*message: Any) -> None:
        raise RuntimeError("backlog broke")

    batch = MessageBatch(["t", "t"], [b"k", b"k"], [b"a", b"b"], np.array([4, 5]), (), 1)
    with pytest.raises(RuntimeError):
        produce_messages(Outlet(producer, backlog, print), batch, False)
    assert (batch.produced, batch.records, batch.buffer_full) == (1, 4, 1)  # 1st in librdkafka


def test_a_batch_of_inconsistent_lengths_is_refused() -> None:
    counts = np.array([1, 1])
    with pytest.raises(ValueError, match="differ in length"):
        MessageBatch(["t"], [b"k", b"k"], [b"a", b"b"], counts, (), 1)
    with pytest.raises(ValueError, match="both or neither"):
        MessageBatch(["t", "t"], [b"k", b"k"], [b"a", b"b"], counts, (), 1, firsts=counts)
    with pytest.raises(ValueError, match="one list per message"):
        MessageBatch(["t", "t"], [b"k", b"k"], [b"a", b"b"], counts, (), 1,
                     extra_headers=[[]])
