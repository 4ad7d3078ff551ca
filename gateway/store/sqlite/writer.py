"""Group commit for the SQLite store: one writer thread, one write connection, one fsync per group.

SQLite has one writer per file, and with ``synchronous=FULL`` every ``COMMIT`` waits for an fsync of the
WAL: committing each accepted request on its own caps throughput at the disk's fsync rate, however many
requests wait.  Here every write is a job (a callable taking the write connection) on a queue; the
writer thread takes every job queued while the previous commit was in flight (up to ``max_group``),
runs them in one ``BEGIN IMMEDIATE`` transaction, each inside its own ``SAVEPOINT`` (a job that raises
rolls back only its own work and its caller gets the exception), commits once, and only then answers
each caller: nobody hears "done" before their rows are durable.  If the transaction itself fails
(``COMMIT``, or an error after which SQLite has already rolled back), every job of the group gets that
error, and none of their work is stored.

``BEGIN IMMEDIATE`` still takes the file's write lock first, so several processes on one file serialise
their groups exactly as they serialised single transactions.  Because that lock is the one thing the
processes share, a job may come in two halves (``submit_prepared``): what only reads and computes runs
before the group's ``BEGIN IMMEDIATE``, and the lock is held for the writes alone.
"""

from __future__ import annotations

import concurrent.futures
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")

#: The most jobs one transaction takes: bounds the time a group holds the file's write lock.
MAX_GROUP = 256


class WriterClosed(RuntimeError):
    """A write submitted after the store was closed."""


#: A job in two halves: the first runs on the write connection just before the group's transaction begins
#: (outside it, so not holding the file's write lock, which another process may want meanwhile) and
#: returns the second, which runs inside the transaction in the job's savepoint.
Prepare = Callable[[sqlite3.Connection], Callable[[sqlite3.Connection], Any]]


@dataclass
class _Job:
    fn: Callable[[sqlite3.Connection], Any] | None
    prepare: Prepare | None = None
    failed: Exception | None = None  # what ``prepare`` raised: the job's answer, and it never runs
    done: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


_STOP = object()


class GroupWriter:
    """The write connection's only user while it runs (apart from whoever holds ``lock``).

    ``lock`` is held for each whole group, so code that shares the connection outside the writer (an
    in-memory database's reads, a transaction opened directly by ``SqliteStore._tx``) never interleaves
    with a group.  ``commits`` and ``jobs`` count committed groups and the jobs in them."""

    def __init__(self, conn: sqlite3.Connection, lock: threading.RLock, *, max_group: int = MAX_GROUP,
                 name: str = "sqlite-writer", busy_s: float = 60.0) -> None:
        if max_group < 1:
            raise ValueError("max_group must be at least 1")
        self._conn = conn
        self._lock = lock
        self._max = max_group
        self._busy_s = busy_s
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
        self._closed = False
        self._submit_lock = threading.Lock()
        self.commits = 0
        self.jobs = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def ident(self) -> int | None:
        """The writer thread's id: code running as a job can tell it is inside a group."""
        return self._thread.ident

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> concurrent.futures.Future[T]:
        """Queue ``fn``; the future resolves once the group holding it has committed (or failed)."""
        return self._submit(_Job(fn))

    def submit_prepared(self, prepare: Prepare) -> concurrent.futures.Future[Any]:
        """Queue a job in two halves (``Prepare``): the work that only reads (and thinks) is done before the
        group takes the file's write lock, so the lock is held for the writes alone.  The second half must
        check again whatever the first half read that another process may have changed since."""
        return self._submit(_Job(None, prepare))

    def _submit(self, job: _Job) -> concurrent.futures.Future[Any]:
        with self._submit_lock:
            if self._closed:
                raise WriterClosed("the store is closed")
            self._queue.put(job)
        return job.done

    def stop(self) -> None:
        """Run what is queued, then end the thread (blocking until it has)."""
        self.request_stop()
        if threading.get_ident() != self._thread.ident:
            self._thread.join()

    def request_stop(self) -> None:
        """Refuse new jobs and let the thread end once it has run what is queued (without waiting)."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)

    # -- the thread ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while (group := self._next_group()) is not None:
            self._run_group(group)
            del group  # a finished job must not keep its caller's objects alive while the queue is idle

    def _next_group(self) -> list[_Job] | None:
        """Every job queued now (waiting for the first), at most ``max_group``; None once stopped (after
        the jobs queued before the stop)."""
        first = self._queue.get()
        if first is _STOP:
            return None
        group: list[_Job] = [first]  # type: ignore[list-item]
        while len(group) < self._max:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                self._queue.put(_STOP)  # seen again at the next call, after this group has run
                break
            group.append(nxt)  # type: ignore[arg-type]
        return group

    def _run_group(self, jobs: list[_Job]) -> None:
        # a job whose caller gave up before the group began is not run; past this point none can be cancelled
        group = [job for job in jobs if job.done.set_running_or_notify_cancel()]
        if not group:
            return
        outcomes: list[tuple[bool, Any]] = []
        with self._lock:
            try:
                for job in group:
                    if job.prepare is not None:
                        try:
                            job.fn = job.prepare(self._conn)
                        except Exception as exc:
                            job.failed = exc
                if any(job.failed is None for job in group):
                    self._begin()
                    for job in group:
                        outcomes.append((False, job.failed) if job.failed is not None else self._run_job(job))
                    self._conn.execute("COMMIT")
                else:  # every job failed in its first half: nothing to write
                    outcomes = [(False, job.failed) for job in group]
            except BaseException as exc:
                if self._conn.in_transaction:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                for job in group:
                    _answer(job.done, False, exc)
                return
        if any(job.failed is None for job in group):
            self.commits += 1
            self.jobs += len(group)
        for job, (ok, value) in zip(group, outcomes, strict=True):
            _answer(job.done, ok, value)

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting for another process's write lock in short steps.

        Why not SQLite's own busy timeout: its handler sleeps 1, 2, 5, 10, 15 ... ms between tries, so with
        an API and a ``gateway worker`` process on one file every collision cost a few milliseconds of
        sleep while the other side held the lock for well under one.  Here the first waits are 0.1 ms,
        doubling to 4 ms, for at most ``busy_s`` (as long as SQLite would have waited)."""
        c = self._conn
        deadline = time.monotonic() + self._busy_s
        delay = 0.0001
        c.execute("PRAGMA busy_timeout=0")
        try:
            while True:
                try:
                    c.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or (
                        time.monotonic() >= deadline
                    ):
                        raise
                time.sleep(delay)
                delay = min(delay * 2, 0.004)
        finally:
            c.execute(f"PRAGMA busy_timeout={int(self._busy_s * 1000)}")

    def _run_job(self, job: _Job) -> tuple[bool, Any]:
        """One job inside its savepoint.  An error that SQLite answered by rolling back the whole
        transaction (disk full, I/O error) is re-raised: the group's other work is gone with it."""
        c = self._conn
        c.execute("SAVEPOINT job")
        assert job.fn is not None  # set by ``submit`` or by the job's first half
        try:
            value = job.fn(c)
        except Exception as exc:
            if not c.in_transaction:
                raise
            c.execute("ROLLBACK TO job")
            c.execute("RELEASE job")
            return False, exc
        c.execute("RELEASE job")
        return True, value


def _answer(done: concurrent.futures.Future[Any], ok: bool, value: Any) -> None:
    if ok:
        done.set_result(value)
    else:
        done.set_exception(value)
