"""The Dockerfile, read as a builder reads it: multi-stage, non-root, and every COPY takes
files that exist and that .dockerignore lets into the build context."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def glob_regex(pattern: str) -> str:
    """Docker's patterns: `*` and `?` within one path segment, `**` across segments."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] in "*?":
            out, i = out + ("[^/]*" if pattern[i] == "*" else "[^/]"), i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def ignored(path: str) -> bool:
    """.dockerignore semantics: patterns in order, the last match wins, `!` re-includes; a
    directory's exclusion covers what is under it unless re-included."""
    result = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = glob_regex(pattern)
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            result = not negate
    return result


def test_multi_stage_non_root_image() -> None:
    steps = instructions()
    froms = [args for word, args in steps if word == "FROM"]
    assert len(froms) == 2 and froms[0].endswith(" AS build")
    final = steps[max(i for i, (w, _) in enumerate(steps) if w == "FROM"):]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].isdigit() and int(users[-1]) >= 10000
    assert not any(w == "RUN" and "g++" in a for w, a in final), "no compiler at run time"
    # PID 1 passes SIGTERM on (the handler itself would ignore it through start-up)
    assert ("ENTRYPOINT", '["tini", "--", "feedhandler"]') in final
    assert any(w == "RUN" and "install" in a and " tini" in a for w, a in final)


def test_copies_take_existing_files_inside_the_build_context() -> None:
    copied: list[str] = []
    for word, args in instructions():
        if word != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source), f"{source} is excluded by .dockerignore"
            copied.append(source)
    # what `pip wheel .` reads: the build files, the C++/Cython sources and the package
    assert {"pyproject.toml", "setup.py", "README.md", "constraints.txt", "ext",
            "feedhandler"} <= set(copied)
    for path in (ROOT / "ext").rglob("*"):
        relative = path.relative_to(ROOT).as_posix()
        if path.suffix in (".h", ".pyx", ".pxd") or relative.startswith("ext/cpp/"):
            assert not ignored(relative), relative
    for local in (".venv/bin/python", ".kafka/lib", ".git/HEAD", "tests/conftest.py",
                  ".tools/kustomize", "ext/feedhandler/_ext/decoder.cpp",
                  "feedhandler/_ext/decoder.cpython-311-x86_64-linux-gnu.so"):
        assert ignored(local), local


def test_run_steps_use_the_lock_and_the_build_switch() -> None:
    runs = " ".join(args for word, args in instructions() if word == "RUN")
    assert runs.count("-c constraints.txt") == 2  # build requirements and the runtime
    assert 'FEEDHANDLER_MARCH="${FEEDHANDLER_MARCH}"' in runs  # empty: the portable baseline
    setup = (ROOT / "setup.py").read_text()
    assert 'os.environ.get("FEEDHANDLER_MARCH", "") or "x86-64-v2"' in setup
