"""The local Kafka broker tooling against a real broker."""

import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from feedhandler.testing.kafka import REPO_ROOT, LocalKafka


def _topic() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def _produce(producer: Producer, topic: str, values: list[bytes]) -> None:
    errors: list[KafkaError | None] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        errors.append(err)

    for value in values:
        producer.produce(topic, value, on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert errors == [None] * len(values)


def _consume(bootstrap: str, topic: str, count: int, timeout: float = 30) -> list[bytes]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            value = msg.value()
            assert value is not None
            values.append(value)
    finally:
        consumer.close()
    return values


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie waiting for init to reap it runs nothing


def test_produce_then_consume_exact_values(kafka_bootstrap: str) -> None:
    topic = _topic()
    values = [f"msg-{i}".encode() for i in range(500)]
    _produce(Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all"}), topic, values)
    assert _consume(kafka_bootstrap, topic, len(values)) == values


def test_restart_keeps_data_bootstrap_and_producers(kafka_broker: LocalKafka) -> None:
    bootstrap = kafka_broker.bootstrap
    old_pid = kafka_broker.pid
    assert old_pid is not None
    topic = _topic()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    _produce(producer, topic, [b"before"])

    assert kafka_broker.restart() == bootstrap
    assert not _alive(old_pid)
    assert kafka_broker.is_running()
    assert kafka_broker.pid != old_pid

    _produce(producer, topic, [b"after"])  # a long-lived producer just reconnects
    assert _consume(bootstrap, topic, 2) == [b"before", b"after"]


def test_cli_start_detaches_and_stop_leaves_no_process(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(REPO_ROOT / "scripts" / "kafka-local"), *args, "--dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    start = cli("start")
    assert start.returncode == 0, start.stderr
    bootstrap = start.stdout.strip()
    assert (tmp_path / "bootstrap").read_text().strip() == bootstrap
    pid = int((tmp_path / "pid").read_text())
    try:
        assert _alive(pid)  # outlived the CLI process that started it
        status = cli("status")
        assert (status.returncode, status.stdout.split()[:2]) == (0, ["running", bootstrap])
        _produce(Producer({"bootstrap.servers": bootstrap}), _topic(), [b"x"])
    finally:
        stop = cli("stop")
    assert stop.returncode == 0, stop.stderr
    assert not _alive(pid)
    assert not LocalKafka(tmp_path).is_running()
    status = cli("status")
    assert (status.returncode, status.stdout.strip()) == (3, "stopped")
