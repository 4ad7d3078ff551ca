"""The shared store for several instances: PostgreSQL through asyncpg, with its own migrations."""

from gateway.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
