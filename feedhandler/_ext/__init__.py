"""Compiled extensions (Cython sources in ext/feedhandler/_ext)."""

import ctypes
import os


def _share_librdkafka() -> None:
    """The producer (producer.pyx) calls librdkafka's C API but is not linked to a librdkafka:
    it takes the symbols of the copy confluent-kafka has loaded (its wheel's, named for its
    version), made global here. Both share one library, and a confluent-kafka upgrade needs
    no rebuild."""
    import confluent_kafka  # noqa: F401  (loads its librdkafka)

    with open("/proc/self/maps") as maps:
        loaded = {line.split()[-1] for line in maps if "/librdkafka" in line}
    for path in loaded:  # (already loaded: RTLD_NOLOAD only makes its symbols global)
        ctypes.CDLL(path, mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD)


_share_librdkafka()
