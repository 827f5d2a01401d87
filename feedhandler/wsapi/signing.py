"""Ed25519 request signing for the WebSocket API (protocol doc §6.4).

The signed payload is every parameter but `signature`, sorted by name, joined as `k=v&…` with
no percent-encoding; the signature is the base64 of Ed25519's 64 bytes.

Keys come only from files (Kubernetes Secrets mounted as volumes) or environment variables
(Secrets as env: `BINANCE_API_KEY`, `BINANCE_PRIVATE_KEY`, `BINANCE_PRIVATE_KEY_PASSPHRASE`;
not `FEEDHANDLER_*`, the config's own namespace). `Credentials` keeps the private key as a
`cryptography` key object and shows neither it nor the API key in `repr`/`str`, so a log line
or traceback cannot leak them.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from feedhandler.config import ConfigError


class CredentialsError(ConfigError):
    """Keys missing, unreadable or not an Ed25519 PEM key (the message names the source,
    never its content)."""


def _text(value: Any) -> str:
    if isinstance(value, bool):  # JSON spelling, as the exchange sees it
        return "true" if value else "false"
    return str(value)


def signature_payload(params: Mapping[str, Any]) -> str:
    """`k=v&…` of every parameter except `signature`, sorted by name, not percent-encoded."""
    return "&".join(
        f"{name}={_text(params[name])}" for name in sorted(params) if name != "signature"
    )


def load_private_key(pem: bytes, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS#8, optionally encrypted with `passphrase`)."""
    try:
        key = load_pem_private_key(pem, password=passphrase or None)
    except (ValueError, TypeError) as exc:
        # cryptography's messages describe the format problem, never the key bytes
        raise CredentialsError(f"not a usable PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CredentialsError(f"the private key is {type(key).__name__}, not Ed25519")
    return key


@dataclass(frozen=True, slots=True)
class KeySources:
    """Where the credentials come from: a file path or an environment variable name each.
    A file wins over the variable when both are set."""

    api_key_file: str = ""
    private_key_file: str = ""
    passphrase_file: str = ""
    api_key_env: str = "BINANCE_API_KEY"
    private_key_env: str = "BINANCE_PRIVATE_KEY"
    passphrase_env: str = "BINANCE_PRIVATE_KEY_PASSPHRASE"


API_KEY_TEXT = re.compile(rb"[A-Za-z0-9_-]+")


def _read(file: str, env: str, environ: Mapping[str, str], what: str) -> bytes | None:
    if file:
        try:
            return Path(file).read_bytes().strip()
        except OSError as exc:
            raise CredentialsError(f"cannot read the {what} file {file}: {exc.strerror}") from None
    value = environ.get(env, "") if env else ""
    return value.encode().strip() if value else None


class Credentials:
    """An API key and its Ed25519 private key; signs parameter sets."""

    __slots__ = ("_api_key", "_key")

    def __init__(self, api_key: str, private_key: Ed25519PrivateKey) -> None:
        if not api_key:
            raise CredentialsError("the API key is empty")
        self._api_key = api_key
        self._key = private_key

    @classmethod
    def load(
        cls, sources: KeySources = KeySources(), environ: Mapping[str, str] | None = None
    ) -> Credentials | None:
        """Credentials from files / environment; None when neither key is configured."""
        env = os.environ if environ is None else environ
        api_key = _read(sources.api_key_file, sources.api_key_env, env, "API key")
        pem = _read(sources.private_key_file, sources.private_key_env, env, "private key")
        if api_key is None and pem is None:
            return None
        if api_key is None or pem is None:
            missing = "API key" if api_key is None else "private key"
            raise CredentialsError(f"the {missing} is missing (set its file or variable)")
        passphrase = _read(sources.passphrase_file, sources.passphrase_env, env, "passphrase")
        # An API key is one word (Binance's: 64 letters and digits): anything else, the
        # private key's PEM file given for it say, would go to the exchange in every signed
        # request; refused, not shown
        if not API_KEY_TEXT.fullmatch(api_key):
            raise CredentialsError("the API key is not one word of letters, digits, - and _ "
                                   "(is it the private key's file?)")
        return cls(api_key.decode("ascii"), load_private_key(pem, passphrase))

    @property
    def api_key(self) -> str:
        """The API key, for the request parameters only: never log it."""
        return self._api_key

    def sign(self, params: Mapping[str, Any]) -> str:
        """Base64 Ed25519 signature of `signature_payload(params)`."""
        raw = self._key.sign(signature_payload(params).encode())
        return base64.b64encode(raw).decode("ascii")

    def signed(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` plus `apiKey` and `signature`."""
        out = {**params, "apiKey": self._api_key}
        out["signature"] = self.sign(out)
        return out

    def __repr__(self) -> str:
        return "Credentials(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("Credentials cannot be pickled")
