"""The shared store: PostgreSQL through an asyncpg pool, and group commit for the hot writes.

Semantics mirror ``sqlite.SqliteStore`` exactly; what SQLite gets from its single writer lock
(``BEGIN IMMEDIATE``), PostgreSQL gets from row locks, so several gateway processes can share one
database:

* ``accept``, ``finish``, ``record_step`` and ``append`` go through group commit (``group_commit``): the
  jobs that arrive while a commit is in flight share the next transaction, each caller answered after that
  COMMIT.  Plain accepts (no entries, not blocked) are one call of a batch function (``accept_batch``),
  its own transaction and one round trip when the group has nothing else; every other job runs in its own
  savepoint, in a transaction that locks the tree's head row (``SELECT … FOR UPDATE``) first, so appends
  from any number of processes serialise: no forked tree, no gap in the leaf indexes, and the leaves,
  their nodes and the new head commit together with whatever else the group writes;
* every other write is one transaction of its own on a pooled connection (``_write``);
* ``claim_due`` claims outbox rows with ``FOR UPDATE SKIP LOCKED``: two workers never claim one row;
* ``accept`` inserts its idempotency row with ``ON CONFLICT DO NOTHING``, which waits for a racing
  request with the same key to commit; it then rolls its own writes back and returns that request's
  answer, as SQLite's does (``accepting``).

Transactions run at READ COMMITTED whatever the server's default is: a writer that waited for the
head row then reads the head its predecessor committed.  A transaction the server aborts to break a
deadlock is retried from the start (nothing of it was committed).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from gateway.errors import OutboxRowNotFound, SubjectErased, SubjectRaced
from gateway.ledger.entry import DisclosureEntry
from gateway.ledger.merkle import Frontier
from gateway.store import parked_rows as P
from gateway.store import rows as R
from gateway.store import webhook_rows as W
from gateway.store.base import (
    OUTBOX_STATS_SQL,
    AcceptContext,
    Accepted,
    Decide,
    DisclosureFilter,
    DisclosureReads,
    NewOutbox,
    NewSubject,
    NewWebhook,
    OutboxItem,
    OutboxStat,
    StoredCheckpoint,
    SubjectKey,
    WebhookDelivery,
    outbox_stats_from,
)
from gateway.store.paging import keyset_pages
from gateway.store.postgres import accept_batch
from gateway.store.postgres import accepting as A
from gateway.store.postgres.accounts import PostgresAccounts
from gateway.store.postgres.group_commit import GroupCommit, GroupTree, Undo
from gateway.store.postgres.migrations import migrate
from gateway.store.postgres.requests_extra import PostgresRequestsExtra
from gateway.store.postgres.workbench import PostgresWorkbench
from gateway.webhooks.events import EventType, status_event

T = TypeVar("T")

_INSERT = R.Inserts.using(R.dollar)

#: How often a transaction aborted by deadlock detection or a serialisation failure is retried.
_ATTEMPTS = 5
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


def _count(status: str) -> int:
    """Rows affected, from a command tag such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


async def _insert_outbox(c: Any, registration_id: str, subject_id: str | None, items: list[NewOutbox],
                         now: str) -> None:
    await c.executemany(_INSERT.outbox, R.outbox_rows(registration_id, subject_id, items, now))


async def _emit(c: Any, registration_id: str, type_: EventType, *, code: str | None, now: str) -> None:
    """Inside the state change's transaction: one notification per subscription that wants it."""
    reg = await c.fetchrow(W.REGISTRATION.format("$1"), registration_id)
    if reg is None:
        return
    hooks = await c.fetch(W.HOOKS_OF_CLIENT.format("$1"), reg["client"])
    rows = W.event_rows(hooks, type_, registration_id=registration_id, order_ref=reg["order_ref"],
                        status=reg["status"], code=code, now=now)
    if rows:
        await c.executemany(f"INSERT INTO webhook_events({W.EVENT_COLUMNS}) VALUES "  # noqa: S608
                            "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", rows)


async def _require_live(c: Any, subject_id: str) -> None:
    """Inside the write transaction: refuse to file anything more under a subject whose key is gone.

    ``FOR SHARE`` makes a concurrent shred (an UPDATE of this row) wait until we commit, and a shred that
    committed first is seen (READ COMMITTED): either the data were filed before the erasure, and are
    erased with it, or nothing is filed."""
    live = await c.fetchval("SELECT wrapped IS NOT NULL FROM subjects WHERE id=$1 FOR SHARE", subject_id)
    if not live:
        raise SubjectErased()


class PostgresStore(PostgresAccounts, PostgresWorkbench, PostgresRequestsExtra, DisclosureReads):
    """Every store role on PostgreSQL.

    Two ways to the database, for this class and for the mixins that add tables to it (accounts, ...):

    * ``self._pool``: the asyncpg pool.  ``_fetch(sql, *args)`` reads on any pooled connection (never
      behind the writer); ``_write(fn)`` runs ``fn(conn)`` in one READ COMMITTED transaction of its own,
      retried whole if the server aborts it (deadlock, serialisation failure): for every write that is
      not on the hot path (staff actions, requests, webhooks, claims, accounts);
    * ``self._group``: group commit (``group_commit.GroupCommit``) on one dedicated connection, for the
      writes that come by the hundred per second (``accept``, ``finish``, ``record_step``, ``append``):
      ``await self._group.run(job)`` with ``job(conn, tree)`` running inside the group's transaction in its
      own savepoint, answered after the group's COMMIT (a plain accept is a ``Batched`` job instead: one
      call of ``accept_batch``'s function carries every plain accept of the group).  Anything that extends
      the ledger goes the closure way (``tree.append``): the group holds the head row's lock from its first
      statement.
    """

    def __init__(self, pool: Any, schema_version: int, dsn: str) -> None:
        """Use :meth:`open`: it creates the pool and migrates the database first.  The group writer gets a
        connection of its own to ``dsn``, outside the pool (a busy pool never starves it, nor it the pool)."""
        self._pool = pool
        self.schema_version = schema_version

        async def connect() -> Any:
            return await asyncpg.connect(dsn, server_settings={"application_name": "registrant-gateway-writer"})

        self._group = GroupCommit(connect)

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10) -> PostgresStore:
        """Connect, and bring the schema up to date (once, however many processes start at once)."""
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size,
            server_settings={"application_name": "registrant-gateway"},
        )
        try:
            async with pool.acquire() as conn:
                version = await migrate(conn)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, version, dsn)

    async def close(self) -> None:
        await self._group.close()
        await self._pool.close()

    async def _write(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``fn(conn)`` in one READ COMMITTED transaction; retried if the server aborted it."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self._pool.acquire() as conn, conn.transaction(isolation="read_committed"):
                    return await fn(conn)
            except _RETRYABLE:
                if attempt == _ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        rows = await self._pool.fetch(sql, *args)
        return list(rows)

    def _pages(
        self, sql: str, start: tuple[Any, ...], key: Callable[[Any], tuple[Any, ...]], size: int
    ) -> AsyncIterator[Sequence[Any]]:
        """Keyset pages of ``sql`` (bound to the key after which to start, then the page size), until a
        page comes back empty.  No connection is held between pages: flat memory, no pinning."""

        def fetch(after: tuple[Any, ...]) -> Awaitable[list[Any]]:
            return self._fetch(sql, *after, size)

        return keyset_pages(fetch, key, start)

    # -- the tree ------------------------------------------------------------------------------------

    async def append(self, entries: list[DisclosureEntry]) -> None:
        """In the next group, like every write that extends the tree (the group holds the head's lock)."""
        if not entries:
            return

        async def job(c: Any, tree: GroupTree) -> None:
            await tree.append(c, entries)

        await self._group.run(job)

    async def head(self) -> Frontier:
        blob = await self._pool.fetchval("SELECT frontier FROM ledger_head WHERE id=1")
        return Frontier.from_bytes(bytes(blob))

    async def nodes(self, coords: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        if not coords:
            return {}
        rows = await self._fetch(
            "SELECT n.level, n.idx, n.hash FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS q(level, idx, born) "
            "JOIN ledger_nodes n ON n.born = q.born AND n.level = q.level AND n.idx = q.idx",
            [lv for lv, _ in coords], [ix for _, ix in coords], [R.node_key(lv, ix)[0] for lv, ix in coords],
        )
        return {(int(r["level"]), int(r["idx"])): bytes(r["hash"]) for r in rows}

    async def add_checkpoint(self, cp: StoredCheckpoint) -> None:
        async def run(c: Any) -> None:
            await c.execute(f"{_INSERT.checkpoint} ON CONFLICT (size) DO NOTHING", *R.checkpoint_values(cp))

        await self._write(run)

    async def checkpoints(self) -> list[StoredCheckpoint]:
        rows = await self._fetch(f"{R.SELECT_CHECKPOINTS} ORDER BY size")
        return [R.checkpoint_from_row(r) for r in rows]

    async def checkpoint(self, size: int) -> StoredCheckpoint | None:
        rows = await self._fetch(f"{R.SELECT_CHECKPOINTS} WHERE size=$1", size)
        return R.checkpoint_from_row(rows[0]) if rows else None

    async def stream_leaves(self, batch: int = 1000) -> AsyncIterator[list[DisclosureEntry]]:
        """Every leaf in order, ``batch`` at a time."""
        sql = f"{R.SELECT_DISCLOSURES} WHERE d.leaf_index > $1 ORDER BY d.leaf_index LIMIT $2"
        async for rows in self._pages(sql, (-1,), lambda r: (int(r["leaf_index"]),), batch):
            yield [DisclosureEntry.from_row(r) for r in rows]

    async def stream_nodes(self, batch: int = 1000) -> AsyncIterator[list[tuple[int, int, int, bytes]]]:
        """Every tree node in (born, level) order: the order in which a verifier recomputes them."""
        sql = ("SELECT level, idx, born, hash FROM ledger_nodes WHERE (born, level) > ($1, $2) "
               "ORDER BY born, level LIMIT $3")
        async for rows in self._pages(sql, (-1, -1), lambda r: (int(r["born"]), int(r["level"])), batch):
            yield [(int(r["level"]), int(r["idx"]), int(r["born"]), bytes(r["hash"])) for r in rows]

    # -- idempotency and acceptance ------------------------------------------------------------

    async def idempotent_response(self, client: str, key: str) -> tuple[str, int, dict[str, Any]] | None:
        rows = await self._fetch(
            "SELECT request_hash, status, response_json FROM idempotency WHERE client=$1 AND key=$2", client, key
        )
        return R.idempotent_answer(rows[0]) if rows else None

    async def accept_context(self, client: str, key: str, strong_digest: str | None) -> AcceptContext:
        """The accept path's one read: one statement on a pooled connection (``accepting.ACCEPT_CONTEXT_SQL``),
        never queued behind the group writer."""
        row = await self._pool.fetchrow(A.ACCEPT_CONTEXT_SQL, client, key, strong_digest)
        return A.accept_context_from(row)

    async def accept_request(
        self, client: str, key: str, strong_digest: str | None, now: str, decide: Decide
    ) -> tuple[str, int, dict[str, Any]] | None:
        """Read on a pooled connection, decide here, and queue the write into the next group: the read
        never waits behind a commit, and the group's round trips stay the write's own.  What was read may
        be stale by the write; ``accept`` re-checks it inside the group (``SubjectRaced``, the key taken)."""
        ctx = await self.accept_context(client, key, strong_digest)
        accepted = decide(ctx)
        if accepted is None:
            return ctx.prior
        return await self.accept(accepted, now)

    async def accept(self, a: Accepted, now: str) -> tuple[str, int, dict[str, Any]] | None:
        """Write the whole acceptance atomically, in the next group; returns the earlier answer if the key
        raced us.  A plain acceptance (no entries, not blocked) joins the group's one call of the batch
        function (``accept_batch``: one round trip for all of them); any other is a closure job in the
        group's transaction, one statement (``accepting.accept_statement``).  Either way a new subject with
        a strong identifier first takes ``claim_subject``'s advisory lock on it."""
        plain = accept_batch.batched(a, now)
        if plain is not None:
            return await self._group.run(plain)
        client, key, _ = a.idempotency
        reg = a.registration
        sql, args = A.accept_statement(a, now)
        merge_on = a.subject.merge_on if a.subject is not None else None

        async def job(c: Any, tree: GroupTree) -> tuple[str, int, dict[str, Any]] | None:
            if merge_on is not None:
                await c.execute(A.MERGE_LOCK_SQL, merge_on)
            row = await c.fetchrow(sql, *args)
            if not row["stored"]:  # the key is taken (and committed, or ours earlier in this group)
                raise Undo(R.idempotent_answer(await c.fetchrow(A.PRIOR_SQL, client, key)))
            if not row["subject_ok"]:
                raise SubjectRaced() if a.subject is not None else SubjectErased()
            await tree.append(c, a.entries)
            if reg["status"] == "blocked":
                await _emit(c, reg["id"], "registration.blocked", code=R.problem_code(a.response), now=now)
            return None

        return await self._group.run(job)

    # -- registrations ---------------------------------------------------------------------------

    async def registration(self, reg_id: str) -> dict[str, Any] | None:
        async with self._pool.acquire() as c, c.transaction(isolation="repeatable_read", readonly=True):
            row = await c.fetchrow("SELECT * FROM registrations WHERE id=$1", reg_id)
            if row is None:
                return None
            deliveries = await c.fetch(
                "SELECT recipient, state, attempts, last_code, updated_at FROM outbox WHERE registration_id=$1 "
                "ORDER BY id", reg_id,
            )
            entries = await c.fetch(f"{R.SELECT_DISCLOSURES} WHERE d.registration_id=$1 ORDER BY d.leaf_index",
                                    reg_id)
            events = await c.fetch("SELECT * FROM registration_events WHERE registration_id=$1 ORDER BY id", reg_id)
        return R.registration_view(row, deliveries, entries, events)

    # -- outbox ------------------------------------------------------------------------------------

    async def enqueue(self, registration_id: str, subject_id: str, items: list[NewOutbox], now: str) -> None:
        """Updates pushed after a registration (rectification): delivered and logged like it."""

        async def run(c: Any) -> None:
            await _require_live(c, subject_id)
            await _insert_outbox(c, registration_id, subject_id, items, now)
            if items:
                await _emit(c, registration_id, "registration.changed", code=None, now=now)

        await self._write(run)

    async def requeue_in_flight(self, now: str, stale_before: str | None = None) -> int:
        """Put back rows whose claim lapsed (``lease_until`` passed; for a claim without one, claimed before
        ``stale_before``); their token is cleared, so a worker that outlived its lease records nothing."""
        cutoff = stale_before or now

        async def run(c: Any) -> int:
            return _count(await c.execute(
                "UPDATE outbox SET state='pending', next_attempt_at=$1, updated_at=$1, claim_token=NULL, "
                "lease_until=NULL WHERE state='in_flight' AND "
                "((lease_until IS NOT NULL AND lease_until <= $1) OR (lease_until IS NULL AND updated_at <= $2))",
                now, cutoff,
            ))

        return await self._write(run)

    async def claim_due(
        self, now: str, limit: int, *, batch_recipient: str | None = None, recipient: str | None = None,
        exclude: Collection[str] = (), lease_until: str | None = None,
    ) -> list[OutboxItem]:
        """Due rows for the delivery worker (of one ``recipient``, or any not in ``exclude``), or
        (``batch_recipient``) a batch job's rows; each claimed under a fresh fencing token.

        Rows another transaction is claiming are skipped, not waited for: two workers never get one row."""
        only = batch_recipient if batch_recipient is not None else recipient

        async def run(c: Any) -> list[OutboxItem]:
            rows = await c.fetch(
                "WITH due AS ("
                " SELECT id FROM outbox WHERE batch = $4 AND ($3::text IS NULL OR recipient = $3::text)"
                " AND NOT (recipient = ANY($5::text[])) AND state='pending' AND next_attempt_at <= $1"
                " ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
                ") UPDATE outbox o SET state='in_flight', attempts=o.attempts+1, updated_at=$1, "
                "claim_token=gen_random_uuid()::text, lease_until=$6 FROM due "
                "WHERE o.id = due.id RETURNING o.*",
                now, limit, only, 0 if batch_recipient is None else 1, list(exclude), lease_until,
            )
            if not rows:
                return []
            reg_ids = sorted({r["registration_id"] for r in rows})  # one lock order for every claimer
            await c.execute(
                "UPDATE registrations SET status='delivering', updated_at=$1 WHERE id = ANY($2::text[]) "
                "AND status='accepted'", now, reg_ids,
            )
            return sorted((R.outbox_item(r) for r in rows), key=lambda item: item.id)

        return await self._write(run)

    async def due_recipients(self, now: str) -> list[str]:
        rows = await self._fetch(
            "SELECT DISTINCT recipient FROM outbox WHERE batch=0 AND state='pending' AND next_attempt_at<=$1", now)
        return [r["recipient"] for r in rows]

    async def renew_claims(self, tokens: Sequence[str], lease_until: str) -> int:
        """The heartbeat of work in progress: push the lease of rows still held under these tokens."""
        if not tokens:
            return 0

        async def run(c: Any) -> int:
            return _count(await c.execute(
                "UPDATE outbox SET lease_until=$1 WHERE claim_token = ANY($2::text[]) AND state='in_flight'",
                lease_until, list(tokens)))

        return await self._write(run)

    async def release_claims(self, tokens: Sequence[str], now: str) -> int:
        """Give rows back at shutdown: due again at once, for this or another instance."""
        if not tokens:
            return 0

        async def run(c: Any) -> int:
            return _count(await c.execute(
                "UPDATE outbox SET state='pending', next_attempt_at=$1, updated_at=$1, claim_token=NULL, "
                "lease_until=NULL WHERE claim_token = ANY($2::text[]) AND state='in_flight'", now, list(tokens)))

        return await self._write(run)

    async def record_step(
        self, item: OutboxItem, entries: Sequence[DisclosureEntry], *, progress: dict[str, Any], now: str,
        events: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """One step of a row, its entries and the row's progress, in one transaction (the next group's);
        nothing at all when the claim no longer owns the row (False)."""

        async def job(c: Any, tree: GroupTree) -> bool:
            owned = _count(await c.execute(
                "UPDATE outbox SET progress_json=$1, updated_at=$2 WHERE id=$3 AND claim_token=$4 "
                "AND state='in_flight'", json.dumps(progress, sort_keys=True), now, item.id, item.token))
            if not owned:
                return False
            await tree.append(c, list(entries))
            await self._events_in(c, item.registration_id, events)
            return True

        return await self._group.run(job)

    async def finish(
        self, item: OutboxItem, entries: DisclosureEntry | Sequence[DisclosureEntry], *, state: str,
        next_attempt_at: str | None, now: str, parked_reason: str | None = None, deadline_at: str | None = None,
        progress: dict[str, Any] | None = None, last_code: str | None = None,
        events: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """Record one attempt's outcome and its disclosure entries in one transaction; fenced: nothing is
        written (False) when the row no longer carries this claim's token."""
        R.check_finish_state(state)
        batch = [entries] if isinstance(entries, DisclosureEntry) else list(entries)
        if last_code is None:
            last_code = next((e.result_code for e in reversed(batch) if e.result_code is not None), None)

        async def job(c: Any, tree: GroupTree) -> bool:
            # the registration row is locked first: concurrent finishes of one registration see each
            # other's status, so each status change is reported once
            before = await c.fetchval("SELECT status FROM registrations WHERE id=$1 FOR UPDATE",
                                      item.registration_id)
            # the fenced update and the states of the rows that count for the registration's status (not
            # marketing, not escrow) in one statement: the scan sees the row as it was, so its new state
            # is taken from the update's RETURNING
            done = await c.fetchrow(
                "WITH u AS (UPDATE outbox SET state=$1, last_code=COALESCE($2, last_code), "
                "next_attempt_at=COALESCE($3, next_attempt_at), updated_at=$4, claim_token=NULL, lease_until=NULL, "
                "parked_reason=$6, deadline_at=COALESCE($7, deadline_at), progress_json=COALESCE($8, progress_json) "
                "WHERE id=$5 AND state='in_flight' AND (claim_token=$9 OR (claim_token IS NULL AND $9='')) "
                "RETURNING id, state) "
                "SELECT (SELECT count(*) FROM u) AS owned, ARRAY(SELECT COALESCE(u.state, o.state) FROM outbox o "
                "LEFT JOIN u ON u.id = o.id WHERE o.registration_id=$10 AND o.required=1) AS states",
                state, last_code, next_attempt_at, now, item.id, parked_reason, deadline_at,
                None if progress is None else json.dumps(progress, sort_keys=True), item.token, item.registration_id,
            )
            if not done["owned"]:
                return False
            await tree.append(c, batch)
            await self._events_in(c, item.registration_id, events)
            status = R.registration_status(set(done["states"]))
            await c.execute("UPDATE registrations SET status=$1, updated_at=$2 WHERE id=$3",
                            status, now, item.registration_id)
            event = status_event(before, status, refused=any(e.outcome == "blocked" for e in batch))
            if event is not None:
                await _emit(c, item.registration_id, event, code=last_code, now=now)
            return True

        return await self._group.run(job)

    # -- webhooks ------------------------------------------------------------------------------------

    async def add_webhook(self, hook: NewWebhook, now: str) -> None:
        async def run(c: Any) -> None:
            await c.execute("INSERT INTO webhooks(id, client, url, events_json, secret, created_at) "
                            "VALUES ($1, $2, $3, $4, $5, $6)", *W.webhook_values(hook, now))

        await self._write(run)

    async def webhooks(self, client: str) -> list[dict[str, Any]]:
        hooks = await self._fetch(
            "SELECT id, url, events_json, created_at FROM webhooks WHERE client=$1 AND deleted_at IS NULL "
            "ORDER BY created_at, id", client)
        out = []
        for h in hooks:
            counts = {r["state"]: int(r["n"]) for r in await self._fetch(
                "SELECT state, COUNT(*) AS n FROM webhook_events WHERE webhook_id=$1 GROUP BY state", h["id"])}
            out.append(W.hook_view(h, counts))
        return out

    async def delete_webhook(self, client: str, webhook_id: str, now: str) -> bool:
        async def run(c: Any) -> bool:
            n = _count(await c.execute(
                "UPDATE webhooks SET deleted_at=$1 WHERE id=$2 AND client=$3 AND deleted_at IS NULL",
                now, webhook_id, client))
            if n:
                await c.execute("UPDATE webhook_events SET state='failed', last_status='deleted', updated_at=$1 "
                                "WHERE webhook_id=$2 AND state='pending'", now, webhook_id)
            return n > 0

        return await self._write(run)

    async def webhook_events(self, webhook_id: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT * FROM webhook_events WHERE webhook_id=$1 ORDER BY id DESC LIMIT $2", webhook_id, limit)
        return [W.event_view(r) for r in rows]

    async def claim_webhook_events(self, now: str, lease_until: str, limit: int) -> list[WebhookDelivery]:
        """Rows another sender is claiming are skipped, not waited for."""
        async def run(c: Any) -> list[WebhookDelivery]:
            rows = await c.fetch(
                "WITH due AS ("
                " SELECT e.id FROM webhook_events e JOIN webhooks w ON w.id = e.webhook_id"
                " WHERE e.state='pending' AND e.next_attempt_at <= $1 AND w.deleted_at IS NULL"
                " ORDER BY e.next_attempt_at, e.id LIMIT $3 FOR UPDATE OF e SKIP LOCKED"
                ") UPDATE webhook_events e SET attempts=e.attempts+1, next_attempt_at=$2, updated_at=$1 "
                "FROM due, webhooks w WHERE e.id = due.id AND w.id = e.webhook_id "
                "RETURNING e.id, e.event_id, e.webhook_id, e.body_json, e.attempts, e.created_at, w.url, w.secret",
                now, lease_until, limit,
            )
            return sorted((W.delivery(r) for r in rows), key=lambda d: d.id)

        return await self._write(run)

    async def webhook_event_result(
        self, row_id: int, *, state: str, next_attempt_at: str | None, last_status: str, now: str
    ) -> None:
        W.check_result_state(state)

        async def run(c: Any) -> None:
            await c.execute("UPDATE webhook_events SET state=$1, next_attempt_at=COALESCE($2, next_attempt_at), "
                            "last_status=$3, updated_at=$4 WHERE id=$5 AND state='pending'",
                            state, next_attempt_at, last_status, now, row_id)

        await self._write(run)

    async def pending_count(self) -> int:
        n = await self._pool.fetchval("SELECT COUNT(*) FROM outbox WHERE state IN ('pending','in_flight')")
        return int(n)

    # -- disclosures ---------------------------------------------------------------------------------

    async def disclosures(self, f: DisclosureFilter) -> list[DisclosureEntry]:
        bind = R.Params(R.dollar)

        def category_in(categories: tuple[str, ...], inside: bool) -> str:
            negate = "" if inside else "NOT "
            return f"{negate}(d.category = ANY({bind(list(categories))}::text[]))"

        sql = R.disclosures_sql(f, bind, category_in)
        return [DisclosureEntry.from_row(r) for r in await self._fetch(sql, *bind.values)]

    async def disclosure(self, entry_id: str) -> DisclosureEntry | None:
        rows = await self._fetch(f"{R.SELECT_DISCLOSURES} WHERE d.id=$1", entry_id)
        return DisclosureEntry.from_row(rows[0]) if rows else None

    # -- access log ------------------------------------------------------------------------------------

    async def record_access(self, actor: str, action: str, object_id: str, subject_id: str | None, at: str) -> None:
        async def run(c: Any) -> None:
            await c.execute(
                "INSERT INTO access_log(at, actor, action, object_id, subject_id) VALUES ($1, $2, $3, $4, $5)",
                at, actor, action, object_id, subject_id,
            )

        await self._write(run)

    async def access_log(self, subject_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        if subject_id is None:
            rows = await self._fetch(
                "SELECT at, actor, action, object_id, subject_id FROM access_log ORDER BY id LIMIT $1", limit
            )
        else:
            rows = await self._fetch(
                "SELECT at, actor, action, object_id, subject_id FROM access_log WHERE subject_id=$1 "
                "ORDER BY id LIMIT $2", subject_id, limit,
            )
        return [dict(r) for r in rows]

    # -- data-subject requests, restrictions, retention -------------------------------------------------

    async def open_request(self, req: dict[str, Any]) -> None:
        values = R.request_values(req)

        async def run(c: Any) -> None:
            await c.execute(_INSERT.request, *values)

        await self._write(run)

    async def request(self, request_id: str) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT * FROM requests WHERE id=$1", request_id)
        return R.request_from_row(rows[0]) if rows else None

    async def requests(self, state: str | None = None) -> list[dict[str, Any]]:
        if state is None:
            rows = await self._fetch("SELECT * FROM requests ORDER BY opened_at DESC")
        else:
            rows = await self._fetch("SELECT * FROM requests WHERE state=$1 ORDER BY deadline", state)
        return [R.request_from_row(r) for r in rows]

    async def update_request(self, request_id: str, changes: dict[str, Any]) -> None:
        sets, values = R.request_changes(changes)
        if not changes:
            return
        assignments = ", ".join(f"{col}=${i}" for i, col in enumerate(sets, start=1))

        async def run(c: Any) -> None:
            await c.execute(f"UPDATE requests SET {assignments} WHERE id=${len(sets) + 1}",  # noqa: S608
                            *values, request_id)

        await self._write(run)

    async def add_request_event(
        self, request_id: str, at: str, actor: str, action: str, detail: dict[str, Any]
    ) -> None:
        async def run(c: Any) -> None:
            await c.execute(
                "INSERT INTO request_events(request_id, at, actor, action, detail_json) VALUES ($1, $2, $3, $4, $5)",
                request_id, at, actor, action, json.dumps(detail, sort_keys=True),
            )

        await self._write(run)

    async def request_events(self, request_id: str) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT at, actor, action, detail_json FROM request_events WHERE request_id=$1 ORDER BY id", request_id
        )
        return [R.request_event_from_row(r) for r in rows]

    async def add_restriction(self, r: dict[str, Any]) -> None:
        async def run(c: Any) -> None:
            await c.execute(
                "INSERT INTO restrictions(id, subject_id, kind, scope, since, request_id) "
                "VALUES ($1, $2, $3, $4, $5, $6)",
                r["id"], r["subject_id"], r["kind"], r["scope"], r["since"], r.get("request_id"),
            )

        await self._write(run)

    async def lift_restriction(self, restriction_id: str, at: str) -> bool:
        async def run(c: Any) -> bool:
            return _count(await c.execute(
                "UPDATE restrictions SET lifted_at=$1 WHERE id=$2 AND lifted_at IS NULL", at, restriction_id
            )) == 1

        return await self._write(run)

    async def restrictions(self, subject_id: str, *, active_only: bool = True) -> list[dict[str, Any]]:
        only_active = " AND lifted_at IS NULL" if active_only else ""
        rows = await self._fetch(
            f"SELECT * FROM restrictions WHERE subject_id=$1{only_active} ORDER BY since", subject_id  # noqa: S608
        )
        return [dict(r) for r in rows]

    async def subject_registrations(self, subject_id: str, *, client: str | None = None) -> list[dict[str, Any]]:
        rows = await self._fetch(
            f"SELECT {R.SUBJECT_REGISTRATION_COLUMNS} FROM registrations "  # noqa: S608 - fixed names
            "WHERE subject_id=$1 AND ($2::text IS NULL OR client=$2::text) ORDER BY created_at, id",
            subject_id, client,
        )
        return [dict(r) for r in rows]

    async def purge_values(self, entry_ids: list[str]) -> int:
        """Retention: delete sealed values; the leaves keep their digests, so the tree verifies."""
        if not entry_ids:
            return 0

        async def run(c: Any) -> int:
            return _count(await c.execute("DELETE FROM entry_values WHERE leaf_index IN (SELECT leaf_index FROM "
                                          "disclosures WHERE id = ANY($1::text[]))", entry_ids))

        return await self._write(run)

    # -- subjects and keys -----------------------------------------------------------------------------

    async def find_subjects(self, digests: list[tuple[str, str]]) -> list[str]:
        if not digests:
            return []
        rows = await self._fetch(
            "SELECT s.subject_id FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(kind, digest, ord) "
            "JOIN subject_index s ON s.kind = q.kind AND s.digest = q.digest ORDER BY q.ord, s.subject_id",
            [k for k, _ in digests], [d for _, d in digests],
        )
        found: list[str] = []
        for r in rows:
            if r["subject_id"] not in found:
                found.append(r["subject_id"])
        return found

    async def claim_subject(self, new: NewSubject, now: str) -> str:
        """Get-or-create, atomically across processes, on the strong identifier alone: a
        transaction-scoped advisory lock on its digest makes concurrent first registrations of one
        holder wait for each other, so they share one subject and one data key; a shared e-mail, phone
        or address never joins anyone."""

        async def run(c: Any) -> str:
            if new.merge_on is not None:
                await c.execute(A.MERGE_LOCK_SQL, new.merge_on)
                row = await c.fetchrow(
                    "SELECT i.subject_id FROM subject_index i JOIN subjects s ON s.id = i.subject_id "
                    "WHERE i.kind='strong_id' AND i.digest=$1 AND s.wrapped IS NOT NULL "
                    "ORDER BY s.created_at, s.id LIMIT 1",
                    new.merge_on,
                )
                if row is not None:
                    return str(row["subject_id"])
            await c.execute("INSERT INTO subjects(id, kid, wrapped, created_at, basis) VALUES ($1, $2, $3, $4, $5)",
                            new.id, new.kid, new.wrapped, now, new.basis)
            await c.executemany("INSERT INTO subject_index(kind, digest, subject_id) VALUES ($1, $2, $3) "
                                "ON CONFLICT DO NOTHING", [(k, d, new.id) for k, d in R.subject_links(new)])
            return new.id

        return await self._write(run)

    async def subject_key(self, subject_id: str) -> SubjectKey | None:
        rows = await self._fetch(f"SELECT {R.SUBJECT_KEY_COLUMNS} FROM subjects WHERE id=$1",  # noqa: S608
                                 subject_id)
        return R.subject_key_from_row(rows[0]) if rows else None

    async def subject_keys(self) -> AsyncIterator[SubjectKey]:
        """Every subject's key in id order, a page at a time."""
        sql = (f"SELECT {R.SUBJECT_KEY_COLUMNS} FROM subjects WHERE $1::text IS NULL OR id > $1::text "  # noqa: S608
               "ORDER BY id LIMIT $2")
        async for rows in self._pages(sql, (None,), lambda r: (r["id"],), R.SUBJECT_KEY_PAGE):
            for r in rows:
                yield R.subject_key_from_row(r)

    async def replace_wrapped_key(self, subject_id: str, kid: str, wrapped: bytes) -> None:
        async def run(c: Any) -> None:
            await c.execute("UPDATE subjects SET kid=$1, wrapped=$2 WHERE id=$3 AND wrapped IS NOT NULL",
                            kid, wrapped, subject_id)

        await self._write(run)

    async def shred_subject(self, subject_id: str, now: str) -> bool:
        """Destroy the subject's data key: every value sealed under it becomes unreadable."""

        async def run(c: Any) -> bool:
            return _count(await c.execute(
                "UPDATE subjects SET kid=NULL, wrapped=NULL, shredded_at=$1 WHERE id=$2 AND wrapped IS NOT NULL",
                now, subject_id,
            )) == 1

        return await self._write(run)

    async def wrapped_key_counts(self) -> dict[str, int]:
        """How many live data keys are wrapped under each KEK id: what retiring a KEK must find at zero."""
        rows = await self._fetch("SELECT kid, COUNT(*) AS n FROM subjects WHERE wrapped IS NOT NULL GROUP BY kid")
        return {str(r["kid"]): int(r["n"]) for r in rows}

    async def outbox_stats(self, now: dt.datetime) -> list[OutboxStat]:
        """Depth, parked rows and the oldest wait per recipient, in one read (``OutboxStore``)."""
        return outbox_stats_from(await self._fetch(OUTBOX_STATS_SQL), now)

    # -- parked rows: staff retry or cancel them ---------------------------------------------------------

    async def parked(self, recipient: str | None = None) -> list[dict[str, Any]]:
        if recipient is None:
            rows = await self._fetch(P.SELECT_PARKED.format(""))
        else:
            rows = await self._fetch(P.SELECT_PARKED.format(" AND recipient=$1"), recipient)
        return [P.parked_view(r) for r in rows]

    async def _staff_action(self, row_id: int, now: str, actor: str, action: P.StaffAction) -> bool:
        """Retry or cancel one parked row, its registration's status and the access-log record, in one
        transaction.  Locks as ``finish`` does, registration first and then the row, so the two never
        deadlock and a claim of the row waits for the decision (or skips it)."""

        async def run(c: Any) -> bool:
            reg_id = await c.fetchval("SELECT registration_id FROM outbox WHERE id=$1", row_id)
            if reg_id is None:
                raise OutboxRowNotFound()
            before = await c.fetchval("SELECT status FROM registrations WHERE id=$1 FOR UPDATE", reg_id)
            row = await c.fetchrow("SELECT state, subject_id FROM outbox WHERE id=$1 FOR UPDATE", row_id)
            if row["state"] != "needs_attention":
                return False
            if action == "retry":
                await c.execute("UPDATE outbox SET state='pending', next_attempt_at=$1, deadline_at=NULL, "
                                "parked_reason=NULL, claim_token=NULL, lease_until=NULL, updated_at=$1 WHERE id=$2",
                                now, row_id)
            else:
                await c.execute("UPDATE outbox SET state='cancelled', updated_at=$1 WHERE id=$2", now, row_id)
            states = {r["state"] for r in await c.fetch(
                "SELECT state FROM outbox WHERE registration_id=$1 AND required=1", reg_id)}
            status = R.registration_status(states) if states else before
            if before is not None and status is not None and status != before:
                await c.execute("UPDATE registrations SET status=$1, updated_at=$2 WHERE id=$3", status, now, reg_id)
                event = status_event(before, status, refused=False)
                if event is not None:
                    await _emit(c, reg_id, event, code=None, now=now)
            await c.execute(
                "INSERT INTO access_log(at, actor, action, object_id, subject_id) VALUES ($1, $2, $3, $4, $5)",
                now, actor, P.ACTION_NAMES[action], str(row_id), row["subject_id"])
            return True

        return await self._write(run)

    async def retry_parked(self, row_id: int, now: str, *, actor: str) -> bool:
        return await self._staff_action(row_id, now, actor, "retry")

    async def cancel_parked(self, row_id: int, now: str, *, actor: str) -> bool:
        return await self._staff_action(row_id, now, actor, "cancel")

    async def parked_actions(self, limit: int = 100) -> list[dict[str, Any]]:
        actions = await self._fetch(P.SELECT_ACTIONS.format("$1"), limit)
        ids = sorted({int(a["object_id"]) for a in actions})
        targets = {int(r["id"]): dict(r) for r in await self._fetch(
            "SELECT id, recipient, registration_id FROM outbox WHERE id = ANY($1::bigint[])", ids)} if ids else {}
        return P.action_views(actions, targets)

    # -- the domain's lifecycle (schema 6) -------------------------------------------------------------

    @staticmethod
    async def _event_in(
        c: Any, reg_id: str, *, at: str, kind: str, source: str, detail: dict[str, Any],
        end_reason: str | None, expires_at: str | None,
    ) -> None:
        await c.execute("INSERT INTO registration_events(registration_id, at, kind, source, detail_json) "
                        "VALUES ($1, $2, $3, $4, $5)", reg_id, at, kind, source, json.dumps(detail, sort_keys=True))
        if end_reason is not None:
            await c.execute("UPDATE registrations SET ended_at=$1, end_reason=$2, updated_at=$1 WHERE id=$3 "
                            "AND ended_at IS NULL", at, end_reason, reg_id)
        if expires_at is not None:
            await c.execute("UPDATE registrations SET expires_at=$1, updated_at=$2 WHERE id=$3", expires_at, at, reg_id)

    async def _events_in(self, c: Any, reg_id: str, events: Sequence[dict[str, Any]]) -> None:
        for ev in events:
            await self._event_in(c, reg_id, at=ev["at"], kind=ev["kind"], source=ev["source"], detail=ev["detail"],
                                 end_reason=ev.get("end_reason"), expires_at=ev.get("expires_at"))

    async def add_registration_event(
        self, reg_id: str, *, at: str, kind: str, source: str, detail: dict[str, Any],
        end_reason: str | None = None, expires_at: str | None = None,
    ) -> None:
        async def run(c: Any) -> None:
            await self._event_in(c, reg_id, at=at, kind=kind, source=source, detail=detail, end_reason=end_reason,
                                 expires_at=expires_at)

        await self._write(run)

    async def registration_events(self, reg_id: str) -> list[dict[str, Any]]:
        rows = await self._fetch("SELECT * FROM registration_events WHERE registration_id=$1 ORDER BY id", reg_id)
        return [R.event_view(r) for r in rows]

    async def apply_notice(
        self, registry: str, msg_id: str, *, at: str, kind: str, registration_id: str | None,
        detail: dict[str, Any], end_reason: str | None = None, expires_at: str | None = None,
        wake_recipient: str | None = None, outbox: list[NewOutbox] | None = None,
    ) -> bool:
        async def run(c: Any) -> bool:
            inserted = await c.fetchval(
                "INSERT INTO poll_messages(registry, msg_id, applied_at, kind, registration_id) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1",
                registry, msg_id, at, kind, registration_id)
            if inserted is None:
                return False
            if registration_id is not None:
                await self._event_in(c, registration_id, at=at, kind=kind, source="registry",
                                     detail={**detail, "msg_id": msg_id}, end_reason=end_reason,
                                     expires_at=expires_at)
                if wake_recipient is not None:
                    await c.execute("UPDATE outbox SET next_attempt_at=$1 WHERE registration_id=$2 AND recipient=$3 "
                                    "AND state='pending'", at, registration_id, wake_recipient)
                if outbox:
                    await _insert_outbox(c, registration_id, None, outbox, at)
            return True

        return bool(await self._write(run))

    async def registration_for_domain(self, domain: str) -> dict[str, Any] | None:
        rows = await self._fetch(
            "SELECT * FROM registrations WHERE domain=$1 AND status NOT IN ('blocked') "
            "ORDER BY (ended_at IS NULL) DESC, created_at DESC LIMIT 1", domain)
        return dict(rows[0]) if rows else None

    async def registration_ends(self, reg_ids: Collection[str]) -> dict[str, tuple[str | None, str | None]]:
        rows = await self._fetch("SELECT id, ended_at, end_reason FROM registrations WHERE id = ANY($1::text[])",
                                 list(reg_ids))
        return {r["id"]: (r["ended_at"], r["end_reason"]) for r in rows}

    async def enqueue_unsealed(
        self, registration_id: str, items: list[NewOutbox], now: str, *, event: dict[str, Any] | None = None,
        end_reason: str | None = None,
    ) -> None:
        """Rows that carry no personal data, queued with no subject (see the SQLite store), with the
        registration's ``event`` and ``end_reason`` in one transaction."""

        async def run(c: Any) -> None:
            await _insert_outbox(c, registration_id, None, items, now)
            if event is not None:
                await self._event_in(c, registration_id, at=now, kind=event["kind"], source=event["source"],
                                     detail=event["detail"], end_reason=end_reason, expires_at=None)

        await self._write(run)


    async def stream_leaf_rows(self, batch: int = 5000) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Every leaf row in order as stored (``R.DISCLOSURE_COLUMNS`` then ``values_ct``), undecoded:
        what the fast verifier hashes."""
        sql = f"{R.SELECT_DISCLOSURES} WHERE d.leaf_index > $1 ORDER BY d.leaf_index LIMIT $2"
        async for rows in self._pages(sql, (-1,), lambda r: (int(r[0]),), batch):
            yield [tuple(r) for r in rows]
