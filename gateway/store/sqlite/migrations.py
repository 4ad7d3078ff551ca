"""Versioned schema migrations for the embedded SQLite store.

The tables are the shared schema (``gateway.store.schema``) in SQLite's spelling.  Each migration runs
once, in its own transaction, and is recorded in ``schema_version``; a store written by a newer gateway
refuses to open with an older one rather than guess.
"""

from __future__ import annotations

import sqlite3

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


def _append_only(table: str, message: str) -> str:
    """Triggers that abort any UPDATE or DELETE on ``table`` (SQLite has no TRUNCATE)."""
    return "\n        ".join(
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table}\n"
        f"            BEGIN SELECT RAISE(ABORT, '{message}'); END;"
        for op in ("UPDATE", "DELETE")
    )


SQLITE = Dialect(
    text="TEXT",
    blob="BLOB",
    bigint="INTEGER",  # SQLite's INTEGER is 64-bit; as a PRIMARY KEY it is the rowid itself
    serial="INTEGER PRIMARY KEY AUTOINCREMENT",
    empty_frontier="X'010000000000000000'",
    routines="",
    append_only=_append_only,
)

#: SQLite cannot alter a CHECK constraint: migration 5 copies the outbox into a table whose ``state`` takes
#: the new states, with the columns in the order PostgreSQL has them after its ALTERs.
_OUTBOX_COLUMNS_V5 = (
    "id, registration_id, recipient, subject_id, purpose, required, batch, state, attempts, payload_ct, "
    "payload_digest, transfer_json, fields_json, next_attempt_at, last_code, updated_at, change_id, request_id, "
    "claim_token, lease_until, progress_json, parked_reason, deadline_at"
)
_OUTBOX_REBUILD = f"""
        CREATE TABLE outbox_v5 (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            registration_id TEXT NOT NULL REFERENCES registrations(id),
            recipient       TEXT NOT NULL,
            subject_id      TEXT,
            purpose         TEXT NOT NULL,
            required        INTEGER NOT NULL DEFAULT 1,
            batch           INTEGER NOT NULL DEFAULT 0,
            state           TEXT NOT NULL CHECK (state IN ({", ".join(f"'{s}'" for s in OUTBOX_STATES)})),
            attempts        INTEGER NOT NULL DEFAULT 0,
            payload_ct      BLOB NOT NULL,
            payload_digest  TEXT NOT NULL,
            transfer_json   TEXT NOT NULL,
            fields_json     TEXT NOT NULL,
            next_attempt_at TEXT NOT NULL,
            last_code       TEXT,
            updated_at      TEXT NOT NULL,
            change_id       TEXT NOT NULL DEFAULT '',
            request_id      TEXT,
            claim_token     TEXT,
            lease_until     TEXT,
            progress_json   TEXT,
            parked_reason   TEXT,
            deadline_at     TEXT,
            UNIQUE (registration_id, recipient, change_id)
        );
        INSERT INTO outbox_v5 ({_OUTBOX_COLUMNS_V5}) SELECT {_OUTBOX_COLUMNS_V5} FROM outbox;
        DROP TABLE outbox;
        ALTER TABLE outbox_v5 RENAME TO outbox;
        CREATE INDEX outbox_due ON outbox(batch, state, next_attempt_at);
"""  # noqa: S608 (constants only)

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, schema_v1(SQLITE)),
    (2, schema_v2(SQLITE)),
    (3, schema_v3(SQLITE)),
    (4, schema_v4(SQLITE)),
    (5, schema_v5(SQLITE, _OUTBOX_REBUILD)),
    (6, schema_v6(SQLITE)),
    (7, schema_v7(SQLITE, " WITHOUT ROWID", "")),
    (8, schema_v8(SQLITE)),
    (9, schema_v9(SQLITE)),
)


def migrate(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    current = int(row[0])
    refuse_newer(current, MIGRATIONS[-1][0])
    for version, sql in MIGRATIONS:
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # read again under the write lock: another process opening the same file at the same moment (an
            # API and its ``gateway worker``) may have applied this version while we waited for the lock
            done = int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0])
            if done >= version:
                conn.execute("COMMIT")
                current = done
                continue
            for statement in _split(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version(version, applied_at) VALUES (?, datetime('now'))", (version,)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current


def _split(sql: str) -> list[str]:
    """Split on ';' outside trigger bodies (sqlite3.complete_statement knows BEGIN…END)."""
    out: list[str] = []
    buf = ""
    for line in sql.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
