"""A small parser of the Prometheus text format (0.0.4), so tests read /metrics as a scraper
would without a client library."""

from __future__ import annotations

import re

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
Key = tuple[str, tuple[tuple[str, str], ...]]


def parse_metrics(text: str) -> tuple[dict[Key, float], dict[str, str]]:
    """(value by (name, sorted labels), type by family); asserts the format's rules."""
    assert text.endswith("\n")
    values: dict[Key, float] = {}
    types: dict[str, str] = {}
    helps: set[str] = set()
    finished: set[str] = set()  # a family's samples must be contiguous
    current = ""
    for line in text[:-1].split("\n"):
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            assert NAME.fullmatch(name) and name not in helps, line
            helps.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name in helps and name not in types, line
            assert kind in ("counter", "gauge", "untyped"), line
            assert kind != "counter" or name.endswith("_total"), f"counter {name} lacks _total"
            types[name] = kind
        else:
            match = SAMPLE.fullmatch(line)
            assert match, f"not a sample: {line!r}"
            name, labels_text, value = match.groups()
            assert name in types, f"sample before its TYPE: {line!r}"
            if name != current:
                assert name not in finished, f"{name} samples are not contiguous"
                finished.add(current)
                current = name
            labels: list[tuple[str, str]] = []
            pos = 0
            while labels_text and pos < len(labels_text):
                label = LABEL.match(labels_text, pos)
                assert label, f"bad labels in {line!r}"
                unescaped = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], label[2])
                labels.append((label[1], unescaped))
                pos = label.end() + (labels_text[label.end():label.end() + 1] == ",")
            key = (name, tuple(sorted(labels)))
            assert key not in values, f"duplicate sample {key}"
            values[key] = float(value)
    return values, types


def value(metrics: dict[Key, float], name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]
