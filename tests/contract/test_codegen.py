"""The checked-in generated C++ headers are what the declaration generates."""

from __future__ import annotations

import pytest

from feedhandler.contract import codegen


@pytest.mark.parametrize("path", list(codegen.outputs()), ids=lambda p: p.name)
def test_generated_header_is_up_to_date(path) -> None:  # type: ignore[no-untyped-def]
    assert path.read_text() == codegen.outputs()[path], (
        f"{path.name} is stale: run python -m feedhandler.contract.codegen")


def test_check_mode_reports_nothing_stale() -> None:
    assert codegen.main(["--check"]) == 0
