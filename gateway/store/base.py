"""The store contract: what the gateway needs from a database, and the values that cross it.

Two implementations (``sqlite.SqliteStore``, ``postgres.PostgresStore``) pass one contract test
suite.  Every method that writes does so in one transaction; ``append`` of a disclosure entry also
extends the Merkle tree (leaf, new nodes, head) in that same transaction, so the tree can never
disagree with the rows it covers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from gateway.ledger.entry import leaf_bytes
from gateway.ledger.merkle import Frontier, Node, leaf_hash


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


def extend_tree(frontier: Frontier, entry: DisclosureEntry) -> tuple[dict[str, Any], bytes, list[Node]]:
    """Pure step shared by both stores: the row, its leaf hash and the new tree nodes.

    ``frontier`` is advanced in place."""
    row = entry.row(frontier.size)
    lh = leaf_hash(leaf_bytes(row))
    nodes = frontier.append(lh)
    return row, lh, nodes


def node_born(level: int, index: int) -> int:
    """Index of the leaf whose append completes node (level, index): the verifier's stream order."""
    return ((index + 1) << level) - 1


@dataclass(frozen=True)
class OutboxItem:
    id: int
    registration_id: str
    recipient: str
    attempts: int
    subject_id: str | None
    payload_ct: bytes
    payload_digest: str
    transfer: dict[str, Any]
    fields: dict[str, Any]
    purpose: str
    change_id: str = ""


@dataclass(frozen=True)
class NewOutbox:
    recipient: str
    payload_ct: bytes
    payload_digest: str
    transfer: dict[str, Any]
    fields: dict[str, Any]
    purpose: str = "domain_registration"
    required: bool = True  # counts towards the registration's status (the registry's delivery)
    batch: bool = False  # collected by a batch job (escrow deposits), not the delivery worker
    change_id: str = ""  # set for an update pushed after the registration (rectification, change)


@dataclass(frozen=True)
class NewSubject:
    id: str
    kid: str
    wrapped: bytes
    index: tuple[tuple[str, str], ...]  # (kind, blind-index digest)


@dataclass(frozen=True)
class SubjectKey:
    subject_id: str
    kid: str | None
    wrapped: bytes | None  # None once shredded
    shredded_at: str | None


@dataclass(frozen=True)
class DisclosureFilter:
    recipient: str | None = None
    country: str | None = None
    category: str | None = None
    outcome: str | None = None
    registration_id: str | None = None
    subject_id: str | None = None
    third_country: bool | None = None
    since: str | None = None
    until: str | None = None
    after_seq: int = -1
    limit: int = 100


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    timestamp: str
    key_id: str
    signature: bytes
    origin: str


@dataclass
class Accepted:
    registration: dict[str, Any]
    idempotency: tuple[str, str, str]
    status: int
    response: dict[str, Any]
    outbox: list[NewOutbox] = field(default_factory=list)
    entries: list[DisclosureEntry] = field(default_factory=list)
    subject: NewSubject | None = None
    subject_links: tuple[tuple[str, str], ...] = ()  # extra (kind, digest) for an existing subject


THIRD_COUNTRY_CATEGORIES = ("adequacy", "safeguard", "derogation", "blocked")


class Store(Protocol):
    schema_version: int

    async def close(self) -> None: ...

    # idempotency and acceptance
    async def idempotent_response(self, client: str, key: str) -> tuple[str, int, dict[str, Any]] | None: ...
    async def accept(self, a: Accepted, now: str) -> tuple[str, int, dict[str, Any]] | None: ...

    # registrations and outbox
    async def registration(self, reg_id: str) -> dict[str, Any] | None: ...
    async def enqueue(self, registration_id: str, subject_id: str, items: list[NewOutbox], now: str) -> None: ...
    async def requeue_in_flight(self, now: str, stale_before: str | None = None) -> int: ...
    async def claim_due(self, now: str, limit: int, *, batch_recipient: str | None = None) -> list[OutboxItem]: ...
    async def finish(
        self, item: OutboxItem, entry: DisclosureEntry, *, state: str, next_attempt_at: str | None, now: str
    ) -> None: ...
    async def pending_count(self) -> int: ...

    # disclosures (the ledger's leaves)
    async def append(self, entries: list[DisclosureEntry]) -> None: ...
    async def disclosures(self, f: DisclosureFilter) -> list[DisclosureEntry]: ...
    async def disclosure(self, entry_id: str) -> DisclosureEntry | None: ...

    # subjects and keys
    async def find_subjects(self, digests: list[tuple[str, str]]) -> list[str]: ...
    async def claim_subject(self, new: NewSubject, now: str) -> str: ...
    async def subject_key(self, subject_id: str) -> SubjectKey | None: ...
    def subject_keys(self) -> AsyncIterator[SubjectKey]: ...
    async def replace_wrapped_key(self, subject_id: str, kid: str, wrapped: bytes) -> None: ...
    async def shred_subject(self, subject_id: str, now: str) -> bool: ...

    # reads of personal data, by staff (append-only)
    async def record_access(
        self, actor: str, action: str, object_id: str, subject_id: str | None, at: str
    ) -> None: ...
    async def access_log(self, subject_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]: ...

    # data-subject requests, restrictions, retention
    async def open_request(self, req: dict[str, Any]) -> None: ...
    async def request(self, request_id: str) -> dict[str, Any] | None: ...
    async def requests(self, state: str | None = None) -> list[dict[str, Any]]: ...
    async def update_request(self, request_id: str, changes: dict[str, Any]) -> None: ...
    async def add_request_event(
        self, request_id: str, at: str, actor: str, action: str, detail: dict[str, Any]
    ) -> None: ...
    async def request_events(self, request_id: str) -> list[dict[str, Any]]: ...
    async def add_restriction(self, r: dict[str, Any]) -> None: ...
    async def lift_restriction(self, restriction_id: str, at: str) -> bool: ...
    async def restrictions(self, subject_id: str, *, active_only: bool = True) -> list[dict[str, Any]]: ...
    async def subject_registrations(self, subject_id: str) -> list[dict[str, Any]]: ...
    async def purge_values(self, entry_ids: list[str]) -> int: ...

    # tree
    async def head(self) -> Frontier: ...
    async def nodes(self, coords: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]: ...
    async def add_checkpoint(self, cp: StoredCheckpoint) -> None: ...
    async def checkpoints(self) -> list[StoredCheckpoint]: ...
    async def checkpoint(self, size: int) -> StoredCheckpoint | None: ...
    def stream_leaves(self, batch: int = 1000) -> AsyncIterator[list[DisclosureEntry]]: ...
    def stream_nodes(self, batch: int = 1000) -> AsyncIterator[list[tuple[int, int, int, bytes]]]: ...


def with_leaf(entry: DisclosureEntry, index: int, lh: bytes) -> DisclosureEntry:
    return replace(entry, leaf_index=index, leaf_hash=lh)
