"""The accept path's store calls (issue 9), and the SQLite store's group commit.

``accept_context`` and the ``merge_on`` rule of ``accept`` are part of the store contract and run against
both stores; the group-commit tests look inside ``SqliteStore`` (its commit counter, its writer thread)."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import SubjectErased, SubjectRaced
from gateway.store.base import AcceptContext, Accepted, NewSubject, Store
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite.writer import GroupWriter, WriterClosed
from tests.store.conftest import make_accepted, ts

# -- the one read and the one write --------------------------------------------------------------------------


async def test_accept_context_reads_prior_answer_holder_and_restrictions(store: Store) -> None:
    """One call answers what the accept path used to ask in four: the key's earlier answer, the strong
    identifier's live holder (the oldest, as ``claim_subject`` picks) and that holder's active restrictions."""
    assert await store.accept_context("shop", "key-1", "s-1") == AcceptContext(None, None, ())
    assert await store.accept_context("shop", "key-1", None) == AcceptContext(None, None, ())
    old = NewSubject("a" * 32, "kid", b"w" * 60, (("email", "d-1"),), merge_on="s-1")
    await store.accept(make_accepted(1, subject=old), ts(0))
    later = NewSubject("b" * 32, "kid", b"w" * 60, (), merge_on="s-1")
    assert await store.claim_subject(later, ts(1)) == old.id  # the strong link was written by accept
    await store.add_restriction({"id": "r-1", "subject_id": old.id, "kind": "restriction", "scope": "all",
                                 "since": ts(2), "request_id": None})
    await store.add_restriction({"id": "r-2", "subject_id": old.id, "kind": "objection", "scope": "iis",
                                 "since": ts(3), "request_id": None})
    assert await store.lift_restriction("r-2", ts(4))

    ctx = await store.accept_context("shop", "key-1", "s-1")
    assert ctx.prior == await store.idempotent_response("shop", "key-1")
    assert ctx.prior is not None and ctx.prior[1] == 202
    assert ctx.holder == await store.subject_key(old.id)
    assert ctx.restrictions == tuple(await store.restrictions(old.id))
    assert [r["id"] for r in ctx.restrictions] == ["r-1"]
    # another client's key is not this one; a digest nobody holds has no holder
    assert await store.accept_context("othershop", "key-1", "s-2") == AcceptContext(None, None, ())
    # an erased holder is no holder: the person starts afresh
    assert await store.shred_subject(old.id, ts(5))
    ctx = await store.accept_context("shop", "key-9", "s-1")
    assert ctx.holder is None and ctx.restrictions == ()


async def test_accept_refuses_a_new_subject_whose_strong_identifier_was_taken(store: Store) -> None:
    """Two first registrations of one holder race: the loser's accept writes nothing and raises
    ``SubjectRaced`` (a ``SubjectErased``, so the service's retry loop runs), and its retry files under
    the winner found by ``accept_context``."""
    winner = NewSubject("w" * 32, "kid", b"w" * 60, (("email", "d-1"),), merge_on="s-1")
    loser = NewSubject("l" * 32, "kid", b"w" * 60, (("phone", "d-2"),), merge_on="s-1")
    assert await store.accept(make_accepted(1, subject=winner), ts(0)) is None
    with pytest.raises(SubjectRaced) as raised:
        await store.accept(make_accepted(2, subject=loser), ts(1))
    assert isinstance(raised.value, SubjectErased)
    assert await store.registration("reg-acc-0002") is None
    assert await store.idempotent_response("shop", "key-2") is None
    assert await store.subject_key(loser.id) is None
    assert await store.find_subjects([("phone", "d-2")]) == []
    # the retry: the holder is found in one read and the registration filed under it
    ctx = await store.accept_context("shop", "key-2", "s-1")
    assert ctx.prior is None and ctx.holder is not None and ctx.holder.subject_id == winner.id
    assert await store.accept(make_accepted(2, subject_id=winner.id, links=(("phone", "d-2"),)), ts(2)) is None
    assert await store.find_subjects([("phone", "d-2")]) == [winner.id]
    # once the holder is erased, a new subject on the same identifier is accepted
    assert await store.shred_subject(winner.id, ts(3))
    fresh = NewSubject("f" * 32, "kid", b"w" * 60, (), merge_on="s-1")
    assert await store.accept(make_accepted(3, subject=fresh), ts(4)) is None
    assert (await store.accept_context("shop", "key-x", "s-1")).holder == await store.subject_key(fresh.id)


async def test_concurrent_first_registrations_of_one_holder_make_one_subject(store: Store) -> None:
    """Many requests for one new holder at once: exactly one subject is made, every other accept is told
    to retry, and nothing of a refused accept is left behind."""
    subjects = [NewSubject(f"{i:032x}", "kid", b"w" * 60, (), merge_on="s-race") for i in range(8)]
    got = await asyncio.gather(*(store.accept(make_accepted(10 + i, subject=s), ts(0))
                                 for i, s in enumerate(subjects)), return_exceptions=True)
    assert sum(g is None for g in got) == 1
    assert all(isinstance(g, SubjectRaced) for g in got if g is not None)
    winner = subjects[got.index(None)]
    assert await store.find_subjects([("strong_id", "s-race")]) == [winner.id]
    assert [await store.registration(f"reg-acc-{10 + i:04d}") is not None for i in range(8)] == [
        g is None for g in got]


# -- group commit (SQLite) -------------------------------------------------------------------------------------


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "gc.db")
    try:
        yield s
    finally:
        await s.close()


def _count(path: Path, sql: str) -> int:
    """Counted on a connection of its own: what a fresh process would find on disk."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(sql).fetchone()[0])
    finally:
        conn.close()


async def _hold_writer(store: SqliteStore) -> tuple[threading.Event, threading.Event, asyncio.Future[None]]:
    """Occupy the writer with a job that waits: everything submitted meanwhile forms the next group."""
    inside, release = threading.Event(), threading.Event()

    def wait() -> None:
        inside.set()
        if not release.wait(10):
            raise TimeoutError("the test never released the writer")

    held = asyncio.ensure_future(store._write(wait))
    assert await asyncio.to_thread(inside.wait, 10)
    return inside, release, held


async def test_concurrent_accepts_share_commits_and_all_are_durable(lite: SqliteStore, tmp_path: Path) -> None:
    before_commits, before_jobs = lite.commits, lite.committed_jobs
    got = await asyncio.gather(*(lite.accept(make_accepted(i), ts(0)) for i in range(64)))
    assert got == [None] * 64
    jobs, commits = lite.committed_jobs - before_jobs, lite.commits - before_commits
    assert jobs == 64
    assert 1 <= commits < jobs  # several accepts per transaction
    # answered means durable: a connection of its own (as after a restart) finds every row
    db = tmp_path / "gc.db"
    assert _count(db, "SELECT COUNT(*) FROM registrations") == 64
    assert _count(db, "SELECT COUNT(*) FROM idempotency") == 64
    assert _count(db, "SELECT COUNT(*) FROM outbox") == 128


async def test_a_failing_write_in_a_group_leaves_the_others_alone(lite: SqliteStore, tmp_path: Path) -> None:
    """One accept of the group raises (its subject was erased): it writes nothing and its caller gets the
    error; the accepts before and after it in the same transaction are stored."""
    _, release, held = await _hold_writer(lite)
    commits = lite.commits
    calls = [lite.accept(make_accepted(1), ts(0)), lite.accept(make_accepted(2, subject_id="gone"), ts(0)),
             lite.accept(make_accepted(3), ts(0))]
    tasks = [asyncio.ensure_future(c) for c in calls]
    await asyncio.sleep(0.05)  # all three queued behind the held job
    release.set()
    await held
    got = await asyncio.gather(*tasks, return_exceptions=True)
    assert got[0] is None and got[2] is None and isinstance(got[1], SubjectErased)
    assert lite.commits - commits == 2  # the held job's group, then one group of three
    assert await lite.registration("reg-acc-0001") is not None
    assert await lite.registration("reg-acc-0003") is not None
    assert await lite.registration("reg-acc-0002") is None
    assert _count(tmp_path / "gc.db", "SELECT COUNT(*) FROM outbox WHERE registration_id='reg-acc-0002'") == 0
    assert _count(tmp_path / "gc.db", "SELECT COUNT(*) FROM outbox") == 4


async def test_reads_do_not_wait_for_the_writer(lite: SqliteStore) -> None:
    """While a group holds the write lock (here: for as long as the test likes), reads are answered from
    their own connections; an answered write is seen by the caller's next read."""
    assert await lite.accept(make_accepted(1), ts(0)) is None
    assert await lite.registration("reg-acc-0001") is not None  # read-your-writes
    _, release, held = await _hold_writer(lite)
    try:
        reg = await asyncio.wait_for(lite.registration("reg-acc-0001"), 5)
        assert reg is not None
        ctx = await asyncio.wait_for(lite.accept_context("shop", "key-1", None), 5)
        assert ctx.prior is not None
    finally:
        release.set()
        await held


async def test_legacy_transactions_still_work_beside_the_writer(lite: SqliteStore) -> None:
    """A mixin's ``_run`` + ``_tx`` (its own transaction) and ``_write`` + ``_tx`` (a job of a group) both
    write; an exception inside ``_tx`` rolls back that block only."""
    insert = "INSERT INTO access_log(at, actor, action, object_id, subject_id) VALUES (?,?,?,?,?)"

    def own_tx(n: int) -> None:
        with lite._tx() as c:
            c.execute(insert, (ts(0), "staff", "read", f"obj-{n}", None))

    def failing() -> None:
        with lite._tx() as c:
            c.execute(insert, (ts(0), "staff", "read", "never", None))
            raise RuntimeError("refused")

    await asyncio.gather(lite._run(lambda: own_tx(1)), lite._write(lambda: own_tx(2)),
                         lite._run(lambda: own_tx(3)), lite._write(lambda: own_tx(4)))
    with pytest.raises(RuntimeError):
        await lite._write(failing)
    with pytest.raises(RuntimeError):
        await lite._run(failing)
    assert sorted(r["object_id"] for r in await lite.access_log()) == ["obj-1", "obj-2", "obj-3", "obj-4"]


async def test_an_in_memory_store_uses_its_one_connection() -> None:
    mem = SqliteStore(":memory:")
    try:
        got = await asyncio.gather(*(mem.accept(make_accepted(i), ts(0)) for i in range(8)))
        assert got == [None] * 8
        assert await mem.registration("reg-acc-0007") is not None
        assert (await mem.accept_context("shop", "key-3", None)).prior is not None
    finally:
        await mem.close()


async def test_close_commits_what_is_queued_and_refuses_later_writes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "close.db")
    pending = [asyncio.ensure_future(store.accept(make_accepted(i), ts(0))) for i in range(10)]
    await asyncio.sleep(0)  # queued
    await store.close()
    assert await asyncio.gather(*pending) == [None] * 10
    assert _count(tmp_path / "close.db", "SELECT COUNT(*) FROM registrations") == 10
    with pytest.raises(WriterClosed):
        await store.accept(make_accepted(11), ts(0))


# -- the writer on its own ----------------------------------------------------------------------------------


def _writer_db(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TABLE parent(id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TABLE child(id INTEGER PRIMARY KEY, parent INTEGER "
                 "REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    conn.execute("INSERT INTO parent(id) VALUES (1)")
    return conn


def test_a_failed_commit_fails_every_job_of_the_group(tmp_path: Path) -> None:
    """A deferred foreign key is checked at ``COMMIT``: one bad job makes the commit fail, and then no job
    of the group may be told it succeeded, and none of their rows are stored."""
    conn = _writer_db(tmp_path / "w.db")
    writer = GroupWriter(conn, threading.RLock())
    inside, release = threading.Event(), threading.Event()
    try:
        first = writer.submit(lambda c: (inside.set(), release.wait(10)))
        assert inside.wait(10)
        good = writer.submit(lambda c: c.execute("INSERT INTO child(id, parent) VALUES (1, 1)").rowcount)
        bad = writer.submit(lambda c: c.execute("INSERT INTO child(id, parent) VALUES (2, 99)").rowcount)
        also = writer.submit(lambda c: c.execute("INSERT INTO child(id, parent) VALUES (3, 1)").rowcount)
        release.set()
        assert first.result(10) == (None, True)
        for f in (good, bad, also):
            with pytest.raises(sqlite3.IntegrityError):
                f.result(10)
        assert conn.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 0
        assert not conn.in_transaction
        # the writer carries on
        later = writer.submit(lambda c: c.execute("INSERT INTO child(id, parent) VALUES (4, 1)").rowcount)
        assert later.result(10) == 1
        assert (writer.commits, writer.jobs) == (2, 2)
    finally:
        writer.stop()
        conn.close()


def test_groups_are_bounded(tmp_path: Path) -> None:
    conn = _writer_db(tmp_path / "w.db")
    writer = GroupWriter(conn, threading.RLock(), max_group=4)
    inside, release = threading.Event(), threading.Event()
    try:
        writer.submit(lambda c: (inside.set(), release.wait(10)))
        assert inside.wait(10)
        futures = [writer.submit(lambda c, i=i: c.execute("INSERT INTO parent(id) VALUES (?)", (100 + i,)))
                   for i in range(10)]
        release.set()
        for f in futures:
            f.result(10)
        assert writer.jobs == 11 and writer.commits == 1 + 3  # 4 + 4 + 2 after the held one
    finally:
        writer.stop()
        conn.close()


async def test_a_store_dropped_without_close_ends_its_writer(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "dropped.db")
    assert await store.accept(make_accepted(1), ts(0)) is None
    thread = store._writer._thread
    del store
    gc.collect()
    thread.join(5)
    assert not thread.is_alive()


def test_another_processs_write_lock_is_waited_for_in_short_steps(tmp_path: Path) -> None:
    """Another connection (as another process would) holds the file's write lock: the writer's group waits
    and begins the moment it is released, not a busy-handler sleep of milliseconds later; with the lock
    never released, the group fails after ``busy_s`` and the writer carries on."""
    path = tmp_path / "w.db"
    conn = _writer_db(path)
    other = sqlite3.connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    writer = GroupWriter(conn, threading.RLock(), busy_s=0.5)
    try:
        other.execute("BEGIN IMMEDIATE")
        released_at: list[float] = []

        def release() -> None:
            # 35 ms: SQLite's own handler would next look at 53 ms (after sleeping 1, 2, 5, 10, 15, 20 ms)
            time.sleep(0.035)
            other.execute("COMMIT")
            released_at.append(time.monotonic())

        t = threading.Thread(target=release)
        t.start()
        done = writer.submit(lambda c: c.execute("INSERT INTO parent(id) VALUES (500)").rowcount)
        assert done.result(10) == 1
        began_after = time.monotonic() - released_at[0]
        t.join()
        assert began_after < 0.015  # within a step or two (0.1 to 4 ms) of the release
        other.execute("BEGIN IMMEDIATE")  # held for good this time
        stuck = writer.submit(lambda c: c.execute("INSERT INTO parent(id) VALUES (501)").rowcount)
        with pytest.raises(sqlite3.OperationalError):
            stuck.result(10)
        other.execute("ROLLBACK")
        assert writer.submit(lambda c: c.execute("INSERT INTO parent(id) VALUES (502)").rowcount).result(10) == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 500  # restored for everyone else
    finally:
        writer.stop()
        other.close()
        conn.close()


def test_a_prepared_job_reads_before_the_lock_and_writes_inside(tmp_path: Path) -> None:
    """``submit_prepared``: the first half runs outside the group's transaction, so another process can take
    the file's write lock and commit meanwhile (here it does, from inside the first half: with the lock held
    that would wait and fail); the second half runs inside the transaction and sees that commit.  A first
    half that raises fails its job alone, and a group where every job failed so commits nothing."""
    path = tmp_path / "w.db"
    conn = _writer_db(path)
    writer = GroupWriter(conn, threading.RLock())
    inside, release = threading.Event(), threading.Event()

    def prepare(c: sqlite3.Connection) -> Any:
        assert not c.in_transaction
        seen = c.execute("SELECT COUNT(*) FROM parent").fetchone()[0]
        other = sqlite3.connect(path, isolation_level=None, timeout=0.2)  # another process's connection
        try:
            other.execute("BEGIN IMMEDIATE")  # free: nobody holds the write lock during a first half
            other.execute("INSERT INTO parent(id) VALUES (2)")
            other.execute("COMMIT")
        finally:
            other.close()

        def write(c: sqlite3.Connection) -> tuple[int, int]:
            assert c.in_transaction
            c.execute("INSERT INTO child(id, parent) VALUES (1, 2)")
            return seen, c.execute("SELECT COUNT(*) FROM parent").fetchone()[0]

        return write

    def refuses(c: sqlite3.Connection) -> Any:
        raise LookupError("decided against it")

    try:
        writer.submit(lambda c: (inside.set(), release.wait(10)))
        assert inside.wait(10)
        prepared = writer.submit_prepared(prepare)
        refused = writer.submit_prepared(refuses)
        plain = writer.submit(lambda c: c.execute("INSERT INTO parent(id) VALUES (3)").rowcount)
        release.set()
        assert prepared.result(10) == (1, 2)
        with pytest.raises(LookupError):
            refused.result(10)
        assert plain.result(10) == 1
        assert (writer.commits, writer.jobs) == (2, 4)
        with pytest.raises(LookupError):  # alone: no transaction at all
            writer.submit_prepared(refuses).result(10)
        assert writer.commits == 2
        assert conn.execute("SELECT COUNT(*) FROM child WHERE parent = 2").fetchone()[0] == 1
    finally:
        writer.stop()
        conn.close()


async def test_a_holder_made_between_the_read_and_the_write_is_decided_on_again_inside(
    lite: SqliteStore, tmp_path: Path
) -> None:
    """``accept_request`` on SQLite: another process makes the holder of the same strong identifier while
    this one decides (outside the write lock).  The write refuses the new subject it decided on, and the
    read and ``decide`` run again inside the transaction: the registration is filed under the other
    process's holder, with no second call and no ``SubjectRaced`` for the caller."""
    await lite.accept(make_accepted(1), ts(0))  # the schema exists, the writer runs
    seen: list[AcceptContext] = []

    def decide(ctx: AcceptContext) -> Accepted | None:
        seen.append(ctx)
        if len(seen) == 1:
            other = sqlite3.connect(tmp_path / "gc.db", isolation_level=None, timeout=0.2)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.execute("INSERT INTO subjects(id, kid, wrapped, created_at, basis) "
                              "VALUES ('theirs', 'kid', x'00', ?, 'strong_id')", (ts(0),))
                other.execute("INSERT INTO subject_index(kind, digest, subject_id) "
                              "VALUES ('strong_id', 's-1', 'theirs')")
                other.execute("COMMIT")
            finally:
                other.close()
        if ctx.holder is None:
            return make_accepted(2, subject=NewSubject("ours", "kid", b"w", (), merge_on="s-1"))
        return make_accepted(2, subject_id=ctx.holder.subject_id)

    assert await lite.accept_request("shop", "key-2", "s-1", ts(1), decide) is None
    assert [ctx.holder is None for ctx in seen] == [True, False]
    reg = await lite.registration("reg-acc-0002")
    assert reg is not None and reg["subject_id"] == "theirs"
    assert await lite.subject_key("ours") is None
    # a key already answered: nothing decided, the earlier answer back
    assert await lite.accept_request("shop", "key-2", "s-1", ts(2), lambda ctx: None) == (
        "hash-2", 202, make_accepted(2).response)
