"""The store fixtures of ``tests/store`` (SQLite and a throwaway PostgreSQL), for the ledger's own store tests.

Re-exported rather than redefined, so the verifier's findings run against both stores exactly as the
tamper tests do.  The PostgreSQL cluster is session-scoped per conftest: running these next to
``tests/store`` starts a second, short-lived cluster.
"""

from tests.store.conftest import pg_cluster, pg_dsn, raw, store, store_spec

__all__ = ["pg_cluster", "pg_dsn", "raw", "store", "store_spec"]
