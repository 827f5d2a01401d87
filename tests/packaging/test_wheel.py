"""The wheel, built as the image builds it: compiled extensions, stubs and markers in; test
helpers that need the repository out; runtime dependencies as compatible ranges."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "README.md", "ext", "feedhandler")
PYX = sorted((ROOT / "ext/feedhandler/_ext").glob("*.pyx"))  # (Cython writes a .cpp beside each)


def clean_copy(dest: Path) -> None:
    """The sources a fresh checkout has (no build outputs of this one)."""
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns(
                "*.so", "__pycache__", "*.html", *(f"{pyx.stem}.cpp" for pyx in PYX)))
        else:
            shutil.copy(source, dest / name)


@pytest.mark.slow
def test_wheel_contents_and_metadata(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    clean_copy(src)
    # rdkafka.h: where `make setup` unpacked it (the image installs librdkafka-dev instead)
    include = {"FEEDHANDLER_RDKAFKA_INCLUDE": str(ROOT / ".tools/librdkafka/usr/include")}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                    "-q", "-w", str(tmp_path / "dist"), str(src)], check=True, timeout=900,
                   env={**os.environ, **include})
    (wheel,) = (tmp_path / "dist").glob("feedhandler-*.whl")
    assert re.search(r"-cp311-cp311-linux_x86_64\.whl$", wheel.name)
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("decoder", "listener", "publish", "producer"):
        assert any(re.fullmatch(rf"feedhandler/_ext/{module}\.cpython-311-.*\.so", n)
                   for n in names), module
        assert f"feedhandler/_ext/{module}.pyi" in names
    assert "feedhandler/py.typed" in names
    # installed, the producer finds confluent-kafka's librdkafka (it links none of its own)
    target = tmp_path / "installed"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, timeout=300)
    made = subprocess.run([sys.executable, "-c", (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from feedhandler._ext.producer import Producer; import feedhandler; "
        "print(feedhandler.__file__, Producer({'bootstrap.servers': '', 'client.id': 'w'}).name)"),
        str(target)], check=True, capture_output=True, text=True, timeout=60).stdout.split()
    assert made[0].startswith(str(target)) and made[1].startswith("w#producer-")
    assert "feedhandler/simulator/testing.py" in names  # needs only the package itself
    assert not [n for n in names if n.startswith(("feedhandler/testing/", "tests/", "bench/"))]
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines()
                if line.startswith("Requires-Dist: ") and "extra ==" not in line]
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert len(requires) == len(declared) >= 7
    assert not [r for r in requires if "==" in r], "runtime dependencies are ranges, not pins"
    assert all(re.search(r">=[\d.]+", r) for r in requires), requires
