"""Assigning data-subject requests (``gateway.store.requests_extra``) on SQLite: one job of the store's
writer, in its transaction (``_tx``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar, cast

from gateway.store import requests_extra as X

T = TypeVar("T")


class _Base(Protocol):
    """What the mixin uses of ``SqliteStore``."""

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...
    async def _write(self, fn: Callable[[], T]) -> T: ...


class SqliteRequestsExtra:
    """Mixed into ``SqliteStore`` (``RequestExtraStore``)."""

    async def assign_request(self, request_id: str, assignee: str | None, *, at: str, actor: str) -> bool:
        base = cast(_Base, self)

        def run() -> bool:
            with base._tx() as c:
                row: Any = c.execute(X.SELECT_ASSIGNEE, (request_id,)).fetchone()
                if row is None:
                    return False
                c.execute(X.SET_ASSIGNEE, (assignee, request_id))
                c.execute(X.INSERT_EVENT, X.assigned_event(request_id, at, actor, assignee, row[0]))
                return True

        return await base._write(run)
