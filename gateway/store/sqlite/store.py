"""The embedded store: SQLite in WAL mode, one group-committing writer, separate read connections.

The accepted request, its outbox rows and any "blocked" disclosure entries are written in one
transaction, and so is each delivery outcome with its disclosure entry and the Merkle tree's new nodes:
after a crash at any instant the store holds either all of it or none.  Writes are jobs of the writer
thread (``writer.GroupWriter``): concurrent ones share one ``BEGIN IMMEDIATE`` transaction and one
fsync, each in its own savepoint, and each caller is answered only after that commit.  Reads run in
worker threads on connections of their own, so they never queue behind the writer's fsync.
``BEGIN IMMEDIATE`` takes SQLite's write lock first, so several processes on one file serialise
their appends instead of forking the tree.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

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
from gateway.store.sqlite.accounts import SqliteAccounts
from gateway.store.sqlite.migrations import migrate
from gateway.store.sqlite.requests_extra import SqliteRequestsExtra
from gateway.store.sqlite.workbench import SqliteWorkbench
from gateway.store.sqlite.writer import GroupWriter
from gateway.webhooks.events import EventType, status_event

T = TypeVar("T")

_INSERT = R.Inserts.using(R.qmark)


def _owner_only(path: str) -> None:
    """Create the database file mode 0600 before SQLite first writes it, and tighten one left by an
    older version.  SQLite creates its ``-wal`` and ``-shm`` files with the database file's mode, so
    they follow; any already there are tightened too.  No umask change: that is process-wide and
    would race with other threads creating files."""
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for p in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:
            os.chmod(p, 0o600)
        except FileNotFoundError:
            continue


class SqliteStore(SqliteAccounts, SqliteWorkbench, SqliteRequestsExtra, DisclosureReads):
    """The store on one SQLite file: a group-committing writer and WAL readers of its own.

    How the methods (and mixins such as ``SqliteWorkbench``) reach the database:

    - ``await self._write(fn)`` for a write: ``fn()`` runs on the writer thread as one job of a group
      (``writer.GroupWriter``); inside it ``with self._tx() as c:`` gives the write connection in the
      group's ``BEGIN IMMEDIATE`` transaction (as a savepoint: an exception rolls back this job's work
      only, and reaches the caller).  The caller is answered after the group's ``COMMIT``, so its rows
      are durable and visible to its next read.  Many concurrent writes share one commit and one fsync.
    - ``await self._run(fn)`` for a read: ``fn()`` runs in a worker thread, where ``self._read(sql,
      params)`` and ``self._reading(fn)`` use a read connection from a small pool, so a read never waits
      for the writer's lock or fsync (WAL).  An in-memory database (``":memory:"``) has one connection,
      which reads share under the writer's lock.
    - ``with self._tx() as c:`` outside the writer (inside ``_run``) still works: its own ``BEGIN
      IMMEDIATE ... COMMIT`` on the write connection between two groups, one commit of its own.

    ``commits`` and ``committed_jobs`` count the groups committed so far and the writes in them."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self._memory = self.path == ":memory:"
        if not self._memory:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            _owner_only(self.path)
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        self._synchronous = synchronous
        self._conn = self._connect()
        # held by the writer for each whole group, and by anyone else using the write connection
        self._lock = threading.RLock()
        self._in_tx = threading.local()  # a thread inside ``_tx`` outside the writer
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._all_readers: list[sqlite3.Connection] = []
        self.schema_version = migrate(self._conn)
        self._writer = GroupWriter(self._conn, self._lock)
        # a store dropped without ``close`` must not leave its writer thread waiting forever
        weakref.finalize(self, self._writer.request_stop)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @property
    def commits(self) -> int:
        """Groups committed by this store's writer (each one transaction, one fsync)."""
        return self._writer.commits

    @property
    def committed_jobs(self) -> int:
        """Writes committed by this store's writer, over all groups."""
        return self._writer.jobs

    async def close(self) -> None:
        """Commit what is queued, stop the writer, close every connection."""
        await asyncio.to_thread(self._writer.stop)
        with self._readers_lock:
            # only the idle ones: a connection another thread is reading on is closed when it is handed
            # back (``_give_back``); closing it under a running query can crash the interpreter
            idle, self._readers, self._all_readers = self._readers, [], []
        for conn in idle:
            conn.close()
        with self._lock:
            self._conn.close()

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.to_thread(fn)

    async def _write(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` as one job of the writer's next group; answered once that group has committed."""
        return await asyncio.wrap_future(self._writer.submit(lambda _c: fn()))

    def _on_write_connection(self) -> bool:
        return threading.get_ident() == self._writer.ident or getattr(self._in_tx, "depth", 0) > 0

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """The write connection inside a transaction: a savepoint of the group's transaction on the
        writer thread (or nested in another ``_tx``), else a ``BEGIN IMMEDIATE`` transaction of its own."""
        c = self._conn
        if self._on_write_connection():
            c.execute("SAVEPOINT tx")
            try:
                yield c
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK TO tx")
                    c.execute("RELEASE tx")
                raise
            else:
                c.execute("RELEASE tx")
            return
        with self._lock:
            self._in_tx.depth = 1
            try:
                c.execute("BEGIN IMMEDIATE")
                try:
                    yield c
                except BaseException:
                    if c.in_transaction:
                        c.execute("ROLLBACK")
                    raise
                else:
                    c.execute("COMMIT")
            finally:
                self._in_tx.depth = 0

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._reading(lambda c: list(c.execute(sql, params).fetchall()), snapshot=False)

    def _reading(self, fn: Callable[[sqlite3.Connection], T], *, snapshot: bool = True) -> T:
        """``fn`` on a read connection, in one read transaction (one snapshot) unless ``snapshot`` is off.

        On the write connection itself when called from a write (it sees the write's own rows) and for an
        in-memory database (which has no other connection)."""
        if self._memory or self._on_write_connection():
            with self._lock:
                return fn(self._conn)
        conn = self._borrow()
        try:
            if not snapshot:
                return fn(conn)
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("COMMIT")  # a read transaction: ends the snapshot, writes nothing
        finally:
            self._give_back(conn)

    def _borrow(self) -> sqlite3.Connection:
        with self._readers_lock:
            if self._readers:
                return self._readers.pop()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA query_only=ON")
        with self._readers_lock:
            self._all_readers.append(conn)
        return conn

    def _give_back(self, conn: sqlite3.Connection) -> None:
        with self._readers_lock:
            if conn in self._all_readers:
                self._readers.append(conn)
                return
        conn.close()  # the store was closed meanwhile

    # -- the tree ------------------------------------------------------------------------------------

    @staticmethod
    def _append_in(c: sqlite3.Connection, entries: list[DisclosureEntry]) -> None:
        if not entries:
            return
        blob = c.execute("SELECT frontier FROM ledger_head WHERE id=1").fetchone()[0]
        frontier = Frontier.from_bytes(bytes(blob))
        tree = R.tree_rows(frontier, entries)
        c.executemany(_INSERT.leaf, tree.leaves)
        c.executemany(_INSERT.values, tree.values)
        c.executemany(_INSERT.node, tree.nodes)
        c.execute("UPDATE ledger_head SET size=?, frontier=? WHERE id=1", (frontier.size, frontier.to_bytes()))

    async def append(self, entries: list[DisclosureEntry]) -> None:
        def run() -> None:
            with self._tx() as c:
                self._append_in(c, entries)

        await self._write(run)

    async def head(self) -> Frontier:
        rows = await self._run(lambda: self._read("SELECT frontier FROM ledger_head WHERE id=1"))
        return Frontier.from_bytes(bytes(rows[0][0]))

    async def nodes(self, coords: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        def run(c: sqlite3.Connection) -> dict[tuple[int, int], bytes]:
            out: dict[tuple[int, int], bytes] = {}
            for level, idx in coords:
                r = c.execute(
                    "SELECT hash FROM ledger_nodes WHERE born=? AND level=? AND idx=?", (*R.node_key(level, idx), idx)
                ).fetchone()
                if r is not None:
                    out[(level, idx)] = bytes(r[0])
            return out

        return await self._run(lambda: self._reading(run))

    async def add_checkpoint(self, cp: StoredCheckpoint) -> None:
        def run() -> None:
            with self._tx() as c:
                c.execute(_INSERT.checkpoint.replace("INSERT", "INSERT OR IGNORE", 1), R.checkpoint_values(cp))

        await self._write(run)

    async def checkpoints(self) -> list[StoredCheckpoint]:
        rows = await self._run(lambda: self._read(f"{R.SELECT_CHECKPOINTS} ORDER BY size"))
        return [R.checkpoint_from_row(r) for r in rows]

    async def checkpoint(self, size: int) -> StoredCheckpoint | None:
        rows = await self._run(lambda: self._read(f"{R.SELECT_CHECKPOINTS} WHERE size=?", (size,)))
        return R.checkpoint_from_row(rows[0]) if rows else None

    def _reader(self) -> sqlite3.Connection:
        """A separate read connection: streaming must not hold the writer's lock for minutes."""
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        conn.row_factory = sqlite3.Row
        return conn

    async def _stream(
        self, sql: str, start: tuple[Any, ...], key: Callable[[sqlite3.Row], tuple[Any, ...]], size: int
    ) -> AsyncIterator[list[sqlite3.Row]]:
        """Keyset pages of ``sql`` (bound to the key after which to start, then the page size) on a read
        connection of its own, until a page comes back empty."""
        conn = await self._run(self._reader)
        try:
            def fetch(after: tuple[Any, ...]) -> Awaitable[list[sqlite3.Row]]:
                return self._run(lambda: conn.execute(sql, (*after, size)).fetchall())

            async for rows in keyset_pages(fetch, key, start):
                yield list(rows)
        finally:
            conn.close()

    async def stream_leaves(self, batch: int = 1000) -> AsyncIterator[list[DisclosureEntry]]:
        """Every leaf in order, ``batch`` at a time."""
        sql = f"{R.SELECT_DISCLOSURES} WHERE d.leaf_index > ? ORDER BY d.leaf_index LIMIT ?"
        async for rows in self._stream(sql, (-1,), lambda r: (r["leaf_index"],), batch):
            yield [DisclosureEntry.from_row(r) for r in rows]

    async def stream_nodes(self, batch: int = 1000) -> AsyncIterator[list[tuple[int, int, int, bytes]]]:
        """Every tree node in (born, level) order: the order in which a verifier recomputes them."""
        sql = ("SELECT level, idx, born, hash FROM ledger_nodes WHERE (born, level) > (?, ?) "
               "ORDER BY born, level LIMIT ?")
        async for rows in self._stream(sql, (-1, -1), lambda r: (r["born"], r["level"]), batch):
            yield [(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    # -- idempotency and acceptance ------------------------------------------------------------

    async def idempotent_response(self, client: str, key: str) -> tuple[str, int, dict[str, Any]] | None:
        return await self._run(lambda: self._reading(lambda c: self._prior_in(c, client, key), snapshot=False))

    @staticmethod
    def _holder_in(c: sqlite3.Connection, strong_digest: str) -> sqlite3.Row | None:
        """The live subject ``("strong_id", strong_digest)`` names, oldest first (``claim_subject``'s pick)."""
        row: sqlite3.Row | None = c.execute(
            f"SELECT {R.SUBJECT_KEY_COLUMNS} FROM subjects WHERE wrapped IS NOT NULL AND id IN "  # noqa: S608
            "(SELECT subject_id FROM subject_index WHERE kind='strong_id' AND digest=?) "
            "ORDER BY created_at, id LIMIT 1",
            (strong_digest,),
        ).fetchone()
        return row

    @classmethod
    def _context_in(cls, c: sqlite3.Connection, client: str, key: str, strong_digest: str | None) -> AcceptContext:
        prior = cls._prior_in(c, client, key)
        holder = cls._holder_in(c, strong_digest) if strong_digest is not None else None
        restrictions: tuple[dict[str, Any], ...] = ()
        if holder is not None:
            restrictions = tuple(dict(r) for r in c.execute(
                "SELECT * FROM restrictions WHERE subject_id=? AND lifted_at IS NULL ORDER BY since",
                (holder["id"],)))
        return AcceptContext(
            prior=prior,
            holder=R.subject_key_from_row(holder) if holder is not None else None,
            restrictions=restrictions,
        )

    async def accept_context(self, client: str, key: str, strong_digest: str | None) -> AcceptContext:
        """The accept path's read (``AcceptContext``), on a read connection."""
        return await self._run(lambda: self._reading(lambda c: self._context_in(c, client, key, strong_digest)))

    async def accept_request(
        self, client: str, key: str, strong_digest: str | None, now: str, decide: Decide
    ) -> tuple[str, int, dict[str, Any]] | None:
        """One job of the writer's group, in two halves (``GroupWriter.submit_prepared``): the read and
        ``decide`` run on the writer thread just before the group's transaction, not holding the file's
        write lock (which the delivery worker's process wants meanwhile); the write runs inside it and
        checks again what matters, as ``accept`` does.  If a holder was made or erased in between (by
        another process: this process's writes all pass through this thread), the write refuses, and the
        read and ``decide`` run again inside the transaction, where nothing can change: the caller never
        needs a second call.  One hand-off to another thread per request instead of two (a read
        connection, then the writer)."""

        def prepare(c: sqlite3.Connection) -> Callable[[sqlite3.Connection], tuple[str, int, dict[str, Any]] | None]:
            ctx = self._context_in(c, client, key, strong_digest)
            accepted = decide(ctx)

            def write(c: sqlite3.Connection) -> tuple[str, int, dict[str, Any]] | None:
                if accepted is None:
                    return ctx.prior
                try:
                    return self._accept_in(accepted, now)
                except SubjectErased:  # SubjectRaced too: the holder changed since the read
                    again = decide(self._context_in(c, client, key, strong_digest))
                    return self._accept_in(again, now) if again is not None else self._prior_in(c, client, key)

            return write

        result: tuple[str, int, dict[str, Any]] | None = await asyncio.wrap_future(
            self._writer.submit_prepared(prepare))
        return result

    @staticmethod
    def _prior_in(c: sqlite3.Connection, client: str, key: str) -> tuple[str, int, dict[str, Any]] | None:
        row = c.execute(
            "SELECT request_hash, status, response_json FROM idempotency WHERE client=? AND key=?", (client, key)
        ).fetchone()
        return R.idempotent_answer(row) if row is not None else None

    async def accept(self, a: Accepted, now: str) -> tuple[str, int, dict[str, Any]] | None:
        """Write the whole acceptance atomically; returns the earlier answer if the key raced us."""
        return await self._write(lambda: self._accept_in(a, now))

    def _accept_in(self, a: Accepted, now: str) -> tuple[str, int, dict[str, Any]] | None:
        """The acceptance's writes, on the write connection (a savepoint of the caller's group)."""
        client, key, request_hash = a.idempotency
        reg = a.registration
        with self._tx() as c:
            prior = self._prior_in(c, client, key)
            if prior is not None:
                return prior
            if a.subject is not None:
                if a.subject.merge_on is not None and self._holder_in(c, a.subject.merge_on) is not None:
                    raise SubjectRaced()
                c.execute(
                    "INSERT INTO subjects(id, kid, wrapped, created_at, basis) VALUES (?,?,?,?,?)",
                    (a.subject.id, a.subject.kid, a.subject.wrapped, now, a.subject.basis),
                )
            subject_id = reg.get("subject_id")
            if a.subject is None and subject_id is not None:
                self._require_live(c, subject_id)
            if subject_id is not None:
                links = (tuple(R.subject_links(a.subject)) if a.subject else ()) + a.subject_links
                c.executemany(
                    "INSERT OR IGNORE INTO subject_index(kind, digest, subject_id) VALUES (?,?,?)",
                    [(k, d, subject_id) for k, d in links],
                )
            c.execute(
                "INSERT INTO registrations(id, client, order_ref, domain, tld, subject_id, status, plan_json, "
                "created_at, updated_at, kind, expires_at, language) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (reg["id"], client, reg["order_ref"], reg["domain"], reg["tld"], subject_id, reg["status"],
                 a.plan_text(), now, now, reg.get("kind", "registration"), reg.get("expires_at"),
                 reg.get("language")),
            )
            c.execute(
                "INSERT INTO idempotency(client, key, request_hash, registration_id, status, response_json, "
                "created_at) VALUES (?,?,?,?,?,?,?)",
                (client, key, request_hash, reg["id"], a.status, a.response_text(), now),
            )
            self._insert_outbox(c, reg["id"], subject_id, a.outbox, now)
            self._append_in(c, a.entries)
            if reg["status"] == "blocked":
                self._emit(c, reg["id"], "registration.blocked", code=R.problem_code(a.response), now=now)
        return None

    @staticmethod
    def _insert_outbox(
        c: sqlite3.Connection, registration_id: str, subject_id: str | None, items: list[NewOutbox], now: str
    ) -> None:
        c.executemany(_INSERT.outbox, R.outbox_rows(registration_id, subject_id, items, now))

    @staticmethod
    def _require_live(c: sqlite3.Connection, subject_id: str) -> None:
        """Inside the write transaction (``BEGIN IMMEDIATE`` holds the write lock, so no shred can commit
        in between): refuse to file anything more under a subject whose key is gone."""
        row = c.execute("SELECT wrapped IS NOT NULL FROM subjects WHERE id=?", (subject_id,)).fetchone()
        if row is None or not row[0]:
            raise SubjectErased()

    async def enqueue(self, registration_id: str, subject_id: str, items: list[NewOutbox], now: str) -> None:
        """Updates pushed after a registration (rectification): delivered and logged like it."""

        def run() -> None:
            with self._tx() as c:
                self._require_live(c, subject_id)
                self._insert_outbox(c, registration_id, subject_id, items, now)
                if items:
                    self._emit(c, registration_id, "registration.changed", code=None, now=now)

        await self._write(run)

    # -- registrations ---------------------------------------------------------------------------

    async def registration(self, reg_id: str) -> dict[str, Any] | None:
        def run() -> dict[str, Any] | None:
            rows = self._read("SELECT * FROM registrations WHERE id=?", (reg_id,))
            if not rows:
                return None
            deliveries = self._read(
                "SELECT recipient, state, attempts, last_code, updated_at FROM outbox WHERE registration_id=? "
                "ORDER BY id", (reg_id,),
            )
            entries = self._read(f"{R.SELECT_DISCLOSURES} WHERE d.registration_id=? ORDER BY d.leaf_index",
                                 (reg_id,))
            events = self._read("SELECT * FROM registration_events WHERE registration_id=? ORDER BY id", (reg_id,))
            return R.registration_view(rows[0], deliveries, entries, events)

        return await self._run(run)

    # -- outbox ------------------------------------------------------------------------------------

    async def requeue_in_flight(self, now: str, stale_before: str | None = None) -> int:
        """Put back rows whose claim lapsed: their worker died (kill -9) or stopped renewing its lease.

        A row counts as lapsed when its ``lease_until`` has passed (schema 5) or, for a claim without one,
        when it was claimed before ``stale_before``.  Its token is cleared, so the old worker, should it
        still be alive, can record nothing for it.  The EPP adapter makes the retry idempotent
        (deterministic object ids, <info> on 2302, the row's recorded progress)."""
        cutoff = stale_before or now

        def run() -> int:
            with self._tx() as c:
                return c.execute(
                    "UPDATE outbox SET state='pending', next_attempt_at=?, updated_at=?, claim_token=NULL, "
                    "lease_until=NULL WHERE state='in_flight' AND "
                    "((lease_until IS NOT NULL AND lease_until <= ?) OR (lease_until IS NULL AND updated_at <= ?))",
                    (now, now, now, cutoff),
                ).rowcount

        return await self._write(run)

    async def claim_due(
        self, now: str, limit: int, *, batch_recipient: str | None = None, recipient: str | None = None,
        exclude: Collection[str] = (), lease_until: str | None = None,
    ) -> list[OutboxItem]:
        """Due rows for the delivery worker (of one ``recipient``, or any not in ``exclude``), or
        (``batch_recipient``) a batch job's rows; each claimed under a fresh fencing token."""

        def run() -> list[OutboxItem]:
            where, args = R.claim_filter(batch_recipient, recipient, exclude, "?")
            with self._tx() as c:
                rows = c.execute(
                    f"SELECT * FROM outbox WHERE {where} AND state='pending' AND next_attempt_at<=? "  # noqa: S608
                    "ORDER BY next_attempt_at, id LIMIT ?", (*args, now, limit),
                ).fetchall()
                items = []
                for row in rows:
                    token = R.new_token()
                    c.execute(
                        "UPDATE outbox SET state='in_flight', attempts=attempts+1, updated_at=?, claim_token=?, "
                        "lease_until=? WHERE id=?",
                        (now, token, lease_until, row["id"]),
                    )
                    c.execute(
                        "UPDATE registrations SET status='delivering', updated_at=? WHERE id=? AND status='accepted'",
                        (now, row["registration_id"]),
                    )
                    items.append(replace(R.outbox_item(row, attempts=row["attempts"] + 1), token=token))
                return items

        return await self._write(run)

    async def due_recipients(self, now: str) -> list[str]:
        def run() -> list[str]:
            return [r[0] for r in self._read(
                "SELECT DISTINCT recipient FROM outbox WHERE batch=0 AND state='pending' AND next_attempt_at<=?",
                (now,))]

        return await self._run(run)

    async def renew_claims(self, tokens: Sequence[str], lease_until: str) -> int:
        """The heartbeat of work in progress: push the lease of rows still held under these tokens."""
        if not tokens:
            return 0

        def run() -> int:
            with self._tx() as c:
                return sum(c.execute(
                    "UPDATE outbox SET lease_until=? WHERE claim_token=? AND state='in_flight'", (lease_until, t)
                ).rowcount for t in tokens)

        return await self._write(run)

    async def release_claims(self, tokens: Sequence[str], now: str) -> int:
        """Give rows back at shutdown: due again at once, for this or another instance."""
        if not tokens:
            return 0

        def run() -> int:
            with self._tx() as c:
                return sum(c.execute(
                    "UPDATE outbox SET state='pending', next_attempt_at=?, updated_at=?, claim_token=NULL, "
                    "lease_until=NULL WHERE claim_token=? AND state='in_flight'", (now, now, t)
                ).rowcount for t in tokens)

        return await self._write(run)

    async def record_step(
        self, item: OutboxItem, entries: Sequence[DisclosureEntry], *, progress: dict[str, Any], now: str,
        events: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """One step of a row (a command that reached the recipient), its entries and the row's progress, in
        one transaction; nothing at all when the claim no longer owns the row (False)."""

        def run() -> bool:
            with self._tx() as c:
                owned = c.execute(
                    "UPDATE outbox SET progress_json=?, updated_at=? WHERE id=? AND claim_token=? "
                    "AND state='in_flight'",
                    (json.dumps(progress, sort_keys=True), now, item.id, item.token),
                ).rowcount
                if not owned:
                    return False
                self._append_in(c, list(entries))
                self._events_in(c, item.registration_id, events)
                return True

        return await self._write(run)

    async def finish(
        self, item: OutboxItem, entries: DisclosureEntry | Sequence[DisclosureEntry], *, state: str,
        next_attempt_at: str | None, now: str, parked_reason: str | None = None, deadline_at: str | None = None,
        progress: dict[str, Any] | None = None, last_code: str | None = None,
        events: Sequence[dict[str, Any]] = (),
    ) -> bool:
        """Record one attempt's outcome and its disclosure entries in one transaction.

        Fenced: when the row no longer carries this claim's token (the lease lapsed and another worker took
        it, or staff acted on it), nothing is written and the answer is False."""
        R.check_finish_state(state)
        batch = [entries] if isinstance(entries, DisclosureEntry) else list(entries)
        if last_code is None:
            last_code = next((e.result_code for e in reversed(batch) if e.result_code is not None), None)

        def run() -> bool:
            with self._tx() as c:
                before = c.execute("SELECT status FROM registrations WHERE id=?", (item.registration_id,)).fetchone()
                owned = c.execute(
                    "UPDATE outbox SET state=?, last_code=COALESCE(?, last_code), "
                    "next_attempt_at=COALESCE(?, next_attempt_at), updated_at=?, claim_token=NULL, lease_until=NULL, "
                    "parked_reason=?, deadline_at=COALESCE(?, deadline_at), "
                    "progress_json=COALESCE(?, progress_json) WHERE id=? AND state='in_flight' AND "
                    "(claim_token=? OR (claim_token IS NULL AND ?=''))",
                    (state, last_code, next_attempt_at, now, parked_reason, deadline_at,
                     None if progress is None else json.dumps(progress, sort_keys=True), item.id, item.token,
                     item.token),
                ).rowcount
                if not owned:
                    return False
                self._append_in(c, batch)
                self._events_in(c, item.registration_id, events)
                # the registration's status follows the rows that count for it (not marketing, not escrow)
                states = {r[0] for r in c.execute(
                    "SELECT state FROM outbox WHERE registration_id=? AND required=1", (item.registration_id,)
                )}
                status = R.registration_status(states)
                c.execute("UPDATE registrations SET status=?, updated_at=? WHERE id=?",
                          (status, now, item.registration_id))
                refused = any(e.outcome == "blocked" for e in batch)
                event = status_event(before[0] if before else None, status, refused=refused)
                if event is not None:
                    self._emit(c, item.registration_id, event, code=last_code, now=now)
                return True

        return await self._write(run)

    # -- webhooks ------------------------------------------------------------------------------------

    @staticmethod
    def _emit(c: sqlite3.Connection, registration_id: str, type_: EventType, *, code: str | None, now: str) -> None:
        """Inside the state change's transaction: one notification per subscription that wants it."""
        reg = c.execute(W.REGISTRATION.format("?"), (registration_id,)).fetchone()
        if reg is None:
            return
        hooks = c.execute(W.HOOKS_OF_CLIENT.format("?"), (reg["client"],)).fetchall()
        rows = W.event_rows(hooks, type_, registration_id=registration_id, order_ref=reg["order_ref"],
                            status=reg["status"], code=code, now=now)
        c.executemany(f"INSERT INTO webhook_events({W.EVENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                      rows)

    async def add_webhook(self, hook: NewWebhook, now: str) -> None:
        def run() -> None:
            with self._tx() as c:
                c.execute("INSERT INTO webhooks(id, client, url, events_json, secret, created_at) "
                          "VALUES (?,?,?,?,?,?)", W.webhook_values(hook, now))

        await self._write(run)

    async def webhooks(self, client: str) -> list[dict[str, Any]]:
        def run(c: sqlite3.Connection) -> list[dict[str, Any]]:
            hooks = c.execute(
                "SELECT id, url, events_json, created_at FROM webhooks WHERE client=? AND deleted_at IS NULL "
                "ORDER BY created_at, id", (client,)).fetchall()
            out = []
            for h in hooks:
                counts = {r[0]: r[1] for r in c.execute(
                    "SELECT state, COUNT(*) FROM webhook_events WHERE webhook_id=? GROUP BY state", (h["id"],))}
                out.append(W.hook_view(h, counts))
            return out

        return await self._run(lambda: self._reading(run))

    async def delete_webhook(self, client: str, webhook_id: str, now: str) -> bool:
        def run() -> bool:
            with self._tx() as c:
                n = c.execute("UPDATE webhooks SET deleted_at=? WHERE id=? AND client=? AND deleted_at IS NULL",
                              (now, webhook_id, client)).rowcount
                if n:
                    c.execute("UPDATE webhook_events SET state='failed', last_status='deleted', updated_at=? "
                              "WHERE webhook_id=? AND state='pending'", (now, webhook_id))
                return n > 0

        return await self._write(run)

    async def webhook_events(self, webhook_id: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self._run(lambda: self._read(
            "SELECT * FROM webhook_events WHERE webhook_id=? ORDER BY id DESC LIMIT ?", (webhook_id, limit)))
        return [W.event_view(r) for r in rows]

    async def claim_webhook_events(self, now: str, lease_until: str, limit: int) -> list[WebhookDelivery]:
        def run() -> list[WebhookDelivery]:
            with self._tx() as c:
                rows = c.execute(
                    "SELECT e.id, e.event_id, e.webhook_id, e.body_json, e.attempts, e.created_at, w.url, w.secret "
                    "FROM webhook_events e JOIN webhooks w ON w.id = e.webhook_id "
                    "WHERE e.state='pending' AND e.next_attempt_at<=? AND w.deleted_at IS NULL "
                    "ORDER BY e.next_attempt_at, e.id LIMIT ?", (now, limit)).fetchall()
                out = []
                for r in rows:
                    c.execute("UPDATE webhook_events SET attempts=attempts+1, next_attempt_at=?, updated_at=? "
                              "WHERE id=?", (lease_until, now, r["id"]))
                    out.append(W.delivery({**dict(r), "attempts": r["attempts"] + 1}))
                return out

        return await self._write(run)

    async def webhook_event_result(
        self, row_id: int, *, state: str, next_attempt_at: str | None, last_status: str, now: str
    ) -> None:
        W.check_result_state(state)

        def run() -> None:
            with self._tx() as c:
                c.execute("UPDATE webhook_events SET state=?, next_attempt_at=COALESCE(?, next_attempt_at), "
                          "last_status=?, updated_at=? WHERE id=? AND state='pending'",
                          (state, next_attempt_at, last_status, now, row_id))

        await self._write(run)

    async def pending_count(self) -> int:
        rows = await self._run(lambda: self._read(
            "SELECT COUNT(*) FROM outbox WHERE state IN ('pending','in_flight')"
        ))
        return int(rows[0][0])

    # -- disclosures ---------------------------------------------------------------------------------

    async def disclosures(self, f: DisclosureFilter) -> list[DisclosureEntry]:
        bind = R.Params(R.qmark)

        def category_in(categories: tuple[str, ...], inside: bool) -> str:
            listed = ", ".join(bind(c) for c in categories)
            return f"d.category {'IN' if inside else 'NOT IN'} ({listed})"

        sql = R.disclosures_sql(f, bind, category_in)
        rows = await self._run(lambda: self._read(sql, tuple(bind.values)))
        return [DisclosureEntry.from_row(r) for r in rows]

    async def disclosure(self, entry_id: str) -> DisclosureEntry | None:
        rows = await self._run(lambda: self._read(f"{R.SELECT_DISCLOSURES} WHERE d.id=?", (entry_id,)))
        return DisclosureEntry.from_row(rows[0]) if rows else None

    # -- access log ------------------------------------------------------------------------------------

    async def record_access(self, actor: str, action: str, object_id: str, subject_id: str | None, at: str) -> None:
        def run() -> None:
            with self._tx() as c:
                c.execute("INSERT INTO access_log(at, actor, action, object_id, subject_id) VALUES (?,?,?,?,?)",
                          (at, actor, action, object_id, subject_id))

        await self._write(run)

    async def access_log(self, subject_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        sql = "SELECT at, actor, action, object_id, subject_id FROM access_log"
        params: tuple[Any, ...] = (limit,)
        if subject_id is not None:
            sql += " WHERE subject_id=?"
            params = (subject_id, limit)
        rows = await self._run(lambda: self._read(sql + " ORDER BY id LIMIT ?", params))
        return [dict(r) for r in rows]

    # -- data-subject requests, restrictions, retention -------------------------------------------------

    async def open_request(self, req: dict[str, Any]) -> None:
        values = R.request_values(req)

        def run() -> None:
            with self._tx() as c:
                c.execute(_INSERT.request, values)

        await self._write(run)

    async def request(self, request_id: str) -> dict[str, Any] | None:
        rows = await self._run(lambda: self._read("SELECT * FROM requests WHERE id=?", (request_id,)))
        return R.request_from_row(rows[0]) if rows else None

    async def requests(self, state: str | None = None) -> list[dict[str, Any]]:
        if state is None:
            rows = await self._run(lambda: self._read("SELECT * FROM requests ORDER BY opened_at DESC"))
        else:
            rows = await self._run(lambda: self._read(
                "SELECT * FROM requests WHERE state=? ORDER BY deadline", (state,)))
        return [R.request_from_row(r) for r in rows]

    async def update_request(self, request_id: str, changes: dict[str, Any]) -> None:
        sets, values = R.request_changes(changes)

        def run() -> None:
            with self._tx() as c:
                c.execute(f"UPDATE requests SET {', '.join(s + '=?' for s in sets)} WHERE id=?",  # noqa: S608
                          (*values, request_id))

        await self._write(run)

    async def add_request_event(
        self, request_id: str, at: str, actor: str, action: str, detail: dict[str, Any]
    ) -> None:
        def run() -> None:
            with self._tx() as c:
                c.execute("INSERT INTO request_events(request_id, at, actor, action, detail_json) VALUES (?,?,?,?,?)",
                          (request_id, at, actor, action, json.dumps(detail, sort_keys=True)))

        await self._write(run)

    async def request_events(self, request_id: str) -> list[dict[str, Any]]:
        rows = await self._run(lambda: self._read(
            "SELECT at, actor, action, detail_json FROM request_events WHERE request_id=? ORDER BY id", (request_id,)))
        return [R.request_event_from_row(r) for r in rows]

    async def add_restriction(self, r: dict[str, Any]) -> None:
        def run() -> None:
            with self._tx() as c:
                c.execute("INSERT INTO restrictions(id, subject_id, kind, scope, since, request_id) "
                          "VALUES (?,?,?,?,?,?)",
                          (r["id"], r["subject_id"], r["kind"], r["scope"], r["since"], r.get("request_id")))

        await self._write(run)

    async def lift_restriction(self, restriction_id: str, at: str) -> bool:
        def run() -> bool:
            with self._tx() as c:
                return c.execute("UPDATE restrictions SET lifted_at=? WHERE id=? AND lifted_at IS NULL",
                                 (at, restriction_id)).rowcount == 1

        return await self._write(run)

    async def restrictions(self, subject_id: str, *, active_only: bool = True) -> list[dict[str, Any]]:
        only_active = " AND lifted_at IS NULL" if active_only else ""
        rows = await self._run(lambda: self._read(
            f"SELECT * FROM restrictions WHERE subject_id=?{only_active} ORDER BY since", (subject_id,)))  # noqa: S608
        return [dict(r) for r in rows]

    async def subject_registrations(self, subject_id: str, *, client: str | None = None) -> list[dict[str, Any]]:
        sql = (f"SELECT {R.SUBJECT_REGISTRATION_COLUMNS} FROM registrations "  # noqa: S608 - fixed names
               "WHERE subject_id=? AND (? IS NULL OR client=?) ORDER BY created_at, id")
        rows = await self._run(lambda: self._read(sql, (subject_id, client, client)))
        return [dict(r) for r in rows]

    async def purge_values(self, entry_ids: list[str]) -> int:
        """Retention: delete sealed values; the leaves keep their digests, so the tree verifies."""

        def run() -> int:
            with self._tx() as c:
                sql = "DELETE FROM entry_values WHERE leaf_index=(SELECT leaf_index FROM disclosures WHERE id=?)"
                return sum(c.execute(sql, (e,)).rowcount for e in entry_ids)

        return await self._write(run)

    # -- subjects and keys -----------------------------------------------------------------------------

    async def find_subjects(self, digests: list[tuple[str, str]]) -> list[str]:
        def run() -> list[str]:
            found: list[str] = []
            for kind, digest in digests:
                for r in self._read(
                    "SELECT subject_id FROM subject_index WHERE kind=? AND digest=? ORDER BY subject_id",
                    (kind, digest),
                ):
                    if r[0] not in found:
                        found.append(r[0])
            return found

        return await self._run(run)

    async def claim_subject(self, new: NewSubject, now: str) -> str:
        """Get-or-create, atomically, on the strong identifier alone: the live subject that
        ``("strong_id", new.merge_on)`` already names, else ``new`` (inserted with its index).  Concurrent
        first registrations of one holder then share one subject and one data key instead of racing to
        make two; a shared e-mail, phone or address never joins anyone (``BEGIN IMMEDIATE`` serialises
        the check and the insert against every other writer of the file)."""

        def run() -> str:
            with self._tx() as c:
                if new.merge_on is not None:
                    row = c.execute(
                        "SELECT i.subject_id FROM subject_index i JOIN subjects s ON s.id = i.subject_id "
                        "WHERE i.kind='strong_id' AND i.digest=? AND s.wrapped IS NOT NULL "
                        "ORDER BY s.created_at, s.id LIMIT 1",
                        (new.merge_on,),
                    ).fetchone()
                    if row is not None:
                        return str(row[0])
                c.execute("INSERT INTO subjects(id, kid, wrapped, created_at, basis) VALUES (?,?,?,?,?)",
                          (new.id, new.kid, new.wrapped, now, new.basis))
                c.executemany("INSERT OR IGNORE INTO subject_index(kind, digest, subject_id) VALUES (?,?,?)",
                              [(k, d, new.id) for k, d in R.subject_links(new)])
                return new.id

        return await self._write(run)

    async def subject_key(self, subject_id: str) -> SubjectKey | None:
        rows = await self._run(lambda: self._read(
            f"SELECT {R.SUBJECT_KEY_COLUMNS} FROM subjects WHERE id=?", (subject_id,)))  # noqa: S608 - fixed names
        return R.subject_key_from_row(rows[0]) if rows else None

    async def subject_keys(self) -> AsyncIterator[SubjectKey]:
        """Every subject's key in id order, a page at a time (on the main connection, which is all an
        in-memory database has); each page holds the lock only while it is read."""
        sql = (f"SELECT {R.SUBJECT_KEY_COLUMNS} FROM subjects WHERE ?1 IS NULL OR id > ?1 "  # noqa: S608
               "ORDER BY id LIMIT ?2")

        def fetch(after: str | None) -> Awaitable[list[sqlite3.Row]]:
            return self._run(lambda: self._read(sql, (after, R.SUBJECT_KEY_PAGE)))

        async for rows in keyset_pages(fetch, lambda r: str(r["id"]), None):
            for r in rows:
                yield R.subject_key_from_row(r)

    async def replace_wrapped_key(self, subject_id: str, kid: str, wrapped: bytes) -> None:
        def run() -> None:
            with self._tx() as c:
                c.execute("UPDATE subjects SET kid=?, wrapped=? WHERE id=? AND wrapped IS NOT NULL",
                          (kid, wrapped, subject_id))

        await self._write(run)

    async def shred_subject(self, subject_id: str, now: str) -> bool:
        """Destroy the subject's data key: every value sealed under it becomes unreadable."""

        def run() -> bool:
            with self._tx() as c:
                return c.execute(
                    "UPDATE subjects SET kid=NULL, wrapped=NULL, shredded_at=? WHERE id=? AND wrapped IS NOT NULL",
                    (now, subject_id),
                ).rowcount == 1

        return await self._write(run)

    async def wrapped_key_counts(self) -> dict[str, int]:
        """How many live data keys are wrapped under each KEK id: what retiring a KEK must find at zero."""
        rows = await self._run(lambda: self._read(
            "SELECT kid, COUNT(*) AS n FROM subjects WHERE wrapped IS NOT NULL GROUP BY kid"))
        return {str(r["kid"]): int(r["n"]) for r in rows}

    async def outbox_stats(self, now: dt.datetime) -> list[OutboxStat]:
        """Depth, parked rows and the oldest wait per recipient, in one read (``OutboxStore``)."""
        rows = await self._run(lambda: self._read(OUTBOX_STATS_SQL))
        return outbox_stats_from(rows, now)

    # -- parked rows: staff retry or cancel them ---------------------------------------------------------

    async def parked(self, recipient: str | None = None) -> list[dict[str, Any]]:
        if recipient is None:
            rows = await self._run(lambda: self._read(P.SELECT_PARKED.format("")))
        else:
            rows = await self._run(lambda: self._read(P.SELECT_PARKED.format(" AND recipient=?"), (recipient,)))
        return [P.parked_view(r) for r in rows]

    def _staff_action(self, row_id: int, now: str, actor: str, action: P.StaffAction) -> bool:
        """Retry or cancel one parked row, its registration's status and the access-log record, in one
        ``BEGIN IMMEDIATE`` transaction (the worker cannot claim or finish the row in between)."""
        with self._tx() as c:
            row = c.execute("SELECT state, registration_id, subject_id FROM outbox WHERE id=?", (row_id,)).fetchone()
            if row is None:
                raise OutboxRowNotFound()
            if row["state"] != "needs_attention":
                return False
            if action == "retry":
                c.execute("UPDATE outbox SET state='pending', next_attempt_at=?, deadline_at=NULL, parked_reason=NULL, "
                          "claim_token=NULL, lease_until=NULL, updated_at=? WHERE id=?", (now, now, row_id))
            else:
                c.execute("UPDATE outbox SET state='cancelled', updated_at=? WHERE id=?", (now, row_id))
            reg_id = row["registration_id"]
            before = c.execute("SELECT status FROM registrations WHERE id=?", (reg_id,)).fetchone()
            states = {r[0] for r in c.execute("SELECT state FROM outbox WHERE registration_id=? AND required=1",
                                              (reg_id,))}
            status = R.registration_status(states) if states else (before[0] if before else None)
            if before is not None and status is not None and status != before[0]:
                c.execute("UPDATE registrations SET status=?, updated_at=? WHERE id=?", (status, now, reg_id))
                event = status_event(before[0], status, refused=False)
                if event is not None:
                    self._emit(c, reg_id, event, code=None, now=now)
            c.execute("INSERT INTO access_log(at, actor, action, object_id, subject_id) VALUES (?,?,?,?,?)",
                      (now, actor, P.ACTION_NAMES[action], str(row_id), row["subject_id"]))
            return True

    async def retry_parked(self, row_id: int, now: str, *, actor: str) -> bool:
        return await self._write(lambda: self._staff_action(row_id, now, actor, "retry"))

    async def cancel_parked(self, row_id: int, now: str, *, actor: str) -> bool:
        return await self._write(lambda: self._staff_action(row_id, now, actor, "cancel"))

    async def parked_actions(self, limit: int = 100) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            actions = self._read(P.SELECT_ACTIONS.format("?"), (limit,))
            ids = sorted({int(a["object_id"]) for a in actions})
            targets = {int(r["id"]): dict(r) for r in self._read(
                f"SELECT id, recipient, registration_id FROM outbox WHERE id IN ({', '.join('?' for _ in ids)})",  # noqa: S608
                tuple(ids))} if ids else {}
            return P.action_views(actions, targets)

        return await self._run(run)

    # -- the domain's lifecycle (schema 6) -------------------------------------------------------------

    @staticmethod
    def _event_in(
        c: sqlite3.Connection, reg_id: str, *, at: str, kind: str, source: str, detail: dict[str, Any],
        end_reason: str | None, expires_at: str | None,
    ) -> None:
        c.execute("INSERT INTO registration_events(registration_id, at, kind, source, detail_json) "
                  "VALUES (?,?,?,?,?)", (reg_id, at, kind, source, json.dumps(detail, sort_keys=True)))
        if end_reason is not None:
            c.execute("UPDATE registrations SET ended_at=?, end_reason=?, updated_at=? WHERE id=? AND ended_at IS NULL",
                      (at, end_reason, at, reg_id))
        if expires_at is not None:
            c.execute("UPDATE registrations SET expires_at=?, updated_at=? WHERE id=?", (expires_at, at, reg_id))

    def _events_in(self, c: sqlite3.Connection, reg_id: str, events: Sequence[dict[str, Any]]) -> None:
        for ev in events:
            self._event_in(c, reg_id, at=ev["at"], kind=ev["kind"], source=ev["source"], detail=ev["detail"],
                           end_reason=ev.get("end_reason"), expires_at=ev.get("expires_at"))

    async def add_registration_event(
        self, reg_id: str, *, at: str, kind: str, source: str, detail: dict[str, Any],
        end_reason: str | None = None, expires_at: str | None = None,
    ) -> None:
        def run() -> None:
            with self._tx() as c:
                self._event_in(c, reg_id, at=at, kind=kind, source=source, detail=detail, end_reason=end_reason,
                               expires_at=expires_at)

        await self._write(run)

    async def registration_events(self, reg_id: str) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            return [R.event_view(r) for r in self._read(
                "SELECT * FROM registration_events WHERE registration_id=? ORDER BY id", (reg_id,))]

        return await self._run(run)

    async def apply_notice(
        self, registry: str, msg_id: str, *, at: str, kind: str, registration_id: str | None,
        detail: dict[str, Any], end_reason: str | None = None, expires_at: str | None = None,
        wake_recipient: str | None = None, outbox: list[NewOutbox] | None = None,
    ) -> bool:
        def run() -> bool:
            with self._tx() as c:
                seen = c.execute("INSERT OR IGNORE INTO poll_messages(registry, msg_id, applied_at, kind, "
                                 "registration_id) VALUES (?,?,?,?,?)",
                                 (registry, msg_id, at, kind, registration_id)).rowcount == 0
                if seen:
                    return False
                if registration_id is not None:
                    self._event_in(c, registration_id, at=at, kind=kind, source="registry",
                                   detail={**detail, "msg_id": msg_id}, end_reason=end_reason,
                                   expires_at=expires_at)
                    if wake_recipient is not None:
                        c.execute("UPDATE outbox SET next_attempt_at=? WHERE registration_id=? AND recipient=? "
                                  "AND state='pending'", (at, registration_id, wake_recipient))
                    if outbox:
                        self._insert_outbox(c, registration_id, None, outbox, at)
                return True

        return await self._write(run)

    async def registration_for_domain(self, domain: str) -> dict[str, Any] | None:
        def run() -> dict[str, Any] | None:
            rows = self._read("SELECT * FROM registrations WHERE domain=? AND status NOT IN ('blocked') "
                              "ORDER BY (ended_at IS NULL) DESC, created_at DESC LIMIT 1", (domain,))
            return dict(rows[0]) if rows else None

        return await self._run(run)

    async def registration_ends(self, reg_ids: Collection[str]) -> dict[str, tuple[str | None, str | None]]:
        ids = list(reg_ids)

        def run() -> dict[str, tuple[str | None, str | None]]:
            out: dict[str, tuple[str | None, str | None]] = {}
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" for _ in chunk)
                for r in self._read(f"SELECT id, ended_at, end_reason FROM registrations WHERE id IN ({marks})",  # noqa: S608
                                    tuple(chunk)):
                    out[r["id"]] = (r["ended_at"], r["end_reason"])
            return out

        return await self._run(run)

    async def enqueue_unsealed(
        self, registration_id: str, items: list[NewOutbox], now: str, *, event: dict[str, Any] | None = None,
        end_reason: str | None = None,
    ) -> None:
        """Rows that carry no personal data (renewal, release: ``payloads.UNSEALED_PROTOCOLS``), queued with no
        subject, so they go even after the holder's erasure; with the registration's ``event`` (``kind``,
        ``source``, ``detail``) and, for an end of our role, ``end_reason``, in one transaction."""

        def run() -> None:
            with self._tx() as c:
                self._insert_outbox(c, registration_id, None, items, now)
                if event is not None:
                    self._event_in(c, registration_id, at=now, kind=event["kind"], source=event["source"],
                                   detail=event["detail"], end_reason=end_reason, expires_at=None)

        await self._write(run)


    async def stream_leaf_rows(self, batch: int = 5000) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Every leaf row in order as stored (``R.DISCLOSURE_COLUMNS`` then ``values_ct``), undecoded.

        Plain tuples on a reader of its own: the fast verifier hashes these columns as they are, so
        building a ``Row`` or an entry per leaf would only cost time."""
        conn = await self._run(self._reader)
        conn.row_factory = None
        sql = f"{R.SELECT_DISCLOSURES} WHERE d.leaf_index > ? ORDER BY d.leaf_index LIMIT ?"
        try:
            def fetch(after: tuple[Any, ...]) -> Awaitable[list[tuple[Any, ...]]]:
                return self._run(lambda: conn.execute(sql, (*after, batch)).fetchall())

            async for rows in keyset_pages(fetch, lambda r: (r[0],), (-1,)):
                yield list(rows)
        finally:
            conn.close()
