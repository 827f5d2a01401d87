"""Layered configuration for pydantic models: YAML file < FEEDHANDLER_* environment < flags.

Every value remembers where it came from (`file.yaml:12`, `env FEEDHANDLER_X`, `flag --x`), so
that a bad one fails with ONE line naming the key, the value, its source and what was expected.
Secrets (`Secret` fields, and secret-named entries of `SecretEntries` mappings such as librdkafka's
`sasl.password`) may come from a file named by `<key>_file`, and are redacted in reprs, errors and
`describe()`.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from typing_extensions import is_typeddict

ENV_PREFIX = "FEEDHANDLER_"
REDACTED = "***"
KeyPath = tuple[str, ...]
M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A bad configuration, explained in one line."""


class Invalid(ValueError):
    """Raised by a section's validator about one of its keys (`key`, relative to the section;
    dotted for a key of a nested section; a tuple of path parts when a part holds a dot, as
    librdkafka's names do)."""

    def __init__(self, key: str | tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.key = key


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


SECRET = _Marker("SECRET")
SECRET_ENTRIES = _Marker("SECRET_ENTRIES")
Secret = Annotated[str, SECRET]  # also `<key>_file`; redacted everywhere
Scalar = str | int | float | bool
# librdkafka-style settings; entries whose name looks secret are redacted, `<name>_file` reads one
SecretEntries = Annotated[dict[str, Scalar], SECRET_ENTRIES]
# (not only "password": a misspelt `sasl.pasword` is still redacted where it is refused)
_SECRET_NAME = re.compile(
    r"pass|pasw|secret|key\.pem|oauthbearer\.config|jaas", re.I)
# Kubernetes service links: <SERVICE>_SERVICE_HOST, <SERVICE>_PORT_8080_TCP_ADDR, ...
_SERVICE_LINK_NAME = re.compile(
    r"_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$")
_SERVICE_LINK_VALUE = re.compile(r"^(tcp|udp|sctp)://[^/\s]+:\d+$")


class Section(BaseModel):
    """Base of every config section: strict types, unknown keys rejected, docstrings as help,
    secrets redacted in repr/str."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False,
                              use_attribute_docstrings=True)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        fields = type(self).model_fields
        for name, value in super().__repr_args__():
            field = fields.get(name or "")
            yield name, value if field is None else _redact(field, value)


def secret_entry(name: str) -> bool:
    """Whether a librdkafka-style entry (`kafka.producer`) holds a secret."""
    return bool(_SECRET_NAME.search(name)) and not name.endswith("_file")


def _redact(field: FieldInfo, value: Any) -> Any:
    if SECRET in field.metadata:
        return REDACTED if value else value
    if SECRET_ENTRIES in field.metadata:
        return {k: REDACTED if secret_entry(k) else v for k, v in value.items()}
    return value


# --- YAML: YAML 1.2 booleans, line numbers, duplicate keys ----------------------------------
class _Loader(yaml.SafeLoader):
    """Only `true`/`false` are booleans: `yes`/`no`/`on`/`off` stay strings (Norway keeps `NO`)."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def read_yaml(path: str | Path) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    """The file's mapping and `file:line` of every key in it."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = {} if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not "
                          f"{type(data).__name__}")
    lines: dict[KeyPath, str] = {}
    _key_lines(node, (), str(path), lines)
    return data, lines


def _key_lines(node: yaml.Node | None, prefix: KeyPath, path: str,
               lines: dict[KeyPath, str]) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    for key_node, value_node in node.value:
        key = (*prefix, str(key_node.value))
        where = f"{path}:{key_node.start_mark.line + 1}"
        if key_node.tag != "tag:yaml.org,2002:str":
            raise ConfigError(f"{where}: key {'.'.join(key)} must be text (quote it)")
        if key in lines:
            raise ConfigError(f"{where}: duplicate key {'.'.join(key)} (first at {lines[key]})")
        lines[key] = where
        _key_lines(value_node, key, path, lines)


# --- the model's shape ----------------------------------------------------------------------
def _fields(tp: Any) -> dict[str, Any] | None:
    """Keys of a section (model or TypedDict) -> their annotations; None if not a section."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return {name: f for name, f in tp.model_fields.items()}
    return get_type_hints(tp, include_extras=True) if is_typeddict(tp) else None


def _annotation(entry: Any) -> Any:
    return entry.annotation if isinstance(entry, FieldInfo) else entry


def _metadata(entry: Any) -> list[Any]:
    if isinstance(entry, FieldInfo):
        return list(entry.metadata)
    return list(get_args(entry)[1:]) if get_origin(entry) is Annotated else []


def _strip(tp: Any) -> Any:
    return get_args(tp)[0] if get_origin(tp) is Annotated else tp


def _lookup(model: type[BaseModel], path: KeyPath) -> tuple[Any, Any] | None:
    """(field entry, parent entry) at `path`; mapping entries resolve to the value type."""
    entry: Any = None
    parent: Any = None
    tp: Any = model
    for key in path:
        fields = _fields(tp)
        parent = entry
        if fields is not None:
            if key not in fields:
                return None
            entry = fields[key]
        elif get_origin(tp) is dict:
            entry = get_args(tp)[1]
        else:
            return None
        tp = _strip(_annotation(entry))
    return entry, parent


def _section(model: type[BaseModel], path: KeyPath) -> Any:
    """The type at `path` (the model itself at ())."""
    if not path:
        return model
    found = _lookup(model, path)
    return None if found is None else _strip(_annotation(found[0]))


def _accepts_text(tp: Any) -> bool:
    tp = _strip(tp)
    if tp is str:
        return True
    origin = get_origin(tp)
    if origin is Literal:
        return all(isinstance(a, str) for a in get_args(tp))
    if origin in (Union, UnionType):
        return any(_accepts_text(a) for a in get_args(tp))
    return False


def is_secret(model: type[BaseModel], path: KeyPath) -> bool:
    found = _lookup(model, path)
    if found is None:
        return False
    entry, parent = found
    return SECRET in _metadata(entry) or (
        parent is not None and SECRET_ENTRIES in _metadata(parent) and secret_entry(path[-1]))


def _typed(model: type[BaseModel], path: KeyPath, raw: str) -> Any:
    """A text value (env, flag) as the key's type: text for text keys, else read as YAML
    (`8`, `2.9`, `true`, `[a, b]`), so that `2.9` for an integer fails instead of becoming 2."""
    found = _lookup(model, path)
    if found is None or not raw.strip() or _accepts_text(_annotation(found[0])):
        return raw
    try:
        return yaml.load(raw, _Loader)  # a SafeLoader
    except yaml.YAMLError:
        return raw


def _walk(model: Any, prefix: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    for name, entry in (_fields(model) or {}).items():
        path = (*prefix, name)
        yield path, entry
        yield from _walk(_strip(_annotation(entry)), path)


def env_name(path: KeyPath) -> str:
    """The variable of a key or of a mapping entry (`sasl.password` -> `SASL_PASSWORD`)."""
    return ENV_PREFIX + "__".join(k.replace(".", "_") for k in path).upper()


# --- layering -------------------------------------------------------------------------------
class Origins:
    """Where each value came from: key path -> source text (absent: the default)."""

    def __init__(self) -> None:
        self.sources: dict[KeyPath, str] = {}
        self.ignored_env: list[str] = []  # FEEDHANDLER_* variables that name no key

    def source(self, path: KeyPath) -> str:
        while path and path[-1].isdigit():  # an item of a list is from where the list is
            path = path[:-1]
        if path in self.sources:
            return self.sources[path]
        # an unknown section is from where a key under it was given
        return next((source for key, source in self.sources.items()
                     if key[:len(path)] == path), "default")


def _set(data: dict[str, Any], origins: Origins, path: KeyPath, value: Any,
         source: str) -> None:
    node = data
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    for known in [p for p in origins.sources if p[:len(path)] == path]:
        del origins.sources[known]
    origins.sources[path] = source
    if isinstance(value, dict) and value:
        if not isinstance(node.get(path[-1]), dict):
            node[path[-1]] = {}
        for key, item in value.items():  # mappings merge, key by key
            _set(data, origins, (*path, str(key)), item, source)
        return
    node[path[-1]] = value


def _entry_key(name: str) -> str:
    """FEEDHANDLER_KAFKA__PRODUCER__SASL_PASSWORD -> `sasl.password` (librdkafka and topic
    settings are dotted); a `_FILE` suffix stays `_file`."""
    base, file = (name[:-5], "_file") if name.endswith("_FILE") else (name, "")
    return base.lower().replace("_", ".") + file


def _read_env(model: type[BaseModel], environ: Mapping[str, str], data: dict[str, Any],
              origins: Origins) -> None:
    names: dict[str, KeyPath] = {}
    mappings: dict[str, KeyPath] = {}  # prefix of variables naming one entry of a mapping
    for key, entry in _walk(model):
        names[env_name(key)] = key
        if SECRET in _metadata(entry):
            names[env_name(key) + "_FILE"] = (*key[:-1], key[-1] + "_file")
        if get_origin(_strip(_annotation(entry))) is dict:
            mappings[env_name(key) + "__"] = key
    for var in sorted(environ):
        if not var.startswith(ENV_PREFIX):
            continue
        raw = environ[var]
        path: KeyPath | None = names.get(var)
        if path is None:
            prefix = next((p for p in mappings if var.startswith(p)), None)
            if prefix is not None:
                path = (*mappings[prefix], _entry_key(var[len(prefix):]))
        if path is not None and var.endswith("_PORT") and _SERVICE_LINK_VALUE.match(raw):
            path = None  # a Service named like a key (`feedhandler-health`): not ours
        if path is None:
            if "__" in var[len(ENV_PREFIX):] and not _SERVICE_LINK_NAME.search(var):
                close = difflib.get_close_matches(var, names, 1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise ConfigError(f"env {var}: names no configuration key{hint}")
            origins.ignored_env.append(var)
            continue
        _set(data, origins, path, _typed(model, path, raw), f"env {var}")


def _read_secret_files(model: type[BaseModel], data: dict[str, Any], origins: Origins) -> None:
    """`<key>_file: PATH` -> `<key>`: the file's text (one trailing newline dropped)."""
    targets: list[tuple[KeyPath, KeyPath]] = []
    for path, entry in _walk(model):
        if SECRET in _metadata(entry):
            targets.append(((*path[:-1], path[-1] + "_file"), path))
        elif SECRET_ENTRIES in _metadata(entry):
            node = _get(data, path)
            if isinstance(node, dict):
                targets += [((*path, k), (*path, k[:-5])) for k in node
                            if isinstance(k, str) and k.endswith("_file")]
    for file_path, path in targets:
        parent = _get(data, file_path[:-1])
        if not isinstance(parent, dict) or file_path[-1] not in parent:
            continue
        where = origins.source(file_path)
        name = parent.pop(file_path[-1])
        if path[-1] in parent:
            raise ConfigError(f"{'.'.join(path)} and {file_path[-1]}: give one, not both "
                              f"({origins.source(path)}; {where})")
        try:
            secret = Path(str(name)).read_text().removesuffix("\n")
        except OSError as exc:
            raise ConfigError(f"{'.'.join(file_path)}: cannot read {name}: "
                              f"{exc.strerror or exc} ({where})") from None
        except UnicodeDecodeError:  # (its text would show a byte of the secret)
            raise ConfigError(f"{'.'.join(file_path)}: {name} is not UTF-8 text "
                              f"({where})") from None
        _set(data, origins, path, secret, f"file {name} ({where})")


def _get(data: Any, path: KeyPath) -> Any:
    for key in path:
        if isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        elif isinstance(data, dict) and key in data:
            data = data[key]
        else:
            return None
    return data


def load(model: type[M], path: str | Path | None = None,
         overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
         flag_names: Mapping[str, str] | None = None) -> tuple[M, Origins]:
    """`overrides`: dotted keys ("kafka.bootstrap") -> value (None: not given); text values are
    read as the key's type. `flag_names` say in errors where each came from: a flag
    ("--kafka-bootstrap", shown as "flag --kafka-bootstrap") or any other source, as given."""
    origins = Origins()
    data: dict[str, Any] = {}
    if path is not None:
        data, origins.sources = read_yaml(path)
    in_file = [(k, where) for k, where in origins.sources.items() if is_secret(model, k)]
    _read_env(model, environ or {}, data, origins)
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        key = tuple(dotted.split("."))
        typed = _typed(model, key, value) if isinstance(value, str) else value
        flag = (flag_names or {}).get(dotted)
        source = (f"flag {flag}" if flag.startswith("-") else flag) if flag else \
            f"override {dotted}"
        _set(data, origins, key, typed, source)
    _read_secret_files(model, data, origins)
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(explain(model, exc, data, origins)) from None
    for key, where in in_file:  # after validation: a bad config stays one line
        log.warning("%s is written in %s: keep secrets out of config files (use %s_file or %s)",
                    ".".join(key), where, key[-1], env_name(key))
    return config, origins


# --- one-line errors ------------------------------------------------------------------------
_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "a string",
    "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "string_too_short": "a non-empty string",
    "too_short": "at least {min_length} item(s)", "too_long": "at most {max_length} item(s)",
    "greater_than_equal": "must be >= {ge}", "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}", "less_than": "must be < {lt}",
    "literal_error": "{expected}", "union_tag_invalid": "{expected_tags}",
}


def explain(model: type[BaseModel], exc: ValidationError, data: dict[str, Any],
            origins: Origins) -> str:
    """The first problem of `exc`, on one line (with how many more there are)."""
    problems: dict[KeyPath, list[ErrorDetails]] = {}
    for err in exc.errors():
        loc = tuple(str(x) for x in err["loc"])
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, Invalid):
            # (a dotted key names a nested one)
            loc = (*loc, *(error.key.split(".") if isinstance(error.key, str) else error.key))
        if err["type"] != "extra_forbidden":  # union members and `[key]` are not keys
            while loc and _get(data, loc) is None and _lookup(model, loc) is None:
                loc = loc[:-1]
        problems.setdefault(loc, []).append(err)
    (loc, errs), *more = problems.items()
    key = ".".join(loc) or "(top level)"
    where = origins.source(loc)
    if errs[0]["type"] == "extra_forbidden":
        known = _fields(_section(model, loc[:-1]))
        close = difflib.get_close_matches(loc[-1], known or {}, 1)
        hint = f"; did you mean {'.'.join((*loc[:-1], close[0]))}?" if close else ""
        line = f"unknown key {key} ({where}){hint}"
    else:
        value = _redacted(model, loc, _get(data, loc))
        if value is None and loc and loc[-1] not in (_get(data, loc[:-1]) or {}):
            shown = "the default" if where == "default" else "nothing"
        else:
            shown = _show(value)
        line = f"{key}: {_reason(errs)}, got {shown} ({where})"
    return line + (f" (and {len(more)} more problem(s))" if more else "")


def _reason(errs: list[ErrorDetails]) -> str:
    reasons = []
    for err in errs:
        error = (err.get("ctx") or {}).get("error")
        if err["type"] in ("value_error", "assertion_error") and error is not None:
            reasons.append(str(error))
            continue
        template = _EXPECTED.get(err["type"])
        text = template.format(**(err.get("ctx") or {})) if template else err["msg"]
        reasons.append(text if text.startswith("must ") else f"expected {text}")
    return " or ".join(dict.fromkeys(reasons)).replace(" or expected ", " or ")


def _redacted(model: type[BaseModel], path: KeyPath, value: Any) -> Any:
    """`value` at `path` as an error may show it: secrets redacted, also those nested in a
    mapping given where a scalar belongs (`producer: {sasl: {password: ...}}`)."""
    if is_secret(model, path) or (path and secret_entry(path[-1])):
        return REDACTED
    found = _lookup(model, path)
    if found is not None and SECRET_ENTRIES in _metadata(found[0]) and \
            not isinstance(value, dict):
        return REDACTED  # text where settings belong may hold one (`sasl.password=...`)
    if isinstance(value, dict):
        return {k: _redacted(model, (*path, str(k)), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(model, path, v) for v in value]
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


# --- effective configuration, with sources -------------------------------------------------
def describe(config: BaseModel, origins: Origins) -> list[tuple[str, str, str]]:
    """(dotted key, value as JSON (secrets redacted), source) of every value."""
    rows: list[tuple[str, str, str]] = []

    def visit(value: Any, path: KeyPath) -> None:
        if isinstance(value, dict) and value:
            for key, item in value.items():
                visit(item, (*path, str(key)))
            return
        shown = REDACTED if value and is_secret(type(config), path) else value
        rows.append((".".join(path), json.dumps(shown, default=str), origins.source(path)))

    visit(config.model_dump(), ())
    return rows


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema, with the `<key>_file` alternative of every secret."""
    schema = model.model_json_schema()
    for path, entry in _walk(model):
        if SECRET in _metadata(entry):
            section = schema if len(path) == 1 else \
                schema["$defs"][_section(model, path[:-1]).__name__]
            section["properties"][path[-1] + "_file"] = {
                "type": "string", "description": f"file holding {path[-1]} (a secret)"}
    return schema
