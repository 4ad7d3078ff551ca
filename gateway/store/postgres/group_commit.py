"""Group commit for the PostgreSQL store: one writer task, one connection, one COMMIT per group of jobs.

Accepts and delivery outcomes that arrive while a commit is in flight queue up and share the next
transaction (issue 9), so N callers pay for one BEGIN, one lock of the ledger head, one head update and
one COMMIT (one WAL flush) instead of N of each.  The rules that keep this as safe as a transaction per
call:

* each job runs inside its own SAVEPOINT: a job that raises is rolled back to it (its rows, and its
  advance of the in-memory tree) and its caller gets the exception; the rest of the group goes on;
* a job may also end with :class:`Undo`: its writes are rolled back like a failure's, but its caller gets
  a value (``accept`` uses it when the idempotency key turns out to be taken: the earlier answer);
* every caller is answered only after COMMIT returned, so an answer always means the rows are durable;
  if the group's COMMIT (or the connection) fails, every caller of the group gets that exception and
  nothing of the group is committed, or (connection lost during COMMIT) the outcome is unknown to the
  gateway, as it is for a single transaction: the idempotency key makes a retry safe;
* the ledger head row is locked first, before any job runs (``SELECT … FOR UPDATE``).  Every writer that
  appends in any process takes that lock before any other, so a group never waits for a row lock held by
  a transaction that itself waits for the head: no deadlock between processes.  Groups of different
  processes therefore commit one after another, as appends did before;
* a group the server aborts for a deadlock or a serialisation failure (a lock taken by some other,
  non-group transaction) is rolled back whole and run again: nothing of it was committed.

The tree is advanced in memory (:class:`GroupTree`): jobs insert their leaves and nodes, and the head row
is written once, just before COMMIT, in the same round trip as the COMMIT.

Round trips per group (loopback): BEGIN 1, head lock 1, per job 1 for its SAVEPOINT plus the job's own
statements (an ``executemany`` is one), then 1 for head update and COMMIT together (one ROLLBACK TO
SAVEPOINT more for each job that failed or undid itself).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg  # type: ignore[import-untyped]

from gateway.ledger.entry import DisclosureEntry
from gateway.ledger.merkle import Frontier
from gateway.store import rows as R

T = TypeVar("T")

_INSERT = R.Inserts.using(R.dollar)

#: Errors after which the whole transaction is rolled back and run again: nothing of it committed.
RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
#: At most this many jobs share one transaction.  Each job's SAVEPOINT that writes gets a subtransaction id;
#: beyond 64 of them per transaction PostgreSQL's per-backend cache overflows and every other backend's
#: visibility checks slow down until the transaction ends.
MAX_GROUP = 64
#: How often a group aborted by the server (deadlock, serialisation failure) is run again.
ATTEMPTS = 5


async def insert_tree(c: Any, tree: R.TreeRows) -> None:
    """Write the leaves, sealed values and nodes of one append (``rows.tree_rows``)."""
    await c.executemany(_INSERT.leaf, tree.leaves)
    if tree.values:
        await c.executemany(_INSERT.values, tree.values)
    await c.executemany(_INSERT.node, tree.nodes)


class GroupTree:
    """The ledger head as a group holds it: locked and read at BEGIN, advanced in memory by each job's
    appends, written back once before COMMIT.  ``mark``/``restore`` undo a rolled-back job's advance."""

    def __init__(self, frontier: Frontier) -> None:
        self.frontier = frontier
        self.start = frontier.size

    async def append(self, c: Any, entries: Sequence[DisclosureEntry]) -> None:
        """Append ``entries`` in order: their leaves and nodes now, the head at the group's COMMIT."""
        if entries:
            await insert_tree(c, R.tree_rows(self.frontier, entries))

    def mark(self) -> tuple[int, tuple[bytes, ...]]:
        return self.frontier.size, self.frontier.hashes

    def restore(self, mark: tuple[int, tuple[bytes, ...]]) -> None:
        self.frontier = Frontier(*mark)

    def commit_sql(self) -> str:
        """COMMIT, preceded by the head update if the group appended.  Sent as one simple-protocol script
        (one round trip); the values are an integer and hex digits this process made, never input."""
        if self.frontier.size == self.start:
            return "COMMIT"
        return (f"UPDATE ledger_head SET size={int(self.frontier.size)}, "  # noqa: S608 - no input in it
                f"frontier=decode('{self.frontier.to_bytes().hex()}', 'hex') WHERE id=1; COMMIT")


#: A job: runs on the writer's connection inside the group's transaction and its own savepoint.
Job = Callable[[Any, GroupTree], Awaitable[T]]


class Undo(Exception):
    """Raised by a job to roll its own writes back and still answer its caller with ``value``."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


@dataclass
class _Pending(Generic[T]):
    fn: Job[T]
    future: asyncio.Future[T]


@dataclass
class GroupStats:
    """What the writer has done, for tests and the benchmark: committed groups and the jobs in them."""

    groups: int = 0
    jobs: int = 0
    retries: int = 0
    sizes: list[int] = field(default_factory=list)  # jobs per committed group, the last 1000

    def record(self, size: int) -> None:
        self.groups += 1
        self.jobs += size
        self.sizes.append(size)
        del self.sizes[:-1000]


class GroupCommit:
    """The writer: ``run(job)`` queues a job and waits until the group that ran it has committed.

    ``connect`` opens the writer's own connection (opened on first use, and again after it was lost)."""

    def __init__(self, connect: Callable[[], Awaitable[Any]], *, max_group: int = MAX_GROUP) -> None:
        self._connect = connect
        self._max_group = max_group
        self._queue: deque[_Pending[Any]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._closing = False
        self.stats = GroupStats()

    async def run(self, fn: Job[T]) -> T:
        """Run ``fn`` in the next group; its result once that group has committed, or its exception."""
        if self._closing:
            raise RuntimeError("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(fn, future))
        self._wake.set()
        if self._task is None or self._task.done():  # first use, or the writer was stopped (cancelled)
            self._task = asyncio.create_task(self._loop(), name="pg-group-commit")
        return await future

    async def close(self) -> None:
        """Finish what is queued, then close the connection."""
        self._closing = True
        self._wake.set()
        if self._task is not None and not self._task.done():
            await self._task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                group: list[_Pending[Any]] = []
                while self._queue and len(group) < self._max_group:
                    p = self._queue.popleft()
                    if not p.future.done():  # a caller that gave up before its job started: skip it
                        group.append(p)
                if group:
                    await self._commit(group)
            if self._closing:
                return

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            self._conn = await self._connect()
        return self._conn

    async def _commit(self, group: list[_Pending[Any]]) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                conn = await self._connection()
                outcomes = await self._run_group(conn, group)
            except RETRYABLE as e:
                await self._abandon(rollback=True)
                if attempt < ATTEMPTS:
                    self.stats.retries += 1
                    continue
                _fail(group, e)
            except Exception as e:  # connection lost, COMMIT refused: nobody of the group got a durable row
                await self._abandon(rollback=True)
                _fail(group, e)
            except BaseException as e:  # cancelled (loop shutting down): answer everyone, then stop
                await self._abandon(rollback=False)
                _fail(group, RuntimeError("the store's writer was stopped"))
                raise e
            else:
                self.stats.record(len(outcomes))
                for p, (ok, value) in outcomes:
                    if p.future.done():
                        continue
                    if ok:
                        p.future.set_result(value)
                    else:
                        p.future.set_exception(value)
            return

    async def _run_group(self, conn: Any, group: list[_Pending[Any]]) -> list[tuple[_Pending[Any], tuple[bool, Any]]]:
        await conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        blob = await conn.fetchval("SELECT frontier FROM ledger_head WHERE id=1 FOR UPDATE")
        if blob is None:
            raise RuntimeError("ledger_head row is missing")
        tree = GroupTree(Frontier.from_bytes(bytes(blob)))
        outcomes: list[tuple[_Pending[Any], tuple[bool, Any]]] = []
        for n, p in enumerate(group):
            if p.future.done():
                continue
            await conn.execute(f"SAVEPOINT j{n}")
            mark = tree.mark()
            try:
                outcomes.append((p, (True, await p.fn(conn, tree))))
            except RETRYABLE:
                raise
            except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError):
                raise
            except Undo as u:
                await conn.execute(f"ROLLBACK TO SAVEPOINT j{n}")
                tree.restore(mark)
                outcomes.append((p, (True, u.value)))
            except Exception as e:  # this job only: its rows and its tree advance are undone
                await conn.execute(f"ROLLBACK TO SAVEPOINT j{n}")
                tree.restore(mark)
                outcomes.append((p, (False, e)))
        await conn.execute(tree.commit_sql())
        return outcomes

    async def _abandon(self, *, rollback: bool) -> None:
        """After a failed group: roll back if the connection still works, else drop it (reopened later)."""
        conn = self._conn
        if conn is None:
            return
        if rollback and not conn.is_closed():
            try:
                if conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
                return
            except Exception:  # noqa: S110 - the connection is unusable: dropped below
                pass
        self._conn = None
        with contextlib.suppress(Exception):
            conn.terminate()


def _fail(group: list[_Pending[Any]], error: BaseException) -> None:
    for p in group:
        if not p.future.done():
            p.future.set_exception(error)
