"""Assigning data-subject requests (``gateway.store.requests_extra``) on PostgreSQL: one READ COMMITTED
transaction through the store's ``_write`` (retried if the server aborts it), the row locked while read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

from gateway.store import requests_extra as X
from gateway.store.accounts import dollar

T = TypeVar("T")

_SELECT = dollar(X.SELECT_ASSIGNEE + " FOR UPDATE")
_SET = dollar(X.SET_ASSIGNEE)
_EVENT = dollar(X.INSERT_EVENT)


class _Base(Protocol):
    """What the mixin uses of ``PostgresStore``."""

    async def _write(self, fn: Callable[[Any], Awaitable[T]]) -> T: ...


class PostgresRequestsExtra:
    """Mixed into ``PostgresStore`` (``RequestExtraStore``)."""

    async def assign_request(self, request_id: str, assignee: str | None, *, at: str, actor: str) -> bool:
        async def run(c: Any) -> bool:
            row = await c.fetchrow(_SELECT, request_id)
            if row is None:
                return False
            await c.execute(_SET, assignee, request_id)
            await c.execute(_EVENT, *X.assigned_event(request_id, at, actor, assignee, row["assignee"]))
            return True

        return await cast(_Base, self)._write(run)
