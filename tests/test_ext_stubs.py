"""The .pyi stubs of the Cython extensions say what the modules really have (Cython hides
signatures from type checkers; a stub that drifts would mislead rather than help): every name,
and every function's, method's and constructor's parameters (names, kinds, defaults)."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import feedhandler._ext

STUB_DIR = Path(feedhandler._ext.__file__).parent
PYX_DIR = Path(__file__).parents[1] / "ext" / "feedhandler" / "_ext"
MODULES = sorted(p.stem for p in PYX_DIR.glob("*.pyx"))
# (name, "positional" | "keyword", default or NO_DEFAULT); a stub's `...` default matches any
Param = tuple[str, str, Any]
NO_DEFAULT = inspect.Parameter.empty


def stub_names(tree: ast.Module | ast.ClassDef) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def stub_params(node: ast.FunctionDef, method: bool) -> list[Param]:
    args = node.args
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    params = [(a.arg, "positional", d) for a, d in zip(positional, defaults, strict=True)]
    params += [(a.arg, "keyword", d) for a, d in zip(args.kwonlyargs, args.kw_defaults,
                                                    strict=True)]
    return [(name, kind, NO_DEFAULT if d is None else eval(ast.unparse(d)))
            for name, kind, d in params[1 if method else 0:]]


def runtime_params(obj: Any) -> list[Param]:
    kinds = {inspect.Parameter.POSITIONAL_ONLY: "positional",
             inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional",
             inspect.Parameter.KEYWORD_ONLY: "keyword"}
    return [(p.name, kinds[p.kind], p.default) for p in inspect.signature(obj).parameters.values()
            if p.name != "self"]


def constructor_params(module: str, cls: str) -> list[Param]:
    """A Cython class's `__init__` (or `__cinit__`) parameters, read from its .pyx source (C
    types dropped).

    The runtime hides them (a slot wrapper), and the signature `embedsignature` writes into the
    class docstring misplaces the `*` of keyword-only parameters (Cython 3.3)."""
    source = (PYX_DIR / f"{module}.pyx").read_text()
    body = source[source.index(f"cdef class {cls}"):]
    match = re.search(r"def __init__\((.*?)\):", body, re.DOTALL) or \
        re.search(r"def __cinit__\((.*?)\):", body, re.DOTALL)
    assert match, f"{cls}.__init__ not found"
    params, kind = [], "positional"
    for part in (" ".join(p.split()) for p in match[1].split(",")):
        if part == "*":
            kind = "keyword"
            continue
        declaration, _, default = part.removesuffix(" not None").partition("=")
        name = declaration.removesuffix(" not None").split()[-1]  # `Decoder decoder` -> decoder
        if name != "self":
            params.append((name, kind, eval(default) if default else NO_DEFAULT))
    return params


def same(stub: list[Param], runtime: list[Param]) -> bool:
    return len(stub) == len(runtime) and all(
        s[:2] == r[:2] and (s[2] is Ellipsis or s[2] == r[2])
        for s, r in zip(stub, runtime, strict=True))


def functions(tree: ast.Module | ast.ClassDef) -> list[ast.FunctionDef]:
    return [node for node in tree.body if isinstance(node, ast.FunctionDef)
            and not any(isinstance(d, ast.Name) and d.id == "property"
                        for d in node.decorator_list)]


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


@pytest.mark.parametrize("name", MODULES)
def test_stub_signatures_match_the_module(name: str) -> None:
    module = importlib.import_module(f"feedhandler._ext.{name}")
    tree = ast.parse((STUB_DIR / f"{name}.pyi").read_text())
    checked = []
    for fn in functions(tree):
        stub, runtime = stub_params(fn, method=False), runtime_params(getattr(module, fn.name))
        assert same(stub, runtime), f"{fn.name}: stub {stub} != runtime {runtime}"
        checked.append(fn.name)
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        owner = getattr(module, cls.name)
        for fn in functions(cls):
            qualname = f"{cls.name}.{fn.name}"
            if fn.name != "__init__" and fn.name.startswith("__"):
                continue  # a slot (__len__): the runtime gives it no signature
            runtime = (constructor_params(name, cls.name) if fn.name == "__init__"
                       else runtime_params(getattr(owner, fn.name)))
            stub = stub_params(fn, method=True)
            assert same(stub, runtime), f"{qualname}: stub {stub} != runtime {runtime}"
            checked.append(qualname)
    assert checked


def test_the_check_sees_a_wrong_stub() -> None:
    """A keyword-only stub parameter that is positional at runtime, or a changed default,
    fails the comparison."""
    fn = ast.parse("def f(a, *, b=1): ...").body[0]
    assert isinstance(fn, ast.FunctionDef)
    assert not same(stub_params(fn, method=False), [("a", "positional", NO_DEFAULT),
                                                    ("b", "positional", 1)])
    assert not same(stub_params(fn, method=False), [("a", "positional", NO_DEFAULT),
                                                    ("b", "keyword", 2)])
    assert same(stub_params(fn, method=False), [("a", "positional", NO_DEFAULT),
                                                ("b", "keyword", 1)])
