"""A real single-node Apache Kafka broker (KRaft, combined broker + controller) for tests,
the demo and benchmarks, run from Maven Central jars (see ``scripts/kafka/pom.xml``).

Usage::

    scripts/kafka-local fetch|start|stop|status [--dir DIR] [--port N]

    with LocalKafka(tmp_path) as kafka:
        producer = Producer({"bootstrap.servers": kafka.bootstrap})

Confirmed on the 2-core dev/CI box (Kafka 4.1.1, OpenJDK 17, Maven 3.8.7):

- ``kafka_2.13`` alone brings the whole broker runtime (46 jars, 43 MiB in ``.kafka/lib``);
  ``slf4j-simple`` 1.7.36 (the slf4j-api the broker uses) is enough as the logging binding.
  log4j-core/api 2.24.3 come in transitively but no log4j config is needed.
- Fetch: ~40 s with an empty ~/.m2, ~2 s from a warm ~/.m2, ~0.1 s once fetched (marker).
- ``kafka.tools.StorageTool format`` with static ``controller.quorum.voters`` takes ~0.7 s. The
  broker (flags below) opens its port ~2 s after launch on an idle box (up to ~5 s while the
  box compiles) and accepts an ``acks=all`` produce, auto-creating the topic, 0.1-0.4 s later.
- SIGTERM shuts down cleanly in ~0.5 s; data and cluster id survive a restart (~2.5 s).
- After a SIGKILL the next start takes ~12 s: the controller rejects the new registration
  until the old one's ``broker.session.timeout.ms`` (9 s) expires.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from types import TracebackType
from typing import Self

from confluent_kafka import KafkaError, Message, Producer

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"  # never "localhost": librdkafka may try ::1 first and stall

_POM = Path("scripts/kafka/pom.xml")
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}

# Sized for a 2-core box shared with the code under test. Serial GC has the fewest GC threads;
# 512 MiB is plenty once the log cleaner's buffer is shrunk (see _STATIC_SETTINGS), and an OOM
# should kill the broker visibly rather than leave it limping.
_BROKER_JVM = (
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
)
# The storage tool runs for under a second: C1 only starts it faster.
_TOOL_JVM = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")

_STATIC_SETTINGS = {
    "process.roles": "broker,controller",
    "node.id": "1",
    "controller.listener.names": "CONTROLLER",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "auto.create.topics.enable": "true",
    "num.partitions": "1",
    # A single node can only hold one replica of each internal topic; one partition each
    # keeps the first group join / transaction fast.
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    # The cleaner allocates this up front (default 128 MiB), which would not fit -Xmx512m.
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
}


class LocalKafkaError(RuntimeError):
    """The broker could not be fetched, started or stopped."""


def kafka_version(repo_root: Path = REPO_ROOT) -> str:
    """The Kafka version pinned in ``scripts/kafka/pom.xml``."""
    node = ET.parse(repo_root / _POM).find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not node.text:
        raise LocalKafkaError(f"no <kafka.version> property in {repo_root / _POM}")
    return node.text.strip()


def ensure_jars(repo_root: Path = REPO_ROOT) -> Path:
    """Copy the broker's runtime jars into ``<repo_root>/.kafka/lib`` with Maven, once.

    Returns the folder. A marker file records the fetched version, so this is a cheap no-op
    afterwards and refetches only when the pom's ``kafka.version`` changes.
    """
    version = kafka_version(repo_root)
    lib = repo_root / ".kafka" / "lib"
    marker = lib / "kafka.version"
    lib.parent.mkdir(parents=True, exist_ok=True)
    with (lib.parent / "fetch.lock").open("w") as lock:
        # A CLI fetch and a pytest run may race on a fresh checkout.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text().strip() == version:
            return lib
        # Jar names carry versions, so an old fetch must go or both would be on the classpath.
        shutil.rmtree(lib, ignore_errors=True)
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LocalKafkaError("Maven (mvn) is not on PATH; it is needed to fetch Kafka")
        cmd = [
            mvn,
            "-B",
            "-q",
            "-f",
            str(repo_root / _POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(
                f"fetching Kafka {version} failed ({' '.join(cmd)}):\n"
                f"{(result.stdout + result.stderr)[-4000:]}"
            )
        marker.write_text(version + "\n")
    return lib


class LocalKafka:
    """One KRaft broker+controller process whose config, data and log live in ``workdir``.

    The data dir and cluster id are kept across ``stop()``/``start()``, and a restarted
    instance reuses its ports, so clients keep the same bootstrap address and see old data.
    A ``LocalKafka`` on a workdir whose broker is already running (e.g. started by the CLI)
    adopts it: ``bootstrap``, ``pid``, ``is_running()`` and ``stop()`` work on it.
    """

    def __init__(self, workdir: Path, port: int | None = None, *, detached: bool = False) -> None:
        """``detached`` lets the broker outlive this process (the CLI's ``start``); otherwise
        it gets SIGTERM when the thread that started it dies, so a killed test run leaves no
        broker behind."""
        self.workdir = Path(workdir).resolve()
        self._port = port
        self._controller_port: int | None = None
        self._detached = detached
        self._proc: subprocess.Popen[bytes] | None = None
        self._props = self.workdir / "server.properties"
        self._data = self.workdir / "data"
        self._log = self.workdir / "broker.log"
        self._pid_file = self.workdir / "pid"
        self._bootstrap_file = self.workdir / "bootstrap"
        if self.is_running():
            self._port, self._controller_port = self._saved_ports() or (port, None)

    @staticmethod
    def fetch(repo_root: Path = REPO_ROOT) -> Path:
        """Same as :func:`ensure_jars`."""
        return ensure_jars(repo_root)

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>`` for ``bootstrap.servers``."""
        if self._port is None:
            raise LocalKafkaError(f"no broker port yet for {self.workdir}: call start() first")
        return f"{HOST}:{self._port}"

    @property
    def pid(self) -> int | None:
        """PID of the running broker, or None."""
        if self._proc is not None:
            return self._proc.pid if self._proc.poll() is None else None
        try:
            pid = int(self._pid_file.read_text())
        except (OSError, ValueError):
            return None
        return pid if self._is_our_broker(pid) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self, timeout: float = 90) -> str:
        """Launch the broker and return its bootstrap address once it accepts a produce.

        ``timeout`` bounds the JVM start-up only, not a first Maven fetch of the jars.
        """
        if (pid := self.pid) is not None:
            raise LocalKafkaError(f"a broker is already running in {self.workdir} (pid {pid})")
        if self._proc is not None:  # our previous broker died on its own: reap it
            self._proc.wait()
        lib = ensure_jars()
        java = _java()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port, self._controller_port = self._pick_ports()
        self._write_properties()
        self._format_once(java, lib)
        deadline = time.monotonic() + timeout
        log_start = self._log.stat().st_size if self._log.exists() else 0
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [java, *_BROKER_JVM, "-cp", str(lib / "*"), "kafka.Kafka", str(self._props)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=self._detached,
                preexec_fn=None if self._detached else _die_with_parent,
            )
        self._pid_file.write_text(f"{self._proc.pid}\n")
        self._bootstrap_file.write_text(f"{self.bootstrap}\n")
        try:
            self._wait_ready(self._port, deadline, log_start)
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a clean shutdown takes ~0.5 s), then SIGKILL after ``timeout``."""
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):  # it may exit between check and kill
                os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if not self._wait_exit(pid, 10):
                    raise LocalKafkaError(f"broker pid {pid} survived SIGKILL")
        if self._proc is not None:
            self._proc.wait()  # reap a broker that had already died
            self._proc = None
        self._pid_file.unlink(missing_ok=True)
        self._bootstrap_file.unlink(missing_ok=True)

    def restart(self, timeout: float = 90) -> str:
        """Stop and start again on the same ports and data."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _saved_ports(self) -> tuple[int, int] | None:
        """(broker, controller) ports from an earlier run's server.properties."""
        try:
            props = _read_properties(self._props)
            broker, controller = (
                int(listener.rsplit(":", 1)[1]) for listener in props["listeners"].split(",")
            )
        except (OSError, KeyError, ValueError):
            return None
        return broker, controller

    def _pick_ports(self) -> tuple[int, int]:
        """Ports already set (given, or from a previous start) must be free; otherwise prefer
        the workdir's previous ports so a CLI stop/start keeps the address, else new ones."""
        saved = self._saved_ports() or (None, None)
        chosen: list[int | None] = []
        for current, previous in ((self._port, saved[0]), (self._controller_port, saved[1])):
            if current is not None:
                if not _port_free(current):
                    raise LocalKafkaError(f"port {HOST}:{current} is already in use")
                chosen.append(current)
            elif previous is not None and previous not in chosen and _port_free(previous):
                chosen.append(previous)
            else:
                chosen.append(None)
        fresh = iter(_free_ports(chosen.count(None), exclude={p for p in chosen if p is not None}))
        broker, controller = (p if p is not None else next(fresh) for p in chosen)
        return broker, controller

    def _write_properties(self) -> None:
        settings = {
            **_STATIC_SETTINGS,
            # Static voters rather than a dynamic quorum: the controller port is then not
            # written into the metadata log, so a restart may move it if it got taken.
            "controller.quorum.voters": f"1@{HOST}:{self._controller_port}",
            "listeners": (
                f"PLAINTEXT://{HOST}:{self._port},CONTROLLER://{HOST}:{self._controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self._port}",
            "log.dirs": str(self._data),
        }
        self._props.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))

    def _format_once(self, java: str, lib: Path) -> None:
        # Reformatting would wipe the cluster id that the existing data belongs to.
        if (self._data / "meta.properties").exists():
            return
        cmd = [
            java,
            *_TOOL_JVM,
            "-cp",
            str(lib / "*"),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            _new_cluster_id(),
            "-c",
            str(self._props),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(
                f"formatting {self._data} failed:\n{(result.stdout + result.stderr)[-4000:]}"
            )

    def _wait_ready(self, port: int, deadline: float, log_start: int) -> None:
        assert self._proc is not None
        while True:
            if (code := self._proc.poll()) is not None:
                raise LocalKafkaError(
                    f"broker exited with code {code} during start-up; "
                    f"{self._log} ends with:\n{_tail(self._log, log_start)}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LocalKafkaError(
                    f"broker not ready on {self.bootstrap} in time; "
                    f"{self._log} ends with:\n{_tail(self._log, log_start)}"
                )
            # The port opens only once the broker can serve; probing it first keeps librdkafka
            # from logging connection-refused noise while the JVM boots.
            if _port_open(port) and _accepts_produce(self.bootstrap, min(remaining, 15)):
                return
            time.sleep(0.1)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self._is_our_broker(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def _is_our_broker(self, pid: int) -> bool:
        """Guards a stale pid file against PID reuse; a zombie (empty cmdline) counts as gone."""
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return b"kafka.Kafka" in args and os.fsencode(self._props) in args


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if java is None or not os.access(java, os.X_OK):
        raise LocalKafkaError("no java found (set JAVA_HOME or put java on PATH); Kafka needs 17+")
    return java


def _die_with_parent() -> None:
    # Runs in the forked child: PR_SET_PDEATHSIG fires when the *thread* that forked exits,
    # so start an attached broker from a long-lived thread (pytest's main thread is).
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _new_cluster_id() -> str:
    """Kafka's Uuid format (url-safe base64 of 16 random bytes), made without a JVM start."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka rejects ids that look like CLI flags
            return cluster_id


def _accepts_produce(bootstrap: str, timeout: float) -> bool:
    errors: list[KafkaError | None] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        errors.append(err)

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "message.timeout.ms": max(1000, int(timeout * 1000)),
        }
    )
    producer.produce("_ready", b"ready", on_delivery=on_delivery)
    producer.flush(timeout + 1)
    return errors == [None]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        # Java listens with SO_REUSEADDR too, so TIME_WAIT leftovers of a stopped broker's
        # connections must not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_ports(count: int, exclude: set[int]) -> list[int]:
    socks: list[socket.socket] = []
    try:
        # Hold every socket until all are picked so the kernel hands out distinct ports.
        while len(socks) < count:
            sock = socket.socket()
            sock.bind((HOST, 0))
            if sock.getsockname()[1] in exclude:
                sock.close()
                continue
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _port_open(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _read_properties(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {key.strip(): value.strip() for key, sep, value in pairs if sep and key[:1] != "#"}


def _tail(path: Path, start: int, lines: int = 40) -> str:
    try:
        with path.open("rb") as log:
            log.seek(start)
            text = log.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/kafka-local",
        description="Run a local Kafka broker in the background. "
        "status exits 0 when running, 3 when stopped.",
    )
    parser.add_argument("command", choices=["fetch", "start", "stop", "status"])
    parser.add_argument(
        "--dir", type=Path, default=REPO_ROOT / ".kafka" / "run", help="broker workdir"
    )
    parser.add_argument("--port", type=int, help="broker port (default: a free one)")
    args = parser.parse_args(argv)

    if args.command == "fetch":
        print(ensure_jars())
        return 0
    kafka = LocalKafka(args.dir, args.port, detached=True)
    try:
        if args.command == "start":
            if not kafka.is_running():
                kafka.start()
            print(kafka.bootstrap)
        elif args.command == "stop":
            kafka.stop()
            print("stopped")
        elif kafka.is_running():
            print(f"running {kafka.bootstrap} pid {kafka.pid}")
        else:
            print("stopped")
            return 3
    except LocalKafkaError as exc:
        print(f"kafka-local: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
