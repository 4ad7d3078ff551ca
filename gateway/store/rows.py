"""What both stores say alike: column lists, dialect-neutral SQL text, and pure row encoding/decoding.

The SQLite and PostgreSQL stores differ in how they lock, bind parameters (``?`` against ``$1``) and
spell a few statements; they must not differ in which columns they write or how a row becomes a record,
or a row read back from one would not equal the same row from the other (and the leaf bytes hashed
into the tree would differ).  So those parts are written once, here, and each store keeps only its SQL.
Nothing here touches a connection.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway.ledger.entry import STORED_COLUMNS, DisclosureEntry, stored_leaf_bytes
from gateway.ledger.merkle import Frontier, leaf_hash
from gateway.store.base import (
    BASIS_RECORD,
    BASIS_STRONG_ID,
    THIRD_COUNTRY_CATEGORIES,
    DisclosureFilter,
    NewOutbox,
    NewSubject,
    OutboxItem,
    StoredCheckpoint,
    SubjectKey,
    node_born,
)

# -- placeholders ----------------------------------------------------------------------------------------

#: A dialect's placeholder for the n-th (1-based) bound value.
Mark = Callable[[int], str]


def qmark(_n: int) -> str:
    """SQLite's placeholder."""
    return "?"


def dollar(n: int) -> str:
    """PostgreSQL's (asyncpg's) placeholder."""
    return f"${n}"


def marks(count: int, mark: Mark) -> str:
    """``count`` placeholders for a VALUES list."""
    return ", ".join(mark(i) for i in range(1, count + 1))


def insert_sql(table: str, columns: Sequence[str], mark: Mark) -> str:
    """``INSERT INTO table(columns) VALUES (placeholders)``; table and columns are fixed names, never input."""
    return f"INSERT INTO {table}({', '.join(columns)}) VALUES ({marks(len(columns), mark)})"  # noqa: S608


class Params:
    """Values bound while a statement is written, each replaced in the text by the dialect's mark.

    Calling it in the order the text is written keeps values and placeholders in step for both
    positional (``?``) and numbered (``$n``) styles."""

    def __init__(self, mark: Mark) -> None:
        self.values: list[Any] = []
        self._mark = mark

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return self._mark(len(self.values))


# -- disclosures (the ledger's leaves) and the tree ------------------------------------------------------

DISCLOSURE_COLUMNS: tuple[str, ...] = (*STORED_COLUMNS, "leaf_hash")
#: Every stored column of an entry plus its sealed values (NULL once purged), as ``from_row`` reads them.
SELECT_DISCLOSURES = (
    f"SELECT {', '.join('d.' + c for c in DISCLOSURE_COLUMNS)}, v.values_ct FROM disclosures d "  # noqa: S608
    "LEFT JOIN entry_values v ON v.leaf_index = d.leaf_index"
)
#: Sealed values by leaf index (schema 7: keyed in append order, not by the random entry id).
ENTRY_VALUES_COLUMNS = ("leaf_index", "values_ct")
#: Tree nodes; the key is ``(born, level)`` (schema 7), the order appends write them in.
NODE_COLUMNS = ("level", "idx", "born", "hash")


def node_key(level: int, idx: int) -> tuple[int, int]:
    """The stored key ``(born, level)`` of node ``(level, idx)``: what a lookup binds (schema 7)."""
    return node_born(level, idx), level


def leaf_range_sql(mark: Mark, *, lower: bool, upper: bool) -> str:
    """Leaf rows as ``stream_leaf_rows`` gives them (``DISCLOSURE_COLUMNS`` then ``values_ct``) with
    ``lo <= leaf_index < hi``, in order; bound: ``lo`` if ``lower``, then ``hi`` if ``upper``.

    A side without a bound takes every row beyond it: the first range of a verifier sees any stray index
    below 0 and the last any row beyond the head, so together the ranges see every row there is."""
    bounds = [*(["d.leaf_index >= " + mark(1)] if lower else []),
              *([f"d.leaf_index < {mark(1 + lower)}"] if upper else [])]
    where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
    return f"{SELECT_DISCLOSURES}{where} ORDER BY d.leaf_index"


def node_range_sql(mark: Mark, *, lower: bool, upper: bool) -> str:
    """Tree nodes ``(level, idx, born, hash)`` with ``lo <= born < hi`` in key order, bound as
    :func:`leaf_range_sql` (and open the same way): the nodes the appends of those leaves wrote."""
    bounds = [*(["born >= " + mark(1)] if lower else []), *([f"born < {mark(1 + lower)}"] if upper else [])]
    where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
    return f"SELECT level, idx, born, hash FROM ledger_nodes{where} ORDER BY born, level"  # noqa: S608


@dataclass(frozen=True)
class TreeRows:
    """The rows one append writes, each list in its table's column order."""

    leaves: list[tuple[Any, ...]]  # DISCLOSURE_COLUMNS
    values: list[tuple[int, bytes]]  # ENTRY_VALUES_COLUMNS
    nodes: list[tuple[int, int, int, bytes]]  # NODE_COLUMNS


def tree_rows(frontier: Frontier, entries: Iterable[DisclosureEntry]) -> TreeRows:
    """Leaves, sealed values and completed tree nodes for ``entries`` appended in order after ``frontier``
    (advanced in place, so the caller then stores ``frontier`` as the new head)."""
    out = TreeRows([], [], [])
    for entry in entries:
        index = frontier.size
        stored = entry.stored_row(index)
        # the orjson encoder of the verifier's fast pass: the same bytes as ``leaf_bytes`` (property-tested)
        lh = leaf_hash(stored_leaf_bytes(stored))
        nodes = frontier.append(lh)
        out.leaves.append((*stored, lh))
        if entry.values_ct is not None:
            out.values.append((index, entry.values_ct))
        out.nodes.extend((n.level, n.index, node_born(n.level, n.index), n.hash) for n in nodes)
    return out


#: Filter fields compared for equality, by column.
_EQUAL_FILTERS: tuple[tuple[str, str], ...] = (
    ("recipient", "recipient"), ("recipient_country", "country"), ("category", "category"),
    ("outcome", "outcome"), ("registration_id", "registration_id"), ("subject_id", "subject_id"),
    ("command", "command"),
)


def disclosures_sql(
    f: DisclosureFilter, bind: Params, category_in: Callable[[tuple[str, ...], bool], str]
) -> str:
    """One page of entries matching ``f``, in leaf order, after ``f.after_seq``, at most ``f.limit``.

    Only fixed column names are written into the text; every value goes through ``bind``.
    ``category_in(categories, inside)`` is the dialect's test of ``d.category`` against a list
    (``inside=False``: not in it), binding the list itself."""
    where = [f"d.leaf_index > {bind(f.after_seq)}"]
    for column, name in _EQUAL_FILTERS:
        value = getattr(f, name)
        if value is not None:
            where.append(f"d.{column} = {bind(value)}")
    if f.third_country is not None:
        where.append(category_in(THIRD_COUNTRY_CATEGORIES, f.third_country))
    if f.since is not None:
        where.append(f"d.recorded_at >= {bind(f.since)}")
    if f.until is not None:
        where.append(f"d.recorded_at < {bind(f.until)}")
    return f"{SELECT_DISCLOSURES} WHERE {' AND '.join(where)} ORDER BY d.leaf_index LIMIT {bind(f.limit)}"


CHECKPOINT_COLUMNS = ("size", "root", "timestamp", "origin", "key_id", "signature")
SELECT_CHECKPOINTS = f"SELECT {', '.join(CHECKPOINT_COLUMNS)} FROM checkpoints"  # noqa: S608 - fixed names


def checkpoint_values(cp: StoredCheckpoint) -> tuple[Any, ...]:
    """``cp`` in ``CHECKPOINT_COLUMNS`` order."""
    return cp.size, cp.root, cp.timestamp, cp.origin, cp.key_id, cp.signature


def checkpoint_from_row(r: Any) -> StoredCheckpoint:
    """A checkpoint row from either driver (``bytes()``: SQLite and asyncpg return blobs differently)."""
    return StoredCheckpoint(
        size=int(r["size"]), root=bytes(r["root"]), timestamp=r["timestamp"], key_id=r["key_id"],
        signature=bytes(r["signature"]), origin=r["origin"],
    )


# -- registrations and the outbox ------------------------------------------------------------------------

#: Columns of a new outbox row; ``outbox_rows`` gives the values in this order.
OUTBOX_COLUMNS = (
    "registration_id", "recipient", "subject_id", "purpose", "required", "batch", "change_id", "state",
    "payload_ct", "payload_digest", "transfer_json", "fields_json", "next_attempt_at", "updated_at",
    "request_id",
)


def outbox_rows(
    registration_id: str, subject_id: str | None, items: list[NewOutbox], now: str
) -> list[tuple[Any, ...]]:
    """New outbox rows, pending and due at once."""
    return [(registration_id, i.recipient, subject_id, i.purpose, int(i.required), int(i.batch), i.change_id,
             "pending", i.payload_ct, i.payload_digest, json.dumps(i.transfer), json.dumps(i.fields), now, now,
             i.request_id)
            for i in items]


def outbox_item(r: Any, *, attempts: int | None = None) -> OutboxItem:
    """An outbox row as the worker gets it; ``attempts`` overrides the stored count (SQLite reads the row
    before its claim increments it)."""
    item = OutboxItem(
        id=int(r["id"]), registration_id=r["registration_id"], recipient=r["recipient"],
        attempts=int(r["attempts"]), subject_id=r["subject_id"], payload_ct=bytes(r["payload_ct"]),
        payload_digest=r["payload_digest"], transfer=json.loads(r["transfer_json"]),
        fields=json.loads(r["fields_json"]), purpose=r["purpose"], change_id=r["change_id"],
        request_id=r["request_id"], token=r["claim_token"] or "",
        progress=json.loads(r["progress_json"]) if r["progress_json"] else {}, deadline_at=r["deadline_at"],
    )
    return item if attempts is None else replace(item, attempts=attempts)


def new_token() -> str:
    """A claim's fencing token: unguessable, so no other claim can ever hold the same one."""
    return secrets.token_hex(16)


def claim_filter(
    batch_recipient: str | None, recipient: str | None, exclude: Collection[str], mark: str
) -> tuple[str, list[Any]]:
    """The WHERE clause (``mark`` is ``?``; PostgreSQL's numbered marks are rewritten by the caller) that
    selects claimable rows: a batch job's, one recipient's (a bulkhead), or any but ``exclude``'s."""
    if batch_recipient is not None:
        return f"batch=1 AND recipient={mark}", [batch_recipient]
    if recipient is not None:
        return f"batch=0 AND recipient={mark}", [recipient]
    if exclude:
        return f"batch=0 AND recipient NOT IN ({', '.join(mark for _ in exclude)})", list(exclude)
    return "batch=0", []


#: The states ``finish`` may leave an outbox row in (``failed`` only for the escrow job's refusals and
#: rows that can never go: erased subject, recipient gone; what staff can act on is parked instead).
FINISH_STATES = ("done", "failed", "pending", "needs_attention")


def check_finish_state(state: str) -> None:
    """Refuse, before any write, a state ``finish`` must never leave a row in (``in_flight``, a typo)."""
    if state not in FINISH_STATES:
        raise ValueError("bad outbox state")


def registration_status(required_states: set[str]) -> str:
    """A registration's status from the states of the outbox rows that count for it (not marketing,
    not escrow): delivered when all are done, failed when any failed, else still delivering."""
    if required_states == {"done"}:
        return "delivered"
    # a parked row (needs_attention) fails the registration for the ordering system until staff retry it
    return "failed" if required_states & {"failed", "cancelled", "needs_attention"} else "delivering"


def registration_view(
    row: Any, deliveries: Iterable[Any], entries: Iterable[Any], events: Iterable[Any] = ()
) -> dict[str, Any]:
    """A registration with its deliveries, its disclosure entries (metadata only) and its lifecycle: kind,
    expiry, when and why our role ended, and the events after acceptance (schema 6)."""
    return {
        "id": row["id"], "client": row["client"], "order_ref": row["order_ref"], "domain": row["domain"],
        "subject_id": row["subject_id"], "status": row["status"], "plan": json.loads(row["plan_json"]),
        "created_at": row["created_at"], "updated_at": row["updated_at"],
        "kind": row["kind"], "expires_at": row["expires_at"], "ended_at": row["ended_at"],
        "end_reason": row["end_reason"],
        "deliveries": [dict(d) for d in deliveries],
        "disclosures": [DisclosureEntry.from_row(e).as_dict() for e in entries],
        "events": [event_view(e) for e in events],
    }


def event_view(row: Any) -> dict[str, Any]:
    """One registration event: what happened, when, from where (``api`` or ``registry``), ids and codes."""
    return {"id": int(row["id"]), "registration_id": row["registration_id"], "at": row["at"], "kind": row["kind"],
            "source": row["source"], "detail": json.loads(row["detail_json"])}


#: Why our role as a domain's registrar ended (``registrations.end_reason``, schema 6).
END_REASONS = ("deleted", "transferred_out", "expired")


def idempotent_answer(r: Any) -> tuple[str, int, dict[str, Any]]:
    """A stored idempotency row as (request hash, status, response)."""
    return r["request_hash"], int(r["status"]), json.loads(r["response_json"])


# -- subjects --------------------------------------------------------------------------------------------

SUBJECT_KEY_COLUMNS = "id, kid, wrapped, shredded_at, basis"
#: Subject keys read per page while streaming them all (KEK rotation).
SUBJECT_KEY_PAGE = 500
#: A subject's registrations as ``subject_registrations`` returns them.
SUBJECT_REGISTRATION_COLUMNS = "id, domain, tld, status, created_at, language"


def subject_links(new: NewSubject) -> list[tuple[str, str]]:
    """Every (kind, digest) link of a new subject, its strong identifier always among them (so the next
    registration with it finds this subject), each once, in the order given."""
    links = [*new.index, *([("strong_id", new.merge_on)] if new.merge_on is not None else [])]
    return list(dict.fromkeys(links))


def subject_key_from_row(r: Any) -> SubjectKey:
    """A subject's key row; ``wrapped`` is NULL once the subject has been shredded, ``basis`` NULL for a
    subject made before schema 2."""
    basis = r["basis"]
    if basis not in (None, BASIS_STRONG_ID, BASIS_RECORD):
        raise ValueError("unknown subject basis")
    return SubjectKey(r["id"], r["kid"], bytes(r["wrapped"]) if r["wrapped"] is not None else None,
                      r["shredded_at"], basis)


# -- data-subject requests -------------------------------------------------------------------------------

REQUEST_COLUMNS = ("id", "kind", "channel", "identity_check", "verified_by", "opened_by", "opened_at",
                   "deadline", "state", "subject_id", "closed_at", "data_json")
_REQUEST_CHANGES = {"state", "subject_id", "closed_at", "deadline", "data"}


def request_values(req: dict[str, Any]) -> tuple[Any, ...]:
    """A new request in ``REQUEST_COLUMNS`` order; its free-form ``data`` stored as JSON."""
    return tuple(json.dumps(req.get("data", {})) if c == "data_json" else req.get(c) for c in REQUEST_COLUMNS)


def request_changes(changes: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """The columns and values of an update to a request; only its state, subject, closing time, deadline
    and data may change."""
    if not set(changes) <= _REQUEST_CHANGES:
        raise ValueError("only state, subject_id, closed_at, deadline and data change")
    columns = [("data_json" if k == "data" else k) for k in changes]
    values = [json.dumps(v) if k == "data" else v for k, v in changes.items()]
    return columns, values


def request_from_row(r: Any) -> dict[str, Any]:
    """A request row as a dict, its stored JSON ``data_json`` decoded into ``data``."""
    d = dict(r)
    d["data"] = json.loads(d.pop("data_json"))
    return d


def request_event_from_row(r: Any) -> dict[str, Any]:
    """One step taken on a request, its detail decoded."""
    return {"at": r["at"], "actor": r["actor"], "action": r["action"], "detail": json.loads(r["detail_json"])}


# -- the INSERT statements, per placeholder style ------------------------------------------------------

@dataclass(frozen=True)
class Inserts:
    """The shared INSERT statements in one dialect's placeholder style: the column lists above, once."""

    leaf: str
    values: str
    node: str
    outbox: str
    request: str
    checkpoint: str  # a plain INSERT: each store adds its own way of ignoring a size already signed

    @classmethod
    def using(cls, mark: Mark) -> Inserts:
        return cls(
            leaf=insert_sql("disclosures", DISCLOSURE_COLUMNS, mark),
            values=insert_sql("entry_values", ENTRY_VALUES_COLUMNS, mark),
            node=insert_sql("ledger_nodes", NODE_COLUMNS, mark),
            outbox=insert_sql("outbox", OUTBOX_COLUMNS, mark),
            request=insert_sql("requests", REQUEST_COLUMNS, mark),
            checkpoint=insert_sql("checkpoints", CHECKPOINT_COLUMNS, mark),
        )


def problem_code(response: dict[str, Any]) -> str | None:
    """The problem ``code`` of a refusal's stored answer (a webhook event names it), if it has one."""
    code = response.get("code")
    return code if isinstance(code, str) else None
