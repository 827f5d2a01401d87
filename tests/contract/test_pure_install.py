"""`feedhandler.decode` for consumers who only `pip install` the package: a pure-Python wheel
(FEEDHANDLER_PURE=1, built with no compiler) in a fresh virtualenv holding nothing but numpy and
orjson decodes the messages the handler produced, byte for byte as the full install does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from feedhandler import decode
from feedhandler.consume.reader import read_messages
from feedhandler.contract import H_COUNT, H_ENCODING, header_dict
from feedhandler.contract.json_lines import encode_json
from feedhandler.records import SCHEMAS
from feedhandler.simulator.market import Universe
from feedhandler.simulator.testing import SimulatorProcess
from feedhandler.testing.kafka import LocalKafka
from tests.integration.test_kafka_bridge import HandlerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SEED, MESSAGES = 11, 3000
KINDS = ("trade", "depthPartial", "kline")
# What the consumer's environment gets besides the wheel (the pins of constraints.txt).
RUNTIME = [line for line in (REPO / "constraints.txt").read_text().split()
           if line.lower().startswith(("numpy==", "orjson=="))]

CHILD = """
import json, sys
import feedhandler
messages = json.load(open(sys.argv[1]))
out = []
for headers, value in messages:
    class Message:
        def headers(self): return [(k, v.encode()) for k, v in headers]
        def value(self): return bytes.fromhex(value)
    out.append(feedhandler.decode(Message()).tobytes().hex())
loaded = sorted(m for m in sys.modules if m.startswith("feedhandler._ext."))
print(json.dumps({"records": out, "extensions": loaded}))
"""


def handler_messages(kafka: LocalKafka,
                     log: Path) -> list[tuple[list[tuple[str, str]], bytes]]:
    """Messages the handler produced from the simulator, and each value again as JSON lines
    and as one JSON record (the sink's encoders)."""
    symbols = [s.symbol.lower() for s in Universe.generate(SEED, 10).symbols[:2]]
    streams = [f"{s}@{k}" for s in symbols for k in ("trade", "depth5@100ms", "kline_1m")]
    sim_args = ["--seed", str(SEED), "--symbols", "10", "--fast", "--max-messages", str(MESSAGES)]
    with SimulatorProcess(sim_args) as sim:
        handler = HandlerProcess(log, sim.url, kafka.bootstrap, streams,
                                 "--max-messages", str(MESSAGES))
        assert handler.finish()["frames"] == MESSAGES
    out = []
    for kind in KINDS:
        messages = list(read_messages(kafka.bootstrap, [f"binance.{handler.market}.{kind}"]))
        assert messages, kind
        for msg in messages:
            headers = header_dict(msg.headers())
            records = decode(msg)
            out.append((list(headers.items()), msg.value() or b""))
            as_json = {**headers, H_ENCODING: "json"}
            out.append((list(as_json.items()), encode_json(SCHEMAS[kind], records)))
        one = {**headers, H_ENCODING: "jsonrecord", H_COUNT: "1"}
        out.append((list(one.items()), encode_json(SCHEMAS[kind], records[-1:]).rstrip(b"\n")))
    return out


def pure_wheel(tmp: Path) -> Path:
    """The package built from this checkout's files with FEEDHANDLER_PURE=1 and no compiler."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
    source = tmp / "src"
    for name in filter(None, files):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((REPO / name).read_bytes())
    env = {**os.environ, "FEEDHANDLER_PURE": "1", "CC": "false", "CXX": "false"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-build-isolation",
                    "--no-deps", "-w", str(tmp / "dist"), str(source)], env=env, check=True,
                   cwd=tmp)
    (wheel,) = (tmp / "dist").glob("feedhandler-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "feedhandler/contract/kinds.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".pyx", ".cpp"))]
    return wheel


def test_decode_from_a_pure_python_install(kafka_broker: LocalKafka, tmp_path: Path) -> None:
    messages = handler_messages(kafka_broker, tmp_path / "handler.log")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", str(pure_wheel(tmp_path)), *RUNTIME],
                   check=True)
    dump = tmp_path / "messages.json"
    dump.write_text(json.dumps([(h, v.hex()) for h, v in messages]))
    child = subprocess.run([str(python), "-c", CHILD, str(dump)], capture_output=True,
                           text=True, cwd=tmp_path, timeout=120,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout)
    assert result["extensions"] == []  # decode never touched the (absent) extension

    class Message:
        def __init__(self, headers: list[tuple[str, str]], value: bytes) -> None:
            self._headers, self._value = headers, value

        def headers(self) -> list[tuple[str, bytes]]:
            return [(k, v.encode()) for k, v in self._headers]

        def value(self) -> bytes:
            return self._value

    expected = [decode(Message(h, v)).tobytes().hex() for h, v in messages]
    assert result["records"] == expected
    assert sum(len(r) for r in expected) > 0
