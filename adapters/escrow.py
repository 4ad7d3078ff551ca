"""Registrar data escrow (ICANN RAA 3.6): build, encrypt and upload deposits of gTLD registrations.

Escrow is the one recipient that minimisation does not touch: the ICANN Registration Data Policy
keeps the *full* registration data (registrant, admin, tech and billing contacts, privacy/proxy
customer data) flowing to the escrow agent, so a deposit carries every contact field it is given.
It is still a disclosure to a recipient: the gateway tags the transfer by the agent's country and
logs it from :class:`DepositSummary` (subject ids and field names, never values).

Only gTLD registrations fall under the RAA; ccTLD registrations go to no ICANN escrow agent, so
:func:`build_deposit` refuses them (fail closed) rather than silently over-disclosing.

Encryption.  Real registrar data escrow encrypts (and signs) deposits with OpenPGP, the agent's
tooling expects that, and ``cryptography`` has no OpenPGP.  Rather than shell out to gpg, deposits
are sealed in the manner of HPKE base mode (RFC 9180; the same steps, not its wire format): a fresh
X25519 key per deposit, ECDH with the agent's public key, HKDF-SHA256, AES-256-GCM.  It keeps the property
that matters here: the gateway holds only the agent's *public* key, so once sealed, only the agent's
private key can read a deposit, not even the gateway that wrote it; GCM makes any tampering fail
decryption.  Not kept: a registrar signature (authenticity rests on the authenticated TLS upload)
and compatibility with the agents' OpenPGP pipelines.

Sealed format, version 1 (all of it is authenticated; the header is the AEAD's associated data)::

    b"RGESC" | 0x01 | ephemeral X25519 public key (32) | AES-256-GCM ciphertext || tag (16)

key || nonce = HKDF-SHA256(ikm=ECDH, salt=b"", info=INFO_V1 || ephemeral pk || recipient pk, 44).
The nonce can be derived because every key is used exactly once.  Binding the recipient key into
the KDF keeps a deposit from being re-targeted to another key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args
from urllib.parse import quote

import httpx
import idna
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from adapters.http_partner import HttpPartnerClient, PartnerClientBase, PartnerEndpoint, Sleep, partner_ref
from gateway.errors import InvalidDeposit, PolicyRefusal

__all__ = [
    "IDN_CCTLDS",
    "DepositSummary",
    "EscrowClient",
    "EscrowReceipt",
    "EscrowRecord",
    "InvalidDeposit",
    "build_deposit",
    "decrypt_deposit",
    "encrypt_deposit",
    "is_gtld",
    "is_sealed",
    "summarize_deposit",
]

ContactRole = Literal["registrant", "admin", "tech", "billing"]
ROLES: Final[tuple[str, ...]] = get_args(ContactRole)

FORMAT: Final = "registrant-gateway-escrow"
FORMAT_VERSION: Final = 1
MAGIC: Final = b"RGESC"
SEAL_VERSION: Final = 1
INFO_V1: Final = b"registrant-gateway escrow deposit v1"
_PK_LEN: Final = 32
_HEADER_LEN: Final = len(MAGIC) + 1 + _PK_LEN
_TAG_LEN: Final = 16

#: Internationalised ccTLDs (A-label: U-label).  Two-letter ASCII labels are recognised by shape
#: (ISO 3166-1 alpha-2 and the few exceptions such as .uk, .eu, .ac are all two letters); IDN
#: ccTLDs are not, so the common ones are listed.  Not exhaustive (IANA's root zone database is the
#: source); an unlisted IDN ccTLD would be taken for a gTLD, so add it here before escrowing names
#: under it.  tests/adapters/test_escrow.py checks each A-label decodes to its U-label.
IDN_CCTLDS: Final[Mapping[str, str]] = {
    "xn--p1ai": "рф",
    "xn--fiqs8s": "中国",
    "xn--fiqz9s": "中國",
    "xn--j6w193g": "香港",
    "xn--kprw13d": "台湾",
    "xn--kpry57d": "台灣",
    "xn--3e0b707e": "한국",
    "xn--90ais": "бел",
    "xn--j1amh": "укр",
    "xn--e1a4c": "ею",
    "xn--qxa6a": "ευ",
    "xn--90a3ac": "срб",  # noqa: RUF001 - Cyrillic on purpose
    "xn--d1alf": "мкд",
    "xn--node": "გე",
    "xn--80ao21a": "қаз",
    "xn--wgbh1c": "مصر",
    "xn--mgbaam7a8h": "امارات",
    "xn--mgberp4a5d4ar": "السعودية",
    "xn--h2brj9c": "भारत",
    "xn--yfro4i67o": "新加坡",
}

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_FIELD = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DEPOSIT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _tld_label(tld: str) -> str:
    label = tld.strip().strip(".").lower()
    if not label.isascii():
        try:
            label = idna.encode(label).decode("ascii")
        except idna.IDNAError:
            raise ValueError("not a valid TLD label") from None
    if not _LABEL.fullmatch(label):
        raise ValueError("not a valid TLD label")
    return label


def is_gtld(tld: str) -> bool:
    """Whether names under ``tld`` are gTLD registrations (and so subject to RAA 3.6 escrow).

    Two-letter ASCII labels are ccTLDs, as are the IDN ccTLDs in :data:`IDN_CCTLDS`; everything
    else counts as a gTLD.  Accepts A- or U-labels, with or without the leading dot.
    """
    label = _tld_label(tld)
    if len(label) == 2 and label.isalpha():
        return False
    return label not in IDN_CCTLDS


FieldValue = str | Sequence[str]


@dataclass(frozen=True)
class EscrowRecord:
    """One registration as escrow needs it: full contact data per role.

    ``contacts`` maps a role to its fields (e.g. ``name``, ``org``, ``street`` (a list), ``city``,
    ``sp``, ``pc``, ``cc``, ``voice``, ``fax``, ``email``); the registrant is required.  Contacts
    for other roles are often other people: ``contact_subjects`` names their subject ids where they
    differ from ``subject_id`` (the registrant's), so every data subject of the deposit is logged.
    Values are kept out of ``repr`` so that a logged record leaks nothing.
    """

    domain: str
    tld: str
    subject_id: str
    contacts: Mapping[str, Mapping[str, FieldValue]] = field(repr=False)
    contact_subjects: Mapping[str, str] = field(default_factory=dict)
    nameservers: tuple[str, ...] = ()  # RAA 3.4.1: the name servers
    expires: str | None = None  # RAA 3.4.1: the expiration date (ISO 8601 date)


@dataclass(frozen=True)
class DepositSummary:
    """What the processing log keeps about one deposit: who and which fields, never values."""

    deposit_id: str
    registrar_id: str
    watermark: str
    subjects: list[str]
    fields: list[str]  # "role.field", e.g. "billing.email"
    domains: int
    sha256: str  # of the plaintext deposit, so the agent's copy can be matched after decryption


def _utc(watermark: datetime) -> str:
    if watermark.tzinfo is None or watermark.utcoffset() is None:
        raise ValueError("watermark must be timezone-aware")
    return watermark.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _field_value(value: FieldValue, where: str) -> str | list[str]:
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{where}: field values must be strings or lists of strings")


def _record_entry(index: int, record: EscrowRecord) -> dict[str, Any]:
    # Messages name the record's position and subject id only: domains of natural persons can be
    # personal data too.
    where = f"record {index} (subject {record.subject_id})"
    tld = _tld_label(record.tld)
    if not is_gtld(tld):
        raise PolicyRefusal(f"{where}: escrow takes gTLD registrations only, this one is under a ccTLD")
    domain = record.domain.strip().rstrip(".").lower()
    if not domain.endswith("." + tld):
        raise ValueError(f"{where}: domain is not under the record's tld")
    if "registrant" not in record.contacts:
        raise ValueError(f"{where}: the registrant contact is required")
    if not record.subject_id:
        raise ValueError(f"record {index}: subject_id is required")
    contacts: dict[str, Any] = {}
    for role, fields in record.contacts.items():
        if role not in ROLES:
            raise ValueError(f"{where}: unknown contact role (expected one of {', '.join(ROLES)})")
        for name in fields:
            if not _FIELD.fullmatch(name):
                raise ValueError(f"{where}: field names must be lower-case identifiers")
        subject = record.subject_id if role == "registrant" else record.contact_subjects.get(role, record.subject_id)
        contacts[role] = {
            "subject_id": subject,
            "fields": {name: _field_value(value, where) for name, value in fields.items()},
        }
    for role in record.contact_subjects:
        if role not in record.contacts:
            raise ValueError(f"{where}: contact_subjects names a role without contact data")
    entry: dict[str, Any] = {"domain": domain, "tld": tld, "contacts": contacts}
    if record.nameservers:
        entry["nameservers"] = sorted(ns.lower() for ns in record.nameservers)
    if record.expires is not None:
        entry["expires"] = record.expires
    return entry


def build_deposit(
    records: Sequence[EscrowRecord],
    registrar_id: str,
    deposit_id: str,
    watermark: datetime,
) -> bytes:
    """A full deposit as canonical JSON: same inputs, same bytes, whatever their order.

    Byte-for-byte determinism lets a re-run of the same deposit be recognised by its sha256 and
    lets the agent's decrypted copy be compared with ours.  Values are kept exactly as given
    (no Unicode normalisation): escrow must be able to restore the registration as it was.
    """
    if not _DEPOSIT_ID.fullmatch(deposit_id):
        raise ValueError("deposit_id must be 1-128 characters of [A-Za-z0-9._-]")
    if not registrar_id:
        raise ValueError("registrar_id is required")
    entries = [_record_entry(i, record) for i, record in enumerate(records)]
    entries.sort(key=lambda entry: entry["domain"])
    if len({entry["domain"] for entry in entries}) != len(entries):
        raise ValueError("the same domain appears twice in one deposit")
    document = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "registrar_id": registrar_id,
        "deposit_id": deposit_id,
        "watermark": _utc(watermark),
        "domains": entries,
    }
    text = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return (text + "\n").encode("utf-8")


def summarize_deposit(deposit: bytes) -> DepositSummary:
    """Read the summary back from the deposit bytes, so it cannot disagree with what was sent."""
    try:
        document = json.loads(deposit)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a deposit built by build_deposit") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError("not a deposit built by build_deposit")
    subjects: set[str] = set()
    fields: set[str] = set()
    try:
        for entry in document["domains"]:
            for role, contact in entry["contacts"].items():
                subjects.add(contact["subject_id"])
                fields.update(f"{role}.{name}" for name in contact["fields"])
        return DepositSummary(
            deposit_id=document["deposit_id"],
            registrar_id=document["registrar_id"],
            watermark=document["watermark"],
            subjects=sorted(subjects),
            fields=sorted(fields),
            domains=len(document["domains"]),
            sha256=hashlib.sha256(deposit).hexdigest(),
        )
    except (KeyError, TypeError, AttributeError):
        raise ValueError("deposit structure is not the one build_deposit writes") from None


def _raw(public_key: X25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _key_and_nonce(shared: bytes, ephemeral: bytes, recipient: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(algorithm=hashes.SHA256(), length=44, salt=b"", info=INFO_V1 + ephemeral + recipient).derive(shared)
    return okm[:32], okm[32:]


def encrypt_deposit(plaintext: bytes, recipient_public_key: X25519PublicKey) -> bytes:
    """Seal a deposit for the escrow agent (format in the module docstring); output differs per call."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_pk = _raw(ephemeral.public_key())
    key, nonce = _key_and_nonce(ephemeral.exchange(recipient_public_key), ephemeral_pk, _raw(recipient_public_key))
    header = MAGIC + bytes([SEAL_VERSION]) + ephemeral_pk
    return header + AESGCM(key).encrypt(nonce, plaintext, header)


def is_sealed(blob: bytes) -> bool:
    """Cheap shape check used before upload, so plaintext can never be sent by mistake."""
    return len(blob) >= _HEADER_LEN + _TAG_LEN and blob.startswith(MAGIC)


def decrypt_deposit(blob: bytes, private_key: X25519PrivateKey) -> bytes:
    """Open a sealed deposit (the agent's side, and tests); raises :class:`InvalidDeposit`."""
    if not is_sealed(blob):
        raise InvalidDeposit("not a sealed deposit (bad magic or too short)")
    version = blob[len(MAGIC)]
    if version != SEAL_VERSION:
        raise InvalidDeposit(f"unsupported sealed-deposit version {version}")
    header, ciphertext = blob[:_HEADER_LEN], blob[_HEADER_LEN:]
    ephemeral_pk = header[len(MAGIC) + 1 :]
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_pk))
    except ValueError:  # low-order point: a forged header
        raise InvalidDeposit("sealed deposit has an invalid ephemeral key") from None
    key, nonce = _key_and_nonce(shared, ephemeral_pk, _raw(private_key.public_key()))
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, header)
    except InvalidTag:
        raise InvalidDeposit("cannot open deposit: wrong key, or the deposit was altered") from None


@dataclass(frozen=True)
class EscrowReceipt:
    """What the agent acknowledged; ``sha256`` is of the sealed bytes as uploaded."""

    deposit_id: str
    status: int
    agent_ref: str | None
    attempts: int
    sha256: str


class EscrowClient(PartnerClientBase):
    """Uploads sealed deposits to the escrow agent: ``PUT /deposits/{deposit_id}``.

    PUT to a name we choose is idempotent by itself, and the deposit id doubles as the
    ``Idempotency-Key``: a retried or repeated upload of one deposit must leave the agent with one
    copy (the agent answers a repeat with 2xx).  A re-run re-seals with a fresh ephemeral key, so
    the bytes differ while the plaintext, and ``DepositSummary.sha256``, do not.  Retries and error
    mapping are :class:`~adapters.http_partner.HttpPartnerClient`'s.
    """

    def __init__(
        self,
        endpoint: PartnerEndpoint,
        recipient_public_key: X25519PublicKey,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self.recipient_public_key = recipient_public_key
        self._http = HttpPartnerClient(endpoint, transport=transport, sleep=sleep)

    async def upload(self, deposit_id: str, sealed: bytes) -> EscrowReceipt:
        if not _DEPOSIT_ID.fullmatch(deposit_id):
            raise ValueError("deposit_id must be 1-128 characters of [A-Za-z0-9._-]")
        if not is_sealed(sealed):
            raise ValueError("refusing to upload: the deposit is not sealed with encrypt_deposit")
        digest = hashlib.sha256(sealed).digest()
        response = await self._http.request(
            "PUT",
            f"/deposits/{quote(deposit_id, safe='')}",
            idempotency_key=deposit_id,
            content=sealed,
            content_type="application/octet-stream",
            headers={"Content-Digest": f"sha-256=:{base64.b64encode(digest).decode()}:"},  # RFC 9530
        )
        return EscrowReceipt(deposit_id, response.status, partner_ref(response), response.attempts, digest.hex())

    async def deposit(
        self,
        records: Sequence[EscrowRecord],
        *,
        registrar_id: str,
        deposit_id: str,
        watermark: datetime,
    ) -> tuple[DepositSummary, EscrowReceipt]:
        """Build, seal and upload in one go; the summary is what the gateway logs as the disclosure."""
        plaintext = build_deposit(records, registrar_id, deposit_id, watermark)
        summary = summarize_deposit(plaintext)
        receipt = await self.upload(deposit_id, encrypt_deposit(plaintext, self.recipient_public_key))
        return summary, receipt

