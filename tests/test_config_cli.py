"""`feedhandler config check|show|schema` and bad configurations through the real CLI: every
mistake is one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from feedhandler.contract import ENCODINGS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
GOOD = "url: wss://stream.binance.com:9443\nstreams: [btcusdt@trade]\n"


def feedhandler(*args: str, env: dict[str, str] | None = None,
                cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    # only what Python needs: no stray FEEDHANDLER_* of the caller
    base = {k: v for k, v in os.environ.items() if not k.startswith("FEEDHANDLER_")}
    return subprocess.run([sys.executable, "-m", "feedhandler", *args], capture_output=True,
                          text=True, timeout=60, env={**base, **(env or {})}, cwd=cwd)


@pytest.mark.parametrize("name", ["binance.yaml", "simulator.yaml"])
def test_example_configs_check_ok(name: str) -> None:
    result = feedhandler("config", "check", str(EXAMPLES / name))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{EXAMPLES / name}: OK (")
    assert result.stderr == ""


SECRET_FILE = "/nonexistent/feedhandler-secret"
BINARY_SECRET = sys.executable  # a file that is there and is not text

# (file text, environment, what the one line must say)
BAD: list[tuple[str, dict[str, str], str]] = [
    ("url: a: b\n", {}, "c.yaml:1:7: YAML syntax error: mapping values are not allowed here"),
    ("streams: [a\n", {}, "c.yaml:2:1: YAML syntax error: expected ',' or ']'"),
    ("\tkafka: 1\n", {}, "c.yaml:1:1: YAML syntax error: found character '\\t' that cannot"),
    ("kafka:\n  bootstrap: a\n bad: 1\n", {}, "c.yaml:3:2: YAML syntax error:"),
    ("- a\n- b\n", {}, "c.yaml: the top level must be a mapping of keys, not list"),
    ("kafka:\n  producer: {1: 2}\n", {}, "c.yaml:2: key kafka.producer.1 must be text"),
    (GOOD + "streams: [x@trade]\n", {}, "c.yaml:3: duplicate key streams (first at "),
    ("kafka: {bootstrapp: x}\n", {},
     "unknown key kafka.bootstrapp (c.yaml:1); did you mean kafka.bootstrap?"),
    ("batch: {rows: 2.9}\n", {}, 'batch.rows: expected an integer, got 2.9 (c.yaml:1)'),
    ("batch: {rows: -5}\n", {}, "batch.rows: must be >= 1, got -5 (c.yaml:1)"),
    ("batch: 5\n", {}, "batch: expected a mapping, got 5 (c.yaml:1)"),
    ("batch: {per_kind: {trades: {rows: 1}}}\n", {}, "batch.per_kind.trades: unknown kind;"),
    ("kafka: {bootstrap: ''}\n", {},
     'kafka.bootstrap: expected host:port[,host:port...], got "" (c.yaml:1)'),
    ("kafka: {create_topics: yes}\n", {},
     'kafka.create_topics: expected true or false, got "yes" (c.yaml:1)'),
    ("kafka: {partitions: 0}\n", {}, "kafka.partitions: must be -1 (broker default) or >= 1"),
    ("kafka: {compression: brotli}\n", {},
     "kafka.compression: expected '', 'none', 'gzip', 'snappy', 'lz4' or 'zstd', got \"brotli\""),
    ("sink: file\n", {}, "sink: expected 'kafka' or 'null', got \"file\" (c.yaml:1)"),
    ("sink: null\n", {}, 'sink: expected \'kafka\' or \'null\' (in YAML write the null sink as '
     'sink: "null"), got null (c.yaml:1)'),
    ("kafka: {encoding: raw}\nbook: {snapshots: true}\n", {},
     "book.snapshots: not with kafka.encoding: raw (a message of that encoding carries "
     "exchange frames; snapshots and books are records), got true (c.yaml:2)"),
    ("streams: btcusdt@depth,ethusdt@depth@100ms,ethusdt@trade\n"
     "book: {snapshots: true, refresh_s: 1, snapshot_limit: 5000}\n", {},
     "book.refresh_s: must be at least 11: 2 symbols' snapshots of weight 250 each, 12 in each "
     "61 s window (refreshes get half of wsapi.weight_limit 6000; the other half is the "
     "resyncs'), got 1 (c.yaml:2)"),
    ("streams: btcusdt@depth5,ethusdt@trade\nbook: {snapshots: true}\n", {},
     "book.snapshots: no diff-depth stream (`<symbol>@depth`, `@depth@100ms`) in the streams: "
     "snapshots and books follow those only (a partial depth stream, `@depth5` ..., is a whole "
     "book itself), got true (c.yaml:2)"),
    ("kafka: {encoding: raw, max_message_bytes: 4096}\n", {},
     "kafka.max_message_bytes: must be at least 987137 with kafka.encoding: raw, which never "
     "splits a frame (connection.max_frame_bytes 1048576), got 4096 (c.yaml:1)"),
    ("kafka: {encoding: raw, queue_mb: 1, max_message_bytes: 1040000}\n"
     "connection: {max_frame_bytes: 1100000}\n", {},
     "kafka.queue_mb: must be at least 2 with kafka.encoding: raw, which never splits a frame "
     "(connection.max_frame_bytes 1100000), got 1 (c.yaml:1)"),
    ("kafka: {encoding: raw, producer: {queue.buffering.max.kbytes: 1000}}\n", {},
     "kafka.producer.queue.buffering.max.kbytes: must be at least 1029 with kafka.encoding: "
     "raw, which never splits a frame (connection.max_frame_bytes 1048576), got 1000 "
     "(c.yaml:1)"),
    ("url: wss://stream.binance.com:9443/ws/btcusdt@trade\nconnection: {time_unit: us}\n", {},
     "connection.time_unit: must be ms, the url's timeUnit (none: milliseconds), which is used "
     'as it is, got "us" (c.yaml:2)'),
    ("url: wss://x:9443/stream?streams=btcusdt@trade&timeUnit=MICROSECOND\n", {},
     "connection.time_unit: must be us, the url's timeUnit (MICROSECOND), which is used as it "
     "is, got the default"),
    ("url: wss://x:9443/ws/btcusdt@trade/ethusdt@trade\nshard_count: 2\n", {},
     "shard_count: must be 1 with a url that names its streams (each replica would read them "
     "all: give the base URL), got 2 (c.yaml:2)"),
    ("url: wss://x:9443/ws/!miniTicker@arr\nkafka: {topic_template: 'x.{kind}.{symbol}'}\n", {},
     "kafka.topic_template: {symbol} with an all-market stream (!miniTicker@arr) would make a "
     "topic per symbol of the market"),
    ("streams: ['!miniTicker@arr']\nkafka: {topic_template: 'x.{kind}.{symbol}'}\n", {},
     "kafka.topic_template: {symbol} with an all-market stream (!miniTicker@arr) would make a "
     "topic per symbol of the market, which cannot be created or checked on start (give a "
     "template without {symbol}, or kafka.encoding: raw), got \"x.{kind}.{symbol}\" (c.yaml:2)"),
    (GOOD, {"FEEDHANDLER_WSAPI__API_KEY_FILE": "/nonexistent/key"},
     "wsapi.api_key_file: cannot read /nonexistent/key: No such file or directory, got "
     '"/nonexistent/key" (env FEEDHANDLER_WSAPI__API_KEY_FILE)'),
    ("url: http://example.com\n", {}, 'url: expected a ws:// or wss:// URL, got "http://'),
    ("health_port: 70000\n", {}, "health_port: must be <= 65535, got 70000"),
    ("connection: {backoff_initial_s: 5, backoff_max_s: 1}\n", {},
     "connection.backoff_max_s: must be >= backoff_initial_s (5.0), got 1 (c.yaml:1)"),
    # environment-only mistakes
    (GOOD, {"FEEDHANDLER_MAX_MESSAGES": "2.9"},
     "max_messages: expected an integer, got 2.9 (env FEEDHANDLER_MAX_MESSAGES)"),
    (GOOD, {"FEEDHANDLER_KAFKA__QUEUE_MB": "lots"},
     'kafka.queue_mb: expected an integer, got "lots" (env FEEDHANDLER_KAFKA__QUEUE_MB)'),
    (GOOD, {"FEEDHANDLER_KAFKA__BOOTSTRAP": ""},
     "kafka.bootstrap: expected host:port[,host:port...], got \"\" "
     "(env FEEDHANDLER_KAFKA__BOOTSTRAP)"),
    (GOOD, {"FEEDHANDLER_KAFKA__CREATE_TOPICS": "on"},
     'kafka.create_topics: expected true or false, got "on" '
     "(env FEEDHANDLER_KAFKA__CREATE_TOPICS)"),
    (GOOD, {"FEEDHANDLER_KAFKA__BOOTSRAP": "k:9092"},
     "env FEEDHANDLER_KAFKA__BOOTSRAP: names no configuration key; "
     "did you mean FEEDHANDLER_KAFKA__BOOTSTRAP?"),
    (GOOD, {"FEEDHANDLER_SHARD_INDEX": "2", "FEEDHANDLER_SHARD_COUNT": "2"},
     "shard_index: must be below shard_count (2), got 2 (env FEEDHANDLER_SHARD_INDEX)"),
    (GOOD, {"FEEDHANDLER_SHARD_INDEX": "1", "FEEDHANDLER_SHARD_COUNT": "2"},
     "shard_count: too many replicas for 1 stream: some would get none, got 2 "
     "(env FEEDHANDLER_SHARD_COUNT)"),
    # secrets: the value is never shown
    (GOOD + "kafka: {producer: {sasl.password: [hunter2]}}\n", {},
     'kafka.producer.sasl.password: expected a string or an integer or a number or true or '
     'false, got "***" (c.yaml:3)'),
    (GOOD + f"kafka: {{producer: {{sasl.password_file: {BINARY_SECRET}}}}}\n", {},
     f"kafka.producer.sasl.password_file: {BINARY_SECRET} is not UTF-8 text (c.yaml:3)"),
    (GOOD + f"kafka: {{producer: {{sasl.password_file: {SECRET_FILE}}}}}\n", {},
     f"kafka.producer.sasl.password_file: cannot read {SECRET_FILE}: No such file or "
     "directory (c.yaml:3)"),
    (GOOD, {"FEEDHANDLER_KAFKA__PRODUCER": "sasl.password=hunter2"},
     'kafka.producer: expected a mapping, got "***" (env FEEDHANDLER_KAFKA__PRODUCER)'),
    (GOOD + "kafka: {producer: {sasl.pasword: [hunter2]}}\n", {},
     'kafka.producer.sasl.pasword: expected a string or an integer or a number or true or '
     'false, got "***" (c.yaml:3)'),
    (GOOD, {"FEEDHANDLER_KAFKA__PRODUCER__SASL_PASSWORD": "hunter2",
            "FEEDHANDLER_KAFKA__PRODUCER__SASL_PASSWORD_FILE": SECRET_FILE},
     "kafka.producer.sasl.password and sasl.password_file: give one, not both"),
    # what librdkafka refuses, as `run` would, with nothing connected
    (GOOD + "sink: kafka\nkafka: {producer: {security.protocol: SASL_SSL, "
            "sasl.mechanism: BOGUS}}\n", {},
     "kafka.producer: Failed to create producer: Unsupported SASL mechanism: BOGUS"),
    (GOOD + "sink: kafka\n", {"FEEDHANDLER_KAFKA__PRODUCER__SASL_PASWORD": "hunter2"},
     'kafka.producer: No such configuration property: "sasl.pasword"'),
]


@pytest.mark.slow  # a process each
@pytest.mark.parametrize(("text", "env", "message"), BAD, ids=[f"{i}" for i in range(len(BAD))])
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, text: str, env: dict[str, str],
                                           message: str) -> None:
    (tmp_path / "c.yaml").write_text(text)
    result = feedhandler("config", "check", "c.yaml", env=env, cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("feedhandler config: ")
    assert message in result.stderr
    assert "hunter2" not in result.stderr


def test_run_reports_bad_flags_and_environment_the_same_way(tmp_path: Path) -> None:
    result = feedhandler("run", "--sink", "null", "--batch-rows", "2.9")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("feedhandler run: configuration error: batch.rows: expected an "
                             "integer, got 2.9 (flag --batch-rows)\n")
    result = feedhandler("run", "--sink", "null", env={"FEEDHANDLER_HEALTH_PORT": "http"})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        'feedhandler run: configuration error: health_port: expected an integer, got "http" '
        "(env FEEDHANDLER_HEALTH_PORT)"]
    result = feedhandler("run", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "missing.yaml: cannot read" in result.stderr
    # a name librdkafka does not know: refused when the Kafka sink makes its first client
    result = feedhandler("run", "--kafka-bootstrap", "127.0.0.1:1", env={
        "FEEDHANDLER_KAFKA__PRODUCER__SASL_PASWORD": "hunter2"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (  # after the start's info line
        'feedhandler run: configuration error: kafka.producer: No such configuration property: '
        '"sasl.pasword"')


SERVICE_LINKS = {  # what Kubernetes injects for Services named feedhandler, feedhandler-health...
    "FEEDHANDLER_SERVICE_HOST": "10.0.0.7", "FEEDHANDLER_SERVICE_PORT": "8080",
    "FEEDHANDLER_PORT": "tcp://10.0.0.7:8080", "FEEDHANDLER_PORT_8080_TCP": "tcp://10.0.0.7:8080",
    "FEEDHANDLER_PORT_8080_TCP_ADDR": "10.0.0.7", "FEEDHANDLER_PORT_8080_TCP_PROTO": "tcp",
    "FEEDHANDLER_HEALTH_SERVICE_HOST": "10.0.0.8", "FEEDHANDLER_HEALTH_PORT": "tcp://10.0.0.8:80",
    "FEEDHANDLER_KAFKA__X_SERVICE_PORT_HTTP": "80",
}


def test_kubernetes_service_links_never_break_a_pod() -> None:
    result = feedhandler("config", "show", str(EXAMPLES / "binance.yaml"), "--json",
                         env=SERVICE_LINKS)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    # FEEDHANDLER_HEALTH_PORT=tcp://... is the link of a Service `feedhandler-health`
    assert shown["health_port"] == {"value": 8080, "source": f"{EXAMPLES / 'binance.yaml'}:17"}
    assert shown["kafka.bootstrap"]["source"].endswith("binance.yaml:19")


def test_show_redacts_secrets_and_names_sources(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cr3t-from-file\n")
    (tmp_path / "c.yaml").write_text(
        GOOD + f"kafka:\n  producer:\n    sasl.username: fh\n    sasl.password_file: {secret}\n")
    env = {"FEEDHANDLER_KAFKA__PRODUCER__SSL_KEY_PASSWORD": "hunter2",
           "FEEDHANDLER_BATCH__ROWS": "100"}
    result = feedhandler("config", "show", "c.yaml", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line.split(None, 1)[1] for line in result.stdout.splitlines()
             if not line.startswith("#")}
    assert lines["url"] == '"wss://stream.binance.com:9443"  # c.yaml:1'
    assert lines["batch.rows"] == "100  # env FEEDHANDLER_BATCH__ROWS"
    assert lines["batch.linger_ms"] == "5.0  # default"
    assert lines["kafka.producer.sasl.username"] == '"fh"  # c.yaml:5'
    assert lines["kafka.producer.sasl.password"] == f'"***"  # file {secret} (c.yaml:6)'
    assert lines["kafka.producer.ssl.key.password"] == \
        '"***"  # env FEEDHANDLER_KAFKA__PRODUCER__SSL_KEY_PASSWORD'
    assert "s3cr3t" not in result.stdout and "hunter2" not in result.stdout


def test_schema_is_json_schema_of_every_section() -> None:
    result = feedhandler("config", "schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) >= {"url", "streams", "kafka", "batch", "connection"}
    kafka = schema["$defs"]["KafkaConfig"]["properties"]
    assert kafka["encoding"]["enum"] == list(ENCODINGS)
    assert kafka["queue_mb"]["minimum"] == 1
    assert kafka["bootstrap"]["description"].startswith("bootstrap servers")
