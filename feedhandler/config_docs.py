"""The README's table of every configuration key, written from the model's JSON Schema (what
`feedhandler config schema` prints), so that a key added to `feedhandler/config.py` is
documented with its type, range and default:

    python -m feedhandler.config_docs   # rewrites its section of README.md
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from feedhandler.config import HandlerConfig
from feedhandler.config_layers import json_schema
from feedhandler.readme import rewrite

Schema = dict[str, Any]
_BOUNDS = (("minimum", ">= {}"), ("exclusiveMinimum", "> {}"), ("maximum", "<= {}"))


def _kind(entry: Schema) -> str:
    """The value's type, with its range or choices."""
    if "anyOf" in entry:
        return " or ".join(_kind(option) for option in entry["anyOf"])
    if "const" in entry:
        return f"`{json.dumps(entry['const'])}`"
    if "enum" in entry:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in entry["enum"])
    kind = entry.get("type", "")
    if kind == "array":
        kind = f"list of {_kind(entry.get('items', {}))}"
    if entry.get("minItems") or entry.get("minLength"):
        kind = f"non-empty {kind}"
    if kind.endswith("object"):
        values = entry.get("additionalProperties", {})
        kind = "mapping" if not values or "anyOf" in values else "mapping of sections"
    bounds = [text.format(entry[key]) for key, text in _BOUNDS if key in entry]
    return f"{kind} ({', '.join(bounds)})" if bounds else kind


def keys(schema: Schema | None = None) -> Iterator[tuple[str, str, str, str]]:
    """(dotted key, type, default as JSON or "", description) of every key, in model order."""
    schema = schema or json_schema(HandlerConfig)
    sections = schema.get("$defs", {})

    def visit(properties: Schema, prefix: str,
              defaults: Any) -> Iterator[tuple[str, str, str, str]]:
        for name, entry in properties.items():
            if "$ref" in entry:
                yield from visit(sections[entry["$ref"].rsplit("/", 1)[1]]["properties"],
                                 f"{prefix}{name}.", getattr(defaults, name))
                continue
            # (a default made by a factory is in no JSON Schema: the model's own then)
            default = entry["default"] if "default" in entry else getattr(defaults, name)
            yield (f"{prefix}{name}", _kind(entry), json.dumps(default),
                   " ".join(entry.get("description", "").split()))

    yield from visit(schema["properties"], "", HandlerConfig())


def reference() -> str:
    rows = [f"| `{key}` | {kind} | {f'`{default}`' if default else ''} | "
            f"{text.replace('|', chr(92) + '|')} |" for key, kind, default, text in keys()]
    return "\n".join(["| key | type | default | meaning |", "|---|---|---|---|", *rows]) + "\n"


if __name__ == "__main__":
    rewrite("feedhandler.config_docs", reference())
