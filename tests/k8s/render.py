"""Render a kustomization with the kustomize that `make setup` installs into .tools/."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE = ROOT / ".tools" / "kustomize"
OVERLAYS = ("base", "overlays/demo", "overlays/production")


def build(path: str) -> list[dict[str, Any]]:
    assert KUSTOMIZE.is_file(), f"{KUSTOMIZE} is missing: run `make setup`"
    out = subprocess.run([str(KUSTOMIZE), "build", str(ROOT / "k8s" / path)], check=True,
                         capture_output=True, text=True, timeout=120).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found
