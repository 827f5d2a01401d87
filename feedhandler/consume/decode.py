"""Decode one of our Kafka messages into a numpy array, from its headers alone."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from feedhandler.contract import decode_value, header_dict


class KafkaMessage(Protocol):
    """What we need of a confluent_kafka.Message (or anything shaped like one)."""

    def headers(self) -> Any: ...
    def value(self) -> Any: ...


def decode(message: KafkaMessage) -> np.ndarray:
    """Records of a data-topic message, as a numpy structured array of its kind's current
    schema's dtype (a message of an earlier version is converted).

    The array is read-only when the message is in the `records` encoding of the current
    version (it views the message's bytes); `.copy()` it to modify.
    """
    return decode_value(header_dict(message.headers()), message.value() or b"")
