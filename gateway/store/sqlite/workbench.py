"""The privacy workbench's reads (``gateway.store.workbench``) on SQLite: ``?`` placeholders, and each
statement run through the store's own read path (``_run`` / ``_read``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from gateway.store import rows as R
from gateway.store.workbench import WorkbenchReads


class SqliteWorkbench(WorkbenchReads):
    """Mixed into ``SqliteStore``; relies on its ``_run(fn)`` and ``_read(sql, params)``."""

    @staticmethod
    def _wb_mark(n: int) -> str:
        return R.qmark(n)

    async def _wb_rows(self, sql: str, values: Sequence[Any]) -> Sequence[Any]:
        store = cast(Any, self)
        params = tuple(values)
        rows: Sequence[Any] = await store._run(lambda: store._read(sql, params))
        return rows
