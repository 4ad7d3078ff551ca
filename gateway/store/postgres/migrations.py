"""Versioned schema migrations for the PostgreSQL store.

The same tables and columns as the SQLite schema: both render the shared schema
(``gateway.store.schema``), here with BYTEA for blobs and BIGINT for leaf indexes and sizes.  Timestamps
stay TEXT (ISO strings), exactly as in SQLite, so a row read back from either store yields the same leaf
bytes.  Every TEXT column uses the "C" collation (but ``outbox.change_id``, see ``schema``): ordering
and range comparisons (``next_attempt_at <= now``, ``recorded_at >= since``, ``ORDER BY id``) are then
byte-wise, as SQLite's BINARY collation is, whatever locale the cluster was initialised with.

Each migration runs once, in its own transaction, and is recorded in ``schema_version``.  The caller
holds a session-level advisory lock for the whole run, so several gateway processes starting at once
against an empty database migrate it exactly once; a database written by a newer gateway refuses to
open with an older one rather than guess.
"""

from __future__ import annotations

from typing import Any

from gateway.store.schema import (
    OUTBOX_STATES,
    Dialect,
    refuse_newer,
    schema_v1,
    schema_v2,
    schema_v3,
    schema_v4,
    schema_v5,
    schema_v6,
    schema_v7,
    schema_v8,
    schema_v9,
)

#: Key of the session-level advisory lock held while migrating (one-key space, "RGWMIGR1").
MIGRATION_LOCK_KEY = 0x5247574D49475231


def _append_only(table: str, message: str) -> str:
    """Triggers that reject every UPDATE, DELETE and TRUNCATE on ``table`` through ``gateway_append_only``."""
    return "\n        ".join(
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}\n"
        f"            FOR EACH {each} EXECUTE FUNCTION gateway_append_only('{message}');"
        for op, each in (("UPDATE", "ROW"), ("DELETE", "ROW"), ("TRUNCATE", "STATEMENT"))
    )


POSTGRES = Dialect(
    text='TEXT COLLATE "C"',
    blob="BYTEA",
    bigint="BIGINT",
    serial="BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    empty_frontier="decode('010000000000000000', 'hex')",
    routines="""-- Rejects every UPDATE, DELETE and TRUNCATE on the table it guards; TG_ARGV[0] is the message.
        CREATE FUNCTION gateway_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
        END
        $$;
""",
    append_only=_append_only,
)

#: Migration 7 rebuilds two tables as copies: their keys take the names the originals had.
_V7_KEY_NAMES = """
        ALTER TABLE ledger_nodes RENAME CONSTRAINT ledger_nodes_v7_pkey TO ledger_nodes_pkey;
        ALTER TABLE entry_values RENAME CONSTRAINT entry_values_v7_pkey TO entry_values_pkey;
        ALTER TABLE entry_values RENAME CONSTRAINT entry_values_v7_leaf_index_fkey TO entry_values_leaf_index_fkey;
"""

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, schema_v1(POSTGRES)),
    (2, schema_v2(POSTGRES)),
    (3, schema_v3(POSTGRES)),
    (4, schema_v4(POSTGRES)),
    (5, schema_v5(POSTGRES, "ALTER TABLE outbox DROP CONSTRAINT outbox_state_check; ALTER TABLE outbox ADD CONSTRAINT "
                            f"outbox_state_check CHECK (state IN ({', '.join(repr(s) for s in OUTBOX_STATES)}));")),
    (6, schema_v6(POSTGRES)),
    (7, schema_v7(POSTGRES, "", _V7_KEY_NAMES)),
    (8, schema_v8(POSTGRES)),
    (9, schema_v9(POSTGRES)),
)
LATEST = MIGRATIONS[-1][0]


async def migrate(conn: Any) -> int:
    """Bring the database on ``conn`` (an ``asyncpg.Connection``) up to date; returns its schema version.

    Holds a session-level advisory lock throughout, so concurrent callers wait for whoever got there
    first and then find nothing left to do.
    """
    await conn.execute("SELECT pg_advisory_lock($1::bigint)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
        refuse_newer(current, LATEST)
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            async with conn.transaction():
                await conn.execute(sql)  # no arguments: the simple protocol runs the whole script
                await conn.execute("INSERT INTO schema_version(version) VALUES ($1)", version)
            current = version
        return current
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1::bigint)", MIGRATION_LOCK_KEY)
