"""Compiled extensions (Cython sources in ext/feedhandler/_ext)."""

import ctypes
import os
from contextlib import suppress
from pathlib import Path


def _share_librdkafka() -> None:
    """The producer (producer.pyx) calls librdkafka's C API but is not linked to a librdkafka:
    it takes the symbols of the copy confluent-kafka has loaded (its wheel's, named for its
    version), made global here. Both share one library, and a confluent-kafka upgrade needs
    no rebuild. Without it (none found) the producer, and publish which uses it (hence the
    handler), fail to import (undefined rd_kafka_* symbols); the other extensions do not."""
    import confluent_kafka  # (loads its librdkafka)

    wheel = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    loaded: list[str] = []
    with suppress(OSError), open("/proc/self/maps") as maps:  # (no /proc: none found)
        # address perms offset device inode path
        loaded = sorted({line.split(maxsplit=5)[5].rstrip("\n") for line in maps
                         if "/librdkafka" in line and not line.endswith(" (deleted)\n")})
    # the wheel's copy, else (confluent-kafka built against the system's) the one loaded
    ours = [path for path in loaded if Path(path).parent == wheel] or loaded[:1]
    for path in ours:
        with suppress(OSError):  # (already loaded: RTLD_NOLOAD only makes its symbols global)
            ctypes.CDLL(path, mode=os.RTLD_GLOBAL | os.RTLD_NOLOAD)


_share_librdkafka()
