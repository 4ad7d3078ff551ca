"""Group commit for the PostgreSQL store: one writer task, one connection, one COMMIT per group of jobs.

Accepts and delivery outcomes that arrive while a commit is in flight queue up and share the next
transaction (issue 9), so N callers pay for one COMMIT (one WAL flush) instead of N.  A job is either a
closure (``Job``: it runs its own statements) or data (``Batched``: its document joins one call of a
batch statement that runs every such job of the group, e.g. ``accept_batch`` for plain accepts).  The
rules that keep this as safe as a transaction per call:

* each closure job runs inside its own SAVEPOINT: a job that raises is rolled back to it (its rows, and
  its advance of the in-memory tree) and its caller gets the exception; the rest of the group goes on.
  A batch statement isolates its jobs the same way, each in a subtransaction of its own, and reports a
  failure in that job's answer;
* a job may also end with :class:`Undo`: its writes are rolled back like a failure's, but its caller gets
  a value (``accept`` uses it when the idempotency key turns out to be taken: the earlier answer);
* every caller is answered only after COMMIT returned, so an answer always means the rows are durable;
  if the group's COMMIT (or its one statement, or the connection) fails, every caller of the group gets
  that exception and nothing of the group is committed, or (connection lost during COMMIT) the outcome is
  unknown to the gateway, as it is for a single transaction: the idempotency key makes a retry safe;
* a group with any closure job locks the ledger head row first, before any job runs (``SELECT … FOR
  UPDATE``).  Every writer that appends in any process takes that lock before any other, so such groups
  never wait for each other's row locks in a cycle, and groups of different processes that may append
  commit one after another, as appends did before;
* a group the server aborts for a deadlock or a serialisation failure is rolled back whole and run
  again: nothing of it was committed.

A group made only of batched jobs of one statement (the common case: plain accepts) is that one
statement, sent without BEGIN: an implicit transaction that has committed when the call returns.  It does
not lock the head, because it appends nothing to the tree.  It is then outside the head-lock order, so it
may run beside another process's group and wait for locks that group holds (an idempotency key, a
strong identifier's advisory lock, a subject row) while that group waits for one of its own: a cycle
PostgreSQL's deadlock detector breaks after ``deadlock_timeout`` by aborting one of the two statements
with 40P01.  The batch function lets that error through (it is not caught per job); whichever group was
aborted is run again whole (``RETRYABLE``).  So skipping the head lock costs at worst a retry, never a
hang; and it keeps plain accepts from queueing behind other processes' appends.

The tree is advanced in memory (:class:`GroupTree`): jobs insert their leaves and nodes, and the head row
is written once, just before COMMIT, in the same round trip as the COMMIT.

Round trips per group (loopback; ``tests/store/test_pg_group_commit.py`` counts them):

* batched jobs of one statement only: 1, the call (asyncpg keeps it prepared per connection; a new
  connection first runs the statement's setup, and prepares the call on its first use);
* any closure job: BEGIN 1, head lock 1, 1 per batch statement for all its jobs, per closure job 1 for
  its SAVEPOINT plus the job's own statements (an ``executemany`` is one), then 1 for head update and
  COMMIT together (one ROLLBACK TO SAVEPOINT more for each closure job that failed or undid itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
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
#: At most this many jobs share one transaction.  Each job's SAVEPOINT (or, in a batch statement, its
#: ``BEGIN … EXCEPTION`` block) that writes gets a subtransaction id;
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


@dataclass(frozen=True)
class BatchStatement:
    """One statement that runs every job of its kind in a group: ``call`` takes the jobs' documents as one
    jsonb array (``$1``) and returns a jsonb array with one answer per job, in order; a job's failure is
    in its answer, never raised (a raise aborts the statement: the whole group fails, or is retried for a
    deadlock).  ``setup`` is what the call needs on a session (``CREATE FUNCTION pg_temp.…``), run once on
    each connection before its first call."""

    name: str
    setup: str
    call: str


@dataclass(frozen=True)
class Batched(Generic[T]):
    """A job sent as data, not run as a closure: its ``doc`` joins the group's one ``statement`` call, and
    ``answer`` turns its part of the result into the caller's value (or raises the caller's exception).
    It needs no savepoint of its own: the statement isolates its jobs from one another."""

    statement: BatchStatement
    doc: Any
    answer: Callable[[Any], T]


@dataclass
class _Pending(Generic[T]):
    fn: Job[T] | Batched[T]
    future: asyncio.Future[T]


#: What a group's run hands back: per job that ran, (succeeded, its value or its exception).
Outcomes = list[tuple[_Pending[Any], tuple[bool, Any]]]


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
        self._set_up: set[str] = set()  # the batch statements whose setup ran on ``_conn``
        self._closing = False
        self.stats = GroupStats()

    async def run(self, fn: Job[T] | Batched[T]) -> T:
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
            self._set_up.clear()
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

    async def _run_group(self, conn: Any, group: list[_Pending[Any]]) -> Outcomes:
        batched: list[tuple[_Pending[Any], Batched[Any]]] = [
            (p, p.fn) for p in group if isinstance(p.fn, Batched) and not p.future.done()]
        closures: list[tuple[_Pending[Any], Job[Any]]] = [
            (p, p.fn) for p in group if not isinstance(p.fn, Batched) and not p.future.done()]
        kinds = list(dict.fromkeys(b.statement for _, b in batched))
        for statement in kinds:
            await self._setup(conn, statement)
        if not closures and len(kinds) <= 1:  # one statement, its own transaction: back means committed
            return await self._call(conn, kinds[0], batched) if kinds else []
        await conn.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        blob = await conn.fetchval("SELECT frontier FROM ledger_head WHERE id=1 FOR UPDATE")
        if blob is None:
            raise RuntimeError("ledger_head row is missing")
        tree = GroupTree(Frontier.from_bytes(bytes(blob)))
        outcomes: Outcomes = []
        for statement in kinds:
            outcomes += await self._call(conn, statement, [(p, b) for p, b in batched if b.statement == statement])
        for n, (p, fn) in enumerate(closures):
            if p.future.done():
                continue
            await conn.execute(f"SAVEPOINT j{n}")
            mark = tree.mark()
            try:
                outcomes.append((p, (True, await fn(conn, tree))))
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

    async def _setup(self, conn: Any, statement: BatchStatement) -> None:
        """Make ``statement`` callable on this connection: once per connection, outside any transaction."""
        if statement.name not in self._set_up:
            await conn.execute(statement.setup)  # no arguments: the simple protocol runs the whole script
            self._set_up.add(statement.name)

    async def _call(self, conn: Any, statement: BatchStatement,
                    jobs: list[tuple[_Pending[Any], Batched[Any]]]) -> Outcomes:
        """One round trip for all of ``jobs``: their documents in, one answer per job out."""
        raw = await conn.fetchval(statement.call, json.dumps([b.doc for _, b in jobs]))
        answers = json.loads(raw)
        if not isinstance(answers, list) or len(answers) != len(jobs):
            raise RuntimeError(f"batch statement {statement.name!r} did not answer each of its {len(jobs)} jobs")
        outcomes: Outcomes = []
        for (p, b), result in zip(jobs, answers, strict=True):
            try:
                outcomes.append((p, (True, b.answer(result))))
            except Exception as e:  # the caller's exception (SubjectRaced, a constraint violated, ...)
                outcomes.append((p, (False, e)))
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
