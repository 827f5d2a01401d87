"""/metrics read as a scraper reads it: with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, tuple[tuple[str, str], ...]]


def parse_metrics(text: str) -> tuple[dict[Key, float], dict[str, str]]:
    """(value by (sample name, sorted labels), family type by sample name); a duplicate
    sample or a counter without `_total` fails."""
    values: dict[Key, float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in values, f"duplicate sample {key}"
            assert family.type != "counter" or sample.name.endswith(("_total", "_created")), \
                sample.name
            values[key] = sample.value
            types[sample.name] = family.type
    return values, types


def value(metrics: dict[Key, float], name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]
