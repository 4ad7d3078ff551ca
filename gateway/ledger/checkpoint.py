"""Signed checkpoints: the ledger's tree head, signed with Ed25519.

A root hash alone proves nothing to an outsider; a *signed* (origin, size, root, time)
statement is what a registrant or auditor can keep and later hold us to: any two checkpoints
we ever published must be consistent (RFC 9162 consistency proof), or we have provably
rewritten history.

The signed bytes are a text body in the spirit of C2SP ``tlog-checkpoint`` / signed notes::

    <origin>
    <size>
    <base64 root>
    <timestamp, UTC, microseconds, e.g. 2025-01-02T03:04:05.000006Z>

The text form appends a blank line and ``— <key_id> <base64 signature>``.  It is note-like,
not C2SP-exact (C2SP puts a 4-byte key hash inside the base64); the JSON form carries the
same fields for APIs.  Either way the signature is over :meth:`Checkpoint.body` only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.errors import ConfigError
from gateway.ledger.keys import check_private_file, write_private_file
from gateway.ledger.merkle import HASH_SIZE

__all__ = [
    "Checkpoint",
    "CheckpointSigner",
    "SignedCheckpoint",
    "key_id_of",
    "load_or_create_signing_key",
    "verify_checkpoint",
]

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_SIG_PREFIX = "\u2014 "  # em dash + space, as in signed notes
_SIG_SIZE = 64


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64") from None


def _format_ts(ts: datetime) -> str:
    return ts.strftime(_TS_FORMAT)


def _parse_ts(text: str) -> datetime:
    try:
        ts = datetime.strptime(text, _TS_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError("timestamp is not YYYY-MM-DDTHH:MM:SS.ffffffZ") from None
    if _format_ts(ts) != text:  # e.g. strptime accepts single-digit fields
        raise ValueError("timestamp is not in canonical form")
    return ts


@dataclass(frozen=True)
class Checkpoint:
    """What we commit to: the tree named ``origin`` had ``size`` leaves and root ``root`` at ``timestamp``.

    Validated on construction so that :meth:`body` is always canonical: one value, one byte
    string, or signatures would not be comparable across implementations.
    """

    origin: str
    size: int
    root: bytes
    timestamp: datetime

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or self.origin != self.origin.strip():
            raise ValueError("origin must be a non-empty single line without surrounding spaces")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError("size must be a non-negative integer")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise ValueError(f"root must be {HASH_SIZE} bytes")
        if self.timestamp.tzinfo is None or self.timestamp.utcoffset() is None:
            raise ValueError("timestamp must be timezone-aware")
        object.__setattr__(self, "timestamp", self.timestamp.astimezone(UTC))

    def body(self) -> bytes:
        return f"{self.origin}\n{self.size}\n{_b64(self.root)}\n{_format_ts(self.timestamp)}\n".encode()

    @classmethod
    def from_body(cls, body: bytes) -> Checkpoint:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("checkpoint body is not UTF-8") from None
        lines = text.split("\n")
        if len(lines) != 5 or lines[4] != "":
            raise ValueError("checkpoint body must be exactly four newline-terminated lines")
        origin, size_s, root_s, ts_s = lines[:4]
        if not size_s.isascii() or not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
            raise ValueError("size is not a canonical decimal")
        cp = cls(origin, int(size_s), _unb64(root_s, "root"), _parse_ts(ts_s))
        if cp.body() != body:
            raise ValueError("checkpoint body is not in canonical form")
        return cp


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    key_id: str
    signature: bytes

    def to_json(self) -> dict[str, str | int]:
        cp = self.checkpoint
        return {
            "origin": cp.origin,
            "size": cp.size,
            "root": _b64(cp.root),
            "timestamp": _format_ts(cp.timestamp),
            "key_id": self.key_id,
            "signature": _b64(self.signature),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> SignedCheckpoint:
        """Strict: exactly the fields :meth:`to_json` writes, with their types (``ValueError`` otherwise)."""
        expected = {"origin", "size", "root", "timestamp", "key_id", "signature"}
        if set(data) != expected:
            raise ValueError("signed checkpoint JSON has missing or unexpected fields")
        origin, size, root, ts = data["origin"], data["size"], data["root"], data["timestamp"]
        key_id, sig = data["key_id"], data["signature"]
        if not (
            isinstance(origin, str)
            and isinstance(size, int)
            and not isinstance(size, bool)
            and isinstance(root, str)
            and isinstance(ts, str)
            and isinstance(key_id, str)
            and isinstance(sig, str)
        ):
            raise ValueError("signed checkpoint JSON has a field of the wrong type")
        cp = Checkpoint(origin, size, _unb64(root, "root"), _parse_ts(ts))
        return cls(cp, _check_key_id(key_id), _unb64(sig, "signature"))

    def to_text(self) -> str:
        return f"{self.checkpoint.body().decode()}\n{_SIG_PREFIX}{self.key_id} {_b64(self.signature)}\n"

    @classmethod
    def from_text(cls, text: str) -> SignedCheckpoint:
        body, sep, sig_block = text.partition("\n\n")
        if not sep:
            raise ValueError("signed checkpoint text has no signature block")
        lines = sig_block.split("\n")
        if len(lines) != 2 or lines[1] != "" or not lines[0].startswith(_SIG_PREFIX):
            raise ValueError("signed checkpoint text must end with one signature line")
        parts = lines[0][len(_SIG_PREFIX) :].split(" ")
        if len(parts) != 2:
            raise ValueError("signature line must be '\u2014 <key_id> <base64 signature>'")
        cp = Checkpoint.from_body((body + "\n").encode())
        return cls(cp, _check_key_id(parts[0]), _unb64(parts[1], "signature"))


def _check_key_id(key_id: str) -> str:
    if len(key_id) != 16 or any(c not in "0123456789abcdef" for c in key_id):
        raise ValueError("key id must be 16 lower-case hex digits")
    return key_id


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """First 8 bytes (hex) of SHA-256 of the raw public key: names the key without a registry."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:8].hex()


class CheckpointSigner:
    """Holds the log's Ed25519 private key; only ever signs checkpoint bodies."""

    __slots__ = ("_key", "key_id", "public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_of(self.public_key)

    def __repr__(self) -> str:
        return f"CheckpointSigner(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> CheckpointSigner:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> CheckpointSigner:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("checkpoint signing key must be Ed25519")
        return cls(key)

    def private_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def public_pem(self) -> bytes:
        """What we publish so anyone can verify checkpoints without trusting us."""
        return self.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, checkpoint: Checkpoint) -> SignedCheckpoint:
        return SignedCheckpoint(checkpoint, self.key_id, self._key.sign(checkpoint.body()))


def _public_key(key: bytes | str | Ed25519PublicKey) -> Ed25519PublicKey:
    if isinstance(key, Ed25519PublicKey):
        return key
    pem = key.encode("ascii") if isinstance(key, str) else key
    loaded = serialization.load_pem_public_key(pem)
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError("checkpoint verification key must be Ed25519")
    return loaded


def verify_checkpoint(signed: SignedCheckpoint, public_key: bytes | str | Ed25519PublicKey) -> bool:
    """True only if ``public_key`` is the key named by ``key_id`` and it signed this exact body.

    Checking the key id too means a checkpoint claiming another key never verifies by accident,
    and key rotation stays visible to whoever verifies.  A malformed key (not PEM, not Ed25519)
    raises ``ValueError``: that is the verifier's configuration, not the checkpoint, at fault.
    """
    key = _public_key(public_key)
    if signed.key_id != key_id_of(key) or len(signed.signature) != _SIG_SIZE:
        return False
    try:
        key.verify(signed.signature, signed.checkpoint.body())
    except InvalidSignature:
        return False
    return True


def load_or_create_signing_key(path: Path) -> CheckpointSigner:
    """Load the PEM key at ``path``, or create it (mode 0600) on first start.

    Creation is race-free: if two processes start at once, one key wins and both load it, so
    the log never has two identities.  An existing key file readable by group/others stops
    start-up (:class:`ConfigError`), as for the KEK ring.
    """
    if not path.exists():
        signer = CheckpointSigner.generate()
        try:
            write_private_file(path, signer.private_pem())
        except FileExistsError:
            pass  # lost the race: use the winner's key
        else:
            return signer
    check_private_file(path)
    try:
        return CheckpointSigner.from_pem(path.read_bytes())
    except ValueError:
        raise ConfigError(f"{path}: not an unencrypted Ed25519 PEM private key") from None
