"""Verification split over processes by leaf range (issue 9), on SQLite and PostgreSQL.

Chunks of 4 leaves here (``level=2``) so that a small ledger has many: the parallel pass agrees with
the exact pass on an intact ledger, steps aside (None) for anything wrong in any chunk (a leaf, a node
inside a chunk or above the chunks, a checkpoint, a row beyond the head), and ``verify_store`` with
``jobs`` then gives the exact pass's finding, as it always read.
"""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.ledger.checkpoint import CheckpointSigner
from gateway.ledger.entry import DisclosureEntry
from gateway.services.ledger import _checkpoint_check, _verify_store, verify_store
from gateway.services.verify import Chunk, PurposeRule, Source, plan, shippable, verify_parallel
from gateway.store.base import Store
from tests.store.conftest import RawDB, StoreSpec, build_ledger, make_entry

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
N = 23  # chunks of 4: five whole ones and a partial one of 3


def _source(spec: StoreSpec) -> Source:
    return Source("sqlite" if spec.kind == "sqlite" else "postgres", spec.target)


async def _parallel(store: Store, spec: StoreSpec, signer: CheckpointSigner, **kw: object) -> tuple[int, int] | None:
    return await verify_parallel(store, _source(spec), _checkpoint_check(signer.public_key), jobs=2, level=2,
                                 batch=3, now=NOW, **kw)  # type: ignore[arg-type]


def test_the_plan_covers_every_leaf_once_in_aligned_chunks() -> None:
    chunks = plan(23, [0, 4, 5, 22, 23], 2)
    assert [(c.lo, c.hi) for c in chunks] == [(0, 4), (4, 8), (8, 12), (12, 16), (16, 20), (20, 23)]
    assert [c.checkpoints for c in chunks] == [(4,), (5,), (), (), (), (22, 23)]
    assert (chunks[0].first, chunks[-1].last) == (True, True) and not chunks[1].first and not chunks[-2].last
    assert plan(0, [], 14) == [Chunk(0, 0, 14, True, True)]
    # each chunk reads in batches; only the ledger's outer ends are read without a bound
    assert list(Chunk(4, 11, 3, False, True).ranges(3)) == [(4, 7, True, True), (7, 10, True, True),
                                                           (10, 11, True, False)]


async def test_an_intact_ledger_checks_out_as_in_the_exact_pass(store: Store, store_spec: StoreSpec) -> None:
    signer = CheckpointSigner.generate()
    await build_ledger(store, signer, N, checkpoint_every=5, batch=3)
    seen: list[tuple[int, int]] = []
    counts = await _parallel(store, store_spec, signer, progress=lambda a, b: seen.append((a, b)))
    exact = await _verify_store(store, signer.public_key, None, 4, None, NOW)
    assert exact.ok and counts == (exact.entries, exact.checkpoints) == (N, len(await store.checkpoints()))
    assert sorted(seen)[-1] == (N, N) and len(seen) == 6
    report = await verify_store(store, signer.public_key, jobs=2, source=_source(store_spec), now=NOW)
    assert report == exact


async def test_an_empty_ledger_checks_out(store: Store, store_spec: StoreSpec) -> None:
    signer = CheckpointSigner.generate()
    assert await _parallel(store, store_spec, signer) == (0, 0)


@pytest.mark.parametrize("leaf", [1, 9, 21])  # the first chunk, one in the middle, the partial last one
async def test_a_tampered_leaf_in_any_range_is_found(store: Store, store_spec: StoreSpec, raw: RawDB,
                                                     leaf: int) -> None:
    signer = CheckpointSigner.generate()
    entries = await build_ledger(store, signer, N, checkpoint_every=5, batch=3)
    await raw.tamper("disclosures", "UPDATE disclosures SET purpose=? WHERE leaf_index=?", "marketing", leaf)
    assert await _parallel(store, store_spec, signer) is None
    report = await verify_store(store, signer.public_key, jobs=2, source=_source(store_spec), now=NOW)
    assert (report.ok, report.bad_leaf_index, report.bad_entry_id) == (False, leaf, entries[leaf].id)
    assert report.problem == f"entry at leaf {leaf} does not match its hash"


@pytest.mark.parametrize("level, idx", [(0, 13), (2, 3), (3, 1), (4, 0)])  # inside chunks, then above them
async def test_a_tampered_node_inside_or_above_the_chunks_is_found(
    store: Store, store_spec: StoreSpec, raw: RawDB, level: int, idx: int
) -> None:
    signer = CheckpointSigner.generate()
    await build_ledger(store, signer, N, checkpoint_every=5, batch=3)
    await raw.tamper("ledger_nodes", "UPDATE ledger_nodes SET hash=? WHERE level=? AND idx=?", b"\x01" * 32, level,
                     idx)
    assert await _parallel(store, store_spec, signer) is None
    report = await verify_store(store, signer.public_key, jobs=2, source=_source(store_spec), now=NOW)
    assert not report.ok and report.problem == f"tree node (level {level}, index {idx}) does not match the entries"


async def test_a_missing_node_above_the_chunks_is_found(store: Store, store_spec: StoreSpec, raw: RawDB) -> None:
    signer = CheckpointSigner.generate()
    await build_ledger(store, signer, N, checkpoint_every=5, batch=3)
    await raw.tamper("ledger_nodes", "DELETE FROM ledger_nodes WHERE level=? AND idx=?", 3, 0)
    assert await _parallel(store, store_spec, signer) is None
    assert not (await verify_store(store, signer.public_key, jobs=2, source=_source(store_spec), now=NOW)).ok


async def test_a_checkpoint_inside_a_chunk_is_checked(store: Store, store_spec: StoreSpec, raw: RawDB) -> None:
    signer = CheckpointSigner.generate()
    await build_ledger(store, signer, N, checkpoint_every=5, batch=3)
    sizes = [cp.size for cp in await store.checkpoints()]
    inside = next(s for s in sizes if s % 4)
    await raw.tamper("checkpoints", "UPDATE checkpoints SET root=? WHERE size=?", b"\x02" * 32, inside)
    assert await _parallel(store, store_spec, signer) is None
    report = await verify_store(store, signer.public_key, jobs=2, source=_source(store_spec), now=NOW)
    assert not report.ok and report.problem == f"checkpoint at size {inside}: bad signature"


async def test_rows_beyond_the_head_or_below_zero_are_seen(store: Store, store_spec: StoreSpec, raw: RawDB) -> None:
    signer = CheckpointSigner.generate()
    await build_ledger(store, signer, N, checkpoint_every=5, batch=3)
    for where in (-1, N + 40):
        await raw.tamper("ledger_nodes", "INSERT INTO ledger_nodes(level, idx, born, hash) VALUES (?, ?, ?, ?)",
                         0, where, where, b"\x03" * 32)
        assert await _parallel(store, store_spec, signer) is None
        await raw.tamper("ledger_nodes", "DELETE FROM ledger_nodes WHERE born=?", where)
    assert await _parallel(store, store_spec, signer) == (N, len(await store.checkpoints()))


async def test_purged_values_are_judged_by_the_retention_rule_in_each_process(
    store: Store, store_spec: StoreSpec, raw: RawDB
) -> None:
    signer = CheckpointSigner.generate()
    entries = await build_ledger(store, signer, N, checkpoint_every=5, batch=3)
    victim = next(i for i, e in enumerate(entries) if e.values_ct is not None and i > 12)
    await raw.execute("DELETE FROM entry_values WHERE leaf_index=?", victim)
    years = PurposeRule({"domain_registration": _years_later})
    assert shippable(years) and not shippable(lambda p, t: None)
    assert await _parallel(store, store_spec, signer, retention=years) is not None  # a purge after its period
    soon = dt.datetime(2025, 3, 2, tzinfo=dt.UTC)  # the period had not run out: a finding
    assert await verify_parallel(store, _source(store_spec), _checkpoint_check(signer.public_key), jobs=2,
                                 level=2, batch=3, now=soon, retention=years) is None
    report = await verify_store(store, signer.public_key, jobs=2, source=_source(store_spec), now=soon,
                                retention=years)
    assert (report.ok, report.bad_leaf_index) == (False, victim)
    assert "vanished before its retention date" in (report.problem or "")


def _years_later(recorded_at: dt.datetime) -> dt.datetime:
    return recorded_at + dt.timedelta(days=365)


async def test_a_ledger_grown_since_the_last_check_checks_out_again(store: Store, store_spec: StoreSpec) -> None:
    """16 leaves are four whole chunks; one more append starts a fifth, partial one."""
    signer = CheckpointSigner.generate()
    await build_ledger(store, signer, 16, checkpoint_every=8, batch=4)
    assert await _parallel(store, store_spec, signer) == (16, len(await store.checkpoints()))
    await store.append([make_entry(16, tag="late")])
    extra: DisclosureEntry | None = await store.disclosure(make_entry(16, tag="late").id)
    assert extra is not None and extra.leaf_index == 16
    assert await _parallel(store, store_spec, signer) == (17, len(await store.checkpoints()))
