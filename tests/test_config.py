"""The handler's config model: layering, types and ranges, sources, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedhandler.config import ConfigError, HandlerConfig, load_config, load_config_with_origins


def test_file_env_and_flags_layer_in_that_order(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("url: ws://a\nstreams: [x@trade]\nkafka: {bootstrap: 'f:1', encoding: json}\n")
    env = {"FEEDHANDLER_KAFKA__BOOTSTRAP": "e:2", "FEEDHANDLER_MAX_MESSAGES": "7"}
    config, origins = load_config_with_origins(
        path, {"kafka.bootstrap": "flag:3", "url": None}, environ=env,
        flag_names={"kafka.bootstrap": "--kafka-bootstrap"})
    assert config.url == "ws://a"  # a None flag does not override
    assert config.kafka.bootstrap == "flag:3"
    assert config.kafka.encoding == "json"
    assert config.max_messages == 7
    assert config.streams == ["x@trade"]
    assert origins.source(("url",)) == f"{path}:1"
    assert origins.source(("kafka", "encoding")) == f"{path}:3"
    assert origins.source(("kafka", "bootstrap")) == "flag --kafka-bootstrap"
    assert origins.source(("max_messages",)) == "env FEEDHANDLER_MAX_MESSAGES"
    assert origins.source(("kafka", "linger_ms")) == "default"


def test_health_endpoints_are_off_by_default_and_set_by_env_or_flag() -> None:
    default = load_config(None, environ={})
    assert (default.health_port, default.health_host) == (0, "0.0.0.0")
    env = {"FEEDHANDLER_HEALTH_PORT": "9100", "FEEDHANDLER_HEALTH_HOST": "127.0.0.1"}
    assert load_config(None, environ=env).health_port == 9100
    config = load_config(None, {"health_port": 9200}, environ=env)
    assert (config.health_port, config.health_host) == (9200, "127.0.0.1")


def test_text_values_take_the_type_of_their_key() -> None:
    config = load_config(None, {"streams": "a@trade, b@bookTicker", "batch.linger_ms": "2.5",
                                "kafka.create_topics": "false", "instance": "123"},
                         environ={"FEEDHANDLER_KAFKA__TOPIC_CONFIG__RETENTION_MS": "600000",
                                  "FEEDHANDLER_KAFKA__PRODUCER__SASL_PASSWORD": "0123"})
    assert config.streams == ["a@trade", "b@bookTicker"]
    assert config.batch.linger_ms == 2.5
    assert config.kafka.create_topics is False
    assert config.instance == "123"  # a text key keeps its text
    # mapping entries from the environment: dotted librdkafka/topic names, values as given
    assert config.kafka.topic_config == {"retention.ms": "600000"}
    assert config.kafka.producer == {"sasl.password": "0123"}


def test_yaml_booleans_are_only_true_and_false(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("instance: no\nkafka: {create_topics: false, market: on}\n")
    config = load_config(path, environ={})
    assert (config.instance, config.kafka.market, config.kafka.create_topics) == \
        ("no", "on", False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"max_mesages": 3}, "unknown key max_mesages (override max_mesages); "
                             "did you mean max_messages?"),
        # an unknown section is named with where a key under it came from
        ({"foo.bar": 1}, "unknown key foo (override foo.bar)"),
        ({"batch.linger_ms": -1}, "batch.linger_ms: must be >= 0.0, got -1"),
        ({"kafka.topic_template": "{exchange}.{kinds}"},
         "kafka.topic_template: bad topic template ('kinds'); placeholders: {exchange}, "
         "{market}, {kind}, {symbol}, got \"{exchange}.{kinds}\""),
        ({"streams": ""}, 'streams: expected at least 1 item(s), got ""'),
        ({"streams": ["a@trade", ""]}, 'streams.1: expected a non-empty string, got ""'),
        ({"connection.streams_per_connection": "2000"},
         "connection.streams_per_connection: must be <= 1024, got 2000"),
        ({"duration_s": float("inf")}, "duration_s: expected a finite number"),
        ({"batch.rows": True}, "batch.rows: expected an integer, got true"),
        ({"kafka.bootstrap": "a:1, ,b:2"}, "kafka.bootstrap: expected host:port[,host:port"),
        ({"connection.redundancy": 3}, "connection.redundancy: "),
        ({"connection.url_b": "ws://b:9443"}, "connection.url_b: needs redundancy: 2"),
        ({"connection.redundancy": 2, "connection.url_b": "ws://b:9443/ws"},
         "connection.url_b: expected ws(s)://host[:port] with no path"),
        ({"batch.per_kind": {"trade": {"linger_ms": "x"}}},
         'batch.per_kind.trade.linger_ms: expected a number, got "x"'),
        ({"book.publish": True}, "book.publish: needs book.snapshots: true"),
        ({"book.snapshots": True, "book.publish": True, "book.max_levels": 5},
         "book.max_levels: must be 0 or >= 2 x top_n (40), got 5"),
        ({"book.snapshots": True, "book.publish": True, "book.snapshot_limit": 39},
         "book.snapshot_limit: must be >= 2 x top_n (40) with publish"),
        ({"book.top_n": 21}, "book.top_n: must be <= 20, got 21"),
        ({"book.snapshots": True, "wsapi.weight_limit": 200},
         "wsapi.weight_limit: must be at least 250, the weight of a book.snapshot_limit 5000 "
         "snapshot, got 200"),
        ({"universe.kinds": ["trade", "depth5", "depth20@100ms"]},
         "universe.kinds: depth5 and depth20@100ms both carry depthPartial ids of a symbol, "
         "which would interleave: take one of them"),
        ({"universe.kinds": ["trade"], "wsapi.weight_limit": 10},
         "wsapi.weight_limit: must be at least 20, the weight of exchangeInfo (universe)"),
        # requests to Binance's production while the streams come from elsewhere would mix
        # two markets
        ({"url": "ws://127.0.0.1:9", "universe.kinds": ["trade"]},
         "wsapi.url: must be the WebSocket API of the exchange url is on (ws://127.0.0.1:9; "
         "the simulator's: ws://HOST:PORT/ws-api/v3), not Binance's, got the default"),
        ({"url": "ws://127.0.0.1:9", "streams": "btcusdt@depth", "book.snapshots": True,
          "book.snapshot_source": "rest"},
         "book.rest_url: must be the REST API of the exchange url is on (ws://127.0.0.1:9), "
         "not Binance's"),
        ({"url": "wss://fstream.binance.com/stream"},
         "url: Binance futures is not supported (Spot only)"),
        ({"url": "wss://fstream-mm.binance.com/stream"}, "url: Binance futures is not supported"),
        ({"wsapi.url": "wss://ws-fapi.binance.com/ws-fapi/v1"},
         "wsapi.url: Binance futures is not supported"),
        ({"connection.redundancy": 2, "connection.url_b": "wss://dstream.binance.com"},
         "connection.url_b: Binance futures is not supported"),
    ],
)
def test_bad_values_name_key_value_and_source(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, overrides, environ={})
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_several_problems_are_counted_on_the_one_line() -> None:
    with pytest.raises(ConfigError, match=r"^sink: .* \(and 1 more problem\(s\)\)$"):
        load_config(None, {"batch.rows": 0, "sink": "x"}, environ={})


def test_secret_entries_come_from_files_and_are_redacted(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cr3t\n")
    config = load_config(None, {"kafka.producer": {"sasl.username": "fh",
                                                   "sasl.password_file": str(tmp_path / "pw")}},
                         environ={})
    assert config.kafka.producer == {"sasl.username": "fh", "sasl.password": "s3cr3t"}
    for text in (repr(config), str(config), repr(config.kafka)):
        assert "s3cr3t" not in text and "'sasl.password': '***'" in text
        assert "'sasl.username': 'fh'" in text


def test_a_secret_nested_where_a_value_belongs_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("kafka:\n  producer:\n    sasl: {username: fh, password: hunter2}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert "hunter2" not in str(caught.value)
    assert '{"username": "fh", "password": "***"}' in str(caught.value)


def test_every_librdkafka_secret_name_is_redacted() -> None:
    name = "sasl.oauthbearer.assertion.private.key.passphrase"
    config = load_config(None, {"kafka.producer": {name: "hunter2"}}, environ={})
    assert "hunter2" not in repr(config) and f"'{name}': '***'" in repr(config)


def test_model_defaults_are_valid_and_constructors_keep_working() -> None:
    assert HandlerConfig().kafka.bootstrap == "127.0.0.1:9092"
    assert HandlerConfig.model_validate({}) == load_config(None, environ={})


def test_a_secret_written_in_the_file_is_warned_about(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("kafka:\n  producer:\n    sasl.password: hunter2\n")
    assert load_config(path, environ={}).kafka.producer["sasl.password"] == "hunter2"
    assert caplog.messages == [
        f"kafka.producer.sasl.password is written in {path}:3: keep secrets out of config files "
        "(use sasl.password_file or FEEDHANDLER_KAFKA__PRODUCER__SASL_PASSWORD)"]


def test_universe_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("universe:\n  kinds: [trade, depth@100ms]\n  symbols: all\n"
                    "  permissions: [SPOT]\n")
    config = load_config(path, environ={"FEEDHANDLER_UNIVERSE__QUOTE_ASSETS": "USDT,FDUSD",
                                        "FEEDHANDLER_UNIVERSE__REFRESH_S": "30"})
    universe = config.universe
    assert (universe.kinds, universe.symbols, universe.quote_assets, universe.permissions,
            universe.refresh_s, universe.check_precision) == \
        (["trade", "depth@100ms"], "all", ["USDT", "FDUSD"], ["SPOT"], 30.0, True)
    listed = load_config(path, {"universe.symbols": "btcusdt, ETHusdt"}, environ={})
    assert listed.universe.symbols == ["BTCUSDT", "ETHUSDT"]
    assert load_config(None, environ={}).universe.kinds == []  # off by default: `streams`


@pytest.mark.parametrize(("overrides", "line"), [
    ({"streams": "btcusdt@trade"},
     "streams: not with universe.kinds: the universe makes the streams (set one or the other), "
     'got "btcusdt@trade" (override streams)'),
    ({"url": "ws://h:1/ws/btcusdt@trade"},
     "url: names its streams: not with universe.kinds (give the base URL), got "
     '"ws://h:1/ws/btcusdt@trade" (override url)'),
    ({"shard_count": 2},
     "shard_count: must be 1 with universe.kinds (the universe follows listings live), got 2 "
     "(override shard_count)"),
    ({"connection.redundancy": 2},
     "connection.redundancy: must be 1 with universe.kinds (listings follow by live "
     "subscriptions, one leg each), got 2 (override connection.redundancy)"),
    ({"universe.kinds": "trade,!miniTicker@arr"},
     "universe.kinds: not a per-symbol stream suffix: '!miniTicker@arr' (e.g. trade, "
     'bookTicker, depth@100ms, kline_1m), got "trade,!miniTicker@arr" (override '
     "universe.kinds)"),
    ({"universe.symbols": "btc-usdt"},
     "universe.symbols: expected `all` or symbols; 'btc-usdt' is not a symbol, got "
     '"btc-usdt" (override universe.symbols)'),
    ({"universe.refresh_s": -1},
     "universe.refresh_s: must be >= 0.0, got -1 (override universe.refresh_s)"),
])
def test_a_bad_universe_fails_on_one_line(overrides: dict[str, object], line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, {"universe.kinds": "trade", **overrides}, environ={})
    assert str(caught.value) == line


def test_streams_a_url_names_count_for_the_book_checks() -> None:
    url = "wss://stream.binance.com:9443/stream?streams=" + "/".join(
        f"s{i}usdt@depth" for i in range(200))
    load_config(None, {"url": url, "book.snapshots": True}, environ={})  # (diffs: in the URL)
    with pytest.raises(ConfigError, match=r"book\.refresh_s: must be at least 1017: 200 "):
        load_config(None, {"url": url, "book.snapshots": True, "book.refresh_s": 1},
                    environ={})
