"""Plain accepts on PostgreSQL, a whole group of them in one statement: one round trip per batch (issue 9).

A *plain* acceptance has no ledger entries and is not ``blocked`` (it appends nothing to the tree and emits
no event): the common case.  The group writer sends every plain accept of a group as one jsonb array to
``pg_temp.gateway_accept_batch``, a PL/pgSQL function that writes them one after another and returns one
answer per job.  Sent on its own (no ``BEGIN``), that call is its own transaction: when it returns, the
COMMIT has happened (one WAL flush for the group).  Accepts with entries, blocked ones and every other
closure job keep the savepoint path of ``group_commit``.

Per job the function does what the closure path (``accepting.accept_statement``) does, in this order:

1. a new subject with a strong identifier first takes ``claim_subject``'s transaction-scoped advisory lock
   on the digest.  In READ COMMITTED every statement of a volatile PL/pgSQL function takes a new snapshot,
   so the statements after the lock see a holder committed by whoever held the lock before;
2. the registration, then its idempotency row (``ON CONFLICT (client, key) DO NOTHING``, which waits for a
   concurrent insert of the same key to end).  If the key is taken (committed earlier, or by an earlier job
   of this very batch) the job reads the earlier answer and rolls itself back: the caller gets that answer;
3. the new subject, only if no live subject holds its strong identifier (else the job rolls back and the
   caller gets ``SubjectRaced``), or the named subject's liveness ``FOR SHARE`` (else ``SubjectErased``);
4. its blind-index links (``ON CONFLICT DO NOTHING``) and its outbox rows, in the order given.

Foreign keys are checked per statement here (no data-modifying CTEs), hence parents first: registration
before idempotency and outbox rows, subject before its links.

Each job runs in its own ``BEGIN … EXCEPTION`` block, a subtransaction: a job that fails or undoes itself
rolls back alone and the others go on.  Its error becomes its caller's exception, an asyncpg
``PostgresError`` of the same SQLSTATE (a duplicate registration id is a ``UniqueViolationError``, as on
the closure path) with the constraint, table and column names but no DETAIL (which would quote values);
the message text is kept only for integrity violations (SQLSTATE class 23, whose messages name
constraints, never values).  A deadlock (40P01) or serialisation failure (40001) is not caught: it aborts
the whole statement, nothing of it is committed, and the writer runs the group again, as before.
``query_canceled`` is not caught either (PL/pgSQL's ``OTHERS`` excludes it): it fails the whole group.

Installed without a migration: ``CREATE OR REPLACE FUNCTION pg_temp.…`` on the writer's own connection
before its first batch (``BatchStatement.setup``).  A temporary function lives exactly as long as the
session, so processes never race to create or replace it, a connection lost and reopened gets it anew,
and the schema version stays as it is.  Functions in ``pg_temp`` are never found by the search path,
hence the qualified call.  asyncpg's statement cache keeps the call prepared per connection, which is what
makes it one round trip (Bind/Execute/Sync) from the second use on; the cache dies with the connection
and the function with it, so a cached plan never outlives the function it names.  The same setup sets the
session's ``default_transaction_isolation`` to READ COMMITTED, because the call runs in an implicit
transaction and the lock-then-check of step 1 needs a snapshot per statement whatever the server's default.

A job whose values cannot travel in jsonb as the closure path would bind them (a text that is not a
``str``, contains NUL or a lone surrogate, a blob that is not bytes) is not plain: it takes the closure
path, which fails (or not) exactly as it did before.
"""

from __future__ import annotations

import base64
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from gateway.errors import SubjectErased, SubjectRaced
from gateway.store import rows as R
from gateway.store.base import Accepted
from gateway.store.postgres.accepting import HOLDER_SQL, MERGE_LOCK_KEY
from gateway.store.postgres.group_commit import Batched, BatchStatement

#: The holder check of step 3, on the job's own digest.
_HOLDER = HOLDER_SQL.format(cols="1", digest="s->>'merge_on'")
#: An outbox row from its document (``R.outbox_rows``, one key per column; blobs in base64).
_OUTBOX_VALUES = [
    "decode(o->>'payload_ct', 'base64')" if c == "payload_ct" else
    f"(o->>'{c}')::int" if c in ("required", "batch") else f"o->>'{c}'"
    for c in R.OUTBOX_COLUMNS
]

#: The batch function; ``jobs`` is a jsonb array of ``job_doc`` documents, the result one answer per job:
#: ``{}`` (written), ``{"taken": {…}}`` (the key's earlier answer), ``{"refused": "raced" | "erased"}``,
#: or ``{"error": sqlstate, …}``.
FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION pg_temp.gateway_accept_batch(jobs jsonb) RETURNS jsonb
LANGUAGE plpgsql VOLATILE AS $fn$
DECLARE
    j jsonb;
    reg jsonb;
    idem jsonb;
    s jsonb;
    answer jsonb;
    answers jsonb := '[]'::jsonb;
    e_state text; e_message text; e_constraint text; e_table text; e_column text; e_schema text;
BEGIN
    FOR j IN SELECT q.job FROM jsonb_array_elements(jobs) WITH ORDINALITY AS q(job, n) ORDER BY q.n LOOP
        answer := '{{}}'::jsonb;
        reg := j->'reg';
        idem := j->'idem';
        s := j->'subject';
        BEGIN
            IF jsonb_typeof(s) = 'object' AND s->>'merge_on' IS NOT NULL THEN
                PERFORM pg_advisory_xact_lock({MERGE_LOCK_KEY.format(digest="s->>'merge_on'")});
            END IF;
            INSERT INTO registrations(id, client, order_ref, domain, tld, subject_id, status, plan_json,
                                      created_at, updated_at, kind, expires_at, language)
            VALUES (reg->>'id', reg->>'client', reg->>'order_ref', reg->>'domain', reg->>'tld',
                    reg->>'subject_id', reg->>'status', reg->>'plan_json', j->>'now', j->>'now', reg->>'kind',
                    reg->>'expires_at', reg->>'language');
            INSERT INTO idempotency(client, key, request_hash, registration_id, status, response_json, created_at)
            VALUES (idem->>'client', idem->>'key', idem->>'request_hash', reg->>'id', (idem->>'status')::int,
                    idem->>'response_json', j->>'now')
            ON CONFLICT (client, key) DO NOTHING;
            IF NOT FOUND THEN
                SELECT jsonb_build_object('taken', jsonb_build_object(
                           'request_hash', i.request_hash, 'status', i.status, 'response_json', i.response_json))
                  INTO answer
                  FROM idempotency i WHERE i.client = idem->>'client' AND i.key = idem->>'key';
                answer := COALESCE(answer, '{{"taken": null}}'::jsonb);
                RAISE SQLSTATE 'GWUND';
            END IF;
            IF jsonb_typeof(s) = 'object' THEN
                INSERT INTO subjects(id, kid, wrapped, created_at, basis)
                SELECT s->>'id', s->>'kid', decode(s->>'wrapped', 'base64'), j->>'now', s->>'basis'
                 WHERE s->>'merge_on' IS NULL OR NOT EXISTS ({_HOLDER});
                IF NOT FOUND THEN
                    answer := '{{"refused": "raced"}}'::jsonb;
                    RAISE SQLSTATE 'GWUND';
                END IF;
            ELSIF j->>'live' IS NOT NULL THEN
                PERFORM 1 FROM subjects WHERE id = j->>'live' AND wrapped IS NOT NULL FOR SHARE;
                IF NOT FOUND THEN
                    answer := '{{"refused": "erased"}}'::jsonb;
                    RAISE SQLSTATE 'GWUND';
                END IF;
            END IF;
            INSERT INTO subject_index(kind, digest, subject_id)
            SELECT l->>0, l->>1, reg->>'subject_id' FROM jsonb_array_elements(j->'links') AS l
            ON CONFLICT DO NOTHING;
            INSERT INTO outbox({", ".join(R.OUTBOX_COLUMNS)})
            SELECT {", ".join(_OUTBOX_VALUES)}
              FROM jsonb_array_elements(j->'outbox') WITH ORDINALITY AS q(o, n) ORDER BY q.n;
        EXCEPTION
            WHEN SQLSTATE 'GWUND' THEN
                NULL;  -- rolled back on purpose; the answer was set before the raise
            WHEN deadlock_detected OR serialization_failure THEN
                RAISE;  -- the whole group is run again
            WHEN OTHERS THEN
                GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_message = MESSAGE_TEXT,
                    e_constraint = CONSTRAINT_NAME, e_table = TABLE_NAME, e_column = COLUMN_NAME,
                    e_schema = SCHEMA_NAME;
                answer := jsonb_build_object('error', e_state, 'message', e_message,
                    'constraint', NULLIF(e_constraint, ''), 'table', NULLIF(e_table, ''),
                    'column', NULLIF(e_column, ''), 'schema', NULLIF(e_schema, ''));
        END;
        answers := answers || jsonb_build_array(answer);
    END LOOP;
    RETURN answers;
END
$fn$;
"""  # noqa: S608 - fixed names only; every value arrives in the jobs argument

ACCEPT_BATCH = BatchStatement(
    name="accept",
    setup=f"SET default_transaction_isolation TO 'read committed'; {FUNCTION_SQL}",
    call="SELECT pg_temp.gateway_accept_batch($1::jsonb)",
)


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def _text_ok(value: Any) -> bool:
    """Would jsonb carry ``value`` as the closure path binds it to a ``text`` parameter?  jsonb refuses NUL
    and lone surrogates; asyncpg refuses what is not a ``str`` (or None: NULL, refused or not by the table)."""
    if value is None:
        return True
    if not isinstance(value, str) or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def job_doc(a: Accepted, now: str) -> dict[str, Any] | None:
    """``a`` as one element of the batch function's argument, or None if it is not a plain accept (entries
    to append, blocked, or values jsonb cannot carry as they would be bound): that one takes the closure
    path.  Computes exactly the values ``accepting.accept_statement`` binds."""
    reg = a.registration
    if a.entries or reg.get("status") == "blocked":
        return None
    client, key, request_hash = a.idempotency
    subject_id = reg.get("subject_id")
    links: list[tuple[str, str]] = []
    subject: dict[str, Any] | None = None
    live: str | None = None
    if a.subject is not None:
        new = a.subject
        if not isinstance(new.wrapped, bytes):
            return None
        subject = {"id": new.id, "kid": new.kid, "wrapped": _b64(new.wrapped), "basis": new.basis,
                   "merge_on": new.merge_on}
        links = R.subject_links(new)
    elif subject_id is not None:
        live = subject_id
    links = list(dict.fromkeys([*links, *a.subject_links])) if subject_id is not None else []
    if any(not isinstance(o.payload_ct, bytes) for o in a.outbox):
        return None
    rows = R.outbox_rows(reg["id"], subject_id, a.outbox, now)
    outbox = [{k: (_b64(v) if k == "payload_ct" else v) for k, v in zip(R.OUTBOX_COLUMNS, row, strict=True)}
              for row in rows]
    registration: dict[str, Any] = {
        "id": reg["id"], "client": client, "order_ref": reg["order_ref"], "domain": reg["domain"], "tld": reg["tld"],
        "subject_id": subject_id, "status": reg["status"], "plan_json": a.plan_text(),
        "kind": reg.get("kind", "registration"), "expires_at": reg.get("expires_at"), "language": reg.get("language")}
    response_json = a.response_text()
    doc = {
        "now": now,
        "reg": registration,
        "idem": {"client": client, "key": key, "request_hash": request_hash, "status": a.status,
                 "response_json": response_json},
        "subject": subject,
        "live": live,
        "links": [list(link) for link in links],
        "outbox": outbox,
    }
    texts = [now, *registration.values(), client, key, request_hash, response_json,
             *(v for link in links for v in link),
             *(v for o in outbox for k, v in o.items() if k not in ("required", "batch")),
             *((new.id, new.kid, new.merge_on) if a.subject is not None else ())]
    if not all(_text_ok(t) for t in texts) or not isinstance(a.status, int) or isinstance(a.status, bool):
        return None
    return doc


def answer(result: dict[str, Any]) -> tuple[str, int, dict[str, Any]] | None:
    """A job's answer from the function: None (written), the key's earlier answer, or its exception."""
    if "taken" in result:
        if result["taken"] is None:  # the key conflicted, yet its row is gone: never expected
            raise RuntimeError("the idempotency key was taken but its answer could not be read")
        return R.idempotent_answer(result["taken"])
    if "refused" in result:
        raise SubjectRaced() if result["refused"] == "raced" else SubjectErased()
    if "error" in result:
        raise database_error(result)
    return None


def database_error(result: dict[str, Any]) -> Exception:
    """The asyncpg exception of the job's SQLSTATE (``UniqueViolationError`` for 23505, …), without DETAIL,
    and with the server's message only where it cannot quote a value (integrity violations)."""
    code = str(result["error"])
    message = result.get("message") if code.startswith("23") else None
    fields = {"C": code, "M": message or f"the database refused this acceptance (SQLSTATE {code})"}
    for field, name in (("n", "constraint"), ("t", "table"), ("c", "column"), ("s", "schema")):
        if result.get(name):
            fields[field] = result[name]
    error: Exception = asyncpg.PostgresError.new(fields)
    return error


def batched(a: Accepted, now: str) -> Batched[tuple[str, int, dict[str, Any]] | None] | None:
    """``a`` as a job of the group's one batch statement, or None if it must take the closure path."""
    doc = job_doc(a, now)
    if doc is None:
        return None
    return Batched(ACCEPT_BATCH, doc, answer)
