"""A disclosure entry, the ledger's leaf, and the exact bytes it contributes to the Merkle tree.

Every stored column of a disclosure row is in the leaf; the encrypted values enter as the SHA-256
of their ciphertext.  The tree then proves the metadata and the ciphertext, still verifies after
the subject's data key is destroyed (crypto-shredding), and still verifies after a retention purge
deletes the ciphertext itself (kept apart, in ``entry_values``).  The encoding is canonical JSON
(sorted keys, no spaces, UTF-8), so both stores and the offline verifier derive the same bytes from
the same row.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

#: Columns in the leaf, in the store's naming; order does not matter (keys are sorted).
LEAF_COLUMNS: tuple[str, ...] = (
    "leaf_index", "id", "registration_id", "subject_id", "recipient", "recipient_name", "recipient_country",
    "category", "article", "instrument", "purpose", "outcome", "retryable", "fields_json", "withheld_json",
    "payload_digest", "result_code", "sv_trid", "cl_trid", "objects_json", "reason", "attempted_at",
    "recorded_at", "values_digest",
)

LEAF_VERSION = 1


def _norm(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, bool):
        return int(value)
    return value


def leaf_bytes(row: dict[str, Any]) -> bytes:
    """Canonical leaf encoding of one disclosure row (a mapping with every ``LEAF_COLUMNS`` key)."""
    doc = {"v": LEAF_VERSION, **{c: _norm(row[c]) for c in LEAF_COLUMNS}}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class DisclosureEntry:
    id: str
    registration_id: str
    recipient: str
    recipient_name: str
    recipient_country: str
    category: str
    article: str | None
    instrument: str | None
    purpose: str
    outcome: str  # delivered | failed | blocked | refused
    fields: tuple[str, ...]
    withheld: tuple[str, ...]
    objects: dict[str, str]
    attempted_at: str
    recorded_at: str
    retryable: bool = False
    payload_digest: str | None = None
    result_code: str | None = None
    sv_trid: str | None = None
    cl_trid: str | None = None
    reason: str | None = None
    subject_id: str | None = None
    values_ct: bytes | None = None  # AES-GCM under the subject's data key; None when nothing was sent
    leaf_index: int | None = None
    leaf_hash: bytes | None = None
    stored_values_digest: str | None = None  # as read back; differs from values_digest once purged

    @property
    def values_purged(self) -> bool:
        return self.stored_values_digest is not None and self.values_ct is None

    @property
    def values_digest(self) -> str | None:
        return None if self.values_ct is None else "sha256:" + hashlib.sha256(self.values_ct).hexdigest()

    def row(self, leaf_index: int) -> dict[str, Any]:
        """The stored columns (the leaf's content) for this entry at ``leaf_index``.

        An entry read back after a purge has no ciphertext; its leaf keeps the stored digest."""
        return {
            "leaf_index": leaf_index, "id": self.id, "registration_id": self.registration_id,
            "subject_id": self.subject_id, "recipient": self.recipient, "recipient_name": self.recipient_name,
            "recipient_country": self.recipient_country, "category": self.category, "article": self.article,
            "instrument": self.instrument, "purpose": self.purpose, "outcome": self.outcome,
            "retryable": int(self.retryable), "fields_json": json.dumps(list(self.fields)),
            "withheld_json": json.dumps(list(self.withheld)), "payload_digest": self.payload_digest,
            "result_code": self.result_code, "sv_trid": self.sv_trid, "cl_trid": self.cl_trid,
            "objects_json": json.dumps(self.objects, sort_keys=True), "reason": self.reason,
            "attempted_at": self.attempted_at, "recorded_at": self.recorded_at,
            # read back: the stored digest (the verifier checks the ciphertext against it separately)
            "values_digest": self.stored_values_digest if self.leaf_hash is not None else self.values_digest,
        }

    @classmethod
    def from_row(cls, r: Any) -> DisclosureEntry:
        """From a stored row joined with ``entry_values``; ``values_purged`` when the digest has no
        ciphertext any more (retention purge)."""
        values = r["values_ct"]
        return cls(
            id=r["id"], registration_id=r["registration_id"], recipient=r["recipient"],
            recipient_name=r["recipient_name"], recipient_country=r["recipient_country"], category=r["category"],
            article=r["article"], instrument=r["instrument"], purpose=r["purpose"], outcome=r["outcome"],
            retryable=bool(r["retryable"]), fields=tuple(json.loads(r["fields_json"])),
            withheld=tuple(json.loads(r["withheld_json"])), payload_digest=r["payload_digest"],
            result_code=r["result_code"], sv_trid=r["sv_trid"], cl_trid=r["cl_trid"],
            objects=json.loads(r["objects_json"]), reason=r["reason"], attempted_at=r["attempted_at"],
            recorded_at=r["recorded_at"], subject_id=r["subject_id"],
            values_ct=bytes(values) if values is not None else None, leaf_index=r["leaf_index"],
            leaf_hash=bytes(r["leaf_hash"]) if r["leaf_hash"] is not None else None,
            stored_values_digest=r["values_digest"],
        )

    def as_dict(self) -> dict[str, Any]:
        """Metadata view: never the encrypted values (see the ledger for decryption)."""
        return {
            "id": self.id, "seq": self.leaf_index, "registration_id": self.registration_id,
            "subject_id": self.subject_id, "recipient": self.recipient, "recipient_name": self.recipient_name,
            "recipient_country": self.recipient_country,
            "transfer": {"category": self.category, "article": self.article, "instrument": self.instrument},
            "purpose": self.purpose, "outcome": self.outcome, "retryable": self.retryable,
            "fields": list(self.fields), "withheld": list(self.withheld), "payload_digest": self.payload_digest,
            "result_code": self.result_code, "sv_trid": self.sv_trid, "cl_trid": self.cl_trid,
            "objects": self.objects, "reason": self.reason, "attempted_at": self.attempted_at,
            "recorded_at": self.recorded_at, "values_purged": self.values_purged,
            "leaf_hash": self.leaf_hash.hex() if self.leaf_hash else None,
        }
