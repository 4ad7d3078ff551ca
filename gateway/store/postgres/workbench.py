"""The privacy workbench's reads (``gateway.store.workbench``) on PostgreSQL: ``$n`` placeholders, each
statement run on a connection from the store's pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from gateway.store import rows as R
from gateway.store.workbench import WorkbenchReads


class PostgresWorkbench(WorkbenchReads):
    """Mixed into ``PostgresStore``; relies on its asyncpg pool (``_pool``)."""

    @staticmethod
    def _wb_mark(n: int) -> str:
        return R.dollar(n)

    async def _wb_rows(self, sql: str, values: Sequence[Any]) -> Sequence[Any]:
        pool = cast(Any, self)._pool
        rows: Sequence[Any] = await pool.fetch(sql, *values)
        return rows
