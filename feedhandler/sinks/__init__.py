"""Where decoded batches go: Kafka for production, null for benchmarks and dry runs."""

from feedhandler.sinks.base import Sink

__all__ = ["Sink"]
