"""SIGTERM while a TLS handshake is stalled: the handler exits within shutdown_timeout_s, and
every record it read is on Kafka. Also: `connection.ca_file` is how wss:// trusts a private CA.

The handler runs as `feedhandler run` in a subprocess; the simulator (TLS) and a TCP relay run
in the test. The relay forwards the first connection and stalls every later one (accepts TCP,
never answers the ClientHello), then the test drops the first: the reconnect hangs in TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from feedhandler.simulator.server.tls import write_self_signed
from feedhandler.simulator.testing import SimulatorServer
from tests.integration.test_walking_skeleton import consume_all

pytestmark = pytest.mark.integration

SHUTDOWN_TIMEOUT_S = 4.0


class StallingRelay:
    """Forwards the first TCP connection to `port`; accepts and stalls the others."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.accepted = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.append(writer)
        if self.accepted > 1:
            return  # stall: hold the socket open, say nothing
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self._writers.append(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def drop_first(self) -> None:
        for writer in self._writers[:2]:
            writer.transport.abort()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()


@pytest.mark.slow
def test_sigterm_during_a_stalled_tls_handshake_exits_in_time_with_everything_on_kafka(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, "127.0.0.1")
    market = f"shutdown{uuid.uuid4().hex[:8]}"

    async def main() -> tuple[float, int, dict[str, object], str]:
        async with SimulatorServer(rate=500.0, tls_cert=cert, tls_key=key) as sim:
            relay = StallingRelay(sim.port)
            port = await relay.start()
            config = tmp_path / "handler.yaml"
            config.write_text(yaml.safe_dump({
                "url": f"wss://127.0.0.1:{port}", "streams": ["btcusdt@trade"],
                "sink": "kafka", "instance": "it-shutdown",
                "shutdown_timeout_s": SHUTDOWN_TIMEOUT_S,
                "kafka": {"bootstrap": kafka_bootstrap, "market": market},
                "connection": {"ca_file": str(cert), "handshake_timeout_s": 120.0,
                               "backoff_initial_s": 0.05, "backoff_max_s": 0.1}}))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "feedhandler", "run", "--config", str(config),
                "--summary-json", stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE)
            try:
                async with asyncio.timeout(30):
                    while not sim.connections or sim.connections[0].sent < 500:
                        await asyncio.sleep(0.05)
                relay.drop_first()
                async with asyncio.timeout(10):
                    while relay.accepted < 2:
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)  # well into the stalled handshake
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                out, err = await asyncio.wait_for(proc.communicate(), 30)
                took = time.monotonic() - started
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
                relay.close()
        assert proc.returncode is not None
        return took, proc.returncode, json.loads(out), err.decode()

    took, code, summary, stderr = asyncio.run(main())
    assert code == 0, stderr[-2000:]
    assert took < SHUTDOWN_TIMEOUT_S, f"exit took {took:.1f} s"
    records = summary["records"]
    assert isinstance(records, dict) and records["trade"] >= 400
    assert summary["sink"]["failed"] == 0  # type: ignore[index]
    topic = f"binance.{market}.trade"
    batches = consume_all(kafka_bootstrap, topic, records["trade"])
    assert sum(len(b) for b in batches) == records["trade"]
