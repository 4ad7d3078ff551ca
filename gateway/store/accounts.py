"""Staff accounts, their sessions and failed log-ins (schema 8): the store's contract and the SQL both
stores share.

Sessions live in the store rather than in a signed cookie so that any gateway instance can end one at
once: a log-out, an admin's revocation or a disabled account is seen by every instance at the next
request, not when a cookie expires.  The cookie holds only a random value; the store keeps its SHA-256
(``staff_sessions.id``), so reading the table logs no one in.

The SQL is written once with ``?`` placeholders; ``dollar`` renumbers them for asyncpg.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import AccountConflict

#: Columns an account update may set (anything else is a programming error, refused before any SQL).
ACCOUNT_UPDATABLE = frozenset({"display_name", "password_hash", "role", "is_admin", "lang", "disabled_at",
                               "oidc_subject"})


@dataclass(frozen=True)
class StaffAccount:
    """One person's staff account.  ``password_hash`` is argon2id (None: log-in through OpenID Connect
    only); ``disabled_at`` set means the account can no longer log in and has no live session."""

    name: str
    display_name: str
    role: str
    is_admin: bool
    lang: str
    created_at: str
    password_hash: str | None = None
    disabled_at: str | None = None
    oidc_subject: str | None = None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True)
class StaffSession:
    """A server-side session; ``id`` is the SHA-256 (hex) of the cookie value, never the value itself."""

    id: str
    account: str
    created_at: str
    last_seen_at: str
    expires_at: str
    revoked_at: str | None = None
    user_agent: str | None = None


class AccountStore(Protocol):
    """What the account service needs from the store.  Every write is one transaction; updates that end an
    account's use (disabling it, a new password) revoke its sessions in that same transaction."""

    async def add_account(self, account: StaffAccount) -> bool:
        """False (writing nothing) if the name or the OpenID Connect subject is taken."""
        ...

    async def account(self, name: str) -> StaffAccount | None: ...
    async def account_by_oidc(self, subject: str) -> StaffAccount | None: ...
    async def accounts(self) -> list[StaffAccount]: ...

    async def update_account(self, name: str, changes: Mapping[str, Any], *, revoke_sessions_at: str | None = None,
                             keep_session: str | None = None) -> bool:
        """Set ``changes`` (columns of ``ACCOUNT_UPDATABLE``); with ``revoke_sessions_at``, end every live session
        of the account but ``keep_session`` at that time.  False if there is no such account; raises
        ``AccountConflict`` if the OpenID Connect subject belongs to another account."""
        ...

    async def start_session(self, session: StaffSession) -> None: ...
    async def session_with_account(self, session_id: str) -> tuple[StaffSession, StaffAccount] | None: ...
    async def touch_session(self, session_id: str, at: str) -> None: ...
    async def revoke_session(self, session_id: str, at: str) -> bool: ...
    async def revoke_sessions(self, account: str, at: str, *, keep: str | None = None) -> int: ...
    async def live_sessions(self, account: str, now: str) -> list[StaffSession]: ...

    async def add_login_failure(self, keys: Sequence[str], at: str) -> None: ...
    async def login_failures(self, keys: Sequence[str], since: str) -> dict[str, int]:
        """Failures per key at or after ``since`` (keys without any are absent)."""
        ...

    async def clear_login_failures(self, keys: Sequence[str], *, before: str | None = None) -> None:
        """Forget the failures of ``keys`` (after a good log-in), and everyone's older than ``before``."""
        ...


_ACCOUNT_COLUMNS = ("name, display_name, role, is_admin, lang, created_at, password_hash, disabled_at, "
                    "oidc_subject")
_SESSION_COLUMNS = "id, account, created_at, last_seen_at, expires_at, revoked_at, user_agent"

INSERT_ACCOUNT = (f"INSERT INTO staff_accounts ({_ACCOUNT_COLUMNS}) VALUES "  # noqa: S608
                  "(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
SELECT_ACCOUNT = f"SELECT {_ACCOUNT_COLUMNS} FROM staff_accounts WHERE name = ?"  # noqa: S608
SELECT_ACCOUNT_BY_OIDC = f"SELECT {_ACCOUNT_COLUMNS} FROM staff_accounts WHERE oidc_subject = ?"  # noqa: S608
SELECT_ACCOUNTS = f"SELECT {_ACCOUNT_COLUMNS} FROM staff_accounts ORDER BY name"  # noqa: S608
INSERT_SESSION = f"INSERT INTO staff_sessions ({_SESSION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
SELECT_SESSION_WITH_ACCOUNT = (
    f"SELECT {', '.join('s.' + c.strip() for c in _SESSION_COLUMNS.split(','))}, "  # noqa: S608
    f"{', '.join('a.' + c.strip() + ' AS a_' + c.strip() for c in _ACCOUNT_COLUMNS.split(','))} "
    "FROM staff_sessions s JOIN staff_accounts a ON a.name = s.account WHERE s.id = ?"
)
TOUCH_SESSION = "UPDATE staff_sessions SET last_seen_at = ? WHERE id = ? AND revoked_at IS NULL"
REVOKE_SESSION = "UPDATE staff_sessions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"
REVOKE_SESSIONS = "UPDATE staff_sessions SET revoked_at = ? WHERE account = ? AND revoked_at IS NULL AND id <> ?"
SELECT_LIVE_SESSIONS = (f"SELECT {_SESSION_COLUMNS} FROM staff_sessions WHERE account = ? "  # noqa: S608
                        "AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at")
INSERT_FAILURE = "INSERT INTO login_failures (key, at) VALUES (?, ?)"
DELETE_OLD_FAILURES = "DELETE FROM login_failures WHERE at < ?"


def count_failures_sql(n: int) -> str:
    return ("SELECT key, COUNT(*) AS n FROM login_failures WHERE at >= ? AND key IN ("  # noqa: S608
            f"{', '.join('?' * n)}) GROUP BY key")


def delete_failures_sql(n: int) -> str:
    return f"DELETE FROM login_failures WHERE key IN ({', '.join('?' * n)})"  # noqa: S608


def update_account_sql(columns: Sequence[str]) -> str:
    bad = set(columns) - ACCOUNT_UPDATABLE
    if bad or not columns:
        raise ValueError(f"not updatable: {sorted(bad)}")
    return f"UPDATE staff_accounts SET {', '.join(f'{c} = ?' for c in columns)} WHERE name = ?"  # noqa: S608


_QMARK = re.compile(r"\?")


def dollar(sql: str) -> str:
    """``?`` placeholders renumbered as asyncpg's ``$1, $2, …`` (the shared SQL holds no literal ``?``)."""
    counter = iter(range(1, 10_000))
    return _QMARK.sub(lambda _m: f"${next(counter)}", sql)


def account_values(a: StaffAccount) -> tuple[Any, ...]:
    return (a.name, a.display_name, a.role, int(a.is_admin), a.lang, a.created_at, a.password_hash, a.disabled_at,
            a.oidc_subject)


def session_values(s: StaffSession) -> tuple[Any, ...]:
    return (s.id, s.account, s.created_at, s.last_seen_at, s.expires_at, s.revoked_at, s.user_agent)


def account_from_row(r: Any, prefix: str = "") -> StaffAccount:
    return StaffAccount(
        name=r[f"{prefix}name"], display_name=r[f"{prefix}display_name"], role=r[f"{prefix}role"],
        is_admin=bool(r[f"{prefix}is_admin"]), lang=r[f"{prefix}lang"], created_at=r[f"{prefix}created_at"],
        password_hash=r[f"{prefix}password_hash"], disabled_at=r[f"{prefix}disabled_at"],
        oidc_subject=r[f"{prefix}oidc_subject"],
    )


def session_from_row(r: Any) -> StaffSession:
    return StaffSession(id=r["id"], account=r["account"], created_at=r["created_at"], last_seen_at=r["last_seen_at"],
                        expires_at=r["expires_at"], revoked_at=r["revoked_at"], user_agent=r["user_agent"])


def oidc_conflict() -> AccountConflict:
    return AccountConflict("that OpenID Connect identity is already linked to another account")
