"""Signed checkpoints: canonical bodies, Ed25519 signatures, both wire forms, key files."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

from gateway.errors import ConfigError
from gateway.ledger.checkpoint import (
    Checkpoint,
    CheckpointSigner,
    SignedCheckpoint,
    key_id_of,
    load_or_create_signing_key,
    verify_checkpoint,
)
from gateway.ledger.merkle import EMPTY_ROOT, leaf_hash

ROOT = leaf_hash(b"ledger")
TS = datetime(2025, 3, 4, 5, 6, 7, 89, tzinfo=UTC)
CP = Checkpoint("registrant-gateway.example/ledger", 42, ROOT, TS)
SIGNER = CheckpointSigner.generate()


def test_body_is_canonical_text() -> None:
    b64 = base64.b64encode(ROOT).decode()
    assert CP.body() == f"registrant-gateway.example/ledger\n42\n{b64}\n2025-03-04T05:06:07.000089Z\n".encode()
    assert Checkpoint.from_body(CP.body()) == CP
    # The same instant in another zone is the same checkpoint.
    cet = timezone(timedelta(hours=1))
    assert Checkpoint(CP.origin, 42, ROOT, TS.astimezone(cet)).body() == CP.body()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": ""},
        {"origin": "a\nb"},
        {"origin": " padded"},
        {"size": -1},
        {"root": b"\x00" * 31},
        {"timestamp": datetime(2025, 1, 1)},
    ],
)
def test_checkpoint_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replace(CP, **kwargs)


@pytest.mark.parametrize(
    "body",
    [
        b"o\n01\n" + base64.b64encode(EMPTY_ROOT) + b"\n2025-03-04T05:06:07.000089Z\n",
        b"o\n1\n" + base64.b64encode(EMPTY_ROOT) + b"\n2025-03-04T05:06:07Z\n",
        b"o\n1\n" + base64.b64encode(EMPTY_ROOT) + b"\n2025-03-04T05:06:07.000089Z",
        b"o\n1\n" + base64.b64encode(EMPTY_ROOT) + b"\n2025-03-04T05:06:07.000089Z\nextra\n",
        b"o\n1\n" + base64.b64encode(EMPTY_ROOT)[:-1] + b"\n2025-03-04T05:06:07.000089Z\n",
        b"o\n+1\n" + base64.b64encode(EMPTY_ROOT) + b"\n2025-03-04T05:06:07.000089Z\n",
    ],
)
def test_non_canonical_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises(ValueError):
        Checkpoint.from_body(body)


def test_sign_and_verify() -> None:
    signed = SIGNER.sign(CP)
    assert signed.key_id == SIGNER.key_id
    assert len(signed.signature) == 64
    assert verify_checkpoint(signed, SIGNER.public_pem())
    assert verify_checkpoint(signed, SIGNER.public_pem().decode())
    assert verify_checkpoint(signed, SIGNER.public_key)


def test_any_changed_byte_fails() -> None:
    signed = SIGNER.sign(CP)
    pem = SIGNER.public_pem()
    # Every field of the body.
    for changed in [
        replace(CP, origin=CP.origin + "x"),
        replace(CP, size=43),
        replace(CP, root=bytes([ROOT[0] ^ 1]) + ROOT[1:]),
        replace(CP, timestamp=TS + timedelta(microseconds=1)),
    ]:
        assert not verify_checkpoint(replace(signed, checkpoint=changed), pem)
    # Every bit of the signature.
    for i in range(len(signed.signature)):
        for bit in (0x01, 0x80):
            sig = bytearray(signed.signature)
            sig[i] ^= bit
            assert not verify_checkpoint(replace(signed, signature=bytes(sig)), pem)
    assert not verify_checkpoint(replace(signed, signature=signed.signature[:-1]), pem)
    # Another key, and a key id that does not name the key.
    other = CheckpointSigner.generate()
    assert not verify_checkpoint(signed, other.public_pem())
    assert not verify_checkpoint(replace(signed, key_id=other.key_id), pem)
    assert not verify_checkpoint(other.sign(CP), pem)


def test_verify_refuses_non_ed25519_keys() -> None:
    ec_pem = (
        generate_private_key(SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError):
        verify_checkpoint(SIGNER.sign(CP), ec_pem)


def test_json_round_trip() -> None:
    signed = SIGNER.sign(CP)
    doc = signed.to_json()
    assert doc["size"] == 42 and doc["key_id"] == SIGNER.key_id
    back = SignedCheckpoint.from_json(json.loads(json.dumps(doc)))
    assert back == signed
    assert verify_checkpoint(back, SIGNER.public_pem())
    for broken in [
        {**doc, "extra": 1},
        {k: v for k, v in doc.items() if k != "root"},
        {**doc, "size": "42"},
        {**doc, "size": True},
        {**doc, "root": "not base64!"},
        {**doc, "key_id": "XYZ"},
        {**doc, "timestamp": "2025-03-04 05:06:07"},
    ]:
        with pytest.raises(ValueError):
            SignedCheckpoint.from_json(broken)


def test_text_round_trip() -> None:
    signed = SIGNER.sign(CP)
    text = signed.to_text()
    body = CP.body().decode()
    assert text.startswith(body + "\n\u2014 " + SIGNER.key_id + " ")
    assert text.endswith("\n")
    back = SignedCheckpoint.from_text(text)
    assert back == signed
    assert verify_checkpoint(back, SIGNER.public_pem())
    for broken in [
        body,
        text.replace("\u2014", "-"),
        text + "\u2014 " + SIGNER.key_id + " AAAA\n",
        text.rstrip("\n"),
        text.replace("\n42\n", "\n042\n"),
    ]:
        with pytest.raises(ValueError):
            SignedCheckpoint.from_text(broken)


def test_key_id_is_stable_and_derived_from_the_raw_public_key() -> None:
    raw = SIGNER.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert SIGNER.key_id == hashlib.sha256(raw).digest()[:8].hex()
    assert key_id_of(SIGNER.public_key) == SIGNER.key_id
    reloaded = CheckpointSigner.from_pem(SIGNER.private_pem())
    assert reloaded.key_id == SIGNER.key_id
    assert reloaded.public_pem() == SIGNER.public_pem()
    assert SIGNER.key_id != CheckpointSigner.generate().key_id
    assert "PRIVATE" not in repr(SIGNER)


def test_load_or_create_signing_key(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "checkpoint.pem"
    first = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    second = load_or_create_signing_key(path)
    assert second.key_id == first.key_id
    assert [p.name for p in path.parent.iterdir()] == ["checkpoint.pem"]  # no temp files left


def test_signing_key_file_must_be_private_and_valid(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pem"
    load_or_create_signing_key(path)
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError):
        load_or_create_signing_key(path)
    path.write_bytes(b"not a key")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError):
        load_or_create_signing_key(path)
