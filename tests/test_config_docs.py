"""The README's table of configuration keys is written from the model: every key, with its
type, range and default as the schema gives them."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from feedhandler.config import HandlerConfig
from feedhandler.config_docs import keys, reference
from feedhandler.readme import splice

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_lists_every_key_as_the_code_declares_it() -> None:
    readme = README.read_text()
    assert splice(readme, "feedhandler.config_docs", reference()) == readme, \
        "README out of date: run `python -m feedhandler.config_docs`"


def test_every_leaf_of_the_model_is_a_row_with_its_type_range_and_default() -> None:
    rows = {key: (kind, default) for key, kind, default, _ in keys()}
    expected = set()
    for name, field in HandlerConfig.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            expected |= {f"{name}.{key}" for key in section.model_fields}
        else:
            expected.add(name)
    assert set(rows) == expected
    assert rows["connection.streams_per_connection"] == ("integer (>= 1, <= 1024)", "200")
    assert rows["connection.backoff_initial_s"] == ("number (> 0)", "0.5")
    assert rows["kafka.profile"] == ('`"latency"` \\| `"throughput"`', '"throughput"')
    assert rows["streams"][0] == "non-empty list of non-empty string"
    assert rows["universe.symbols"] == ('`"all"` or list of non-empty string', '"all"')
    assert rows["batch.per_kind"][0] == "mapping of sections"
