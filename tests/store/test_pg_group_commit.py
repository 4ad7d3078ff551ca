"""Group commit on PostgreSQL (``gateway.store.postgres.group_commit``): concurrent accepts and delivery
outcomes share one transaction, every caller is answered only after its COMMIT, and a job that fails is
rolled back alone while the rest of its group commits.

To make a group form at a known moment, a raw connection holds the ledger head's row lock (which every
group takes first): the writer's current group waits on it, and whatever arrives meanwhile queues up as
the next group.  Group sizes are read from the writer's own counters (``stats``); that the group is one
transaction is seen from outside: none of its rows is visible, and none of its callers answered, until
the lock is let go.  (Row ``xmin`` cannot show it: each job's savepoint writes under its own
subtransaction id.)
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from gateway.errors import SubjectErased, SubjectRaced
from gateway.ledger.checkpoint import CheckpointSigner
from gateway.services.ledger import verify_store
from gateway.store.base import NewSubject
from gateway.store.postgres import PostgresStore
from tests.conftest import ROOT
from tests.store.conftest import add_checkpoint, make_accepted, make_entry, ts

pytestmark = pytest.mark.integration

WAIT_S = 10.0


@contextlib.asynccontextmanager
async def head_held(dsn: str) -> AsyncIterator[Any]:
    """Hold the ledger head's row lock on a raw connection until the block ends (then roll back)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("BEGIN")
        await conn.execute("SELECT 1 FROM ledger_head WHERE id=1 FOR UPDATE")
        yield conn
        await conn.execute("ROLLBACK")
    finally:
        await conn.close()


async def writer_waits_for_lock(conn: Any) -> None:
    """Until the store's group writer is blocked on a lock (bounded).  ``conn`` is inside a transaction,
    which would see one cached snapshot of the statistics: it is cleared before each look."""
    for _ in range(int(WAIT_S / 0.02)):
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        n = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                                "'registrant-gateway-writer' AND wait_event_type = 'Lock'")
        if n:
            return
        await asyncio.sleep(0.02)
    pytest.fail("the group writer never waited for the head lock")


async def present(conn: Any, table: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` are rows of ``table``."""
    rows = await conn.fetch(f"SELECT id FROM {table} WHERE id = ANY($1::text[])", ids)
    return {r["id"] for r in rows}


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[PostgresStore]:
    s = await PostgresStore.open(pg_dsn, min_size=1, max_size=4)
    try:
        yield s
    finally:
        await s.close()


async def test_concurrent_writes_share_one_commit_and_wait_for_it(store: PostgresStore, pg_dsn: str) -> None:
    """Accepts, finishes, steps and appends that arrive while a group is committing share the next
    transaction; none of their callers is answered, and none of their rows visible, before that COMMIT."""
    for n in range(4):
        await store.accept(make_accepted(n, recipients=("iis",)), ts(0))
    items = await store.claim_due(ts(1), 10)
    assert len(items) == 4
    before = store._group.stats.groups

    async with head_held(pg_dsn) as raw:
        first = asyncio.create_task(store.accept(make_accepted(100), ts(2)))
        await writer_waits_for_lock(raw)  # the first group is open and stuck behind our lock
        later = [
            *(asyncio.create_task(store.accept(make_accepted(200 + n), ts(2))) for n in range(8)),
            *(asyncio.create_task(store.finish(item, make_entry(10 + k, tag="fin-"), state="done",
                                               next_attempt_at=None, now=ts(3)))
              for k, item in enumerate(items[:2])),
            asyncio.create_task(store.record_step(items[2], [make_entry(20, tag="step-")], progress={"n": 1},
                                                  now=ts(3))),
            asyncio.create_task(store.append([make_entry(30, tag="app-"), make_entry(31, tag="app-")])),
        ]
        await asyncio.sleep(0.3)
        # nobody is answered while their group cannot commit, and nothing of it is visible outside
        assert not first.done() and not any(t.done() for t in later)
        assert await raw.fetchval("SELECT count(*) FROM registrations WHERE id >= 'reg-acc-0100'") == 0

    assert await first is None
    results = await asyncio.wait_for(asyncio.gather(*later), WAIT_S)
    assert results == [None] * 8 + [True, True, True, None]
    # two groups: the one that waited, and everything that queued behind it
    assert store._group.stats.groups - before == 2
    assert store._group.stats.sizes[-2:] == [1, 12]

    conn = await asyncpg.connect(pg_dsn)
    try:
        regs = await present(conn, "registrations", ["reg-acc-0100", *(f"reg-acc-{200 + n:04d}" for n in range(8))])
        leaves = await present(conn, "disclosures", ["ent-fin-0010", "ent-fin-0011", "ent-step-0020",
                                                  "ent-app-0030", "ent-app-0031"])
        finished = await conn.fetch("SELECT state FROM outbox WHERE id = ANY($1::bigint[])",
                                    [i.id for i in items[:2]])
    finally:
        await conn.close()
    assert len(regs) == 9 and len(leaves) == 5
    assert {r["state"] for r in finished} == {"done"}
    # the tree the group extended in memory is the one stored: five leaves, head written once
    assert (await store.head()).size == 5
    signer = CheckpointSigner.generate()
    await add_checkpoint(store, signer)
    report = await verify_store(store, signer.public_key)
    assert report.ok and report.entries == 5, report


async def test_a_failing_job_is_rolled_back_alone(store: PostgresStore, pg_dsn: str) -> None:
    """In one group: good accepts and appends, an accept whose registration id is taken (a database
    error), one naming an erased subject, one whose holder was made first, an append whose entry id is
    taken (after its leaf index was handed out), and a repeat of a key used earlier in the same group.
    Each failure reaches its own caller only; the rest commit together, and the tree has no gap."""
    erased = NewSubject("e" * 32, "kid", b"w" * 60, (), merge_on="s-erased")
    holder = NewSubject("h" * 32, "kid", b"w" * 60, (), merge_on="s-taken")
    await store.accept(make_accepted(1, subject=erased), ts(0))
    await store.accept(make_accepted(2, subject=holder), ts(0))
    assert await store.shred_subject(erased.id, ts(0))
    await store.append([make_entry(0, tag="old-")])

    async with head_held(pg_dsn) as raw:
        blocker = asyncio.create_task(store.append([make_entry(1, tag="old-")]))
        await writer_waits_for_lock(raw)
        racer = NewSubject("r" * 32, "kid", b"w" * 60, (("email", "d-r"),), merge_on="s-taken")
        dup_reg = make_accepted(50, key="other-key")
        dup_reg.registration["id"] = "reg-acc-0010"  # the id the first good accept below takes
        jobs = [
            store.accept(make_accepted(10), ts(1)),
            store.append([make_entry(2, tag="new-")]),
            store.accept(dup_reg, ts(1)),
            store.accept(make_accepted(11, subject_id=erased.id), ts(1)),
            store.accept(make_accepted(12, subject=racer), ts(1)),
            store.append([make_entry(3, tag="new-"), make_entry(0, tag="old-")]),  # second id exists
            store.append([make_entry(4, tag="new-")]),
            store.accept(make_accepted(13, key="key-10"), ts(1)),  # the key of the first job
            store.accept(make_accepted(14), ts(1)),
        ]
        tasks = [asyncio.create_task(j) for j in jobs]
        await asyncio.sleep(0.3)
        assert not any(t.done() for t in tasks)
    await blocker
    got = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT_S)
    assert store._group.stats.sizes[-1] == len(jobs)

    assert got[0] is None and got[1] is None and got[6] is None and got[8] is None
    assert isinstance(got[2], asyncpg.UniqueViolationError)
    assert isinstance(got[3], SubjectErased) and not isinstance(got[3], SubjectRaced)
    assert isinstance(got[4], SubjectRaced)
    assert isinstance(got[5], asyncpg.UniqueViolationError)
    # the repeated key is answered with the first request's answer, written in this same group
    assert got[7] == ("hash-10", 202, make_accepted(10).response)

    # nothing of a failed job is left
    assert await store.idempotent_response("shop", "other-key") is None
    assert await store.registration("reg-acc-0011") is None
    assert await store.registration("reg-acc-0012") is None and await store.subject_key(racer.id) is None
    assert await store.find_subjects([("email", "d-r")]) == []
    assert await store.registration("reg-acc-0013") is None
    assert await store.disclosure("ent-new-0003") is None
    # the good ones committed together, and the leaf index the failed append took was handed on
    conn = await asyncpg.connect(pg_dsn)
    try:
        regs = await present(conn, "registrations", ["reg-acc-0010", "reg-acc-0014"])
        leaves = await conn.fetch("SELECT id, leaf_index FROM disclosures ORDER BY leaf_index")
    finally:
        await conn.close()
    assert [(r["id"], r["leaf_index"]) for r in leaves] == [
        ("ent-old-0000", 0), ("ent-old-0001", 1), ("ent-new-0002", 2), ("ent-new-0004", 3)]
    assert len(regs) == 2
    signer = CheckpointSigner.generate()
    await add_checkpoint(store, signer)
    report = await verify_store(store, signer.public_key)
    assert report.ok and report.entries == 4, report


async def test_a_group_refused_at_commit_answers_every_caller_with_the_error(
    store: PostgresStore, pg_dsn: str
) -> None:
    """If the COMMIT itself fails (here: the writer's session is terminated mid-group), every caller of the
    group gets the error and none of its rows exists; the next group opens a new connection and works."""
    async with head_held(pg_dsn) as raw:
        tasks = [asyncio.create_task(store.accept(make_accepted(n), ts(0))) for n in range(3)]
        await writer_waits_for_lock(raw)
        await raw.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'registrant-gateway-writer'")
    got = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT_S)
    assert all(isinstance(g, Exception) for g in got), got
    assert [await store.registration(f"reg-acc-{n:04d}") for n in range(3)] == [None] * 3
    assert await store.accept(make_accepted(0), ts(1)) is None
    assert await store.registration("reg-acc-0000") is not None


async def test_a_group_of_accepts_costs_a_round_trip_or_two_each(store: PostgresStore, pg_dsn: str) -> None:
    """What a batch costs on the wire, counted on the writer's connection: BEGIN, the head lock and COMMIT
    once per group; per accept its SAVEPOINT and its one statement, plus the advisory lock for a new
    holder with a strong identifier (no entries to append, so no head update)."""
    await store.accept(make_accepted(0), ts(0))  # the writer is connected
    sent: list[str] = []
    conn = store._group._conn
    conn.add_query_logger(lambda q: sent.append(q.query))
    async with head_held(pg_dsn) as raw:
        first = asyncio.create_task(store.accept(make_accepted(1), ts(1)))
        await writer_waits_for_lock(raw)
        plain = [asyncio.create_task(store.accept(make_accepted(10 + n), ts(1))) for n in range(3)]
        holders = [asyncio.create_task(store.accept(make_accepted(
            20 + n, subject=NewSubject(f"{n:032x}", "kid", b"w" * 60, (("email", f"d-{n}"),), merge_on=f"s-{n}")),
            ts(1))) for n in range(3)]
        await asyncio.sleep(0.2)
    await first
    assert await asyncio.wait_for(asyncio.gather(*plain, *holders), WAIT_S) == [None] * 6
    assert store._group.stats.sizes[-1] == 6
    begins = [i for i, q in enumerate(sent) if q.startswith("BEGIN")]
    assert len(begins) == 2, sent  # the first group (waiting for the lock), then the second
    assert sent[begins[1] - 1] == "COMMIT" and sent[-1] == "COMMIT"
    second = sent[begins[1]:]
    assert len(second) == 3 + 3 * 2 + 3 * 3, second
    for n in range(3):
        assert (await store.accept_context("shop", f"key-{20 + n}", f"s-{n}")).holder is not None


# -- a process killed while its groups commit ----------------------------------------------------------------

KILL_AFTER = 60
CHILD_TASKS = 16


async def _child(dsn: str) -> None:
    """The process to kill: ``CHILD_TASKS`` tasks accept without pause (each with one refusal entry, so
    every group also extends the tree), and each answered registration id is printed at once."""
    store = await PostgresStore.open(dsn, min_size=1, max_size=2)
    print("ready", flush=True)
    counter = iter(range(1_000_000))

    async def task() -> None:
        for n in counter:
            a = make_accepted(n, entries=[make_entry(n, registration_id=f"reg-acc-{n:04d}", tag="k-")])
            await store.accept(a, ts(0))
            print(a.registration["id"], flush=True)

    await asyncio.gather(*(task() for _ in range(CHILD_TASKS)))


async def test_a_process_killed_mid_group_leaves_every_answered_accept_whole(pg_dsn: str) -> None:
    """SIGKILL while groups commit back to back: every accept the process answered is in the database
    with all its rows, every accept in the database is whole (a group commits all of it or none), and the
    tree equals its leaves and verifies."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.store.test_pg_group_commit", pg_dsn, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    answered: list[str] = []
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 60)).strip() == b"ready"
        while len(answered) < KILL_AFTER:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "the child ended early"
            answered.append(line.decode().strip())
        proc.kill()
        rest, _ = await asyncio.wait_for(proc.communicate(), 60)
        answered += rest.decode().split()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()

    conn = await asyncpg.connect(pg_dsn)
    try:
        regs = {r["id"] for r in await conn.fetch("SELECT id FROM registrations")}
        keys = {r["registration_id"] for r in await conn.fetch("SELECT registration_id FROM idempotency")}
        outbox = {r["registration_id"]: r["n"] for r in await conn.fetch(
            "SELECT registration_id, count(*) AS n FROM outbox GROUP BY registration_id")}
        leaves = {r["registration_id"] for r in await conn.fetch("SELECT registration_id FROM disclosures")}
    finally:
        await conn.close()
    assert set(answered) <= regs
    assert regs == keys == set(outbox) == leaves
    assert set(outbox.values()) == {2}
    store = await PostgresStore.open(pg_dsn, max_size=2)
    try:
        assert (await store.head()).size == len(regs)
        signer = CheckpointSigner.generate()
        await add_checkpoint(store, signer)
        report = await verify_store(store, signer.public_key)
        assert report.ok and report.entries == len(regs), report
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1]))
