"""Order books: snapshots as depth records (`snapshot`), the handler's per-symbol snapshot
sync (`sync`), and books rebuilt from Kafka (`BookBuilder`)."""

from feedhandler.book.builder import BookBuilder, Top
from feedhandler.book.snapshot import snapshot_records

__all__ = ["BookBuilder", "Top", "snapshot_records"]
