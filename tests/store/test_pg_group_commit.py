"""Group commit on PostgreSQL (``gateway.store.postgres.group_commit``): concurrent accepts and delivery
outcomes share one transaction, every caller is answered only after its COMMIT, and a job that fails is
rolled back alone while the rest of its group commits.  A group of plain accepts (no entries, not blocked)
is one call of the batch function (``accept_batch``): one statement, its own transaction, one round trip.

To make a group form at a known moment, a raw connection holds a lock the writer's current group waits
on: the ledger head's row lock (which every group with a closure job takes first), or the advisory lock on
a strong identifier (which a plain accept of a new holder takes).  Whatever arrives meanwhile queues up
as the next group.  Group sizes are read from the writer's own counters (``stats``), round trips from a
query logger on the writer's connection; that the group is one transaction is seen from outside: none of
its rows is visible, and none of its callers answered, until the lock is let go.  (Row ``xmin`` cannot
show it: each job's savepoint or subtransaction writes under its own subtransaction id.)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from gateway.errors import SubjectErased, SubjectRaced
from gateway.ledger.checkpoint import CheckpointSigner
from gateway.services.ledger import verify_store
from gateway.store.base import NewOutbox, NewSubject
from gateway.store.postgres import PostgresStore
from gateway.store.postgres.accept_batch import ACCEPT_BATCH, job_doc
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


@contextlib.asynccontextmanager
async def merge_lock_held(dsn: str, digest: str) -> AsyncIterator[Any]:
    """Hold the advisory lock a new holder with strong identifier ``digest`` takes (``MERGE_LOCK_SQL``) on
    a raw connection until the block ends: a plain accept of such a holder waits for it."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("BEGIN")
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", digest)
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
    pytest.fail("the group writer never waited for the lock")


async def present(conn: Any, table: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` are rows of ``table``."""
    rows = await conn.fetch(f"SELECT id FROM {table} WHERE id = ANY($1::text[])", ids)
    return {r["id"] for r in rows}


def holder(n: int, digest: str) -> NewSubject:
    """A new subject with strong identifier ``digest`` (its plain accept takes the merge lock on it)."""
    return NewSubject(f"{n:032x}", "kid", bytes(range(n % 7, 60 + n % 7)), (("email", f"d-{n}"),), merge_on=digest)


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
        first = asyncio.create_task(store.append([make_entry(99, tag="first-")]))
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
        assert await raw.fetchval("SELECT count(*) FROM registrations WHERE id >= 'reg-acc-0200'") == 0

    assert await first is None
    results = await asyncio.wait_for(asyncio.gather(*later), WAIT_S)
    assert results == [None] * 8 + [True, True, True, None]
    # two groups: the one that waited, and everything that queued behind it
    assert store._group.stats.groups - before == 2
    assert store._group.stats.sizes[-2:] == [1, 12]

    conn = await asyncpg.connect(pg_dsn)
    try:
        regs = await present(conn, "registrations", [f"reg-acc-{200 + n:04d}" for n in range(8)])
        leaves = await present(conn, "disclosures", ["ent-first-0099", "ent-fin-0010", "ent-fin-0011",
                                                  "ent-step-0020", "ent-app-0030", "ent-app-0031"])
        finished = await conn.fetch("SELECT state FROM outbox WHERE id = ANY($1::bigint[])",
                                    [i.id for i in items[:2]])
    finally:
        await conn.close()
    assert len(regs) == 8 and len(leaves) == 6
    assert {r["state"] for r in finished} == {"done"}
    # the tree the groups extended in memory is the one stored: six leaves, head written once a group
    assert (await store.head()).size == 6
    signer = CheckpointSigner.generate()
    await add_checkpoint(store, signer)
    report = await verify_store(store, signer.public_key)
    assert report.ok and report.entries == 6, report


async def test_a_failing_job_is_rolled_back_alone(store: PostgresStore, pg_dsn: str) -> None:
    """In one group: good accepts and appends, an accept whose registration id is taken (a database
    error), one naming an erased subject, one whose holder was made first, an append whose entry id is
    taken (after its leaf index was handed out), and a repeat of a key used earlier in the same group.
    Each failure reaches its own caller only; the rest commit together, and the tree has no gap.  (A
    mixed group: the accepts are plain, one call of the batch function inside the group's transaction;
    the appends are closure jobs, each in its savepoint.)"""
    erased = NewSubject("e" * 32, "kid", b"w" * 60, (), merge_on="s-erased")
    taken = NewSubject("h" * 32, "kid", b"w" * 60, (), merge_on="s-taken")
    await store.accept(make_accepted(1, subject=erased), ts(0))
    await store.accept(make_accepted(2, subject=taken), ts(0))
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


@pytest.mark.parametrize("kind", ["plain", "mixed"])
async def test_a_group_refused_at_commit_answers_every_caller_with_the_error(
    store: PostgresStore, pg_dsn: str, kind: str
) -> None:
    """If the group's statement or its COMMIT fails (here: the writer's session is terminated mid-group),
    every caller of the group gets the error and none of its rows exists; the next group opens a new
    connection and works.  ``plain``: three plain accepts, one statement, waiting inside it (the second
    job, a new holder, for the merge lock); ``mixed``: the same beside an append, one transaction waiting
    for the head lock."""
    await store.accept(make_accepted(99), ts(0))  # connected, and the batch function is set up
    jobs = [make_accepted(0), make_accepted(1, subject=holder(1, "s-block")), make_accepted(2)]
    blocked = merge_lock_held(pg_dsn, "s-block") if kind == "plain" else head_held(pg_dsn)
    async with blocked as raw:
        tasks = [asyncio.create_task(store.accept(a, ts(0))) for a in jobs]
        if kind == "mixed":
            tasks.append(asyncio.create_task(store.append([make_entry(0, tag="app-")])))
        await writer_waits_for_lock(raw)
        await raw.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE application_name = 'registrant-gateway-writer'")
    got = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT_S)
    assert all(isinstance(g, Exception) for g in got), got
    assert [await store.registration(f"reg-acc-{n:04d}") for n in range(3)] == [None] * 3
    assert await store.subject_key(holder(1, "s-block").id) is None
    assert await store.disclosure("ent-app-0000") is None
    assert await store.accept(make_accepted(0), ts(1)) is None
    assert await store.registration("reg-acc-0000") is not None


async def test_a_group_of_plain_accepts_is_one_round_trip(store: PostgresStore, pg_dsn: str) -> None:
    """What a batch costs on the wire, counted on the writer's connection: a group of plain accepts (some
    of them new holders with a strong identifier, which take the merge lock) is exactly one statement,
    the batch function's call, and nothing else: no BEGIN, no head lock, no COMMIT (the call is its own
    transaction).  asyncpg keeps the call prepared, so from the second group on it is one round trip."""
    await store.accept(make_accepted(0), ts(0))  # the writer is connected and the call prepared
    sent: list[str] = []
    conn = store._group._conn
    conn.add_query_logger(lambda q: sent.append(q.query))
    async with merge_lock_held(pg_dsn, "s-block") as raw:
        first = asyncio.create_task(store.accept(make_accepted(1, subject=holder(1, "s-block")), ts(1)))
        await writer_waits_for_lock(raw)
        plain = [asyncio.create_task(store.accept(make_accepted(10 + n), ts(1))) for n in range(3)]
        holders = [asyncio.create_task(store.accept(make_accepted(20 + n, subject=holder(20 + n, f"s-{n}")), ts(1)))
                   for n in range(3)]
        await asyncio.sleep(0.2)
        assert not first.done() and not any(t.done() for t in plain + holders)
    assert await first is None
    assert await asyncio.wait_for(asyncio.gather(*plain, *holders), WAIT_S) == [None] * 6
    assert store._group.stats.sizes[-2:] == [1, 6]
    assert sent == [ACCEPT_BATCH.call] * 2, sent  # the group that waited, then the six: one statement each
    assert conn is store._group._conn  # on the same connection, no reconnect in between
    for n in range(3):
        assert (await store.accept_context("shop", f"key-{20 + n}", f"s-{n}")).holder is not None
        assert await store.registration(f"reg-acc-{10 + n:04d}") is not None


async def test_a_mixed_group_is_one_transaction_with_one_batch_call(store: PostgresStore, pg_dsn: str) -> None:
    """Plain accepts beside closure jobs (an accept with an entry, a blocked accept, an append): one
    transaction, BEGIN, the head lock, ONE call of the batch function for all the plain accepts, then per
    closure job its SAVEPOINT and its own statements, and the head update with COMMIT.  So a mixed group
    costs 4 round trips plus its closures' own.  The batch runs first: a blocked accept that repeats a
    plain accept's key in the same group gets the plain one's answer."""
    await store.accept(make_accepted(0), ts(0))
    sent: list[str] = []
    conn = store._group._conn
    conn.add_query_logger(lambda q: sent.append(q.query))
    blocked = make_accepted(30, key="key-11", recipients=())
    blocked.registration["status"] = "blocked"
    async with head_held(pg_dsn) as raw:
        first = asyncio.create_task(store.append([make_entry(0, tag="first-")]))
        await writer_waits_for_lock(raw)
        tasks = [
            *(asyncio.create_task(store.accept(make_accepted(10 + n), ts(1))) for n in range(3)),
            asyncio.create_task(store.accept(make_accepted(
                20, entries=[make_entry(1, registration_id="reg-acc-0020", tag="e-")]), ts(1))),
            asyncio.create_task(store.accept(blocked, ts(1))),
            asyncio.create_task(store.accept(make_accepted(21, subject=holder(21, "s-21")), ts(1))),
            asyncio.create_task(store.append([make_entry(2, tag="app-")])),
        ]
        await asyncio.sleep(0.2)
    await first
    got = await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
    assert got == [None] * 4 + [("hash-11", 202, make_accepted(11).response), None, None]
    assert store._group.stats.sizes[-1] == 7
    begins = [i for i, q in enumerate(sent) if q.startswith("BEGIN")]
    assert len(begins) == 2, sent
    second = sent[begins[1]:]
    assert second[1].startswith("SELECT frontier FROM ledger_head") and second[2] == ACCEPT_BATCH.call
    assert second.count(ACCEPT_BATCH.call) == 1  # four plain accepts, one call
    assert sum(q.startswith("SAVEPOINT") for q in second) == 3  # the entry's accept, the blocked one, the append
    assert sum(q.startswith("WITH reg AS") for q in second) == 2  # only closure accepts have statements
    assert second[-1].endswith("COMMIT") and second[-1].startswith("UPDATE ledger_head")
    assert await store.registration("reg-acc-0030") is None
    assert await store.subject_key(holder(21, "s-21").id) is not None
    assert (await store.head()).size == 3


async def test_a_batch_answers_each_job_on_its_own(store: PostgresStore, pg_dsn: str) -> None:
    """In one batch (one statement): a key taken by an earlier commit gets the earlier answer; a key used
    twice is stored by the first and the second gets the first's answer; a new holder whose strong
    identifier has a live holder is ``SubjectRaced``, a named subject that was shredded
    ``SubjectErased``; a registration id that exists, two outbox rows for one recipient and a status the
    table refuses are the database's errors, of their SQLSTATE's class.  Each reaches its own caller only,
    without the values the server's DETAIL would quote; nothing of those jobs is left, the rest commit."""
    erased = holder(1, "s-erased")
    await store.accept(make_accepted(1, subject=erased), ts(0))
    await store.accept(make_accepted(2, subject=holder(2, "s-taken")), ts(0))
    await store.accept(make_accepted(3, key="taken"), ts(0))
    assert await store.shred_subject(erased.id, ts(0))

    dup_reg = make_accepted(16, key="other-key")
    dup_reg.registration["id"] = "reg-acc-0010"  # the id the first job below takes
    bad_status = make_accepted(18)
    bad_status.registration["status"] = "weird"
    racer = holder(14, "s-taken")
    fresh = holder(19, "s-new")
    jobs = [
        make_accepted(10),                                                     # 0 written
        make_accepted(11, key="taken"),                                        # 1 earlier answer
        make_accepted(12, key="dup"),                                          # 2 written
        make_accepted(13, key="dup"),                                          # 3 job 2's answer
        make_accepted(14, subject=racer),                                      # 4 SubjectRaced
        make_accepted(15, subject_id=erased.id, links=(("phone", "d-15"),)),  # 5 SubjectErased
        dup_reg,                                                               # 6 registration id taken
        make_accepted(17, recipients=("iis", "iis")),                          # 7 outbox unique violated
        bad_status,                                                            # 8 check violated
        make_accepted(19, subject=fresh, links=(("phone", "d-19"),)),          # 9 written, a new holder
    ]
    await store.accept(make_accepted(0), ts(0))
    sent: list[str] = []
    store._group._conn.add_query_logger(lambda q: sent.append(q.query))
    async with merge_lock_held(pg_dsn, "s-block") as raw:
        first = asyncio.create_task(store.accept(make_accepted(9, subject=holder(9, "s-block")), ts(1)))
        await writer_waits_for_lock(raw)
        tasks = [asyncio.create_task(store.accept(a, ts(1))) for a in jobs]
        await asyncio.sleep(0.2)
    assert await first is None
    got = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT_S)
    assert store._group.stats.sizes[-1] == len(jobs) and sent == [ACCEPT_BATCH.call] * 2

    assert got[0] is None and got[2] is None and got[9] is None
    assert got[1] == ("hash-3", 202, make_accepted(3).response)
    assert got[3] == ("hash-12", 202, make_accepted(12).response)
    assert isinstance(got[4], SubjectRaced)
    assert isinstance(got[5], SubjectErased) and not isinstance(got[5], SubjectRaced)
    assert isinstance(got[6], asyncpg.UniqueViolationError) and got[6].constraint_name == "registrations_pkey"
    assert isinstance(got[7], asyncpg.UniqueViolationError) and got[7].table_name == "outbox"
    assert isinstance(got[8], asyncpg.CheckViolationError)
    assert got[8].constraint_name == "registrations_status_check"
    for error in got[6:9]:
        assert isinstance(error, asyncpg.PostgresError) and error.detail is None
        assert "reg-acc" not in str(error) and "weird" not in str(error)

    # nothing of a refused or failed job is left
    for n in (11, 13, 14, 15, 17, 18):
        assert await store.registration(f"reg-acc-{n:04d}") is None
    assert await store.idempotent_response("shop", "other-key") is None
    assert await store.idempotent_response("shop", "taken") == ("hash-3", 202, make_accepted(3).response)
    assert await store.subject_key(racer.id) is None and await store.find_subjects([("email", "d-14")]) == []
    assert await store.find_subjects([("phone", "d-15")]) == []
    shredded = await store.subject_key(erased.id)
    assert shredded is not None and shredded.wrapped is None  # not revived
    # the rest is whole: registration, key, outbox rows in order with their bytes, the new holder's links
    reg = await store.registration("reg-acc-0010")
    assert reg is not None and [d["recipient"] for d in reg["deliveries"]] == ["iis", "verisign"]
    assert await store.idempotent_response("shop", "dup") == ("hash-12", 202, make_accepted(12).response)
    key = await store.subject_key(fresh.id)
    assert key is not None and key.wrapped == fresh.wrapped and key.basis == "strong_id"
    assert sorted(await store.find_subjects([("email", "d-19"), ("phone", "d-19"), ("strong_id", "s-new")])) == [
        fresh.id]
    conn = await asyncpg.connect(pg_dsn)
    try:
        payloads = await conn.fetch("SELECT recipient, payload_ct FROM outbox WHERE registration_id = 'reg-acc-0010' "
                                    "ORDER BY id")
        links = await conn.fetch("SELECT kind, digest FROM subject_index WHERE subject_id = $1 ORDER BY kind",
                                 fresh.id)
    finally:
        await conn.close()
    assert [(r["recipient"], bytes(r["payload_ct"])) for r in payloads] == [
        ("iis", b"ct-10-iis"), ("verisign", b"ct-10-verisign")]
    assert [(r["kind"], r["digest"]) for r in links] == [("email", "d-19"), ("phone", "d-19"), ("strong_id", "s-new")]


async def test_a_plain_accept_writes_the_rows_the_closure_path_writes(store: PostgresStore, pg_dsn: str) -> None:
    """The same acceptance written by the batch function and by the closure path (made to take it by an
    entry) leaves the same rows, but for the ids that must differ: a new holder, and a named subject with
    a link more, with every optional column set."""
    named = holder(5, "s-named")
    await store.accept(make_accepted(5, subject=named), ts(0))

    def variants(n: int, *, subject: NewSubject | None = None, subject_id: str | None = None) -> list[Any]:
        plain = make_accepted(n, subject=subject, subject_id=subject_id, links=(("phone", f"d-{n}"),))
        plain.registration.update(kind="transfer", expires_at=ts(60), language="sv")
        plain.outbox.append(NewOutbox(recipient="escrow", payload_ct=b"\x00\xff", payload_digest="sha256:e",
                                      transfer={"category": "adequacy"}, fields={}, purpose="escrow",
                                      required=False, batch=True, change_id="chg-1", request_id="req-1"))
        closure = dataclasses.replace(plain, entries=[make_entry(n, registration_id=f"reg-acc-{n + 1:04d}")],
                                      idempotency=("shop", f"key-{n + 1}", f"hash-{n}"),
                                      registration={**plain.registration, "id": f"reg-acc-{n + 1:04d}"})
        if subject is not None:
            other = dataclasses.replace(subject, id=f"{n + 1:032x}", merge_on=f"{subject.merge_on}-b",
                                        index=(("email", f"d-{n}-b"),))
            closure = dataclasses.replace(closure, subject=other,
                                          registration={**closure.registration, "subject_id": other.id})
        return [plain, closure]

    pairs = [variants(40, subject=holder(40, "s-40")), variants(42, subject_id=named.id)]
    for plain, closure in pairs:
        assert await store.accept(plain, ts(1)) is None
        assert await store.accept(closure, ts(1)) is None
    assert (await store.head()).size == 2  # the closures did take the other path

    conn = await asyncpg.connect(pg_dsn)
    try:
        async def rows(n: int) -> dict[str, list[dict[str, Any]]]:
            rid = f"reg-acc-{n:04d}"
            reg = await conn.fetch("SELECT * FROM registrations WHERE id = $1", rid)
            sid = reg[0]["subject_id"]
            return {
                "registration": [dict(r) for r in reg],
                "idempotency": [dict(r) for r in await conn.fetch(
                    "SELECT * FROM idempotency WHERE registration_id = $1", rid)],
                "outbox": [dict(r) for r in await conn.fetch(
                    "SELECT * FROM outbox WHERE registration_id = $1 ORDER BY id", rid)],
                "subject": [dict(r) for r in await conn.fetch("SELECT * FROM subjects WHERE id = $1", sid)],
                "links": [dict(r) for r in await conn.fetch(
                    "SELECT kind, digest FROM subject_index WHERE subject_id = $1 ORDER BY kind, digest", sid)],
            }

        def same(row: dict[str, Any]) -> dict[str, Any]:
            """A row without what differs by construction (ids, the key, the request hash, the digests)."""
            drop = {"id", "registration_id", "key", "request_hash", "subject_id", "digest"}
            return {k: v for k, v in row.items() if k not in drop}

        for n in (40, 42):
            plain_rows, closure_rows = await rows(n), await rows(n + 1)
            assert len(plain_rows["outbox"]) == 3 and plain_rows["registration"][0]["language"] == "sv"
            for table in plain_rows:
                assert [same(r) for r in plain_rows[table]] == [same(r) for r in closure_rows[table]], table
    finally:
        await conn.close()


async def test_values_jsonb_cannot_carry_take_the_closure_path(store: PostgresStore) -> None:
    """A text with NUL or a lone surrogate, or a value that is not text where text is bound, cannot travel
    in the batch's jsonb as the closure path would bind it: such an accept is not plain
    (``job_doc`` is None) and fails, alone, exactly as it did on the closure path; plain ones still are."""
    nul = make_accepted(1)
    nul.registration["domain"] = "a\x00b.se"
    surrogate = make_accepted(2)
    surrogate.registration["order_ref"] = "ORD-\ud800"
    number = make_accepted(3)
    number.registration["tld"] = 46
    blocked = make_accepted(4, recipients=())
    blocked.registration["status"] = "blocked"
    entry = make_accepted(5, entries=[make_entry(5, registration_id="reg-acc-0005")])
    for a in (nul, surrogate, number, blocked, entry):
        assert job_doc(a, ts(0)) is None
    assert job_doc(make_accepted(6, subject=holder(6, "s-6")), ts(0)) is not None

    got = await asyncio.gather(*(store.accept(a, ts(0)) for a in (nul, make_accepted(7), blocked)),
                               return_exceptions=True)
    assert isinstance(got[0], asyncpg.CharacterNotInRepertoireError) and got[1:] == [None, None]
    assert await store.registration("reg-acc-0001") is None
    assert await store.registration("reg-acc-0007") is not None


async def test_a_deadlock_in_a_batch_runs_the_group_again(store: PostgresStore, pg_dsn: str) -> None:
    """A batch that deadlocks with another transaction (it holds merge lock A and waits for B, the other
    holds B and then asks for A) is aborted whole by the server (40P01, not caught per job), nothing of it
    is committed, and the writer runs the group again: every caller is answered once, with success."""
    await store.accept(make_accepted(0), ts(0))
    before = store._group.stats.retries
    raw = await asyncpg.connect(pg_dsn)
    try:
        await raw.execute("BEGIN")
        await raw.execute("SET LOCAL deadlock_timeout = '5s'")  # the writer, waiting first, detects it
        await raw.execute("SELECT pg_advisory_xact_lock(hashtextextended('s-b', 0))")
        tasks = [asyncio.create_task(store.accept(make_accepted(1, subject=holder(1, "s-a")), ts(1))),
                 asyncio.create_task(store.accept(make_accepted(2, subject=holder(2, "s-b")), ts(1)))]
        await writer_waits_for_lock(raw)  # holding s-a, waiting for s-b
        await asyncio.wait_for(raw.execute("SELECT pg_advisory_xact_lock(hashtextextended('s-a', 0))"), WAIT_S)
        assert await raw.fetchval("SELECT count(*) FROM registrations WHERE id >= 'reg-acc-0001'") == 0
        await raw.execute("ROLLBACK")
    finally:
        await raw.close()
    assert await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S) == [None, None]
    assert store._group.stats.retries == before + 1
    assert store._group.stats.sizes[-1] == 2
    for n in (1, 2):
        assert await store.registration(f"reg-acc-{n:04d}") is not None


# -- a process killed while its groups commit ----------------------------------------------------------------

KILL_AFTER = 60
CHILD_TASKS = 16


async def _child(dsn: str) -> None:
    """The process to kill: ``CHILD_TASKS`` tasks accept without pause, and each answered registration id
    is printed at once.  Even-numbered accepts carry one refusal entry (closure jobs: their groups extend
    the tree in one transaction), odd-numbered ones none (plain: a group of only those is one statement)."""
    store = await PostgresStore.open(dsn, min_size=1, max_size=2)
    print("ready", flush=True)
    counter = iter(range(1_000_000))

    async def task() -> None:
        for n in counter:
            entries = [make_entry(n, registration_id=f"reg-acc-{n:04d}", tag="k-")] if n % 2 == 0 else []
            a = make_accepted(n, entries=entries)
            await store.accept(a, ts(0))
            print(a.registration["id"], flush=True)

    await asyncio.gather(*(task() for _ in range(CHILD_TASKS)))


async def test_a_process_killed_mid_group_leaves_every_answered_accept_whole(pg_dsn: str) -> None:
    """SIGKILL while groups commit back to back: every accept the process answered is in the database
    with all its rows, every accept in the database is whole (a group commits all of it or none, plain
    batch or transaction), and the tree equals its leaves and verifies."""
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
    assert regs == keys == set(outbox)
    assert leaves == {r for r in regs if int(r.rsplit("-", 1)[1]) % 2 == 0}
    assert len(leaves) < len(regs) and set(outbox.values()) == {2}
    store = await PostgresStore.open(pg_dsn, max_size=2)
    try:
        assert (await store.head()).size == len(leaves)
        signer = CheckpointSigner.generate()
        await add_checkpoint(store, signer)
        report = await verify_store(store, signer.public_key)
        assert report.ok and report.entries == len(leaves), report
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1]))
