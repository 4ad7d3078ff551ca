"""The store contract: what the gateway needs from a database, and the values that cross it.

Two implementations (``sqlite.SqliteStore``, ``postgres.PostgresStore``) pass one contract test
suite.  Every method that writes does so in one transaction; ``append`` of a disclosure entry also
extends the Merkle tree (leaf, new nodes, head) in that same transaction, so the tree can never
disagree with the rows it covers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from gateway.ledger.entry import DisclosureEntry, leaf_bytes
from gateway.ledger.merkle import Frontier, Node, leaf_hash


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


class DisclosureReads:
    """``iter_disclosures`` for every store, written once over the store's own ``disclosures`` page:
    callers walk all matching entries without a paging loop of their own."""

    async def disclosures(self, f: DisclosureFilter) -> list[DisclosureEntry]:
        raise NotImplementedError

    async def iter_disclosures(self, f: DisclosureFilter, *, page: int = 500) -> AsyncIterator[DisclosureEntry]:
        """Every entry matching ``f`` (its ``after_seq`` is the start; its ``limit`` is ignored), in
        leaf order, read ``page`` entries at a time."""
        f = replace(f, limit=page)
        while True:
            rows = await self.disclosures(f)
            for e in rows:
                yield e
            if len(rows) < page or rows[-1].leaf_index is None:
                return
            f = replace(f, after_seq=rows[-1].leaf_index)


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
    def iter_disclosures(self, f: DisclosureFilter, *, page: int = 500) -> AsyncIterator[DisclosureEntry]: ...
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
