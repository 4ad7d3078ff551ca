"""The store contract: what the gateway needs from a database, spoken in roles, and the values that cross it.

The contract is split by who uses it: ``OutboxStore`` (acceptance and delivery), ``LedgerStore`` (the
disclosure tree and checkpoints), ``SubjectStore`` (subjects and their keys), ``AccessLogStore`` (staff
reads of personal data), ``RequestStore`` (data-subject rights) and ``WebhookStore`` (the ordering
system's callbacks); ``Store`` is all of them plus the
lifecycle, for the wiring.  Two implementations (``sqlite.SqliteStore``, ``postgres.PostgresStore``)
pass one contract test suite.  Every method that writes does so in one transaction; ``append`` of a
disclosure entry also extends the Merkle tree (leaf, new nodes, head) in that same transaction, so the
tree can never disagree with the rows it covers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import orjson

from gateway.ledger.entry import DisclosureEntry, leaf_bytes
from gateway.ledger.merkle import Frontier, Node, leaf_hash
from gateway.store.paging import keyset_pages


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
    #: the ``X-Request-ID`` of the request that queued the row (schema 4), bound on its delivery's log
    #: lines; None for rows from before schema 4 or queued outside a request.  Not part of the payload.
    request_id: str | None = None
    #: this claim's fencing token (schema 5): outcomes are recorded only while the row still carries it
    token: str = ""
    #: what earlier steps of this row left at the recipient (``progress_json``), e.g. contacts created
    progress: dict[str, Any] = field(default_factory=dict)
    #: until when transient failures are retried (set at the first one); None before any failure
    deadline_at: str | None = None


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
    #: the request that queued the row, for the delivery's log lines; never in the payload or its digest
    request_id: str | None = None


#: How a subject's records were joined (``subjects.basis``, schema 2): ``strong_id`` - every registration with
#: that strong identifier (national ID with scheme and issuing country); ``record`` - one holder record, a
#: registrant without a strong identifier, merged with nothing.  ``None``: a subject made before schema 2,
#: when any shared e-mail or national ID number merged records; it is never merged into again.
SubjectBasis = Literal["strong_id", "record"]
BASIS_STRONG_ID: SubjectBasis = "strong_id"
BASIS_RECORD: SubjectBasis = "record"


@dataclass(frozen=True)
class NewSubject:
    """A subject to create, with its data key wrapped and every blind-index link it starts with.

    ``merge_on`` is the blind-index digest of the strong identifier (kind ``strong_id``), the only link
    ``claim_subject`` may find an existing holder by; ``None`` makes a holder record of its own."""

    id: str
    kid: str
    wrapped: bytes
    index: tuple[tuple[str, str], ...]  # (kind, blind-index digest)
    merge_on: str | None = None

    @property
    def basis(self) -> SubjectBasis:
        return BASIS_STRONG_ID if self.merge_on is not None else BASIS_RECORD


@dataclass(frozen=True)
class SubjectKey:
    subject_id: str
    kid: str | None
    wrapped: bytes | None  # None once shredded
    shredded_at: str | None
    basis: SubjectBasis | None = None  # see ``SubjectBasis``; None for subjects made before schema 2


@dataclass(frozen=True)
class DisclosureFilter:
    recipient: str | None = None
    country: str | None = None
    category: str | None = None
    outcome: str | None = None
    registration_id: str | None = None
    subject_id: str | None = None
    #: the command that carried it (``contact:create`` ...): internal reads, e.g. the contacts a person has
    command: str | None = None
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
    subject: NewSubject | None = None  # a new subject written with the registration (a holder record)
    subject_links: tuple[tuple[str, str], ...] = ()  # extra (kind, digest) for an existing subject
    #: the plan and the answer as the service encoded them, once (the answer's ``transfers`` are the plan's
    #: bytes, and the answer's bytes are the HTTP body); None: encoded by the store from the objects
    plan_json: bytes | None = None
    response_json: bytes | None = None

    def plan_text(self) -> str:
        return (self.plan_json if self.plan_json is not None else orjson.dumps(self.registration["plan"])).decode()

    def response_text(self) -> str:
        return (self.response_json if self.response_json is not None else orjson.dumps(self.response)).decode()


@dataclass(frozen=True)
class AcceptContext:
    """Everything the accept path reads, in one store call on a read connection (never behind the writer).

    Read before the request is judged, so it may be stale by the write: ``accept`` re-checks what matters
    inside its transaction (the idempotency key, a named subject still live, a new subject's strong
    identifier still free, raising ``SubjectRaced``)."""

    #: exactly what ``idempotent_response(client, key)`` returns
    prior: tuple[str, int, dict[str, Any]] | None
    #: the live subject (wrapped key not NULL) that ``("strong_id", strong_digest)`` names, picked as
    #: ``claim_subject`` picks (oldest by ``created_at``, then id); None without a digest or a live holder
    holder: SubjectKey | None
    #: exactly ``restrictions(holder.subject_id)`` (active only); () without a holder
    restrictions: tuple[dict[str, Any], ...] = ()


#: The accept path's decision on what ``accept_request`` read: the acceptance to write, or None to write
#: nothing because the key already has an answer (``AcceptContext.prior``).  Synchronous and free of I/O
#: (planning, sealing, wrapping a new data key), because a store may call it inside its write transaction.
Decide = Callable[[AcceptContext], Accepted | None]

THIRD_COUNTRY_CATEGORIES = ("adequacy", "safeguard", "derogation", "blocked")


def _seq(entry: DisclosureEntry) -> int:
    """The paging key of a stored entry: its leaf index, which every stored row has."""
    if entry.leaf_index is None:
        raise ValueError(f"stored entry {entry.id} has no leaf index")
    return entry.leaf_index


class DisclosureReads:
    """``iter_disclosures`` for every store, written once over the store's own ``disclosures`` page:
    callers walk all matching entries without a paging loop of their own."""

    async def disclosures(self, f: DisclosureFilter) -> list[DisclosureEntry]:
        raise NotImplementedError

    async def iter_disclosures(self, f: DisclosureFilter, *, page: int = 500) -> AsyncIterator[DisclosureEntry]:
        """Every entry matching ``f`` (its ``after_seq`` is the start; its ``limit`` is ignored), in
        leaf order, read ``page`` entries at a time."""
        if page < 1:
            raise ValueError("page must be at least 1")

        def fetch(after: int) -> Awaitable[list[DisclosureEntry]]:
            return self.disclosures(replace(f, after_seq=after, limit=page))

        async for rows in keyset_pages(fetch, _seq, f.after_seq, size=page):
            for e in rows:
                yield e


# -- the store, by role ----------------------------------------------------------------------------------
#
# Each consumer depends on the roles it calls, not on every table: a reader of the ledger cannot reach
# the outbox, a test double for one role stays small, and the grouping documents which writes share a
# transaction.  Both stores implement every role; ``Store`` joins them for the wiring.


class OutboxStore(Protocol):
    """Acceptance and delivery: the registration service (idempotency, ``accept``), the delivery worker
    and the escrow job (claim, finish, requeue), the change service (``enqueue``) and the API's status
    and health reads.

    Separate because these are the write paths that carry the outbox's guarantees: ``accept`` writes the
    request, its subject, outbox rows and any refusal entries in one transaction, and ``finish`` records
    an attempt's outcome together with its disclosure entry, so a crash leaves both or neither.
    """

    async def idempotent_response(self, client: str, key: str) -> tuple[str, int, dict[str, Any]] | None: ...
    async def accept_context(self, client: str, key: str, strong_digest: str | None) -> AcceptContext:
        """The idempotency key's earlier answer, the live holder of the strong identifier and its active
        restrictions, in one read (see ``AcceptContext``)."""
        ...

    async def accept_request(
        self, client: str, key: str, strong_digest: str | None, now: str, decide: Decide
    ) -> tuple[str, int, dict[str, Any]] | None:
        """The accept path's one store call: read the ``AcceptContext``, call ``decide`` on it, and write
        the acceptance it returns as ``accept`` does (same checks, same exceptions).  Returns the key's
        earlier answer (read, or found taken when writing) and writes nothing then; None once the
        acceptance is durable.  An exception from ``decide`` propagates and nothing is written.

        SQLite runs it all as one job of the writer's group: the read and ``decide`` just before the group's
        transaction, the write inside it, and the read and ``decide`` again inside it if a holder was made
        or erased in between, so ``SubjectErased`` never reaches the caller there.  PostgreSQL reads on a
        pooled connection and queues the write into the next group."""
        ...

    async def accept(self, a: Accepted, now: str) -> tuple[str, int, dict[str, Any]] | None:
        """Raises ``SubjectErased`` (writing nothing) if the registration names an existing subject whose
        key is gone by the time the transaction runs: an erasure in another process won the race, and the
        caller must find (or make) the holder again rather than file new data under a destroyed key.

        With ``a.subject`` a ``NewSubject`` whose ``merge_on`` is set, raises ``SubjectRaced`` (a
        ``SubjectErased``; writing nothing) if a live subject already holds ``("strong_id", merge_on)``: a
        concurrent first registration of the holder won, and the caller's retry finds it through
        ``accept_context``.  Otherwise the subject is inserted with all its links (``rows.subject_links``)
        as ``claim_subject`` inserts one."""
        ...

    async def registration(self, reg_id: str) -> dict[str, Any] | None: ...
    async def enqueue(self, registration_id: str, subject_id: str, items: list[NewOutbox], now: str) -> None:
        """Raises ``SubjectErased`` (writing nothing) if the subject's key is gone: see ``accept``."""
        ...

    async def requeue_in_flight(self, now: str, stale_before: str | None = None) -> int: ...
    async def claim_due(
        self, now: str, limit: int, *, batch_recipient: str | None = None, recipient: str | None = None,
        exclude: Collection[str] = (), lease_until: str | None = None,
    ) -> list[OutboxItem]: ...
    async def due_recipients(self, now: str) -> list[str]:
        """Recipients with rows due for the delivery worker (one bulkhead each)."""
        ...
    async def renew_claims(self, tokens: Sequence[str], lease_until: str) -> int: ...
    async def release_claims(self, tokens: Sequence[str], now: str) -> int: ...
    async def record_step(
        self, item: OutboxItem, entries: Sequence[DisclosureEntry], *, progress: dict[str, Any], now: str,
        events: Sequence[dict[str, Any]] = (),
    ) -> bool: ...
    async def finish(
        self, item: OutboxItem, entries: DisclosureEntry | Sequence[DisclosureEntry], *, state: str,
        next_attempt_at: str | None, now: str, parked_reason: str | None = None, deadline_at: str | None = None,
        progress: dict[str, Any] | None = None, last_code: str | None = None,
        events: Sequence[dict[str, Any]] = (),
    ) -> bool: ...
    async def pending_count(self) -> int: ...
    async def outbox_stats(self, now: dt.datetime) -> list[OutboxStat]:
        """Per recipient with any undelivered or parked row, in one query: queue depth (pending and in
        flight), parked rows (``needs_attention``) and the age at ``now`` of the oldest undelivered row."""
        ...
    # -- parked rows: staff retry or cancel them (``gateway.store.parked_rows``) --
    async def parked(self, recipient: str | None = None) -> list[dict[str, Any]]:
        """Rows waiting for staff (``needs_attention``), per recipient, oldest first: id, registration_id,
        recipient, purpose, change_id, attempts, last_code, parked_reason, updated_at; never the payload
        or anything about the subject."""
        ...

    async def retry_parked(self, row_id: int, now: str, *, actor: str) -> bool:
        """Staff retry: the parked row is pending and due at ``now`` again, its deadline and parked reason
        cleared (the next transient failure starts a new deadline), and its registration's status
        recomputed (a registration failed only by this row is ``delivering`` again); ``actor`` and the
        action are written to the access log in the same transaction.  False (nothing written) if the row
        is not parked; ``OutboxRowNotFound`` if there is no such row."""
        ...

    async def cancel_parked(self, row_id: int, now: str, *, actor: str) -> bool:
        """Staff cancel: the parked row is ``cancelled`` for good and its registration's status recomputed
        (``rows.registration_status``); logged and refused like ``retry_parked``."""
        ...

    async def parked_actions(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest staff retries and cancels, newest first: at, actor, action (retry, cancel), row_id
        and the row's recipient and registration_id."""
        ...


class LedgerStore(Protocol):
    """The disclosure ledger: its leaves, the Merkle tree over them and the signed checkpoints.  Used by
    the Ledger service (checkpoints, proofs, ``verify_store``), the ledger API and CLI, the disclosure
    pages and the rights service (a subject's disclosures, the retention purge).

    Separate because it is the tamper-evident part: every write extends the tree in the same transaction,
    and a verifier or auditor needs these reads and nothing else.  ``purge_values`` belongs here because
    it deletes the sealed values beside the leaves, which the tree is built to survive.
    """

    async def append(self, entries: list[DisclosureEntry]) -> None: ...
    async def disclosures(self, f: DisclosureFilter) -> list[DisclosureEntry]: ...
    def iter_disclosures(self, f: DisclosureFilter, *, page: int = 500) -> AsyncIterator[DisclosureEntry]: ...
    async def disclosure(self, entry_id: str) -> DisclosureEntry | None: ...
    async def purge_values(self, entry_ids: list[str]) -> int: ...
    async def head(self) -> Frontier: ...
    async def nodes(self, coords: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]: ...
    async def add_checkpoint(self, cp: StoredCheckpoint) -> None: ...
    async def checkpoints(self) -> list[StoredCheckpoint]: ...
    async def checkpoint(self, size: int) -> StoredCheckpoint | None: ...
    def stream_leaves(self, batch: int = 1000) -> AsyncIterator[list[DisclosureEntry]]: ...
    def stream_nodes(self, batch: int = 1000) -> AsyncIterator[list[tuple[int, int, int, bytes]]]: ...
    def stream_leaf_rows(self, batch: int = 5000) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Every leaf row in order, undecoded: ``rows.DISCLOSURE_COLUMNS`` then ``values_ct``, as stored
        (the fast verifier hashes these without building an entry)."""
        ...


class SubjectStore(Protocol):
    """Data subjects and their keys: the Ledger service (find or create a subject, unwrap, shred, KEK
    rotation), the lookups API and the rights service (find a requester's subject).

    Separate because it holds the only key material (wrapped data keys) and the blind index: erasure is
    destroying a row here, and KEK rotation rewrites this table and nothing else.
    """

    async def find_subjects(self, digests: list[tuple[str, str]]) -> list[str]: ...
    async def claim_subject(self, new: NewSubject, now: str) -> str:
        """Get-or-create on the strong identifier alone: the oldest live subject linked to
        ``("strong_id", new.merge_on)``, else ``new`` inserted with all its links, atomically across
        processes.  No other link (e-mail, phone, name and address, national ID number) is consulted, and
        ``merge_on=None`` always inserts ``new``."""
        ...

    async def subject_key(self, subject_id: str) -> SubjectKey | None: ...
    def subject_keys(self) -> AsyncIterator[SubjectKey]: ...
    async def replace_wrapped_key(self, subject_id: str, kid: str, wrapped: bytes) -> None: ...
    async def shred_subject(self, subject_id: str, now: str) -> bool: ...
    async def wrapped_key_counts(self) -> dict[str, int]:
        """Live (not shredded) data keys per KEK id; a KEK may be retired only while its count is zero."""
        ...


class AccessLogStore(Protocol):
    """Staff reads of personal data (decrypted values, extracts, lookups), ids only, append-only: written
    by the Ledger service and the lookups API, read back for a subject's access request and by audits.

    Separate because reading personal data is itself processing to account for: the log is not part of
    the disclosure tree and is written by paths that otherwise only read.
    """

    async def record_access(
        self, actor: str, action: str, object_id: str, subject_id: str | None, at: str
    ) -> None: ...
    async def access_log(self, subject_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]: ...


class RequestStore(Protocol):
    """Data-subject rights (GDPR Art. 12-22): requests and their event trail for the rights service and
    pages; restrictions and objections, which the registration service, the change service and the
    delivery worker consult before any disclosure; a subject's registrations, for notices and changes.

    Separate because it is the case file of the rights workflow, not delivery or ledger state: it can be
    exercised and faked without an outbox or a tree.
    """

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
    async def subject_registrations(self, subject_id: str, *, client: str | None = None) -> list[dict[str, Any]]:
        """The subject's registrations (id, domain, tld, status, created_at) by creation; with ``client``,
        only those that ordering client created (the reach of its registrant change)."""
        ...


@dataclass(frozen=True)
class NewWebhook:
    """A client's callback subscription: ``events`` are the event types it wants (see
    ``gateway.webhooks.events``); ``secret`` signs every notification (kept as is: HMAC needs it)."""

    id: str
    client: str
    url: str
    events: tuple[str, ...]
    secret: str


@dataclass(frozen=True)
class WebhookDelivery:
    """One claimed notification to send: the stored body is sent byte for byte on every attempt."""

    id: int
    event_id: str
    webhook_id: str
    url: str
    secret: str
    body: str
    attempts: int  # including this one
    created_at: str


class WebhookStore(Protocol):
    """Webhooks for the ordering system: the subscriptions (the webhooks API) and the notifications the
    sender delivers.

    Events are not written through this role: ``accept``, ``finish`` and ``enqueue`` write them in the
    transaction of the state change they report (one row per subscription of the registration's client
    that wants that event type), so a crash never loses an event nor reports a change that did not
    commit.  Delivery is at least once: a claim only moves ``next_attempt_at`` past a lease."""

    async def add_webhook(self, hook: NewWebhook, now: str) -> None: ...
    async def webhooks(self, client: str) -> list[dict[str, Any]]:
        """The client's live subscriptions (never the secret), oldest first, each with its delivery counts."""
        ...

    async def delete_webhook(self, client: str, webhook_id: str, now: str) -> bool:
        """Ends a live subscription of ``client``; its undelivered notifications are marked failed."""
        ...

    async def webhook_events(self, webhook_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """A subscription's latest notifications, newest first: ids, type, state, attempts, last status."""
        ...

    async def claim_webhook_events(self, now: str, lease_until: str, limit: int) -> list[WebhookDelivery]:
        """Due pending notifications of live subscriptions; each is leased (``next_attempt_at`` moved to
        ``lease_until``) and its attempt counted.  Two senders never claim one row at once."""
        ...

    async def webhook_event_result(
        self, row_id: int, *, state: str, next_attempt_at: str | None, last_status: str, now: str
    ) -> None:
        """One attempt's outcome: ``delivered``, ``failed`` for good, or ``pending`` again at ``next_attempt_at``."""
        ...


class LifecycleStore(Protocol):
    """A domain's life after its registration (schema 6): renewal, transfer, deletion, registry notices.

    ``apply_notice`` records a registry poll message's effect once: the message id is written in the same
    transaction, so a message read again after a crash (before its acknowledgement) changes nothing."""

    async def add_registration_event(
        self, reg_id: str, *, at: str, kind: str, source: str, detail: dict[str, Any],
        end_reason: str | None = None, expires_at: str | None = None,
    ) -> None: ...
    async def registration_events(self, reg_id: str) -> list[dict[str, Any]]: ...
    async def apply_notice(
        self, registry: str, msg_id: str, *, at: str, kind: str, registration_id: str | None,
        detail: dict[str, Any], end_reason: str | None = None, expires_at: str | None = None,
        wake_recipient: str | None = None, outbox: list[NewOutbox] | None = None,
    ) -> bool:
        """Record a registry notice's effect once (False: this message was applied before): the event on the
        registration, its end, a waiting row of ``wake_recipient`` made due, unsealed ``outbox`` rows."""
        ...
    async def enqueue_unsealed(
        self, registration_id: str, items: list[NewOutbox], now: str, *, event: dict[str, Any] | None = None,
        end_reason: str | None = None,
    ) -> None: ...
    async def registration_for_domain(self, domain: str) -> dict[str, Any] | None:
        """The domain's registration with us: the active one if any, else the latest (never a blocked one)."""
        ...
    async def registration_ends(self, reg_ids: Collection[str]) -> dict[str, tuple[str | None, str | None]]:
        """``ended_at`` and ``end_reason`` of each registration (None, None while it is ours)."""
        ...


class Store(
    OutboxStore, LedgerStore, LifecycleStore, SubjectStore, AccessLogStore, RequestStore, WebhookStore, Protocol
):
    """Every role of one database, for the wiring (``compose``, the CLI) that opens and closes it."""

    schema_version: int

    async def close(self) -> None: ...


def with_leaf(entry: DisclosureEntry, index: int, lh: bytes) -> DisclosureEntry:
    """``entry`` as stored at ``index`` with leaf hash ``lh``."""
    return replace(entry, leaf_index=index, leaf_hash=lh)


# -- outbox figures for /metrics ---------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxStat:
    """One recipient's outbox at scrape time: counts and an age, never a value."""

    recipient: str
    depth: int  # pending + in_flight
    parked: int  # needs_attention: waiting for staff
    oldest_pending_s: float | None  # None: nothing undelivered (only parked rows)


#: One pass over the undelivered and parked rows.  A registration row's wait starts when the registration
#: was accepted; a change row's when it was queued (its ``updated_at``).  Timestamps are ISO text in both
#: dialects, so MIN compares them as written.
OUTBOX_STATS_SQL = (
    "SELECT o.recipient, "
    "SUM(CASE WHEN o.state IN ('pending', 'in_flight') THEN 1 ELSE 0 END) AS depth, "
    "SUM(CASE WHEN o.state = 'needs_attention' THEN 1 ELSE 0 END) AS parked, "
    "MIN(CASE WHEN o.state IN ('pending', 'in_flight') THEN "
    "(CASE WHEN o.change_id = '' THEN r.created_at ELSE o.updated_at END) END) AS oldest "
    "FROM outbox o JOIN registrations r ON r.id = o.registration_id "
    "WHERE o.state IN ('pending', 'in_flight', 'needs_attention') "
    "GROUP BY o.recipient ORDER BY o.recipient"
)


def outbox_stats_from(rows: Iterable[Sequence[Any]], now: dt.datetime) -> list[OutboxStat]:
    """``OUTBOX_STATS_SQL``'s rows as ``OutboxStat`` (shared by both stores)."""
    out = []
    for recipient, depth, parked, oldest in rows:
        age = None
        if oldest:
            at = dt.datetime.fromisoformat(str(oldest).replace("Z", "+00:00"))
            at = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
            age = max(0.0, (now - at).total_seconds())
        out.append(OutboxStat(str(recipient), int(depth or 0), int(parked or 0), age))
    return out
