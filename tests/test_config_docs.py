"""The README's table of configuration keys is written from the model: every key, with its
type, range and default as the schema gives them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from feedhandler.config import HandlerConfig
from feedhandler.config_docs import keys, reference
from feedhandler.readme import rewrite, splice

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
    # a default made by a factory is shown too (run without `streams` subscribes to it)
    assert rows["streams"] == ("non-empty list of non-empty string", '["btcusdt@bookTicker"]')
    assert rows["universe.kinds"][1] == "[]" and rows["kafka.producer"][1] == "{}"
    assert rows["universe.symbols"] == ('`"all"` or list of non-empty string', '"all"')
    assert rows["batch.per_kind"][0] == "mapping of sections"


def test_rewriting_a_readme_that_is_not_there_is_one_line(tmp_path: Path, capsys: Any,
                                                           monkeypatch: Any) -> None:
    monkeypatch.setattr(sys, "argv", ["config_docs", str(tmp_path / "README.md")])
    with pytest.raises(SystemExit) as exc:
        rewrite("feedhandler.config_docs", "body\n")
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err and "README.md" in err
