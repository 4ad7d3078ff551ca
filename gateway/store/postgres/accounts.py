"""Staff accounts, sessions and failed log-ins (``gateway.store.accounts``) on PostgreSQL: the shared SQL
renumbered for asyncpg, each write one READ COMMITTED transaction on a connection of the store's pool."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import asyncpg  # type: ignore[import-untyped]

from gateway.store import accounts as A
from gateway.store.accounts import StaffAccount, StaffSession

T = TypeVar("T")

_D = A.dollar


def _count(status: str) -> int:
    """Rows affected, from a command tag such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


class PostgresAccounts:
    """Mixed into ``PostgresStore`` (``AccountStore``); relies on its asyncpg pool (``_pool``)."""

    def _acct_pool(self) -> Any:
        return cast(Any, self)._pool

    async def _acct_write(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        async with self._acct_pool().acquire() as conn, conn.transaction(isolation="read_committed"):
            return await fn(conn)

    async def _acct_rows(self, sql: str, *args: Any) -> list[Any]:
        return list(await self._acct_pool().fetch(_D(sql), *args))

    async def add_account(self, account: StaffAccount) -> bool:
        status: str = await self._acct_pool().execute(_D(A.INSERT_ACCOUNT), *A.account_values(account))
        return _count(status) == 1

    async def account(self, name: str) -> StaffAccount | None:
        rows = await self._acct_rows(A.SELECT_ACCOUNT, name)
        return A.account_from_row(rows[0]) if rows else None

    async def account_by_oidc(self, subject: str) -> StaffAccount | None:
        rows = await self._acct_rows(A.SELECT_ACCOUNT_BY_OIDC, subject)
        return A.account_from_row(rows[0]) if rows else None

    async def accounts(self) -> list[StaffAccount]:
        return [A.account_from_row(r) for r in await self._acct_rows(A.SELECT_ACCOUNTS)]

    async def update_account(self, name: str, changes: Mapping[str, Any], *, revoke_sessions_at: str | None = None,
                             keep_session: str | None = None) -> bool:
        columns = list(changes)
        sql = _D(A.update_account_sql(columns)) if columns else None

        async def run(c: Any) -> bool:
            if sql is not None:
                values = [int(v) if isinstance(v, bool) else v for v in changes.values()]
                try:
                    found = _count(await c.execute(sql, *values, name)) == 1
                except asyncpg.UniqueViolationError:
                    raise A.oidc_conflict() from None
            else:
                found = await c.fetchrow(_D(A.SELECT_ACCOUNT), name) is not None
            if found and revoke_sessions_at is not None:
                await c.execute(_D(A.REVOKE_SESSIONS), revoke_sessions_at, name, keep_session or "")
            return found

        return await self._acct_write(run)

    async def start_session(self, session: StaffSession) -> None:
        await self._acct_pool().execute(_D(A.INSERT_SESSION), *A.session_values(session))

    async def session_with_account(self, session_id: str) -> tuple[StaffSession, StaffAccount] | None:
        rows = await self._acct_rows(A.SELECT_SESSION_WITH_ACCOUNT, session_id)
        return (A.session_from_row(rows[0]), A.account_from_row(rows[0], "a_")) if rows else None

    async def touch_session(self, session_id: str, at: str) -> None:
        await self._acct_pool().execute(_D(A.TOUCH_SESSION), at, session_id)

    async def revoke_session(self, session_id: str, at: str) -> bool:
        return _count(await self._acct_pool().execute(_D(A.REVOKE_SESSION), at, session_id)) == 1

    async def revoke_sessions(self, account: str, at: str, *, keep: str | None = None) -> int:
        return _count(await self._acct_pool().execute(_D(A.REVOKE_SESSIONS), at, account, keep or ""))

    async def live_sessions(self, account: str, now: str) -> list[StaffSession]:
        return [A.session_from_row(r) for r in await self._acct_rows(A.SELECT_LIVE_SESSIONS, account, now)]

    async def add_login_failure(self, keys: Sequence[str], at: str) -> None:
        await self._acct_pool().executemany(_D(A.INSERT_FAILURE), [(k, at) for k in keys])

    async def login_failures(self, keys: Sequence[str], since: str) -> dict[str, int]:
        if not keys:
            return {}
        rows = await self._acct_rows(A.count_failures_sql(len(keys)), since, *keys)
        return {r["key"]: int(r["n"]) for r in rows}

    async def clear_login_failures(self, keys: Sequence[str], *, before: str | None = None) -> None:
        async def run(c: Any) -> None:
            if keys:
                await c.execute(_D(A.delete_failures_sql(len(keys))), *keys)
            if before is not None:
                await c.execute(_D(A.DELETE_OLD_FAILURES), before)

        await self._acct_write(run)
