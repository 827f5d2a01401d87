"""feedhandler: Binance Spot WebSocket streams -> exact numpy records -> Kafka.

Public API for users and downstream consumers:
  parse(frames)       decode raw frames offline (same C++ decoder as the live handler)
  decode(message)     a Kafka message of ours -> numpy array, from its headers alone
  to_str(units)       exact text of a decimal column's value, e.g. "0.00000000"

decode() and the schemas need no compiled extension (a pure-Python install has them); parse()
imports the extension when first used.
  SCHEMAS             every record table's versioned dtype
"""

from typing import TYPE_CHECKING, Any

from feedhandler.consume.decode import decode
from feedhandler.records import SCALE, SCHEMAS, Schema, to_decimal, to_str, wide_to_int

if TYPE_CHECKING:
    from feedhandler.parsing import DeadLetter, ParseResult, parse

_PARSING = ("DeadLetter", "ParseResult", "parse")

__version__ = "0.1.0"
__all__ = [
    "SCALE",
    "SCHEMAS",
    "DeadLetter",
    "ParseResult",
    "Schema",
    "decode",
    "parse",
    "to_decimal",
    "to_str",
    "wide_to_int",
]


def __getattr__(name: str) -> Any:
    if name in _PARSING:  # imported on first use: the only part that needs the extension
        from feedhandler import parsing

        return getattr(parsing, name)
    raise AttributeError(f"module 'feedhandler' has no attribute {name!r}")
