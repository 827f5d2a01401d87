"""Every declared kind's example payload (protocol doc §4) decodes exactly as the independent
reference says, raw and combined; and the 2026 kinds, blockTrade and referencePrice, in
detail: their protocol-doc examples field by field, `r: null`, blockTrade sequence gaps."""

from __future__ import annotations

import json

import pytest

from feedhandler.contract.kinds import KINDS, Role
from feedhandler.records import SCHEMAS
from tests.parsing.helpers import TS_RECV, assert_same, run_decoder, run_reference

MARKET = [k for k in KINDS if k.role is Role.MARKET]


@pytest.mark.parametrize("kind", MARKET, ids=lambda k: k.name)
def test_example_decodes_like_the_reference(kind) -> None:  # type: ignore[no-untyped-def]
    stream = f"bnbbtc@{kind.streams[0].text}"
    frames = [kind.example.encode(),
              b'{"stream":"%s","data":%s}' % (stream.encode(), kind.example.encode())]
    hint = {"stream": stream} if kind.name == "depthPartial" else {}
    decoded = run_decoder(frames[:1], **hint)
    assert not decoded.errors
    assert_same(decoded, run_reference(frames[:1], **hint), f"{kind.name} raw")
    combined = run_decoder(frames[1:])
    assert not combined.errors and kind.name in combined.kinds()
    # the schema's own dtype object: the Kafka sink takes a batch as it is by identity
    assert all(b.dtype is SCHEMAS[kind.name].dtype for b in combined.batches[kind.name])
    assert_same(combined, run_reference(frames[1:]), f"{kind.name} combined")


def test_block_trade_protocol_example_field_by_field() -> None:
    frame = (b'{"e":"blockTrade","E":1772506983582,"s":"BNBBTC","t":582,"p":"0.052",'
             b'"q":"5838","T":1772506983321,"m":true}')
    (row,) = run_decoder([frame]).rows("blockTrade")
    assert row == {"ts_recv": TS_RECV, "ts_event": 1772506983582_000000,
                   "ts_trade": 1772506983321_000000, "trade_id": 582, "price": 5_200_000,
                   "qty": 5838_00000000, "buyer_is_maker": 1, "symbol": b"BNBBTC"}


def test_reference_price_protocol_example_and_null() -> None:
    frames = [b'{"e":"referencePrice","s":"BAZUSD","r":"1.00","t":1770313263917}',
              b'{"e":"referencePrice","s":"BAZUSD","r":null,"t":1770313264917}']
    decoded = run_decoder(frames)
    assert not decoded.errors
    assert decoded.rows("referencePrice") == [
        {"ts_recv": TS_RECV, "ts_engine": 1770313263917_000000, "price": 100_000_000,
         "price_known": 1, "symbol": b"BAZUSD"},
        {"ts_recv": TS_RECV, "ts_engine": 1770313264917_000000, "price": 0,
         "price_known": 0, "symbol": b"BAZUSD"},
    ]
    assert_same(decoded, run_reference(frames))


@pytest.mark.parametrize(
    ("payload", "error"),
    [({"e": "referencePrice", "s": "X", "t": 1}, ("missing_field", "r")),
     ({"e": "referencePrice", "s": "X", "r": 1.0, "t": 1}, ("wrong_type", "r")),
     ({"e": "referencePrice", "s": "X", "r": "1e3", "t": 1}, ("bad_decimal", "r")),
     ({"e": "referencePrice", "s": "X", "r": None}, ("missing_field", "t")),
     ({"e": "blockTrade", "E": 1, "s": "X", "t": 1, "p": "1", "q": "1", "T": 1},
      ("missing_field", "m"))],
)  # fmt: skip
def test_bad_new_kind_payloads_are_rejected(payload: dict, error: tuple[str, str]) -> None:
    frame = json.dumps(payload, separators=(",", ":")).encode()
    decoded = run_decoder([frame])
    assert [e[:2] for e in decoded.errors] == [error]
    assert run_reference([frame]).errors == [error]


def test_block_trade_ids_are_sequence_checked() -> None:
    def block(t: int) -> bytes:
        return (b'{"e":"blockTrade","E":1,"s":"BNBBTC","t":%d,"p":"0.052","q":"5838",'
                b'"T":1,"m":true}' % t)

    frames = [block(582), block(583), block(586), block(585)]
    decoded = run_decoder(frames)
    gaps = decoded.rows("gap")
    assert [(g["expected"], g["received"], g["reason"]) for g in gaps] == [
        (584, 586, 1), (587, 585, 2)]
    assert {g["kind"] for g in gaps} == {[k.name for k in KINDS].index("blockTrade")}
    assert_same(decoded, run_reference(frames))


@pytest.mark.parametrize("frame", [b'{"code":2,"msg":"Invalid request","id":7}',
                                   b'{"msg":"Invalid request","code":2,"id":7}',
                                   b'{"id":7,"msg":"Invalid request","code":2}'])
def test_an_error_reply_decodes_whatever_its_key_order(frame: bytes) -> None:
    decoded = run_decoder([frame])
    assert not decoded.errors
    (row,) = decoded.rows("control")
    assert (row["type"], row["id"], row["code"]) == (2, 7, 2)
    assert_same(decoded, run_reference([frame]))


def test_control_frames_reach_on_control_with_the_leg_they_came_on() -> None:
    """serverShutdown rolls over the connection it came on (a redundant shard's other leg
    serves on): the decoder says which."""
    from feedhandler._ext.decoder import Decoder

    got: list[tuple[bytes, int]] = []
    decoder = Decoder(lambda kind, records: None, None, lambda frame, leg: got.append((frame, leg)))
    notice = b'{"e":"serverShutdown","E":1}'
    decoder.decode(notice, 1, leg=1)
    decoder.decode(b'{"result":null,"id":7}', 1, leg=0)
    assert got == [(notice, 1), (b'{"result":null,"id":7}', 0)]
