"""The accept path's SQL on PostgreSQL: its one read (``accept_context``) and the one statement that writes
an acceptance on the closure path.  Pure: SQL text and bound values, no I/O (the store runs them).

Plain accepts (no ledger entries, not blocked) do not come here: a group's plain accepts are written by
one call of a batch function (``accept_batch``), which does per job what this statement does.  This path
remains for accepts that append to the tree or emit an event, and for values jsonb cannot carry.

The write is one statement of data-modifying CTEs (one round trip): the registration, its idempotency
row, the new subject and its blind-index links (or the named subject's liveness, ``FOR SHARE``) and the
outbox rows (``unnest`` of one array per column).  Foreign keys are checked at the end of the statement,
so children may name parents inserted beside them.  The statement reports two facts and the caller
decides:

* ``stored``: the idempotency row went in.  ``ON CONFLICT DO NOTHING`` waits for a concurrent request
  with the same key to commit (it replaces the advisory lock the store took before): NULL means the key is
  taken, the caller rolls the statement back and answers with the earlier response;
* ``subject_ok``: the new subject went in (no live subject holds its strong identifier: ``SubjectRaced``
  otherwise), or the named subject is still live (``SubjectErased`` otherwise).

A new subject with a strong identifier is first guarded by the transaction-scoped advisory lock
``claim_subject`` takes on the same digest (``MERGE_LOCK_SQL``, its own statement so that the write's
snapshot is taken after the lock is held: a holder committed by whoever held it before is seen).
"""

from __future__ import annotations

import json
from typing import Any

from gateway.store import rows as R
from gateway.store.base import AcceptContext, Accepted

#: The advisory lock key of a strong identifier's digest (``{digest}``: where the digest comes from).
MERGE_LOCK_KEY = "hashtextextended({digest}, 0)"
#: Serialises first registrations of one holder across processes (the same lock as ``claim_subject``).
MERGE_LOCK_SQL = f"SELECT pg_advisory_xact_lock({MERGE_LOCK_KEY.format(digest='$1')})"

#: The live subject a strong-identifier digest names, oldest first (``claim_subject``'s pick); ``$`` is
#: replaced by the digest's placeholder.
HOLDER_SQL = ("SELECT {cols} FROM subjects WHERE wrapped IS NOT NULL AND id IN "
           "(SELECT subject_id FROM subject_index WHERE kind='strong_id' AND digest={digest}) "
           "ORDER BY created_at, id LIMIT 1")

#: The accept path's one read, one statement (one snapshot): the key's earlier answer, the holder of the
#: strong identifier and the holder's active restrictions (``json_agg`` of the rows, as ``SELECT *`` has them).
ACCEPT_CONTEXT_SQL = (
    "WITH h AS (" + HOLDER_SQL.format(cols=R.SUBJECT_KEY_COLUMNS, digest="$3::text") + ") "  # noqa: S608 - fixed names
    "SELECT i.request_hash, i.status, i.response_json, h.id, h.kid, h.wrapped, h.shredded_at, h.basis, "
    "(SELECT json_agg(r ORDER BY r.since) FROM restrictions r WHERE r.subject_id = h.id AND r.lifted_at IS NULL) "
    "AS restrictions "
    "FROM (SELECT 1) AS one "
    "LEFT JOIN idempotency i ON i.client = $1 AND i.key = $2 "
    "LEFT JOIN h ON TRUE"
)

PRIOR_SQL = "SELECT request_hash, status, response_json FROM idempotency WHERE client=$1 AND key=$2"


def accept_context_from(row: Any) -> AcceptContext:
    """``ACCEPT_CONTEXT_SQL``'s single row as an ``AcceptContext``."""
    prior = R.idempotent_answer(row) if row["request_hash"] is not None else None
    holder = R.subject_key_from_row(row) if row["id"] is not None else None
    found = json.loads(row["restrictions"]) if row["restrictions"] is not None else []
    return AcceptContext(prior=prior, holder=holder, restrictions=tuple(found))


class _Bind:
    """Values bound while the statement is written: ``bind(v, "text")`` gives ``$n::text``."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any, sql_type: str) -> str:
        self.values.append(value)
        return f"${len(self.values)}::{sql_type}"


def accept_statement(a: Accepted, now: str) -> tuple[str, list[Any]]:
    """The one statement that writes ``a`` (see the module docstring); returns one row
    ``(stored, subject_ok)``."""
    client, key, request_hash = a.idempotency
    reg = a.registration
    subject_id = reg.get("subject_id")
    b = _Bind()
    at, sid = b(now, "text"), b(subject_id, "text")
    ctes = [
        "reg AS (INSERT INTO registrations(id, client, order_ref, domain, tld, subject_id, status, plan_json, "  # noqa: S608
        "created_at, updated_at, kind, expires_at, language) VALUES ("
        f"{b(reg['id'], 'text')}, {b(client, 'text')}, {b(reg['order_ref'], 'text')}, {b(reg['domain'], 'text')}, "
        f"{b(reg['tld'], 'text')}, {sid}, {b(reg['status'], 'text')}, {b(a.plan_text(), 'text')}, "
        f"{at}, {at}, {b(reg.get('kind', 'registration'), 'text')}, {b(reg.get('expires_at'), 'text')}, "
        f"{b(reg.get('language'), 'text')}) "
        "RETURNING id)",
        "idem AS (INSERT INTO idempotency(client, key, request_hash, registration_id, status, response_json, "  # noqa: S608
        f"created_at) SELECT {b(client, 'text')}, {b(key, 'text')}, {b(request_hash, 'text')}, reg.id, "
        f"{b(a.status, 'int')}, {b(a.response_text(), 'text')}, {at} FROM reg "
        "ON CONFLICT (client, key) DO NOTHING RETURNING 1)",
    ]
    links: list[tuple[str, str]] = []
    subject_ok = "TRUE"
    if a.subject is not None:
        new = a.subject
        free = ""
        if new.merge_on is not None:
            holder = HOLDER_SQL.format(cols="1", digest=b(new.merge_on, "text"))
            free = f" WHERE NOT EXISTS ({holder})"
        ctes.append(
            "subj AS (INSERT INTO subjects(id, kid, wrapped, created_at, basis) SELECT "
            f"{b(new.id, 'text')}, {b(new.kid, 'text')}, {b(new.wrapped, 'bytea')}, {at}, "
            f"{b(new.basis, 'text')}{free} RETURNING 1)")
        subject_ok = "EXISTS (SELECT 1 FROM subj)"
        links = R.subject_links(new)
    elif subject_id is not None:
        ctes.append(f"subj AS (SELECT 1 FROM subjects WHERE id={sid} AND wrapped IS NOT NULL FOR SHARE)")  # noqa: S608
        subject_ok = "EXISTS (SELECT 1 FROM subj)"
    if subject_id is not None:
        links = list(dict.fromkeys([*links, *a.subject_links]))
        if links:
            ctes.append(
                "links AS (INSERT INTO subject_index(kind, digest, subject_id) SELECT q.kind, q.digest, "  # noqa: S608
                f"{sid} FROM unnest({b([k for k, _ in links], 'text[]')}, {b([d for _, d in links], 'text[]')}) "
                "AS q(kind, digest) WHERE EXISTS (SELECT 1 FROM subj) ON CONFLICT DO NOTHING)")
    if a.outbox:
        rows = R.outbox_rows(reg["id"], subject_id, a.outbox, now)
        columns = list(zip(*rows, strict=True))
        typed = dict(zip(R.OUTBOX_COLUMNS, columns, strict=True))
        kinds = {"required": "int[]", "batch": "int[]", "payload_ct": "bytea[]"}
        arrays = ", ".join(b(list(typed[c]), kinds.get(c, "text[]")) for c in R.OUTBOX_COLUMNS)
        ctes.append(
            f"ob AS (INSERT INTO outbox({', '.join(R.OUTBOX_COLUMNS)}) "  # noqa: S608 - fixed names
            f"SELECT {', '.join('q.' + c for c in R.OUTBOX_COLUMNS)} FROM reg, "
            f"unnest({arrays}) WITH ORDINALITY AS q({', '.join(R.OUTBOX_COLUMNS)}, n) "
            "ORDER BY q.n)")
    sql = (f"WITH {', '.join(ctes)} "  # noqa: S608 - fixed names; every value is bound
           f"SELECT EXISTS (SELECT 1 FROM idem) AS stored, {subject_ok} AS subject_ok")
    return sql, b.values
