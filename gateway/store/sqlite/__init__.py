"""The embedded store: SQLite in WAL mode, with its own versioned migrations."""

from gateway.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
