"""Ed25519 signing: the payload rule, known signatures, an independent verifier, key loading
from files and the environment, and that no key material leaks into text."""

from __future__ import annotations

import base64
import pickle
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from feedhandler.wsapi.signing import (
    Credentials,
    CredentialsError,
    KeySources,
    load_private_key,
    signature_payload,
)
from tests.wsapi import ed25519_reference as reference

# RFC 8032 §7.1, TEST 1
RFC_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555f"
    "b8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


def _pem(key: Ed25519PrivateKey, passphrase: bytes | None = None) -> bytes:
    encryption = BestAvailableEncryption(passphrase) if passphrase else NoEncryption()
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, encryption)


def test_payload_is_sorted_unencoded_and_without_signature() -> None:
    params = {
        "timestamp": 1649729878532,
        "apiKey": "k/+=",
        "signature": "ignored",
        "recvWindow": 5000,
        "newClientOrderId": "a b&c",
        "test": True,
    }
    assert signature_payload(params) == (
        "apiKey=k/+=&newClientOrderId=a b&c&recvWindow=5000&test=true&timestamp=1649729878532"
    )


def test_the_reference_implementation_reproduces_rfc8032() -> None:
    assert reference.public_key(RFC_SECRET) == RFC_PUBLIC
    assert reference.sign(RFC_SECRET, b"") == RFC_SIGNATURE
    assert reference.verify(RFC_PUBLIC, b"", RFC_SIGNATURE)
    assert not reference.verify(RFC_PUBLIC, b"x", RFC_SIGNATURE)


def test_known_key_and_payload_give_the_expected_signature() -> None:
    key = Ed25519PrivateKey.from_private_bytes(RFC_SECRET)
    assert key.sign(b"") == RFC_SIGNATURE
    credentials = Credentials(API_KEY, key)
    signed = credentials.signed({"timestamp": 1649729878532, "recvWindow": 5000})
    assert signed["apiKey"] == API_KEY
    # computed with the RFC 8032 reference on this payload
    assert signature_payload(signed) == (
        f"apiKey={API_KEY}&recvWindow=5000&timestamp=1649729878532"
    )
    assert signed["signature"] == (
        "CMKsZvJ1mu1ItCShmqOqHhPfx6lcMWc4gChfgTK7tHCfmUb94Mo/UZird5l0jXAoUxgrnW1fBYGpKYTTdG99AA=="
    )


def test_our_signatures_verify_with_an_independent_implementation() -> None:
    for _ in range(3):
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        credentials = Credentials("key-1", key)
        params = {"timestamp": 1_700_000_000_123, "symbol": "币安人生USDT", "recvWindow": 60000}
        signed = credentials.signed(params)
        raw = base64.b64decode(signed["signature"])
        payload = signature_payload(signed).encode()
        assert reference.verify(public, payload, raw)
        assert not reference.verify(public, payload + b"&x=1", raw)


def test_credentials_from_files_with_a_passphrase(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    (tmp_path / "api").write_text(API_KEY + "\n")
    (tmp_path / "key.pem").write_bytes(_pem(key, b"s3cret"))
    (tmp_path / "pass").write_text("s3cret\n")
    sources = KeySources(
        api_key_file=str(tmp_path / "api"),
        private_key_file=str(tmp_path / "key.pem"),
        passphrase_file=str(tmp_path / "pass"),
    )
    credentials = Credentials.load(sources, environ={})
    assert credentials is not None
    assert credentials.api_key == API_KEY
    signed = credentials.signed({"timestamp": 1})
    raw = base64.b64decode(signed["signature"])
    key.public_key().verify(raw, signature_payload(signed).encode())


def test_credentials_from_the_environment() -> None:
    key = Ed25519PrivateKey.generate()
    environ = {
        "BINANCE_API_KEY": "from-env",
        "BINANCE_PRIVATE_KEY": _pem(key, b"pw").decode(),
        "BINANCE_PRIVATE_KEY_PASSPHRASE": "pw",
    }
    credentials = Credentials.load(environ=environ)
    assert credentials is not None and credentials.api_key == "from-env"
    assert Credentials.load(environ={}) is None


def test_errors_and_text_never_show_key_material(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = _pem(key, b"pw")
    body = pem.decode().splitlines()[1]
    with pytest.raises(CredentialsError) as wrong_pass:
        load_private_key(pem, b"nope")
    with pytest.raises(CredentialsError) as no_pass:
        load_private_key(pem)
    with pytest.raises(CredentialsError) as half:
        Credentials.load(environ={"BINANCE_API_KEY": API_KEY})
    with pytest.raises(CredentialsError) as unreadable:
        Credentials.load(KeySources(private_key_file=str(tmp_path / "missing")), environ={})
    # the files swapped: the API key's is binary (a DER key, say), and its bytes stay unshown
    (tmp_path / "key.der").write_bytes(b"\x30\x2e\xff" + API_KEY.encode())
    (tmp_path / "key.pem").write_bytes(pem)
    with pytest.raises(CredentialsError) as binary:
        Credentials.load(KeySources(api_key_file=str(tmp_path / "key.der"),
                                    private_key_file=str(tmp_path / "key.pem"),
                                    passphrase_env=""), environ={})
    not_a_key = ("the API key is not one word of letters, digits, - and _ (is it the private "
                 "key's file?)")
    assert str(binary.value) == not_a_key
    # the PEM file given for the API key is text, but would go to the exchange in every request
    with pytest.raises(CredentialsError) as pem_for_key:
        Credentials.load(KeySources(api_key_file=str(tmp_path / "key.pem"),
                                    private_key_file=str(tmp_path / "key.pem"),
                                    passphrase_env=""), environ={})
    assert str(pem_for_key.value) == not_a_key
    credentials = Credentials(API_KEY, key)
    texts = [str(e.value) for e in (wrong_pass, no_pass, half, unreadable, binary, pem_for_key)]
    texts += [repr(credentials), str(credentials), f"{credentials}"]
    for text in texts:
        assert API_KEY not in text and body not in text and "pw" not in text.split()
    assert "private key" in str(half.value)
    with pytest.raises(TypeError):
        pickle.dumps(credentials)


def test_non_ed25519_keys_are_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

    pem = generate_private_key(SECP256R1()).private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
    )
    with pytest.raises(CredentialsError, match="not Ed25519"):
        load_private_key(pem)
