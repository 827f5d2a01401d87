"""The generated contract section answers what a consumer in another language must know."""

from __future__ import annotations

from feedhandler.contract.docs import padding_text, section
from feedhandler.contract.kinds import market_kinds
from feedhandler.records import SCHEMAS


def test_padding_is_located() -> None:
    trade = SCHEMAS["trade"]
    end = trade.fields[-1].offset + trade.fields[-1].size
    assert padding_text(trade) == f"Padding (always zero): bytes {end}-{trade.itemsize - 1}."
    assert padding_text(SCHEMAS["kline"]) == "Padding (always zero): byte 157."
    assert padding_text(SCHEMAS["bookTicker"]) == "No padding."


def test_every_market_kind_has_its_table_notes_and_sequence_rule() -> None:
    text = section()
    for kind in market_kinds():
        assert f"— kind `{kind.name}`," in text
        if kind.notes:
            assert kind.notes in text
        for field in kind.fields:
            assert f"| `{field.name}` |" in text
        if kind.sequence:
            assert f"| `{kind.name}` | `{kind.sequence.first}`" in text
    without = [k.name for k in market_kinds() if k.sequence is None]
    assert "Kinds without ids (" + ", ".join(f"`{k}`" for k in without) + ")" in text


def test_the_questions_of_a_java_consumer_are_answered() -> None:
    text = " ".join(section().split())  # (lines are wrapped)
    for phrase in ("Per symbol, not per partition", "need not follow on from the last of the "
                   "previous one", "spans two or more Kafka messages only when",
                   "unused slots of fixed sub-arrays", "nanoseconds since the Unix epoch",
                   "`ts_close` is inclusive", "percent (not a fraction)",
                   "The Kafka timestamp of a message is its produce time", "\"0.00000000\"",
                   "`url`: the URL connected to"):
        assert phrase in text, phrase
