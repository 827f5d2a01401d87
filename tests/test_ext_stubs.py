"""The .pyi stubs of the Cython extensions say what the modules really have (Cython hides
signatures from type checkers; a stub that drifts would mislead rather than help)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import feedhandler._ext

STUB_DIR = Path(feedhandler._ext.__file__).parent
MODULES = ["buffers", "decoder", "listener", "publish", "book"]


def stub_names(tree: ast.Module | ast.ClassDef) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


@pytest.mark.parametrize("name", MODULES)
def test_stub_matches_the_module(name: str) -> None:
    module = importlib.import_module(f"feedhandler._ext.{name}")
    tree = ast.parse((STUB_DIR / f"{name}.pyi").read_text())
    declared = stub_names(tree)
    assert declared <= set(dir(module))  # nothing stubbed that is not there
    defined = {n for n, v in vars(module).items()
               if not n.startswith("_") and getattr(v, "__module__", None) == module.__name__}
    assert defined <= declared  # every function and class is stubbed
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        runtime = getattr(module, cls.name)
        members = {n for n in vars(runtime) if not n.startswith("_")}
        # (methods a Cython class inherits from picows' base are stubbed there)
        assert members <= stub_names(cls) | set(dir(runtime.__base__)), cls.name
        assert stub_names(cls) <= set(dir(runtime)), cls.name
