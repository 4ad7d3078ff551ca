"""The shared schema (gateway/store/schema.py): one definition, the same tables in both databases, and a
released migration that never changes underneath a database it has already been applied to."""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.errors import ConfigError
from gateway.ledger.checkpoint import Checkpoint, CheckpointSigner
from gateway.ledger.entry import DisclosureEntry
from gateway.ledger.merkle import Frontier, inclusion_proof, verify_inclusion
from gateway.services.ledger import ORIGIN, verify_store
from gateway.store import rows as R
from gateway.store.base import DisclosureFilter
from gateway.store.postgres import PostgresStore
from gateway.store.postgres import migrations as pg_migrations
from gateway.store.schema import refuse_newer
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite import migrations as sqlite_migrations
from tests.store.conftest import make_entry

#: Migration 1 as first released.  SQLite: the statements run (and kept in ``sqlite_master``); PostgreSQL:
#: the script.  A change here is a change to databases already migrated: write migration 2 instead.
RELEASED_V1 = {
    "sqlite": "887d38aa9455da6ac20cb1acd734ebd2de2ac9cca9560426ab6e5067ed92e442",
    "postgres": "b8f6ca24dcb340f2eb500b9238dabed2e9f51d115395530959ab675023d5c7ea",
}
#: Migration 2 (``subjects.basis``, issue 13), pinned the same way once released.
RELEASED_V2 = {
    "sqlite": "7e539f231e84cedbb0ad7f6f858d931ea4e0616c3139a902ff0b2b08ef4fa8d3",
    "postgres": "fb661c1c5e419f2cb40d3458d0ea465e649510cad03f4b0afa2b9ec88040249f",
}
#: Migration 3 (webhooks for the ordering system, issue 12), pinned the same way once released.
RELEASED_V3 = {
    "sqlite": "b9ced4045cabed29f3042acda9fca1168d7e540f62d944095624dc794742600b",
    "postgres": "daf753039d9aa3868b5642abf7f307ff085ff5db7c8387e838fbf2fcf7df2908",
}
#: Migration 4 (``outbox.request_id``: the request that queued a row, for the delivery's log lines).
RELEASED_V4 = {
    "sqlite": "fb044f416a496d514f9a1243957c4ef3130f81241659eae0255649796ea5e580",
    "postgres": "493c49965fdfbe03fb74e473d20a2876ab7442485b8d460d032c6a4988041692",
}

#: Migration 5 (fenced claims, per-command progress, parking), pinned the same way once released.
RELEASED_V5 = {
    "sqlite": "14fa0cb7d20dff466837e88ad761a9b350a3310acb2dcf11e4ed3139c8b18140",
    "postgres": "a8b3fd70a7b303855163103b363a5a05ef3158382a6708310dc9486a7d30a8d4",
}
#: Migration 6 (the domain's lifecycle after registration), pinned the same way once released.
RELEASED_V6 = {
    "sqlite": "f4bfd5e22cfb4e32511976af93c3b69c019b46205984d802b35d419182bf9c3a",
    "postgres": "84b37bf39a625e0bd90f4eadbb4cd07a9f0634ff5262e26ed2a00ebdea519ec2",
}

#: SQLite type -> the PostgreSQL types that spell it in the shared schema.
TYPES = {"TEXT": {"text"}, "BLOB": {"bytea"}, "INTEGER": {"integer", "bigint"}}


@pytest.mark.parametrize("number, released", [(1, RELEASED_V1), (2, RELEASED_V2), (3, RELEASED_V3),
                                                      (4, RELEASED_V4), (5, RELEASED_V5), (6, RELEASED_V6)])
def test_released_migrations_are_unchanged(number: int, released: dict[str, str]) -> None:
    versions = [v for v, _ in sqlite_migrations.MIGRATIONS]
    assert versions == [v for v, _ in pg_migrations.MIGRATIONS] == list(range(1, len(versions) + 1))
    version, sql = sqlite_migrations.MIGRATIONS[number - 1]
    statements = sqlite_migrations._split(sql)
    assert version == number
    assert hashlib.sha256("\n".join(statements).encode()).hexdigest() == released["sqlite"]
    version, sql = pg_migrations.MIGRATIONS[number - 1]
    assert version == number
    assert hashlib.sha256(sql.encode()).hexdigest() == released["postgres"]


LEGACY_SUBJECT = ("0" * 32, "kid", b"w" * 60, "2025-01-01T00:00:00Z")


async def test_a_version_1_database_migrates_to_2_keeping_its_subjects_as_legacy(
    tmp_path: Path, pg_empty_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subjects made before schema 2 (when any shared e-mail merged records) keep their keys and links
    and get no basis: nothing is merged into them again (see ``gateway.store.base.SubjectBasis``)."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path, isolation_level=None)
    with monkeypatch.context() as m:
        m.setattr(sqlite_migrations, "MIGRATIONS", sqlite_migrations.MIGRATIONS[:1])
        assert sqlite_migrations.migrate(conn) == 1
    conn.execute("INSERT INTO subjects(id, kid, wrapped, created_at) VALUES (?,?,?,?)", LEGACY_SUBJECT)
    conn.close()
    pg = await asyncpg.connect(pg_empty_dsn)
    try:
        with monkeypatch.context() as m:
            m.setattr(pg_migrations, "MIGRATIONS", pg_migrations.MIGRATIONS[:1])
            m.setattr(pg_migrations, "LATEST", 1)
            assert await pg_migrations.migrate(pg) == 1
        await pg.execute("INSERT INTO subjects(id, kid, wrapped, created_at) VALUES ($1, $2, $3, $4)", *LEGACY_SUBJECT)
    finally:
        await pg.close()

    for store in (SqliteStore(path), await PostgresStore.open(pg_empty_dsn)):
        try:
            assert store.schema_version == sqlite_migrations.MIGRATIONS[-1][0]
            key = await store.subject_key(LEGACY_SUBJECT[0])
            assert key is not None and key.wrapped == LEGACY_SUBJECT[2] and key.basis is None
        finally:
            await store.close()


def test_a_newer_schema_is_refused() -> None:
    refuse_newer(1, 1)
    refuse_newer(0, 1)
    with pytest.raises(ConfigError, match="version 2 is newer than this gateway \\(1\\)"):
        refuse_newer(2, 1)


def _sqlite_schema(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        columns = {
            t: [(r[1], r[2].upper(), bool(r[3] or r[5])) for r in conn.execute(f"PRAGMA table_info({t})")]
            for t in tables
        }
        indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL")}
        triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
    finally:
        conn.close()
    return {"columns": columns, "indexes": indexes, "triggers": triggers}


async def _pg_schema(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        columns: dict[str, list[tuple[str, str, bool, str | None]]] = {}
        for r in await conn.fetch(
            "SELECT table_name, column_name, data_type, is_nullable, collation_name FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY table_name, ordinal_position"
        ):
            columns.setdefault(r["table_name"], []).append(
                (r["column_name"], r["data_type"], r["is_nullable"] == "NO", r["collation_name"]))
        indexes = {r["indexname"] for r in await conn.fetch(
            "SELECT i.indexname FROM pg_indexes i WHERE i.schemaname = 'public' AND NOT EXISTS ("
            " SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)")}
        triggers = {r["tgname"] for r in await conn.fetch("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
    finally:
        await conn.close()
    return {"columns": columns, "indexes": indexes, "triggers": triggers}


async def test_both_databases_get_the_same_tables_columns_indexes_and_guards(tmp_path: Path, pg_dsn: str) -> None:
    """Same tables, columns in the same order, same nullability, types that correspond, the same indexes,
    and the same append-only guards (PostgreSQL adds one against TRUNCATE, which SQLite lacks)."""
    await (SqliteStore(tmp_path / "a.db")).close()
    await (await PostgresStore.open(pg_dsn)).close()
    lite, pg = _sqlite_schema(tmp_path / "a.db"), await _pg_schema(pg_dsn)

    assert sorted(lite["columns"]) == sorted(pg["columns"])
    for table, lite_columns in lite["columns"].items():
        pg_columns = pg["columns"][table]
        assert [(c[0], c[2]) for c in lite_columns] == [(c[0], c[2]) for c in pg_columns], table
        if table == "schema_version":  # each dialect's own bookkeeping: applied_at is a TIMESTAMPTZ there
            continue
        for (name, lite_type, _), (_, pg_type, _, _) in zip(lite_columns, pg_columns, strict=True):
            assert pg_type in TYPES[lite_type], (table, name, lite_type, pg_type)
    # byte-wise ordering in PostgreSQL as in SQLite; the one exception is part of the released schema
    loose = {(t, c[0]) for t, cols in pg["columns"].items() for c in cols if c[1] == "text" and c[3] != "C"}
    assert loose == {("outbox", "change_id")}

    assert lite["indexes"] == pg["indexes"]
    assert "ledger_nodes_born" not in lite["indexes"]  # schema 7: the nodes' key is that order
    assert {t for t in pg["triggers"] if not t.endswith("_no_truncate")} == lite["triggers"]
    guarded = {"disclosures", "ledger_nodes", "checkpoints", "access_log", "request_events"}
    assert lite["triggers"] == {f"{t}_no_{op}" for t in guarded for op in ("update", "delete")}
    assert pg["triggers"] - lite["triggers"] == {f"{t}_no_truncate" for t in guarded}


# -- schema 7: ledger tables keyed in append order ------------------------------------------------------

def _numbered(sql: str) -> str:
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{p}" for i, p in enumerate(parts[1:], start=1))


async def _v6_ledger(
    kind: str, target: str, n: int, signer: CheckpointSigner, monkeypatch: pytest.MonkeyPatch
) -> tuple[bytes, list[DisclosureEntry]]:
    """A database at schema 6 holding a ledger of ``n`` entries and a signed checkpoint, written with raw SQL
    in the layout of schema 6 (values keyed by entry id, nodes by (level, idx) beside an index on born);
    returns the tree's root and the entries."""
    entries = [make_entry(i) for i in range(n)]
    frontier = Frontier.empty()
    tree = R.tree_rows(frontier, entries)
    signed = signer.sign(Checkpoint(ORIGIN, frontier.size, frontier.root(), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))
    cp = (signed.checkpoint.size, signed.checkpoint.root, signed.to_json()["timestamp"], ORIGIN, signed.key_id,
          signed.signature)
    statements: list[tuple[str, list[tuple[Any, ...]]]] = [
        (R.insert_sql("disclosures", R.DISCLOSURE_COLUMNS, R.qmark), tree.leaves),
        ("INSERT INTO entry_values(entry_id, values_ct) VALUES (?, ?)",
         [(entries[i].id, ct) for i, ct in tree.values]),
        ("INSERT INTO ledger_nodes(level, idx, born, hash) VALUES (?, ?, ?, ?)", tree.nodes),
        ("UPDATE ledger_head SET size=?, frontier=? WHERE id=1", [(frontier.size, frontier.to_bytes())]),
        (R.insert_sql("checkpoints", R.CHECKPOINT_COLUMNS, R.qmark), [cp]),
    ]
    if kind == "sqlite":
        conn = sqlite3.connect(target, isolation_level=None)
        with monkeypatch.context() as m:
            m.setattr(sqlite_migrations, "MIGRATIONS", sqlite_migrations.MIGRATIONS[:6])
            assert sqlite_migrations.migrate(conn) == 6
        for sql, rows in statements:
            conn.executemany(sql, rows)
        conn.close()
        return frontier.root(), entries
    pg = await asyncpg.connect(target)
    try:
        with monkeypatch.context() as m:
            m.setattr(pg_migrations, "MIGRATIONS", pg_migrations.MIGRATIONS[:6])
            m.setattr(pg_migrations, "LATEST", 6)
            assert await pg_migrations.migrate(pg) == 6
        for sql, rows in statements:
            await pg.executemany(_numbered(sql), rows)
    finally:
        await pg.close()
    return frontier.root(), entries


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_schema_7_rewrites_the_ledger_in_place_and_it_verifies_with_the_same_root(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nodes re-keyed by (born, level), values by leaf index: the same rows, the same root, the same signed
    checkpoint, every proof node found by its (level, idx), and a purge still deletes the right values."""
    target = str(tmp_path / "v6.db") if kind == "sqlite" else request.getfixturevalue("pg_empty_dsn")
    n = 37
    signer = CheckpointSigner.generate()
    root, entries = await _v6_ledger(kind, target, n, signer, monkeypatch)
    store: SqliteStore | PostgresStore = SqliteStore(target) if kind == "sqlite" else await PostgresStore.open(target)
    try:
        assert store.schema_version == sqlite_migrations.MIGRATIONS[-1][0]
        head = await store.head()
        assert (head.size, head.root()) == (n, root)
        report = await verify_store(store, signer.public_key, batch=8)
        assert (report.ok, report.entries, report.checkpoints) == (True, n, 1), report
        stored = await store.disclosures(DisclosureFilter(limit=100))
        assert [e.values_ct for e in stored] == [e.values_ct for e in entries]
        for index in (0, 5, n - 1):
            wanted: list[tuple[int, int]] = []

            def record(level: int, idx: int) -> bytes:
                wanted.append((level, idx))
                return b"\0" * 32

            inclusion_proof(record, index, n)
            found = await store.nodes(wanted)
            assert set(found) == set(wanted)
            proof = inclusion_proof(lambda lv, ix: found[(lv, ix)], index, n)
            assert verify_inclusion(stored[index].leaf_hash or b"", index, n, proof, root)
        assert await store.purge_values([entries[5].id, "no-such-entry"]) == 1
        purged = await store.disclosure(entries[5].id)
        assert purged is not None and purged.values_purged
        assert (await verify_store(store, signer.public_key, batch=8)).ok
        await store.append([make_entry(n, tag="new")])  # appends go on in the new layout
        assert (await verify_store(store, signer.public_key, batch=8)).entries == n + 1
    finally:
        await store.close()


async def test_schema_7_keys_the_ledger_in_append_order(tmp_path: Path, pg_dsn: str) -> None:
    """SQLite stores the nodes WITHOUT ROWID; both key nodes by (born, level) and values by leaf index."""
    await (SqliteStore(tmp_path / "a.db")).close()
    conn = sqlite3.connect(tmp_path / "a.db")
    try:
        (ddl,) = conn.execute("SELECT sql FROM sqlite_master WHERE name='ledger_nodes'").fetchone()
        assert ddl.rstrip().endswith("WITHOUT ROWID")
        lite = {t: [r[1] for r in sorted(conn.execute(f"PRAGMA table_info({t})"), key=lambda r: r[5]) if r[5]]
                for t in ("ledger_nodes", "entry_values")}
    finally:
        conn.close()
    pg = await asyncpg.connect(pg_dsn)
    try:
        keys = {r["table"]: list(r["columns"]) for r in await pg.fetch(
            "SELECT c.conrelid::regclass::text AS table, array_agg(a.attname ORDER BY k.n) AS columns "
            "FROM pg_constraint c CROSS JOIN unnest(c.conkey) WITH ORDINALITY AS k(attnum, n) "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
            "WHERE c.contype = 'p' AND c.conrelid::regclass::text IN ('ledger_nodes', 'entry_values') "
            "GROUP BY c.conrelid, c.conname")}
        names = {r["conname"] for r in await pg.fetch(
            "SELECT conname FROM pg_constraint WHERE conrelid::regclass::text IN ('ledger_nodes', 'entry_values')")}
    finally:
        await pg.close()
    assert lite == keys == {"ledger_nodes": ["born", "level"], "entry_values": ["leaf_index"]}
    assert names == {"ledger_nodes_pkey", "entry_values_pkey", "entry_values_leaf_index_fkey"}


@pytest.mark.parametrize("attempt", range(3))
def test_processes_opening_a_new_sqlite_file_at_once_migrate_it_once(tmp_path: Path, attempt: int) -> None:
    """An API and its ``gateway worker`` started together on a new file: each reads version 0, and the one
    that waited for the write lock must see the other's migrations before applying them again (it used to
    fail with "duplicate column name" or "table already exists")."""
    path = tmp_path / f"race-{attempt}.db"
    start = threading.Barrier(4)
    versions: list[int] = []
    errors: list[BaseException] = []

    def open_and_migrate() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30)  # each thread: a process of its own
        try:
            start.wait(10)
            versions.append(sqlite_migrations.migrate(conn))
        except BaseException as e:
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=open_and_migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and versions == [sqlite_migrations.MIGRATIONS[-1][0]] * 4
    conn = sqlite3.connect(path)
    try:
        applied = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    finally:
        conn.close()
    assert applied == [v for v, _ in sqlite_migrations.MIGRATIONS]
