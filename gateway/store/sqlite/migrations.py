"""Versioned schema migrations for the embedded SQLite store.

The tables are the shared schema (``gateway.store.schema``) in SQLite's spelling.  Each migration runs
once, in its own transaction, and is recorded in ``schema_version``; a store written by a newer gateway
refuses to open with an older one rather than guess.
"""

from __future__ import annotations

import sqlite3

from gateway.store.schema import Dialect, refuse_newer, schema_v1, schema_v2, schema_v3, schema_v4


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

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, schema_v1(SQLITE)),
    (2, schema_v2(SQLITE)),
    (3, schema_v3(SQLITE)),
    (4, schema_v4(SQLITE)),
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
