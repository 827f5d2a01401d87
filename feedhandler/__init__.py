"""feedhandler: Binance Spot WebSocket streams -> exact numpy records -> Kafka.

Public API for users and downstream consumers:
  parse(frames)       decode raw frames offline (same C++ decoder as the live handler)
  decode(message)     a Kafka message of ours -> numpy array, from its headers alone
  SCHEMAS             every record table's versioned dtype
"""

from feedhandler.consume.decode import decode
from feedhandler.parsing import DeadLetter, ParseResult, parse
from feedhandler.records import SCALE, SCHEMAS, Schema, to_decimal, wide_to_int

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
    "wide_to_int",
]
