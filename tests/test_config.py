from __future__ import annotations

from pathlib import Path

import pytest

from feedhandler.config import ConfigError, load_config


def test_file_env_and_flags_layer_in_that_order(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("url: ws://a\nstreams: [x@trade]\nkafka: {bootstrap: 'f:1', encoding: json}\n")
    env = {"FEEDHANDLER_KAFKA__BOOTSTRAP": "e:2", "FEEDHANDLER_MAX_MESSAGES": "7"}
    config = load_config(path, {"kafka.bootstrap": "flag:3", "url": None}, environ=env)
    assert config.url == "ws://a"  # a None flag does not override
    assert config.kafka.bootstrap == "flag:3"
    assert config.kafka.encoding == "json"
    assert config.max_messages == 7
    assert config.streams == ["x@trade"]


def test_health_endpoints_are_off_by_default_and_set_by_env_or_flag() -> None:
    default = load_config(None, environ={})
    assert (default.health_port, default.health_host) == (0, "0.0.0.0")
    env = {"FEEDHANDLER_HEALTH_PORT": "9100", "FEEDHANDLER_HEALTH_HOST": "127.0.0.1"}
    assert load_config(None, environ=env).health_port == 9100
    config = load_config(None, {"health_port": 9200}, environ=env)
    assert (config.health_port, config.health_host) == (9200, "127.0.0.1")


def test_comma_separated_streams_from_flags() -> None:
    config = load_config(None, {"streams": "a@trade, b@bookTicker"}, environ={})
    assert config.streams == ["a@trade", "b@bookTicker"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kafka: {bootstrapp: x}", "unknown key kafka.bootstrapp"),
        ("max_messages: lots", "max_messages: expected int"),
        ("sink: file", "sink: must be kafka or null"),
        ("connection: {streams_per_connection: 2000}", "streams_per_connection"),
        ("shard_index: 2\nshard_count: 2", "shard_index"),
        ("batch: 5", "batch: expected a mapping"),
        ("health_port: 70000", "health_port: must be within 0..65535"),
        ("health_port: http", "health_port: expected int"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})
