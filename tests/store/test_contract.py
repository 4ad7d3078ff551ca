"""The store contract (gateway/store/base.py), run against SqliteStore and PostgresStore alike."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.errors import ConfigError, SubjectErased
from gateway.ledger.checkpoint import CheckpointSigner
from gateway.ledger.entry import DisclosureEntry, leaf_bytes
from gateway.ledger.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from gateway.services.ledger import verify_store
from gateway.store import rows
from gateway.store.base import (
    THIRD_COUNTRY_CATEGORIES,
    DisclosureFilter,
    NewSubject,
    NewWebhook,
    Store,
    StoredCheckpoint,
    node_born,
)
from gateway.store.postgres import PostgresStore
from gateway.store.postgres.migrations import MIGRATIONS as PG_MIGRATIONS
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite.migrations import MIGRATIONS as SQLITE_MIGRATIONS
from gateway.webhooks.events import EVENT_TYPES
from tests.store.conftest import (
    RawDB,
    StoreSpec,
    add_checkpoint,
    build_ledger,
    make_accepted,
    make_entry,
    ts,
)


async def all_leaves(store: Store, batch: int = 1000) -> list:
    return [e async for page in store.stream_leaves(batch) for e in page]


async def all_nodes(store: Store, batch: int = 1000) -> list[tuple[int, int, int, bytes]]:
    return [n async for page in store.stream_nodes(batch) for n in page]


# -- schema -------------------------------------------------------------------------------------------------

async def test_schema_version(store: Store) -> None:
    # both stores are at the last migration, and both have the same list of them
    assert store.schema_version == SQLITE_MIGRATIONS[-1][0] == PG_MIGRATIONS[-1][0] == 9


async def test_reopen_keeps_data_and_refuses_a_newer_schema(store_spec: StoreSpec, store: Store, raw: RawDB) -> None:
    await store.append([make_entry(0)])
    again = await store_spec.open()
    try:
        assert again.schema_version == SQLITE_MIGRATIONS[-1][0]
        assert (await again.head()).size == 1
    finally:
        await again.close()
    await raw.execute("INSERT INTO schema_version(version, applied_at) VALUES (99, '2099-01-01')")
    with pytest.raises(ConfigError, match="newer"):
        await store_spec.open()


async def test_concurrent_open_migrates_once(pg_empty_dsn: str) -> None:
    stores = await asyncio.gather(*(PostgresStore.open(pg_empty_dsn, max_size=2) for _ in range(6)))
    try:
        assert {s.schema_version for s in stores} == {PG_MIGRATIONS[-1][0]}
        await stores[0].append([make_entry(0)])
        assert (await stores[5].head()).size == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))


# -- acceptance, outbox, delivery -----------------------------------------------------------------------------

async def test_accept_claim_finish_round_trip(store: Store) -> None:
    blocked = make_entry(0, id="ent-blocked", registration_id="reg-acc-0001", outcome="blocked", category="blocked")
    subject = NewSubject("subj-1", "kek-1", b"wrapped-1", (("email", "d-email"), ("national_id", "d-nid")))
    a = make_accepted(1, entries=[blocked], subject=subject)
    assert await store.accept(a, ts(0)) is None

    assert await store.idempotent_response("shop", "key-1") == ("hash-1", 202, a.response)
    assert await store.idempotent_response("shop", "other") is None
    assert await store.idempotent_response("othershop", "key-1") is None
    reg = await store.registration("reg-acc-0001")
    assert reg is not None
    assert reg["status"] == "accepted" and reg["client"] == "shop" and reg["domain"] == "exempel1.se"
    assert reg["plan"] == [{"recipient": "iis"}, {"recipient": "verisign"}]
    assert reg["subject_id"] == "subj-1" and reg["created_at"] == ts(0)
    assert [(d["recipient"], d["state"], d["attempts"], d["last_code"]) for d in reg["deliveries"]] == [
        ("iis", "pending", 0, None), ("verisign", "pending", 0, None)]
    assert [d["id"] for d in reg["disclosures"]] == ["ent-blocked"]
    assert reg["disclosures"][0]["seq"] == 0
    assert await store.pending_count() == 2
    assert (await store.head()).size == 1
    assert await store.find_subjects([("email", "d-email")]) == ["subj-1"]

    # nothing is due before it was queued
    assert await store.claim_due(ts(-1), 10) == []
    items = await store.claim_due(ts(1), 10)
    assert [(i.recipient, i.attempts) for i in items] == [("iis", 1), ("verisign", 1)]
    first = items[0]
    assert first.registration_id == "reg-acc-0001" and first.subject_id == "subj-1"
    assert first.payload_ct == b"ct-1-iis" and first.payload_digest == "sha256:1iis"
    assert first.transfer == {"category": "eea"} and first.fields == {"released": ["name"]}
    assert first.purpose == "domain_registration"
    assert (await store.registration("reg-acc-0001") or {})["status"] == "delivering"
    assert await store.claim_due(ts(1), 10) == []  # in flight: not claimable twice
    assert await store.pending_count() == 2

    ok = make_entry(1, id="ent-iis", registration_id="reg-acc-0001", outcome="delivered", result_code="1000")
    await store.finish(items[0], ok, state="done", next_attempt_at=None, now=ts(2))
    retry = make_entry(2, id="ent-vs-1", registration_id="reg-acc-0001", outcome="failed", result_code="2400")
    await store.finish(items[1], retry, state="pending", next_attempt_at=ts(10), now=ts(2))
    reg = await store.registration("reg-acc-0001") or {}
    assert reg["status"] == "delivering" and reg["updated_at"] == ts(2)
    assert [(d["state"], d["last_code"]) for d in reg["deliveries"]] == [("done", "1000"), ("pending", "2400")]
    assert [d["id"] for d in reg["disclosures"]] == ["ent-blocked", "ent-iis", "ent-vs-1"]
    assert await store.pending_count() == 1

    assert await store.claim_due(ts(9), 10) == []  # backing off
    again = await store.claim_due(ts(10), 10)
    assert [(i.recipient, i.attempts) for i in again] == [("verisign", 2)]
    done = make_entry(3, id="ent-vs-2", registration_id="reg-acc-0001", outcome="delivered")
    await store.finish(again[0], done, state="done", next_attempt_at=None, now=ts(11))
    reg = await store.registration("reg-acc-0001") or {}
    assert reg["status"] == "delivered"
    assert await store.pending_count() == 0
    assert (await store.head()).size == 4
    assert (await store.disclosure("ent-vs-2") or make_entry(9)).leaf_index == 3


async def test_failed_delivery_fails_the_registration(store: Store) -> None:
    await store.accept(make_accepted(2), ts(0))
    items = await store.claim_due(ts(0), 1)
    assert [i.recipient for i in items] == ["iis"]  # limit is honoured, lowest id first
    await store.finish(items[0], make_entry(0, registration_id="reg-acc-0002"), state="failed",
                       next_attempt_at=None, now=ts(1))
    assert (await store.registration("reg-acc-0002") or {})["status"] == "failed"
    with pytest.raises(ValueError, match="bad outbox state"):
        await store.finish(items[0], make_entry(1), state="in_flight", next_attempt_at=None, now=ts(1))


async def test_batch_and_optional_outbox_rows(store: Store) -> None:
    """Batch rows (escrow) are only for their batch job; optional rows do not hold up the status."""
    a = make_accepted(7, recipients=("iis",))
    a.outbox.append(dataclasses.replace(a.outbox[0], recipient="escrow", batch=True, required=False))
    a.outbox.append(dataclasses.replace(a.outbox[0], recipient="mailer", required=False))
    await store.accept(a, ts(0))
    assert await store.pending_count() == 3
    worker = await store.claim_due(ts(1), 10)
    assert [i.recipient for i in worker] == ["iis", "mailer"]
    assert await store.claim_due(ts(1), 10, batch_recipient="other") == []
    escrow = await store.claim_due(ts(1), 10, batch_recipient="escrow")
    assert [(i.recipient, i.attempts) for i in escrow] == [("escrow", 1)]
    assert await store.claim_due(ts(1), 10, batch_recipient="escrow") == []
    await store.finish(worker[1], make_entry(0, registration_id="reg-acc-0007"), state="failed",
                       next_attempt_at=None, now=ts(2))
    assert (await store.registration("reg-acc-0007") or {})["status"] == "delivering"  # mailer is optional
    await store.finish(worker[0], make_entry(1, registration_id="reg-acc-0007"), state="done",
                       next_attempt_at=None, now=ts(2))
    reg = await store.registration("reg-acc-0007") or {}
    assert reg["status"] == "delivered"  # escrow still in flight, mailer failed: neither counts
    assert [(d["recipient"], d["state"]) for d in reg["deliveries"]] == [
        ("iis", "done"), ("escrow", "in_flight"), ("mailer", "failed")]


async def test_the_request_id_round_trips_with_the_outbox_row(store: Store) -> None:
    """The id of the request that queued a row (schema 4) comes back with it, from acceptance and from a
    later enqueue, across a retry and a requeue; a row queued outside a request has none."""
    a = make_accepted(8, subject=NewSubject("subj-8", "kek-1", b"wrapped-8", (("email", "d-email-8"),)))
    a.outbox[0] = dataclasses.replace(a.outbox[0], request_id="order-8.attempt-1")
    await store.accept(a, ts(0))
    items = await store.claim_due(ts(1), 10)
    assert [(i.recipient, i.request_id) for i in items] == [("iis", "order-8.attempt-1"), ("verisign", None)]
    assert items[0].payload_digest == "sha256:8iis"  # the id is beside the payload, not in it
    await store.finish(items[0], make_entry(0, registration_id="reg-acc-0008"), state="pending",
                       next_attempt_at=ts(5), now=ts(2))
    again = await store.claim_due(ts(5), 10)
    assert [(i.recipient, i.attempts, i.request_id) for i in again] == [("iis", 2, "order-8.attempt-1")]
    assert await store.requeue_in_flight(ts(6), ts(7)) == 2
    requeued = await store.claim_due(ts(6), 10)
    assert {(i.recipient, i.request_id) for i in requeued} == {("iis", "order-8.attempt-1"), ("verisign", None)}

    change = dataclasses.replace(a.outbox[1], change_id="chg-0008", required=False, request_id="rq-change-8")
    await store.enqueue("reg-acc-0008", "subj-8", [change], ts(8))
    [queued] = await store.claim_due(ts(8), 10)
    assert (queued.recipient, queued.change_id, queued.request_id) == ("verisign", "chg-0008", "rq-change-8")


async def test_unknown_registration_and_entry(store: Store) -> None:
    assert await store.registration("nope") is None
    assert await store.disclosure("nope") is None


async def test_idempotency_second_accept_returns_the_first_answer(store: Store) -> None:
    first = make_accepted(3, key="same", entries=[make_entry(0, registration_id="reg-acc-0003")])
    assert await store.accept(first, ts(0)) is None
    second = make_accepted(4, key="same", entries=[make_entry(1, registration_id="reg-acc-0004")])
    second.idempotency = ("shop", "same", "hash-other")
    assert await store.accept(second, ts(1)) == ("hash-3", 202, first.response)
    assert await store.registration("reg-acc-0004") is None  # nothing of the loser was written
    assert (await store.head()).size == 1
    assert await store.pending_count() == 2


async def test_idempotency_race_returns_the_prior_answer(store: Store) -> None:
    """Many requests with one key at once: exactly one is written, every other gets its answer."""
    contenders = [make_accepted(10 + n, key="race", entries=[make_entry(n, registration_id=f"reg-acc-{10 + n:04d}")])
                  for n in range(6)]
    results = await asyncio.gather(*(store.accept(a, ts(0)) for a in contenders))
    winners = [a for a, r in zip(contenders, results, strict=True) if r is None]
    assert len(winners) == 1
    winner = winners[0]
    for r in results:
        assert r is None or r == (winner.idempotency[2], 202, winner.response)
    assert (await store.head()).size == 1
    assert await store.pending_count() == 2
    for a in contenders:
        assert (await store.registration(a.registration["id"]) is None) == (a is not winner)


async def test_requeue_in_flight(store: Store) -> None:
    await store.accept(make_accepted(5), ts(0))
    await store.accept(make_accepted(6, recipients=("eurid",)), ts(0))
    claimed = await store.claim_due(ts(1), 2)
    assert len(claimed) == 2
    # a claim younger than the lease belongs to a live worker: left alone
    assert await store.requeue_in_flight(ts(5), stale_before=ts(0)) == 0
    assert await store.requeue_in_flight(ts(5)) == 2
    assert await store.requeue_in_flight(ts(5)) == 0
    never = await store.claim_due(ts(4), 10)  # requeued rows are due "now" (ts(5)), not earlier
    assert [(i.recipient, i.attempts) for i in never] == [("eurid", 1)]
    again = await store.claim_due(ts(5), 10)
    assert sorted((i.id, i.attempts) for i in again) == sorted((c.id, 2) for c in claimed)


# -- disclosures ------------------------------------------------------------------------------------------

async def test_disclosure_filters(store: Store) -> None:
    entries = [make_entry(i) for i in range(24)]
    await store.append(entries[:10])
    await store.append(entries[10:])

    async def ids(**kw: object) -> list[str]:
        return [e.id for e in await store.disclosures(DisclosureFilter(**kw))]  # type: ignore[arg-type]

    def expect(pred: object) -> list[str]:
        return [e.id for e in entries if pred(e)]  # type: ignore[operator]

    assert await ids() == expect(lambda e: True)
    assert await ids(recipient="verisign") == expect(lambda e: e.recipient == "verisign")
    assert await ids(country="CH") == expect(lambda e: e.recipient_country == "CH")
    assert await ids(category="safeguard") == expect(lambda e: e.category == "safeguard")
    assert await ids(outcome="refused") == expect(lambda e: e.outcome == "refused")
    assert await ids(registration_id="reg-0003") == expect(lambda e: e.registration_id == "reg-0003")
    assert await ids(subject_id="subj-2") == expect(lambda e: e.subject_id == "subj-2")
    third = expect(lambda e: e.category in THIRD_COUNTRY_CATEGORIES)
    assert await ids(third_country=True) == third and third
    assert await ids(third_country=False) == expect(lambda e: e.category not in THIRD_COUNTRY_CATEGORIES)
    assert await ids(since=ts(5)) == expect(lambda e: e.recorded_at >= ts(5))
    assert await ids(until=ts(5)) == expect(lambda e: e.recorded_at < ts(5))
    assert await ids(since=ts(3), until=ts(9)) == expect(lambda e: ts(3) <= e.recorded_at < ts(9))
    assert await ids(since="2025-03-01T09:10") == expect(lambda e: e.recorded_at >= "2025-03-01T09:10")
    assert await ids(after_seq=20) == [e.id for e in entries[21:]]
    assert await ids(limit=4) == [e.id for e in entries[:4]]
    assert await ids(after_seq=3, limit=2) == [e.id for e in entries[4:6]]
    assert await ids(recipient="iis", third_country=True) == []
    assert await ids(country="US", outcome="failed", category="adequacy") == expect(
        lambda e: e.recipient_country == "US" and e.outcome == "failed")
    # keyset paging with after_seq walks everything exactly once
    seen: list[str] = []
    after = -1
    while page := await store.disclosures(DisclosureFilter(after_seq=after, limit=5)):
        seen.extend(e.id for e in page)
        after = page[-1].leaf_index or 0
    assert seen == [e.id for e in entries]


def count_pages(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[DisclosureFilter]:
    """Every page ``iter_disclosures`` asks the store for, as the filter it asked with."""
    calls: list[DisclosureFilter] = []
    page = store.disclosures

    async def counting(f: DisclosureFilter) -> list[DisclosureEntry]:
        calls.append(f)
        return await page(f)

    monkeypatch.setattr(store, "disclosures", counting)
    return calls


@pytest.mark.parametrize(("page", "starts"), [
    (5, [-1, 4, 9, 14, 19]),  # the last page is short: no further read
    (3, [-1, 2, 5, 8, 11, 14, 17, 20, 23]),  # pages end exactly at the last entry: one empty read
    (24, [-1, 23]),
    (100, [-1]),
    (1, list(range(-1, 24))),
])
async def test_iter_disclosures_crosses_page_boundaries_in_leaf_order(
    store: Store, monkeypatch: pytest.MonkeyPatch, page: int, starts: list[int]
) -> None:
    entries = [make_entry(i) for i in range(24)]
    await store.append(entries[:10])
    await store.append(entries[10:])
    calls = count_pages(store, monkeypatch)
    got = [e async for e in store.iter_disclosures(DisclosureFilter(limit=2), page=page)]  # limit is ignored
    assert [e.id for e in got] == [e.id for e in entries]
    assert [e.leaf_index for e in got] == list(range(24))
    assert [c.after_seq for c in calls] == starts
    assert {c.limit for c in calls} == {page}


async def test_iter_disclosures_honours_filters_and_the_starting_after_seq(store: Store) -> None:
    entries = [make_entry(i) for i in range(30)]
    await store.append(entries[:7])
    await store.append(entries[7:])

    async def walk(f: DisclosureFilter, page: int) -> list[str]:
        got = [e async for e in store.iter_disclosures(f, page=page)]
        indexes = [e.leaf_index or 0 for e in got]
        assert indexes == sorted(set(indexes))  # leaf order, each once
        return [e.id for e in got]

    def expect(pred: Callable[[DisclosureEntry], bool], after: int = -1) -> list[str]:
        return [e.id for i, e in enumerate(entries) if i > after and pred(e)]

    cases: list[tuple[DisclosureFilter, list[str]]] = [
        (DisclosureFilter(recipient="verisign"), expect(lambda e: e.recipient == "verisign")),
        (DisclosureFilter(third_country=True), expect(lambda e: e.category in THIRD_COUNTRY_CATEGORIES)),
        (DisclosureFilter(third_country=False), expect(lambda e: e.category not in THIRD_COUNTRY_CATEGORIES)),
        (DisclosureFilter(subject_id="subj-1", since=ts(4), until=ts(25)),
         expect(lambda e: e.subject_id == "subj-1" and ts(4) <= e.recorded_at < ts(25))),
        (DisclosureFilter(country="US", outcome="failed"),
         expect(lambda e: e.recipient_country == "US" and e.outcome == "failed")),
        (DisclosureFilter(after_seq=17), [e.id for e in entries[18:]]),
        (DisclosureFilter(after_seq=6, outcome="delivered"), expect(lambda e: e.outcome == "delivered", after=6)),
        (DisclosureFilter(after_seq=12, third_country=True),
         expect(lambda e: e.category in THIRD_COUNTRY_CATEGORIES, after=12)),
        (DisclosureFilter(after_seq=29), []),
        (DisclosureFilter(recipient="nobody"), []),
    ]
    for f, expected in cases:
        assert expected == [e.id for e in await store.disclosures(dataclasses.replace(f, limit=1000))], f
        for page in (1, 2, 4, 500):
            assert await walk(f, page) == expected, (f, page)


async def test_iter_disclosures_refuses_an_empty_page(store: Store) -> None:
    with pytest.raises(ValueError, match="page"):
        [e async for e in store.iter_disclosures(DisclosureFilter(), page=0)]


async def test_entries_round_trip_with_leaf_index_and_hash(store: Store) -> None:
    entries = [make_entry(i) for i in range(8)]
    await store.append(entries)
    for i, original in enumerate(entries):
        got = await store.disclosure(original.id)
        assert got is not None
        assert got.leaf_index == i
        assert got.leaf_hash == leaf_hash(leaf_bytes(original.row(i)))
        assert dataclasses.replace(got, leaf_index=None, leaf_hash=None, stored_values_digest=None) == original
        assert got.stored_values_digest == original.values_digest
        assert got.values_purged is False


async def test_purge_values_keeps_the_tree_verifiable(store: Store) -> None:
    signer = CheckpointSigner.generate()
    entries = await build_ledger(store, signer, 9)
    with_values = [e.id for e in entries if e.values_ct is not None]
    assert await store.purge_values([*with_values[:3], "no-such-entry"]) == 3
    assert await store.purge_values(with_values[:3]) == 0
    purged = await store.disclosure(with_values[0])
    assert purged is not None and purged.values_ct is None and purged.values_purged
    assert purged.stored_values_digest == entries[int(with_values[0][-4:])].values_digest
    report = await verify_store(store, signer.public_key)
    assert report.ok, report


# -- subjects and keys ----------------------------------------------------------------------------------------

async def test_subjects(store: Store) -> None:
    s1 = NewSubject("subj-b", "kek-1", b"wrapped-b", (("email", "digest-1"), ("national_id", "digest-2")))
    await store.accept(make_accepted(20, subject=s1), ts(0))
    s2 = NewSubject("subj-a", "kek-1", b"wrapped-a", (("email", "digest-3"),))
    await store.accept(make_accepted(21, subject=s2, links=(("email", "digest-1"),)), ts(1))
    # an existing subject found again by a new identifier gains that link; known links are not duplicated
    await store.accept(make_accepted(22, subject_id="subj-b", links=(("phone", "digest-4"), ("email", "digest-1"))),
                       ts(2))

    assert await store.find_subjects([]) == []
    assert await store.find_subjects([("email", "nope")]) == []
    assert await store.find_subjects([("national_id", "digest-2")]) == ["subj-b"]
    # per identifier in the order given, subjects by id within one, each subject once
    assert await store.find_subjects([("email", "digest-1")]) == ["subj-a", "subj-b"]
    assert await store.find_subjects([("email", "digest-3"), ("email", "digest-1"), ("phone", "digest-4")]) == [
        "subj-a", "subj-b"]
    assert await store.find_subjects([("phone", "digest-4"), ("email", "digest-3")]) == ["subj-b", "subj-a"]
    assert await store.find_subjects([("national_id", "digest-1")]) == []  # kind matters

    key = await store.subject_key("subj-b")
    assert key is not None
    assert (key.subject_id, key.kid, key.wrapped, key.shredded_at) == ("subj-b", "kek-1", b"wrapped-b", None)
    assert await store.subject_key("nope") is None
    assert [k.subject_id async for k in store.subject_keys()] == ["subj-a", "subj-b"]

    await store.replace_wrapped_key("subj-b", "kek-2", b"rewrapped-b")
    key = await store.subject_key("subj-b")
    assert key is not None and (key.kid, key.wrapped) == ("kek-2", b"rewrapped-b")

    assert await store.shred_subject("subj-b", ts(5)) is True
    assert await store.shred_subject("subj-b", ts(6)) is False
    assert await store.shred_subject("nope", ts(6)) is False
    key = await store.subject_key("subj-b")
    assert key is not None and (key.kid, key.wrapped, key.shredded_at) == (None, None, ts(5))
    await store.replace_wrapped_key("subj-b", "kek-3", b"resurrected")  # a shredded key stays destroyed
    key = await store.subject_key("subj-b")
    assert key is not None and (key.kid, key.wrapped) == (None, None)
    assert await store.find_subjects([("email", "digest-1")]) == ["subj-a", "subj-b"]  # the index stays
    assert [r["id"] for r in await store.subject_registrations("subj-b")] == ["reg-acc-0020", "reg-acc-0022"]


async def test_many_subject_keys_stream_in_order(store: Store) -> None:
    for n in range(12):
        sid = f"subj-{(n * 7) % 12:02d}"
        await store.accept(make_accepted(100 + n, recipients=(), subject=NewSubject(sid, "k", b"w", ())), ts(0))
    assert [k.subject_id async for k in store.subject_keys()] == [f"subj-{n:02d}" for n in range(12)]


async def test_subject_keys_stream_across_pages_while_keys_are_rewrapped(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KEK rotation rewrites keys between the pages it reads: every subject still comes once, in id
    order, and the write is not blocked by the read (SQLite pages on its one writer connection)."""
    monkeypatch.setattr(rows, "SUBJECT_KEY_PAGE", 5)
    for n in range(12):
        sid = f"subj-{(n * 5) % 12:02d}"
        await store.accept(make_accepted(200 + n, recipients=(), subject=NewSubject(sid, "k", b"w", ())), ts(0))
    await store.shred_subject("subj-07", ts(1))
    seen: list[tuple[str, str | None]] = []
    async for key in store.subject_keys():
        seen.append((key.subject_id, key.kid))
        if key.wrapped is not None:
            await store.replace_wrapped_key(key.subject_id, "k2", b"w2")
    assert seen == [(f"subj-{n:02d}", None if n == 7 else "k") for n in range(12)]
    assert [k.kid async for k in store.subject_keys()] == [None if n == 7 else "k2" for n in range(12)]


# -- access log, requests, restrictions ---------------------------------------------------------------------

async def test_access_log_requests_and_restrictions(store: Store) -> None:
    await store.record_access("staff", "read_values", "ent-1", "subj-1", ts(1))
    await store.record_access("staff", "extract", "req-1", None, ts(2))
    await store.record_access("audit", "read_values", "ent-2", "subj-1", ts(3))
    log = await store.access_log()
    assert [(r["actor"], r["object_id"], r["at"]) for r in log] == [
        ("staff", "ent-1", ts(1)), ("staff", "req-1", ts(2)), ("audit", "ent-2", ts(3))]
    assert [r["object_id"] for r in await store.access_log("subj-1", limit=1)] == ["ent-1"]

    base = {"kind": "access", "channel": "email", "identity_check": "bankid", "verified_by": "staff",
            "opened_by": "staff", "state": "open", "subject_id": None, "closed_at": None}
    await store.open_request({**base, "id": "req-1", "opened_at": ts(0), "deadline": ts(100), "data": {"a": 1}})
    await store.open_request({**base, "id": "req-2", "opened_at": ts(1), "deadline": ts(50)})
    req = await store.request("req-1")
    assert req is not None and req["data"] == {"a": 1} and req["state"] == "open" and req["deadline"] == ts(100)
    assert (await store.request("req-2") or {})["data"] == {}
    assert await store.request("nope") is None
    assert [r["id"] for r in await store.requests()] == ["req-2", "req-1"]
    assert [r["id"] for r in await store.requests("open")] == ["req-2", "req-1"]
    await store.update_request("req-1", {"state": "closed", "closed_at": ts(9), "data": {"b": [2]}})
    req = await store.request("req-1") or {}
    assert (req["state"], req["closed_at"], req["data"]) == ("closed", ts(9), {"b": [2]})
    assert [r["id"] for r in await store.requests("closed")] == ["req-1"]
    with pytest.raises(ValueError):
        await store.update_request("req-1", {"kind": "erasure"})
    await store.add_request_event("req-1", ts(3), "staff", "verified", {"z": 1, "a": "ö"})
    await store.add_request_event("req-1", ts(4), "staff", "closed", {})
    assert await store.request_events("req-1") == [
        {"at": ts(3), "actor": "staff", "action": "verified", "detail": {"a": "ö", "z": 1}},
        {"at": ts(4), "actor": "staff", "action": "closed", "detail": {}}]
    assert await store.request_events("req-2") == []

    await store.add_restriction({"id": "r-1", "subject_id": "subj-1", "kind": "restriction", "scope": "*",
                                 "since": ts(5), "request_id": "req-1"})
    await store.add_restriction({"id": "r-2", "subject_id": "subj-1", "kind": "objection", "scope": "marketing",
                                 "since": ts(6)})
    assert [r["id"] for r in await store.restrictions("subj-1")] == ["r-1", "r-2"]
    assert await store.lift_restriction("r-1", ts(7)) is True
    assert await store.lift_restriction("r-1", ts(8)) is False
    assert [r["id"] for r in await store.restrictions("subj-1")] == ["r-2"]
    lifted = await store.restrictions("subj-1", active_only=False)
    assert [(r["id"], r["lifted_at"], r["request_id"]) for r in lifted] == [("r-1", ts(7), "req-1"),
                                                                              ("r-2", None, None)]


# -- append-only ------------------------------------------------------------------------------------------

APPEND_ONLY = {
    "disclosures": ("UPDATE disclosures SET outcome='delivered'", "DELETE FROM disclosures"),
    "ledger_nodes": ("UPDATE ledger_nodes SET hash=hash", "DELETE FROM ledger_nodes"),
    "checkpoints": ("UPDATE checkpoints SET origin='x'", "DELETE FROM checkpoints"),
    "access_log": ("UPDATE access_log SET actor='x'", "DELETE FROM access_log"),
    "request_events": ("UPDATE request_events SET actor='x'", "DELETE FROM request_events"),
}


@pytest.mark.parametrize("op", ["update", "delete"])
@pytest.mark.parametrize("table", sorted(APPEND_ONLY))
async def test_append_only_tables_refuse_raw_update_and_delete(store: Store, raw: RawDB, table: str,
                                                              op: str) -> None:
    signer = CheckpointSigner.generate()
    await build_ledger(store, signer, 4)
    await store.record_access("staff", "read_values", "ent-1", "subj-1", ts(1))
    await store.open_request({"id": "req-1", "kind": "access", "channel": "email", "identity_check": "x",
                              "verified_by": "s", "opened_by": "s", "opened_at": ts(0), "deadline": ts(1),
                              "state": "open"})
    await store.add_request_event("req-1", ts(3), "staff", "verified", {})
    before = await raw.fetch(f"SELECT * FROM {table}")
    assert before
    sql = APPEND_ONLY[table][0 if op == "update" else 1]
    with pytest.raises(Exception, match="append-only"):
        await raw.execute(sql)
    assert await raw.fetch(f"SELECT * FROM {table}") == before
    assert (await verify_store(store, signer.public_key)).ok


async def test_truncate_is_refused_too(pg_dsn: str) -> None:
    store = await PostgresStore.open(pg_dsn)
    try:
        await store.append([make_entry(0)])
        await store.record_access("staff", "read_values", "ent-1", None, ts(1))
        async with store._pool.acquire() as conn:
            for table in ("disclosures", "ledger_nodes", "checkpoints", "access_log", "request_events"):
                with pytest.raises(Exception, match="append-only"):
                    await conn.execute(f"TRUNCATE {table} CASCADE")
        assert (await store.head()).size == 1
    finally:
        await store.close()


# -- the tree --------------------------------------------------------------------------------------------

async def test_checkpoints_add_list_get(store: Store) -> None:
    signer = CheckpointSigner.generate()
    assert await store.checkpoints() == []
    assert await store.checkpoint(0) is None
    cp0 = await add_checkpoint(store, signer)
    await store.append([make_entry(i) for i in range(3)])
    cp3 = await add_checkpoint(store, signer, 3)
    stored = await store.checkpoints()
    assert [c.size for c in stored] == [0, 3]
    got = await store.checkpoint(3)
    assert got is not None
    assert (got.root, got.signature, got.key_id) == (cp3.checkpoint.root, cp3.signature, signer.key_id)
    assert got.timestamp == cp3.to_json()["timestamp"] and got.origin == cp3.checkpoint.origin
    assert await store.checkpoint(2) is None
    # a second checkpoint at a size already signed is ignored, not an error
    await store.add_checkpoint(StoredCheckpoint(size=3, root=b"\x00" * 32, timestamp="x", key_id="k",
                                                signature=b"s", origin="o"))
    assert await store.checkpoint(3) == got
    assert cp0.checkpoint.size == 0


async def test_head_nodes_and_streams_match_the_leaves(store: Store) -> None:
    entries = [make_entry(i) for i in range(21)]
    for k in range(0, 21, 4):
        await store.append(entries[k:k + 4])
    head = await store.head()
    leaves = await all_leaves(store, batch=4)
    assert [e.leaf_index for e in leaves] == list(range(21))
    hashes = [e.leaf_hash or b"" for e in leaves]
    assert hashes == [leaf_hash(leaf_bytes(e.row(i))) for i, e in enumerate(entries)]
    assert head.size == 21 and head.root() == root_of(hashes)

    nodes = await all_nodes(store, batch=5)
    assert nodes == sorted(nodes, key=lambda n: (n[2], n[0]))
    assert len(nodes) == 2 * 21 - bin(21).count("1")
    assert all(born == node_born(level, idx) for level, idx, born, _ in nodes)
    by_coord = {(lv, ix): h for lv, ix, _, h in nodes}
    assert await store.nodes(list(by_coord)) == by_coord
    assert await store.nodes([(0, 999), (7, 0)]) == {}
    assert await store.nodes([]) == {}

    # proofs from stored nodes verify against the head
    for i in (0, 7, 20):
        proof = inclusion_proof(lambda lv, ix: by_coord[(lv, ix)], i, 21)
        assert verify_inclusion(hashes[i], i, 21, proof, head.root())
    proof = consistency_proof(lambda lv, ix: by_coord[(lv, ix)], 13, 21)
    assert verify_consistency(13, 21, root_of(hashes[:13]), head.root(), proof)


async def test_verify_store_passes_on_a_built_ledger(store: Store) -> None:
    signer = CheckpointSigner.generate()
    await add_checkpoint(store, signer)  # the empty tree's checkpoint
    await build_ledger(store, signer, 37, checkpoint_every=6, batch=4)
    progress: list[tuple[int, int]] = []
    report = await verify_store(store, signer.public_key, lambda a, b: progress.append((a, b)), batch=5)
    assert report.ok, report
    assert report.entries == 37
    assert report.checkpoints == len(await store.checkpoints()) >= 8
    assert progress[-1] == (37, 37)
    # another key does not verify these checkpoints
    assert not (await verify_store(store, CheckpointSigner.generate().public_key)).ok


async def test_leaf_bytes_identical_across_stores(tmp_path: Path, pg_dsn: str) -> None:
    """Same entries, same tree: timestamps, JSON and blobs come back from either store identically."""
    entries = [make_entry(i) for i in range(11)]
    sqlite_store = SqliteStore(tmp_path / "a.db")
    pg_store = await PostgresStore.open(pg_dsn)
    try:
        for s in (sqlite_store, pg_store):
            await s.append(entries[:5])
            await s.append(entries[5:])
        assert (await sqlite_store.head()) == (await pg_store.head())
        a, b = await all_leaves(sqlite_store), await all_leaves(pg_store)
        assert a == b
        assert [leaf_bytes(e.row(e.leaf_index or 0)) for e in a] == [leaf_bytes(e.row(e.leaf_index or 0)) for e in b]
        assert await all_nodes(sqlite_store) == await all_nodes(pg_store)
    finally:
        await sqlite_store.close()
        await pg_store.close()


async def test_claim_subject_is_get_or_create_on_the_strong_identifier_alone(store: Store) -> None:
    """Identity (issue 13): only the strong identifier (``merge_on``) finds an existing holder.  The old
    rule found one by any shared link, so ``c`` below (same e-mail and ID number, other strong id) and
    ``e``/``f`` (no strong id, same e-mail) all joined ``a``'s subject."""
    a = NewSubject("a" * 32, "kid", b"w" * 60, (("email", "d-1"), ("national_id", "d-2")), merge_on="s-1")
    b = NewSubject("b" * 32, "kid", b"w" * 60, (("national_id", "d-2"),), merge_on="s-1")
    got = await asyncio.gather(store.claim_subject(a, ts(0)), store.claim_subject(b, ts(0)))
    assert got[0] == got[1] and got[0] in (a.id, b.id)  # one wins, the other gets the winner
    # the strong link is written whether or not the index listed it
    assert await store.find_subjects([("strong_id", "s-1")]) == [got[0]]
    # the same e-mail and ID number under another strong identifier (another register): another holder
    c = NewSubject("c" * 32, "kid", b"w" * 60, (("email", "d-1"), ("national_id", "d-2")), merge_on="s-2")
    assert await store.claim_subject(c, ts(0)) == c.id
    # no strong identifier: a holder record of its own, whatever it shares
    e = NewSubject("e" * 32, "kid", b"w" * 60, (("email", "d-1"), ("phone", "d-3")))
    f = NewSubject("f" * 32, "kid", b"w" * 60, (("email", "d-1"), ("phone", "d-3")))
    assert [await store.claim_subject(x, ts(0)) for x in (e, f)] == [e.id, f.id]
    # every link stays searchable, for staff to list candidates by
    assert await store.find_subjects([("email", "d-1")]) == sorted([got[0], c.id, e.id, f.id])
    assert await store.find_subjects([("national_id", "d-2")]) == sorted([got[0], c.id])
    assert [(await store.subject_key(x)).basis for x in (got[0], c.id, e.id)] == [  # type: ignore[union-attr]
        "strong_id", "strong_id", "record"]
    # an erased subject is not reused: the person starts afresh with a new key
    assert await store.shred_subject(got[0], ts(1))
    d = NewSubject("d" * 32, "kid", b"w" * 60, (("national_id", "d-2"),), merge_on="s-1")
    assert await store.claim_subject(d, ts(2)) == d.id
    assert await store.find_subjects([("strong_id", "s-1")]) == sorted([got[0], d.id])


async def test_a_holder_record_is_written_with_its_registration(store: Store) -> None:
    """A registrant without a strong identifier gets its subject in the acceptance's own transaction
    (``Accepted.subject``): a lost idempotency race leaves no subject behind."""
    rec = NewSubject("r" * 32, "kid", b"w" * 60, (("email", "d-1"),))
    assert await store.accept(make_accepted(30, key="key-race", subject=rec), ts(0)) is None
    loser = NewSubject("l" * 32, "kid", b"w" * 60, (("email", "d-1"),))
    assert await store.accept(make_accepted(31, key="key-race", subject=loser), ts(0)) is not None  # replayed
    assert await store.find_subjects([("email", "d-1")]) == [rec.id]
    assert await store.subject_key(loser.id) is None
    key = await store.subject_key(rec.id)
    assert key is not None and key.basis == "record"


async def test_nothing_is_filed_under_an_erased_subject(store: Store) -> None:
    """Another process erased the holder between finding it and filing under it: ``accept`` and
    ``enqueue`` write nothing and say so (the registration service then starts a fresh subject)."""
    s = NewSubject("s" * 32, "kid", b"w" * 60, (("email", "d-1"),), merge_on="s-1")
    await store.accept(make_accepted(40, subject=s), ts(0))
    assert await store.shred_subject(s.id, ts(1))
    with pytest.raises(SubjectErased):
        await store.accept(make_accepted(41, subject_id=s.id, links=(("phone", "d-2"),)), ts(2))
    assert await store.registration("reg-acc-0041") is None
    assert await store.idempotent_response("shop", "key-41") is None
    assert await store.find_subjects([("phone", "d-2")]) == []
    with pytest.raises(SubjectErased):
        await store.accept(make_accepted(42, subject_id="no-such-subject"), ts(2))
    before = await store.pending_count()
    with pytest.raises(SubjectErased):
        await store.enqueue("reg-acc-0040", s.id, make_accepted(43).outbox, ts(3))
    assert await store.pending_count() == before


async def test_subject_registrations_of_one_client(store: Store) -> None:
    s = NewSubject("s" * 32, "kid", b"w" * 60, (), merge_on="s-1")
    await store.accept(make_accepted(50, subject=s), ts(0))
    other = make_accepted(51, subject_id=s.id)
    await store.accept(dataclasses.replace(other, idempotency=("othershop", "key-51", "hash-51")), ts(1))
    await store.accept(make_accepted(52, subject_id=s.id), ts(2))
    assert [r["id"] for r in await store.subject_registrations(s.id)] == [
        "reg-acc-0050", "reg-acc-0051", "reg-acc-0052"]
    assert [r["id"] for r in await store.subject_registrations(s.id, client="shop")] == [
        "reg-acc-0050", "reg-acc-0052"]
    assert [r["id"] for r in await store.subject_registrations(s.id, client="othershop")] == ["reg-acc-0051"]
    assert await store.subject_registrations(s.id, client="nobody") == []
    assert set((await store.subject_registrations(s.id))[0]) == {
        "id", "domain", "tld", "status", "created_at", "language"}


# -- webhooks -----------------------------------------------------------------------------------------------

def _hook(n: int, client: str = "shop", events: tuple[str, ...] | None = None) -> NewWebhook:
    return NewWebhook(id=f"{n:032x}", client=client, url=f"https://hooks{n}.example.com/in",
                      events=events or EVENT_TYPES, secret=f"whsec_{n}")


async def _events(raw: RawDB) -> list[dict]:
    return await raw.fetch("SELECT event_id, webhook_id, registration_id, type, body_json, state, attempts "
                           "FROM webhook_events ORDER BY id")


async def test_webhook_subscriptions_are_per_client(store: Store) -> None:
    await store.add_webhook(_hook(1), ts(0))
    await store.add_webhook(_hook(2, events=("registration.delivered",)), ts(1))
    await store.add_webhook(_hook(3, client="othershop"), ts(2))
    mine = await store.webhooks("shop")
    assert [(h["id"], h["url"], h["events"], h["created_at"]) for h in mine] == [
        (_hook(1).id, "https://hooks1.example.com/in", list(EVENT_TYPES), ts(0)),
        (_hook(2).id, "https://hooks2.example.com/in", ["registration.delivered"], ts(1))]
    assert all("secret" not in h for h in mine)
    assert mine[0]["deliveries"] == {"pending": 0, "delivered": 0, "failed": 0}
    assert [h["id"] for h in await store.webhooks("othershop")] == [_hook(3).id]
    assert not await store.delete_webhook("othershop", _hook(1).id, ts(3))  # not theirs
    assert await store.delete_webhook("shop", _hook(1).id, ts(3))
    assert not await store.delete_webhook("shop", _hook(1).id, ts(4))  # already gone
    assert [h["id"] for h in await store.webhooks("shop")] == [_hook(2).id]


async def test_state_changes_write_webhook_events_in_the_same_transaction(store: Store, raw: RawDB) -> None:
    await store.add_webhook(_hook(1), ts(0))
    await store.add_webhook(_hook(2, events=("registration.failed",)), ts(0))
    await store.add_webhook(_hook(3, client="othershop"), ts(0))
    await store.accept(make_accepted(1), ts(0))
    assert await _events(raw) == []  # accepted is no final state
    items = await store.claim_due(ts(1), 10)
    await store.finish(items[0], make_entry(1, registration_id="reg-acc-0001", outcome="delivered"),
                       state="done", next_attempt_at=None, now=ts(2))
    assert await _events(raw) == []  # still delivering
    await store.finish(items[1], make_entry(2, registration_id="reg-acc-0001", outcome="delivered",
                                            result_code="1000"), state="done", next_attempt_at=None, now=ts(3))
    events = await _events(raw)
    assert [(e["webhook_id"], e["type"], e["state"], e["attempts"]) for e in events] == [
        (_hook(1).id, "registration.delivered", "pending", 0)]
    body = json.loads(events[0]["body_json"])
    assert body == {"id": events[0]["event_id"], "type": "registration.delivered", "timestamp": ts(3),
                    "data": {"registration_id": "reg-acc-0001", "order_ref": "ORD-1", "status": "delivered",
                             "code": "1000"}}

    # a refusal at send time is "blocked"; a plain failure "failed", to each subscription that wants it
    await store.accept(make_accepted(2, recipients=("iis",)), ts(4))
    await store.accept(make_accepted(3, recipients=("iis",)), ts(4))
    two, three = await store.claim_due(ts(5), 10)
    await store.finish(two, make_entry(3, registration_id="reg-acc-0002", outcome="blocked",
                                       result_code="subject_restricted"), state="failed", next_attempt_at=None,
                       now=ts(6))
    await store.finish(three, make_entry(4, registration_id="reg-acc-0003", outcome="failed", result_code="2306"),
                       state="failed", next_attempt_at=None, now=ts(6))
    events = (await _events(raw))[1:]
    assert [(e["webhook_id"], e["registration_id"], e["type"]) for e in events] == [
        (_hook(1).id, "reg-acc-0002", "registration.blocked"),
        (_hook(1).id, "reg-acc-0003", "registration.failed"), (_hook(2).id, "reg-acc-0003", "registration.failed")]
    assert events[1]["event_id"] == events[2]["event_id"]  # one event, two subscriptions
    assert json.loads(events[0]["body_json"])["data"]["code"] == "subject_restricted"


async def test_blocked_acceptance_and_pushed_changes_write_events(store: Store, raw: RawDB) -> None:
    await store.add_webhook(_hook(1), ts(0))
    blocked = make_accepted(1, recipients=())
    blocked.registration["status"] = "blocked"
    blocked.status, blocked.response = 422, {"code": "transfer_blocked", "status": 422}
    await store.accept(blocked, ts(0))
    subject = NewSubject("subj-9", "kek-1", b"wrapped-9", (("email", "d-9"),))
    await store.accept(make_accepted(2, subject=subject), ts(1))
    await store.enqueue("reg-acc-0002", "subj-9", [dataclasses.replace(
        make_accepted(2).outbox[0], change_id="chg-1")], ts(2))
    await store.enqueue("reg-acc-0002", "subj-9", [], ts(3))  # nothing queued, nothing to tell
    events = await _events(raw)
    assert [(e["registration_id"], e["type"]) for e in events] == [
        ("reg-acc-0001", "registration.blocked"), ("reg-acc-0002", "registration.changed")]
    assert json.loads(events[0]["body_json"])["data"] == {
        "registration_id": "reg-acc-0001", "order_ref": "ORD-1", "status": "blocked", "code": "transfer_blocked"}
    assert json.loads(events[1]["body_json"])["data"]["status"] == "accepted"


async def test_webhook_events_are_claimed_leased_retried_and_finished(store: Store) -> None:
    await store.add_webhook(_hook(1), ts(0))
    await store.add_webhook(_hook(2), ts(0))
    await store.accept(make_accepted(1, recipients=("iis",)), ts(0))
    [item] = await store.claim_due(ts(0), 10)
    await store.finish(item, make_entry(1, registration_id="reg-acc-0001", outcome="delivered"), state="done",
                       next_attempt_at=None, now=ts(1))
    assert await store.claim_webhook_events(ts(0), ts(5), 10) == []  # not due before it happened
    claimed = await store.claim_webhook_events(ts(1), ts(5), 10)
    assert [(d.webhook_id, d.attempts, d.url, d.secret) for d in claimed] == [
        (_hook(1).id, 1, _hook(1).url, "whsec_1"), (_hook(2).id, 1, _hook(2).url, "whsec_2")]
    assert json.loads(claimed[0].body)["type"] == "registration.delivered" and claimed[0].created_at == ts(1)
    assert await store.claim_webhook_events(ts(2), ts(5), 10) == []  # leased
    one, two = claimed
    await store.webhook_event_result(one.id, state="pending", next_attempt_at=ts(3), last_status="500", now=ts(2))
    await store.webhook_event_result(two.id, state="delivered", next_attempt_at=None, last_status="204", now=ts(2))
    assert await store.claim_webhook_events(ts(2.5), ts(9), 10) == []  # backing off
    [again] = await store.claim_webhook_events(ts(3), ts(9), 10)
    assert (again.id, again.event_id, again.attempts) == (one.id, one.event_id, 2)
    await store.webhook_event_result(again.id, state="failed", next_attempt_at=None, last_status="TimeoutError",
                                     now=ts(4))
    # a lease that runs out (the sender died) makes it due again; finished rows never are
    assert await store.claim_webhook_events(ts(99), ts(100), 10) == []
    hooks = {h["id"]: h["deliveries"] for h in await store.webhooks("shop")}
    assert hooks == {_hook(1).id: {"pending": 0, "delivered": 0, "failed": 1},
                     _hook(2).id: {"pending": 0, "delivered": 1, "failed": 0}}
    [recent] = await store.webhook_events(_hook(1).id)
    assert (recent["state"], recent["attempts"], recent["last_status"]) == ("failed", 2, "TimeoutError")
    with pytest.raises(ValueError, match="bad webhook event state"):
        await store.webhook_event_result(one.id, state="in_flight", next_attempt_at=None, last_status="", now=ts(5))


async def test_a_lease_that_runs_out_is_claimed_again_and_deleting_a_webhook_fails_its_events(store: Store) -> None:
    await store.add_webhook(_hook(1), ts(0))
    await store.accept(make_accepted(1, recipients=("iis",)), ts(0))
    [item] = await store.claim_due(ts(0), 10)
    await store.finish(item, make_entry(1, registration_id="reg-acc-0001", outcome="delivered"), state="done",
                       next_attempt_at=None, now=ts(1))
    [first] = await store.claim_webhook_events(ts(1), ts(2), 10)
    [second] = await store.claim_webhook_events(ts(2), ts(3), 10)  # its sender died: the lease ran out
    assert (second.id, second.attempts) == (first.id, 2)
    assert await store.delete_webhook("shop", _hook(1).id, ts(4))
    assert await store.claim_webhook_events(ts(9), ts(10), 10) == []
    [recent] = await store.webhook_events(_hook(1).id)
    assert (recent["state"], recent["last_status"]) == ("failed", "deleted")
