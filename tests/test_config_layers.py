"""The layering machinery on a small model: secrets from files, redaction, schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from feedhandler.config_layers import (
    ConfigError,
    Secret,
    Section,
    describe,
    json_schema,
    load,
    read_yaml,
)


class Api(Section):
    key: str = ""
    """API key name"""
    secret: Secret = ""
    """the API secret"""


class Root(Section):
    api: Api = Field(default_factory=Api)
    port: int = 1


def test_secret_fields_come_from_env_or_a_file_and_are_redacted(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-file\n")
    (tmp_path / "c.yaml").write_text(f"api:\n  key: k1\n  secret_file: {tmp_path / 'secret'}\n")
    config, origins = load(Root, tmp_path / "c.yaml", environ={})
    assert config.api.secret == "from-file"
    assert origins.source(("api", "secret")) == f"file {tmp_path / 'secret'} ({tmp_path}/c.yaml:3)"
    assert repr(config.api) == "Api(key='k1', secret='***')"
    assert ("api.secret", '"***"', origins.source(("api", "secret"))) in describe(config, origins)
    config, _ = load(Root, None, environ={"FEEDHANDLER_API__SECRET": "from-env"})
    assert config.api.secret == "from-env" and "from-env" not in str(config)
    config, _ = load(Root, None, environ={"FEEDHANDLER_API__SECRET_FILE": str(tmp_path / "secret")})
    assert config.api.secret == "from-file"


def test_a_bad_secret_is_never_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load(Root, None, {"api.secret": ["hunter2"]}, environ={})
    assert str(caught.value) == 'api.secret: expected a string, got "***" (override api.secret)'


def test_schema_offers_the_file_form_of_secrets() -> None:
    api = json_schema(Root)["$defs"]["Api"]["properties"]
    assert api["secret"]["description"] == "the API secret"
    assert api["secret_file"] == {"type": "string", "description": "file holding secret (a secret)"}


def test_yaml_keys_know_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("# comment\napi:\n  key: a\n\nport: 2\n")
    data, lines = read_yaml(path)
    assert data == {"api": {"key": "a"}, "port": 2}
    assert lines == {("api",): f"{path}:2", ("api", "key"): f"{path}:3", ("port",): f"{path}:5"}
    path.write_text("")
    assert read_yaml(path) == ({}, {})
