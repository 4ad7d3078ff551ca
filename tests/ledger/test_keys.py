"""Envelope encryption, KEK rotation, crypto-shredding and blind indexes."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from gateway.errors import ConfigError, DecryptionFailed, GatewayError
from gateway.ledger.keys import (
    BlindIndexer,
    KeyRing,
    WrappedKey,
    new_data_key,
    normalise,
    open_sealed,
    rewrap,
    seal,
    unwrap,
    wrap,
)

SUBJECT = "subj-0001"


# --------------------------------------------------------------------------------------------
# Key ring


def test_ring_file_round_trip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    ring = KeyRing.generate(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = KeyRing.from_file(path)
    assert loaded == ring
    doc = json.loads(path.read_text())
    assert set(doc) == {"active", "keys"} and doc["active"] == ring.active
    assert len(base64.b64decode(doc["keys"][ring.active])) == 32
    with pytest.raises(FileExistsError):
        KeyRing.generate(path)  # never clobber: that would shred every subject at once
    assert KeyRing.from_file(path) == ring
    assert [p.name for p in tmp_path.iterdir()] == ["kek.json"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o620])
def test_ring_file_must_not_be_group_or_world_accessible(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek.json"
    KeyRing.generate(path)
    os.chmod(path, mode)
    with pytest.raises(ConfigError):
        KeyRing.from_file(path)


def test_ring_from_env_and_bad_documents() -> None:
    ring = KeyRing.new()
    assert KeyRing.from_env(ring.to_json()) == ring
    key = base64.b64encode(b"k" * 32).decode()
    for bad in [
        "not json",
        "[]",
        json.dumps({"active": "a"}),
        json.dumps({"active": "a", "keys": {}}),
        json.dumps({"active": "b", "keys": {"a": key}}),
        json.dumps({"active": "a", "keys": {"a": base64.b64encode(b"short").decode()}}),
        json.dumps({"active": "a", "keys": {"a": "***"}}),
        json.dumps({"active": "a b", "keys": {"a b": key}}),
        json.dumps({"active": "a", "keys": {"a": key}, "extra": 1}),
    ]:
        with pytest.raises(ConfigError):
            KeyRing.from_env(bad)


def test_ring_repr_hides_keys() -> None:
    ring = KeyRing.new()
    text = repr(ring)
    assert ring.active in text
    for key in ring.keys.values():
        assert base64.b64encode(key).decode() not in text
        assert repr(key) not in text


def test_ring_is_immutable() -> None:
    ring = KeyRing.new()
    with pytest.raises(TypeError):
        ring.keys["x"] = b"0" * 32  # type: ignore[index]


# --------------------------------------------------------------------------------------------
# Data keys


def test_wrap_unwrap_round_trip() -> None:
    ring = KeyRing.new()
    dek = new_data_key()
    assert len(dek) == 32 and dek != new_data_key()
    w = wrap(ring, dek, SUBJECT)
    assert w.kid == ring.active
    assert dek not in w.blob
    assert unwrap(ring, w, SUBJECT) == dek
    assert WrappedKey.decode(w.encode()) == w
    assert wrap(ring, dek, SUBJECT).blob != w.blob  # fresh nonce each time


def test_unwrap_is_bound_to_subject_kid_and_bytes() -> None:
    ring = KeyRing.new().with_new_active_key()
    dek = new_data_key()
    w = wrap(ring, dek, SUBJECT)
    other_kid = next(k for k in ring.keys if k != w.kid)
    cases = [
        (w, "subj-0002"),
        (w, SUBJECT + "\x00"),
        (WrappedKey(other_kid, w.blob), SUBJECT),  # relabelled to another existing KEK
        (WrappedKey("nosuchkid", w.blob), SUBJECT),
        (WrappedKey(w.kid, w.blob[:-1]), SUBJECT),
        (WrappedKey(w.kid, b"\x02" + w.blob[1:]), SUBJECT),
    ]
    for i in range(len(w.blob)):
        blob = bytearray(w.blob)
        blob[i] ^= 0x01
        cases.append((WrappedKey(w.kid, bytes(blob)), SUBJECT))
    for wrapped, subject in cases:
        with pytest.raises(DecryptionFailed) as info:
            unwrap(ring, wrapped, subject)
        assert subject not in str(info.value) or subject == ""


def test_rotation_rewrap() -> None:
    ring1 = KeyRing.new()
    k1 = ring1.active
    dek = new_data_key()
    w1 = wrap(ring1, dek, SUBJECT)

    ring2 = ring1.with_new_active_key()
    assert ring2.active != k1 and set(ring2.keys) == {k1, ring2.active}
    assert ring1.keys.keys() == {k1}  # the old ring is untouched
    assert unwrap(ring2, w1, SUBJECT) == dek  # old wraps still open after rotation

    w2 = rewrap(ring2, w1, SUBJECT)
    assert w2.kid == ring2.active
    assert unwrap(ring2, w2, SUBJECT) == dek
    assert rewrap(ring2, w2, SUBJECT) is w2  # idempotent for the rotation job

    ring3 = ring2.without_key(k1)
    assert unwrap(ring3, w2, SUBJECT) == dek
    with pytest.raises(DecryptionFailed):
        unwrap(ring3, w1, SUBJECT)  # retired KEK: only un-rewrapped rows are lost
    with pytest.raises(ValueError):
        ring3.without_key(ring3.active)
    with pytest.raises(DecryptionFailed):
        rewrap(ring2, w1, "someone-else")


def test_ring_save_replaces_file_privately(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    ring = KeyRing.generate(path)
    rotated = ring.with_new_active_key()
    rotated.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing.from_file(path) == rotated


# --------------------------------------------------------------------------------------------
# Values


def test_seal_open_round_trip() -> None:
    dek = new_data_key()
    for plaintext in [b"", b"anna.andersson@example.se", os.urandom(5000)]:
        blob = seal(dek, plaintext, b"entry:7/field:email")
        assert blob[0] == 1 and len(blob) == 1 + 12 + len(plaintext) + 16
        assert open_sealed(dek, blob, b"entry:7/field:email") == plaintext
    assert seal(dek, b"x", b"") != seal(dek, b"x", b"")


def test_open_fails_closed_without_leaking() -> None:
    dek = new_data_key()
    secret = b"19811218-9876"
    blob = seal(dek, secret, b"aad-1")
    bad_blobs = [blob[:-1], blob[:12], b"", b"\x02" + blob[1:]]
    for i in range(len(blob)):
        b = bytearray(blob)
        b[i] ^= 0x80
        bad_blobs.append(bytes(b))
    attempts = [(dek, b, b"aad-1") for b in bad_blobs]
    attempts += [(dek, blob, b"aad-2"), (dek, blob, b""), (new_data_key(), blob, b"aad-1")]
    for key, candidate, aad in attempts:
        with pytest.raises(DecryptionFailed) as info:
            open_sealed(key, candidate, aad)
        err = info.value
        assert isinstance(err, GatewayError) and err.code == "decryption_failed"
        assert "1981" not in str(err) and "aad" not in str(err) and err.extra == {}
        assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)


def test_crypto_shredding() -> None:
    """Once a subject's wrapped DEK is deleted, nothing else opens their values.

    The ledger keeps the ciphertext (its hash is in the tree); erasure is losing the DEK.  No
    other DEK, and no KEK, opens it.
    """
    ring = KeyRing.new()
    anna, bertil = new_data_key(), new_data_key()
    wrapped = {"anna": wrap(ring, anna, "anna"), "bertil": wrap(ring, bertil, "bertil")}
    blob = seal(unwrap(ring, wrapped["anna"], "anna"), b"anna@example.se", b"e1")
    del wrapped["anna"]  # erasure request
    for key in [unwrap(ring, wrapped["bertil"], "bertil"), new_data_key(), *ring.keys.values()]:
        with pytest.raises(DecryptionFailed):
            open_sealed(key, blob, b"e1")
    # The bertil wrap cannot be relabelled to anna either.
    with pytest.raises(DecryptionFailed):
        unwrap(ring, wrapped["bertil"], "anna")


def test_key_size_checks() -> None:
    with pytest.raises(ValueError):
        seal(b"short", b"x", b"")
    with pytest.raises(ValueError):
        wrap(KeyRing.new(), b"short", SUBJECT)
    with pytest.raises(ValueError):
        WrappedKey.decode("no-colon")


# --------------------------------------------------------------------------------------------
# Blind index


IDX = BlindIndexer(b"\x07" * 32)


@pytest.mark.parametrize(
    ("kind", "a", "b"),
    [
        ("email", "Anna.Andersson@Example.SE", "  anna.andersson@example.se\n"),
        ("national_id", "19811218-9876", "198112189876"),
        ("national_id", "ab 123456c", "AB123456C"),
        ("contact_id", "abc-123", "ABC-123"),
        ("domain", "Exempel.SE.", "exempel.se"),
        ("domain", "räksmörgås.se", "ra\u0308ksmo\u0308rga\u030as.se"),  # composed vs decomposed
    ],
)
def test_blind_index_equal_for_equivalent_forms(kind: str, a: str, b: str) -> None:
    assert IDX.index(kind, a) == IDX.index(kind, b)  # type: ignore[arg-type]
    assert len(IDX.index(kind, a)) == 64  # type: ignore[arg-type]


def test_blind_index_distinguishes_values_kinds_and_keys() -> None:
    assert IDX.index("email", "a@example.se") != IDX.index("email", "b@example.se")
    assert IDX.index("national_id", "198112189876") != IDX.index("national_id", "8112189876")  # upstream's job
    assert IDX.index("contact_id", "EXAMPLE.SE") != IDX.index("domain", "example.se")
    assert IDX.index("email", "x") != IDX.index("contact_id", "x")
    assert BlindIndexer(b"\x08" * 32).index("email", "x@y") != IDX.index("email", "x@y")
    assert normalise("national_id", " 19811218-9876 ") == "198112189876"
    assert normalise("domain", "Exempel.SE.") == "exempel.se"
    for kind, value in [("email", "  "), ("national_id", "--"), ("domain", ".")]:
        with pytest.raises(ValueError):
            IDX.index(kind, value)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        IDX.index("shoe_size", "42")  # type: ignore[arg-type]


def test_blind_index_stable_across_kek_rotation(tmp_path: Path) -> None:
    ring_path, idx_path = tmp_path / "kek.json", tmp_path / "blind.key"
    ring = KeyRing.generate(ring_path)
    indexer = BlindIndexer.generate(idx_path)
    before = indexer.index("email", "anna@example.se")
    ring.with_new_active_key().save(ring_path)
    assert KeyRing.from_file(ring_path).active != ring.active
    assert BlindIndexer.from_file(idx_path).index("email", "anna@example.se") == before


def test_blind_index_key_file(tmp_path: Path) -> None:
    path = tmp_path / "blind.key"
    indexer = BlindIndexer.generate(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert BlindIndexer.from_file(path).index("domain", "a.se") == indexer.index("domain", "a.se")
    assert BlindIndexer.from_env(path.read_text()).index("domain", "a.se") == indexer.index("domain", "a.se")
    assert "key" in repr(indexer) and path.read_text().strip() not in repr(indexer)
    with pytest.raises(FileExistsError):
        BlindIndexer.generate(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError):
        BlindIndexer.from_file(path)
    with pytest.raises(ConfigError):
        BlindIndexer.from_env(base64.b64encode(b"short").decode())
    with pytest.raises(ConfigError):
        BlindIndexer.from_file(tmp_path / "missing.key")
