"""Confidentiality for the disclosure ledger: envelope encryption and blind indexes.

Why envelope encryption.  The ledger is append-only and hash-chained, so a registrant's
personal data can never be deleted from it without breaking every later proof.  Instead each
subject (registrant) gets a random data key (DEK); their values are sealed under it and only
ciphertext is hashed into the tree.  Erasure (GDPR art. 17) is crypto-shredding: delete the
subject's wrapped DEK and the ledger keeps proving integrity over bytes nobody can read.

The DEK is stored wrapped under a key-encryption key (KEK) from a :class:`KeyRing`; rotating
the KEK re-wraps DEKs (a small table) and never touches ledger entries.  AES-256-GCM
everywhere, with associated data binding each ciphertext to where it belongs, so a blob
copied to another subject, another field or another key id fails to open.

Why blind indexes.  Lookups ("every disclosure about this e-mail address") must work
without decrypting everything; an HMAC of the normalised value under a separate, stable key
gives an equality index that reveals nothing without that key.  It is deliberately not
derived from the KEK ring: KEK rotation must not change the indexes.

Errors never carry key material, plaintext or identifiers.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, get_args

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import ConfigError, DecryptionFailed, KeyRingUnavailable

__all__ = [
    "KEY_SIZE",
    "BlindIndexer",
    "DecryptionFailed",
    "IndexKind",
    "KeyRing",
    "KeyRingFile",
    "KeyRingUnavailable",
    "WrappedKey",
    "check_private_file",
    "new_data_key",
    "normalise",
    "open_sealed",
    "rewrap",
    "ring_lock",
    "seal",
    "unwrap",
    "wrap",
    "write_private_file",
]

KEY_SIZE = 32
_NONCE_SIZE = 12
_TAG_SIZE = 16
_SEAL_VERSION = 1
_WRAP_VERSION = 1
_KID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


# --------------------------------------------------------------------------------------------
# Key files


def check_private_file(path: Path) -> None:
    """Refuse a secret file that anyone but its owner may read or write.

    A key file with group/other bits is usually a deployment mistake (a copied file, a
    permissive umask, a world-readable volume); starting anyway would silently widen who can
    decrypt the ledger, so we stop start-up instead.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{path}: key file does not exist") from None
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path}: key file is not a regular file")
    if mode & 0o077:
        raise ConfigError(f"{path}: key file must not be accessible by group or others (chmod 600)")


def write_private_file(path: Path, data: bytes, *, replace: bool = False) -> None:
    """Write a secret with mode 0600 so that no reader ever sees a partial or loose file.

    The data goes to a private temporary file in the same directory, is fsynced, then either
    linked into place (``replace=False``: fails with ``FileExistsError`` if someone else got
    there first, so two processes generating a key never end up with different keys) or renamed
    over the old file (``replace=True``, for rotation).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask may have cleared bits, never added; be explicit anyway
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _b64decode(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{what} is not valid base64") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_key(key: bytes, what: str = "key") -> None:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ValueError(f"{what} must be {KEY_SIZE} bytes")


# --------------------------------------------------------------------------------------------
# Key-encryption keys


@dataclass(frozen=True)
class KeyRing:
    """KEKs by key id, one of them active for new wraps; the rest only unwrap.

    Immutable: rotation returns a new ring, which the caller persists (:meth:`save`) before
    using it, so a crash between rotating and saving can never leave DEKs wrapped under a key
    that exists only in memory.
    """

    active: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("a key ring needs at least one key")
        for kid, key in self.keys.items():
            if not isinstance(kid, str) or not _KID_RE.fullmatch(kid):
                raise ValueError("key ids are 1-64 characters of A-Z a-z 0-9 _ -")
            _check_key(key, "each KEK")
        if self.active not in self.keys:
            raise ValueError("the active key id is not in the ring")
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    def __repr__(self) -> str:
        return f"KeyRing(active={self.active!r}, kids={sorted(self.keys)!r})"

    @classmethod
    def new(cls) -> KeyRing:
        kid = _new_kid()
        return cls(kid, {kid: secrets.token_bytes(KEY_SIZE)})

    @classmethod
    def from_json(cls, text: str, *, source: str = "key ring") -> KeyRing:
        """Parse ``{"active": kid, "keys": {kid: base64}}``; any defect is a :class:`ConfigError`."""
        try:
            doc = json.loads(text)
        except ValueError:
            raise ConfigError(f"{source}: not valid JSON") from None
        if not isinstance(doc, dict) or set(doc) != {"active", "keys"} or not isinstance(doc["keys"], dict):
            raise ConfigError(f'{source}: expected {{"active": kid, "keys": {{kid: base64}}}}')
        keys = {kid: _b64decode(value, f"{source}: key {kid!r}") for kid, value in doc["keys"].items()}
        try:
            return cls(doc["active"], keys)
        except ValueError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        check_private_file(path)
        return cls.from_json(path.read_text(encoding="utf-8"), source=str(path))

    @classmethod
    def from_env(cls, value: str, *, name: str = "key ring environment variable") -> KeyRing:
        """Same JSON as the file, for deployments that inject secrets through the environment."""
        return cls.from_json(value, source=name)

    @classmethod
    def generate(cls, path: Path) -> KeyRing:
        """Create a fresh ring file; refuses (``FileExistsError``) to overwrite an existing one."""
        ring = cls.new()
        write_private_file(path, ring.to_json().encode("utf-8"))
        return ring

    def to_json(self) -> str:
        return json.dumps(
            {"active": self.active, "keys": {kid: _b64(key) for kid, key in sorted(self.keys.items())}},
            indent=2,
        )

    def save(self, path: Path) -> None:
        """Atomically replace the ring file (after rotation or retirement)."""
        write_private_file(path, self.to_json().encode("utf-8"), replace=True)

    def with_new_active_key(self) -> KeyRing:
        """Rotation: a new KEK becomes active; old ones stay so existing wraps still open."""
        kid = _new_kid()
        while kid in self.keys:  # pragma: no cover - 64 random bits
            kid = _new_kid()
        return KeyRing(kid, {**self.keys, kid: secrets.token_bytes(KEY_SIZE)})

    def without_key(self, kid: str) -> KeyRing:
        """Retire an old KEK once every DEK wrapped under it has been :func:`rewrap`-ped."""
        if kid == self.active:
            raise ValueError("cannot retire the active key")
        if kid not in self.keys:
            raise ValueError("no such key id")
        return KeyRing(self.active, {k: v for k, v in self.keys.items() if k != kid})

    def _key(self, kid: str) -> bytes:
        try:
            return self.keys[kid]
        except KeyError:
            raise DecryptionFailed("no key-encryption key with that key id") from None


def _new_kid() -> str:
    return secrets.token_hex(8)


class KeyRingFile:
    """The key ring as its file holds it *now*, for a process that lives across rotations.

    ``gateway keys rotate`` runs in another process and replaces the file.  A gateway that kept the
    ring it started with would go on wrapping new data keys under a KEK the rotation then retires (that
    subject's data is lost at the next restart), and could not open the data keys the rotation
    re-wrapped under the new KEK.  Hence three ways in, from strictest to cheapest:

    - :meth:`for_wrap`, before every new data key: the file is checked each time (its device, inode,
      size, modification and change times: a rotation replaces the file, a ``chmod`` moves its change
      time) and read again whenever any of them moved, so the file's active KEK is used at once and a
      retired one never; a file that cannot be found, read or parsed fails closed
      (:class:`KeyRingUnavailable`) instead of falling back on memory.  The check is one ``stat``: the
      accept path makes a data key for every new holder, and reading the file each time cost more
      than the rest of the key handling.
    - :meth:`for_unwrap`: re-reads when a wrapped key names a kid this ring lacks (re-wrapped meanwhile);
      an unreadable file then keeps the last good ring, since opening never creates a wrap.
    - :meth:`refresh`: a ``stat`` when nothing changed, for a periodic watcher; :meth:`reload` forces a
      read (SIGHUP).

    """

    def __init__(self, path: Path, ring: KeyRing | None = None) -> None:
        self.path = path
        self._raw: bytes | None = None
        self._stamp: tuple[int, ...] | None = None
        if ring is None:
            raw, stamp = self._read()
            ring = self._parse(raw)
            self._raw, self._stamp = raw, stamp
        self._ring = ring

    def __repr__(self) -> str:
        return f"KeyRingFile({str(self.path)!r}, active={self._ring.active!r})"

    @property
    def ring(self) -> KeyRing:
        """The ring as last read (or adopted); may lag the file until the next check."""
        return self._ring

    def adopt(self, ring: KeyRing) -> None:
        """Use ``ring`` now (this process just saved it); the next :meth:`for_wrap` still reads the file."""
        self._ring, self._raw, self._stamp = ring, None, None

    def _read(self) -> tuple[bytes, tuple[int, ...]]:
        check_private_file(self.path)
        with self.path.open("rb") as f:
            st = os.fstat(f.fileno())
            raw = f.read()
        return raw, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _parse(self, raw: bytes) -> KeyRing:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{self.path}: not UTF-8 text") from None
        return KeyRing.from_json(text, source=str(self.path))

    def reload(self) -> bool:
        """Read the file now; True when the ring changed.  :class:`ConfigError` if it cannot be used."""
        try:
            raw, stamp = self._read()
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the key ring ({type(exc).__name__})") from None
        if raw != self._raw:
            ring = self._parse(raw)
            changed = ring != self._ring
            self._ring, self._raw = ring, raw
        else:
            changed = False
        self._stamp = stamp
        return changed

    def refresh(self) -> bool:
        """:meth:`reload` only if the file's identity, size or times changed since the last read."""
        try:
            st = self.path.stat()
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot read the key ring ({type(exc).__name__})") from None
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns) == self._stamp:
            return False
        return self.reload()

    def for_wrap(self) -> KeyRing:
        """The ring to wrap a new data key with: the file's as it is now, or :class:`KeyRingUnavailable`."""
        try:
            self.refresh()
        except ConfigError:
            raise KeyRingUnavailable("the key ring file cannot be read; no data key was wrapped") from None
        return self._ring

    def for_unwrap(self, kid: str) -> KeyRing:
        """The ring to open a key wrapped under ``kid``: re-read first if ``kid`` is unknown here."""
        if kid not in self._ring.keys:
            with contextlib.suppress(ConfigError):
                self.reload()
        return self._ring


@contextlib.contextmanager
def ring_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the ring file for a rotation or retirement.

    Two rotations at once would each save a ring lacking the other's new key; a retirement restoring a
    key after a refusal must not undo a rotation in between.  The gateway itself never takes this lock:
    it only reads the file, which is always replaced whole.
    """
    lock = path.with_name(f".{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# --------------------------------------------------------------------------------------------
# Data keys


@dataclass(frozen=True)
class WrappedKey:
    """A DEK encrypted under the KEK ``kid``; safe to store next to the data it protects."""

    kid: str
    blob: bytes = field(repr=False)

    def encode(self) -> str:
        """``kid:base64`` for a single text column."""
        return f"{self.kid}:{_b64(self.blob)}"

    @classmethod
    def decode(cls, text: str) -> WrappedKey:
        kid, sep, b64 = text.partition(":")
        if not sep or not _KID_RE.fullmatch(kid):
            raise ValueError("not an encoded wrapped key")
        try:
            blob = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not an encoded wrapped key") from None
        return cls(kid, blob)


def _frame(*parts: bytes) -> bytes:
    """Length-prefixed concatenation, so no choice of subject id can mimic another AAD."""
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _wrap_aad(kid: str, subject_id: str) -> bytes:
    return _frame(b"registrant-gateway/ledger/dek/v1", kid.encode("ascii"), subject_id.encode("utf-8"))


def new_data_key() -> bytes:
    return secrets.token_bytes(KEY_SIZE)


def wrap(ring: KeyRing, dek: bytes, subject_id: str) -> WrappedKey:
    """Encrypt a subject's DEK under the active KEK, bound to that subject and key id.

    Binding the subject id stops a wrapped key row from being moved to another subject to make
    their data open under the wrong key; binding the kid stops a blob from being relabelled.
    """
    _check_key(dek, "data key")
    kid = ring.active
    nonce = secrets.token_bytes(_NONCE_SIZE)
    ct = AESGCM(ring._key(kid)).encrypt(nonce, dek, _wrap_aad(kid, subject_id))
    return WrappedKey(kid, bytes([_WRAP_VERSION]) + nonce + ct)


def unwrap(ring: KeyRing, wrapped: WrappedKey, subject_id: str) -> bytes:
    """An unknown or retired kid is a :class:`DecryptionFailed` too: to the caller, a DEK it
    cannot recover is the same event whatever the cause (and, after erasure, the expected one)."""
    blob = wrapped.blob
    if len(blob) != 1 + _NONCE_SIZE + KEY_SIZE + _TAG_SIZE or blob[0] != _WRAP_VERSION:
        raise DecryptionFailed("wrapped key is malformed")
    if not _KID_RE.fullmatch(wrapped.kid):
        raise DecryptionFailed("wrapped key is malformed")
    key = ring._key(wrapped.kid)
    nonce, ct = blob[1 : 1 + _NONCE_SIZE], blob[1 + _NONCE_SIZE :]
    try:
        return AESGCM(key).decrypt(nonce, ct, _wrap_aad(wrapped.kid, subject_id))
    except InvalidTag:
        raise DecryptionFailed("wrapped key did not authenticate") from None


def rewrap(ring: KeyRing, wrapped: WrappedKey, subject_id: str) -> WrappedKey:
    """Move a wrapped DEK to the active KEK; entries sealed under the DEK stay untouched.

    Already-current wraps are returned as they are, so a rotation job can be re-run safely.
    """
    if wrapped.kid == ring.active:
        unwrap(ring, wrapped, subject_id)  # still prove it opens: never bless a bad row
        return wrapped
    return wrap(ring, unwrap(ring, wrapped, subject_id), subject_id)


# --------------------------------------------------------------------------------------------
# Values


def seal(dek: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``version || nonce(12) || ciphertext+tag`` under AES-256-GCM.

    ``aad`` should name where the value lives (entry id, field name): it is authenticated, not
    stored, so the same bytes pasted into another field or entry will not open.  Random 96-bit
    nonces are fine at per-subject volumes (far below 2**32 seals per key).
    """
    _check_key(dek, "data key")
    nonce = secrets.token_bytes(_NONCE_SIZE)
    header = bytes([_SEAL_VERSION])
    return header + nonce + AESGCM(dek).encrypt(nonce, plaintext, header + aad)


def open_sealed(dek: bytes, blob: bytes, aad: bytes) -> bytes:
    """Fails closed with :class:`DecryptionFailed`; a wrong-sized ``dek`` is a bug and raises ``ValueError``."""
    _check_key(dek, "data key")
    if len(blob) < 1 + _NONCE_SIZE + _TAG_SIZE or blob[0] != _SEAL_VERSION:
        raise DecryptionFailed("sealed value is malformed")
    nonce, ct = blob[1 : 1 + _NONCE_SIZE], blob[1 + _NONCE_SIZE :]
    try:
        return AESGCM(dek).decrypt(nonce, ct, blob[:1] + aad)
    except InvalidTag:
        raise DecryptionFailed("sealed value did not authenticate") from None


# --------------------------------------------------------------------------------------------
# Blind indexes

IndexKind = Literal["email", "national_id", "contact_id", "domain", "strong_id", "phone", "name_address"]
_KINDS: frozenset[str] = frozenset(get_args(IndexKind))


def normalise(kind: IndexKind, value: str) -> str:
    """The canonical form hashed into a blind index; equal forms must give equal indexes.

    - ``email``: trimmed and lower-cased as a whole.  RFC 5321 lets a local part be
      case-sensitive, but no real mailbox provider uses that, and a missed match here means a
      data-subject request that silently misses records.
    - ``national_id``: letters and digits only, upper-cased, so ``19811218-9876`` and
      ``198112189876`` match.  Choosing between equivalent *semantic* forms (Swedish 10- vs
      12-digit personnummer, the ``+`` for centenarians) needs the scheme and a date, so it is
      done upstream (``gateway.models``); give this function the canonical form.
    - ``contact_id``: trimmed, upper-cased (registry handles are case-insensitive).
    - ``domain``: trimmed, lower-cased, trailing root dot removed.  IDNs must be passed in one
      form (A-label, as the models store them); this does not convert U-labels.
    - ``strong_id``: ``scheme:country:number`` as built by ``gateway.identity`` (already canonical),
      kept exactly: a passport number's letters are not folded.
    - ``phone``: the E.164 form the models store, digits and the leading ``+`` only.
    - ``name_address``: built by ``gateway.identity`` (case-folded, spaces collapsed), kept as is.

    Unicode is NFC-normalised first so composed and decomposed spellings agree.
    """
    if kind not in _KINDS:
        raise ValueError("unknown blind index kind")
    text = unicodedata.normalize("NFC", value).strip()
    if kind == "email":
        out = text.lower()
    elif kind == "national_id":
        out = "".join(ch for ch in text if ch.isalnum()).upper()
    elif kind == "contact_id":
        out = text.upper()
    elif kind == "phone":
        out = "".join(ch for ch in text if ch.isdigit() or ch == "+")
    elif kind in ("strong_id", "name_address"):
        out = text
    else:
        out = text.lower().rstrip(".")
    if not out:
        raise ValueError("nothing left to index after normalisation")
    return out


class BlindIndexer:
    """Keyed equality index over personal identifiers.

    HMAC rather than a plain hash because identifiers have tiny search spaces (a personnummer
    is ~10**10 values); without the key nobody can confirm a guess against the ledger.
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        _check_key(key, "blind index key")
        self._key = key

    def __repr__(self) -> str:
        return "BlindIndexer(<key hidden>)"

    def index(self, kind: IndexKind, value: str) -> str:
        """Hex HMAC-SHA256(key, kind || 0x00 || normalised value); the kind keeps the same string
        in different roles (a contact id that looks like a domain) from matching."""
        msg = kind.encode("ascii") + b"\x00" + normalise(kind, value).encode("utf-8")
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()

    @classmethod
    def from_text(cls, text: str, *, source: str = "blind index key") -> BlindIndexer:
        key = _b64decode(text.strip(), source)
        if len(key) != KEY_SIZE:
            raise ConfigError(f"{source}: key must be {KEY_SIZE} bytes")
        return cls(key)

    @classmethod
    def from_file(cls, path: Path) -> BlindIndexer:
        """The file holds the base64 key on one line, mode 0600."""
        check_private_file(path)
        return cls.from_text(path.read_text(encoding="ascii"), source=str(path))

    @classmethod
    def from_env(cls, value: str, *, name: str = "blind index key environment variable") -> BlindIndexer:
        return cls.from_text(value, source=name)

    @classmethod
    def generate(cls, path: Path) -> BlindIndexer:
        """Create the key file once; refuses (``FileExistsError``) to overwrite, because a new
        key silently orphans every index already written."""
        key = secrets.token_bytes(KEY_SIZE)
        write_private_file(path, (_b64(key) + "\n").encode("ascii"))
        return cls(key)
