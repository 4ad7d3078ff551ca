"""Staff accounts, sessions and failed log-ins (``gateway.store.accounts``) on SQLite: the shared SQL with
``?`` placeholders, writes in the store's transactions (``_tx``), reads through its read path (``_read``),
both run off the event loop (``_run``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar, cast

from gateway.store import accounts as A
from gateway.store.accounts import StaffAccount, StaffSession

T = TypeVar("T")


class _Base(Protocol):
    """What the mixin uses of ``SqliteStore``."""

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]: ...
    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]: ...
    async def _run(self, fn: Callable[[], T]) -> T: ...


class SqliteAccounts:
    """Mixed into ``SqliteStore`` (``AccountStore``)."""

    def _acct_base(self) -> _Base:
        return cast(_Base, self)

    async def _acct_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        base = self._acct_base()

        def run() -> T:
            with base._tx() as c:
                return fn(c)

        return await base._run(run)

    async def _acct_rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        base = self._acct_base()
        return await base._run(lambda: base._read(sql, params))

    async def add_account(self, account: StaffAccount) -> bool:
        return await self._acct_write(lambda c: c.execute(A.INSERT_ACCOUNT, A.account_values(account)).rowcount == 1)

    async def account(self, name: str) -> StaffAccount | None:
        rows = await self._acct_rows(A.SELECT_ACCOUNT, (name,))
        return A.account_from_row(rows[0]) if rows else None

    async def account_by_oidc(self, subject: str) -> StaffAccount | None:
        rows = await self._acct_rows(A.SELECT_ACCOUNT_BY_OIDC, (subject,))
        return A.account_from_row(rows[0]) if rows else None

    async def accounts(self) -> list[StaffAccount]:
        return [A.account_from_row(r) for r in await self._acct_rows(A.SELECT_ACCOUNTS)]

    async def update_account(self, name: str, changes: Mapping[str, Any], *, revoke_sessions_at: str | None = None,
                             keep_session: str | None = None) -> bool:
        columns = list(changes)
        sql = A.update_account_sql(columns) if columns else None

        def run(c: sqlite3.Connection) -> bool:
            if sql is not None:
                values = tuple(int(v) if isinstance(v, bool) else v for v in changes.values())
                try:
                    found = c.execute(sql, (*values, name)).rowcount == 1
                except sqlite3.IntegrityError:
                    raise A.oidc_conflict() from None
            else:
                found = c.execute(A.SELECT_ACCOUNT, (name,)).fetchone() is not None
            if found and revoke_sessions_at is not None:
                c.execute(A.REVOKE_SESSIONS, (revoke_sessions_at, name, keep_session or ""))
            return found

        return await self._acct_write(run)

    async def start_session(self, session: StaffSession) -> None:
        await self._acct_write(lambda c: c.execute(A.INSERT_SESSION, A.session_values(session)))

    async def session_with_account(self, session_id: str) -> tuple[StaffSession, StaffAccount] | None:
        rows = await self._acct_rows(A.SELECT_SESSION_WITH_ACCOUNT, (session_id,))
        return (A.session_from_row(rows[0]), A.account_from_row(rows[0], "a_")) if rows else None

    async def touch_session(self, session_id: str, at: str) -> None:
        await self._acct_write(lambda c: c.execute(A.TOUCH_SESSION, (at, session_id)))

    async def revoke_session(self, session_id: str, at: str) -> bool:
        return await self._acct_write(lambda c: c.execute(A.REVOKE_SESSION, (at, session_id)).rowcount == 1)

    async def revoke_sessions(self, account: str, at: str, *, keep: str | None = None) -> int:
        return await self._acct_write(lambda c: c.execute(A.REVOKE_SESSIONS, (at, account, keep or "")).rowcount)

    async def live_sessions(self, account: str, now: str) -> list[StaffSession]:
        return [A.session_from_row(r) for r in await self._acct_rows(A.SELECT_LIVE_SESSIONS, (account, now))]

    async def add_login_failure(self, keys: Sequence[str], at: str) -> None:
        await self._acct_write(lambda c: c.executemany(A.INSERT_FAILURE, [(k, at) for k in keys]))

    async def login_failures(self, keys: Sequence[str], since: str) -> dict[str, int]:
        if not keys:
            return {}
        rows = await self._acct_rows(A.count_failures_sql(len(keys)), (since, *keys))
        return {r["key"]: int(r["n"]) for r in rows}

    async def clear_login_failures(self, keys: Sequence[str], *, before: str | None = None) -> None:
        def run(c: sqlite3.Connection) -> None:
            if keys:
                c.execute(A.delete_failures_sql(len(keys)), tuple(keys))
            if before is not None:
                c.execute(A.DELETE_OLD_FAILURES, (before,))

        await self._acct_write(run)
