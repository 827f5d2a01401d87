"""`make demo`'s script: exit 0, everything delivered, nothing left running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"


def test_demo_runs_clean_and_stops_everything() -> None:
    run = subprocess.run([sys.executable, str(DEMO), "--messages", "20000"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "all records delivered; broker and simulator stopped" in run.stdout
    assert "binance.spot.trade: {" in run.stdout  # decoded records were shown
    # The broker ran from a "feedhandler-demo-*" directory, the simulator under the demo.
    left = subprocess.run(["pgrep", "-f", "feedhandler-demo-|feedhandler-simproc-"],
                          capture_output=True, text=True)
    assert left.stdout == "", f"left running: {left.stdout}"
