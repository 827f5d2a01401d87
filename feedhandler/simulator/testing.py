"""Run the simulator from tests and benchmarks.

In-process (shares the test's event loop; faults and counters at hand):

    async with SimulatorServer(SimulatorConfig(port=0, ping_interval=0.05)) as sim:
        async with websockets.connect(sim.url + "/ws/btcusdt@trade") as ws: ...
        sim.faults.drop()

As a subprocess (what the handler sees in production; `feedhandler simulate` flags):

    with SimulatorProcess(["--fast", "--max-messages", "1000"]) as proc:
        connect(proc.url + "/stream?streams=btcusdt@bookTicker")
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from feedhandler.simulator.server import Connection, Simulator, SimulatorConfig
from feedhandler.simulator.server.source import SourceFactory


class SimulatorServer(Simulator):
    """`Simulator` as an async context manager. Without a config: a free port on 127.0.0.1 and
    no grace between the `serverShutdown` event and the close at exit (tests wait for
    nothing); `overrides` replace single fields (`SimulatorServer(ping_interval=0.05)`)."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        source: SourceFactory | None = None,
        **overrides: Any,
    ) -> None:
        base = config if config is not None else SimulatorConfig(port=0, shutdown_grace=0.0)
        super().__init__(dataclasses.replace(base, **overrides), source)

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def wait_for_connections(self, count: int, timeout: float = 5.0) -> list[Connection]:
        """Wait until at least `count` connections are open; returns them, oldest first."""
        async with asyncio.timeout(timeout):
            while len(self.connections) < count:
                await asyncio.sleep(0.005)
        return self.connections


def _descendants(pid: int) -> set[int]:
    """Live processes below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class SimulatorProcess:
    """`python -m feedhandler simulate ARGS --port 0 --ready-file ...` in a subprocess.

    `with SimulatorProcess(args) as proc:` returns once the server listens; `proc.url`,
    `proc.port`, `proc.pid`, `proc.ready` (the ready-file JSON). On exit it sends SIGTERM, waits
    for a clean exit and asserts that neither the process nor any child of it is left.
    """

    def __init__(
        self, args: Sequence[str] = (), *, timeout: float = 20.0, env: dict[str, str] | None = None
    ) -> None:
        self._args = list(args)
        self._timeout = timeout
        self._env = env
        self._scratch = Path(tempfile.mkdtemp(prefix="feedhandler-simproc-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return str(self.ready["url"])

    @property
    def port(self) -> int:
        return int(self.ready["port"])

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def output(self, name: str = "stderr") -> str:
        """What the process wrote to `stdout` or `stderr` so far."""
        return (self._scratch / name).read_text(errors="replace")

    def __enter__(self) -> SimulatorProcess:
        ready_file = self._scratch / "ready.json"
        args = self._args if "--port" in self._args else [*self._args, "--port", "0"]
        command = [sys.executable, "-m", "feedhandler", "simulate", *args]
        command += ["--ready-file", str(ready_file)]
        try:  # (a failed start, or a signal meanwhile: stop and clean up, whatever the code)
            with (
                open(self._scratch / "stdout", "wb") as out,
                open(self._scratch / "stderr", "wb") as err,
            ):
                self._proc = subprocess.Popen(command, stdout=out, stderr=err, env=self._env)
            deadline = time.monotonic() + self._timeout
            while not ready_file.exists():
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"simulator did not start: {self.output()[-2000:]}")
                time.sleep(0.02)
            self.ready = json.loads(ready_file.read_text())
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            code = self._terminate() if self._proc is not None else None
            if exc_type is None:
                assert code == 0, f"simulator exited with {code}: {self.output()[-2000:]}"
        finally:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _terminate(self) -> int | None:
        assert self._proc is not None
        children = _descendants(self._proc.pid)
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
        try:
            code = self._proc.wait(self._timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            raise AssertionError("simulator ignored SIGTERM; killed") from None
        left = [pid for pid in children if _alive(pid)]
        assert not left, f"simulator left processes behind: {left}"
        return code
