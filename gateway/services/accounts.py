"""Named staff accounts: passwords (argon2id), log-in throttling, server-side sessions, and the rules for
managing accounts (the first admin, the last admin, who may be disabled).

The policy parts are pure functions (``login_keys``, ``throttled``, ``session_alive``, ``check_password``,
``check_name``); ``AccountService`` does the I/O around them against an ``AccountStore``.

Why these choices:

- argon2id through argon2-cffi's ``PasswordHasher`` (its defaults follow RFC 9106's recommendation); a
  hash made with older parameters is replaced at the next good log-in, so raising the cost needs no reset.
- A log-in spends the same work whatever goes wrong: an unknown name, an account without a password or a
  disabled one is checked against a dummy hash, and every failure gets the same answer, so neither the
  answer nor its timing tells whether an account exists.
- Throttling counts failures in the store (every instance sees them) per user name and per client address,
  both as SHA-256 digests: the table never lists names people tried.  Past the limit, nothing is checked
  until failures age out of the window, so a guess is not even tried.
- A session is a random cookie value; the store keeps only its SHA-256, and any instance ends a session by
  marking that row, so log-out, an admin's revocation and disabling an account act at once everywhere.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.clock import Clock, iso, utcnow
from gateway.errors import (
    AccountConflict,
    AccountNotFound,
    BadInput,
    LastAdmin,
    LoginFailed,
    LoginThrottled,
    WeakPassword,
)
from gateway.i18n import SUPPORTED, Lang
from gateway.store.accounts import AccountStore, StaffAccount, StaffSession

STAFF_ROLES = ("privacy", "auditor")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class ThrottlePolicy:
    """At most ``max_failures`` failed log-ins per user name and per client address in ``window_s``."""

    max_failures: int = 5
    window_s: int = 15 * 60


@dataclass(frozen=True)
class SessionPolicy:
    """A session lasts at most ``ttl_s`` and ends after ``idle_s`` without a request; ``touch_s`` is how
    stale ``last_seen_at`` may get before a request writes it again (a write per request would be waste)."""

    ttl_s: int = 8 * 3600
    idle_s: int = 3600
    touch_s: int = 60


# -- pure policy ---------------------------------------------------------------------------------------------

def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def login_keys(name: str, address: str | None) -> tuple[str, ...]:
    """The throttling keys of a log-in attempt: its user name (case-folded) and its client address, hashed."""
    keys = [f"name:{_digest(name.strip().casefold())}"]
    if address:
        keys.append(f"addr:{_digest(address)}")
    return tuple(keys)


def throttled(failures: Mapping[str, int], keys: Sequence[str], policy: ThrottlePolicy) -> bool:
    return any(failures.get(k, 0) >= policy.max_failures for k in keys)


def session_alive(session: StaffSession, account: StaffAccount, now: dt.datetime, policy: SessionPolicy) -> bool:
    """Whether a stored session still logs its account in at ``now``."""
    if session.revoked_at is not None or not account.active or account.role not in STAFF_ROLES:
        return False
    if session.expires_at <= iso(now):
        return False
    return session.last_seen_at > iso(now - dt.timedelta(seconds=policy.idle_s))


def check_password(password: str) -> str:
    """The password if acceptable (length only: NIST SP 800-63B; no composition rules), else ``WeakPassword``."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise WeakPassword(f"a password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long")
    return password


def check_name(name: str) -> str:
    """A log-in name: lower-case letters, digits, '.', '_' and '-', starting with a letter or digit."""
    clean = name.strip().lower()
    if not _NAME.match(clean):
        raise BadInput("a user name is 1 to 63 lower-case letters, digits, '.', '_' or '-' "
                       "(starting with a letter or digit)")
    return clean


def check_role(role: str) -> str:
    if role not in STAFF_ROLES:
        raise BadInput(f"a staff role is one of: {', '.join(STAFF_ROLES)}")
    return role


def check_lang(lang: str) -> Lang:
    for s in SUPPORTED:
        if lang == s:
            return s
    raise BadInput(f"a language is one of: {', '.join(SUPPORTED)}")


def session_id(cookie_value: str) -> str:
    """The stored id of a session: SHA-256 of its cookie value."""
    return _digest(cookie_value)


# -- the service ---------------------------------------------------------------------------------------------

class AccountService:
    def __init__(
        self, store: AccountStore, *, hasher: PasswordHasher | None = None, clock: Clock = utcnow,
        throttle: ThrottlePolicy | None = None, sessions: SessionPolicy | None = None,
    ) -> None:
        self.store = store
        self.hasher = hasher or PasswordHasher()
        self.clock = clock
        self.throttle = throttle or ThrottlePolicy()
        self.sessions = sessions or SessionPolicy()

    @cached_property
    def _dummy_hash(self) -> str:
        """What an unknown name's password is checked against, so that failure costs what a wrong password does."""
        return self.hasher.hash(secrets.token_urlsafe(24))

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def _verify(self, stored: str | None, password: str) -> bool:
        def run() -> bool:
            try:
                return self.hasher.verify(stored or self._dummy_hash, password) and stored is not None
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(run)

    # -- accounts --------------------------------------------------------------------------------------------

    async def add(self, name: str, *, role: str, display_name: str | None = None, password: str | None = None,
                  is_admin: bool = False, lang: str = "sv", oidc_subject: str | None = None) -> StaffAccount:
        name = check_name(name)
        account = StaffAccount(
            name=name, display_name=(display_name or name).strip()[:200] or name, role=check_role(role),
            is_admin=is_admin, lang=check_lang(lang), created_at=iso(self.clock()),
            password_hash=await self._hash(check_password(password)) if password is not None else None,
            oidc_subject=oidc_subject or None,
        )
        if not await self.store.add_account(account):
            raise AccountConflict(f"the account name {name!r} (or its OpenID Connect identity) is taken")
        return account

    async def get(self, name: str) -> StaffAccount:
        found = await self.store.account(name)
        if found is None:
            raise AccountNotFound()
        return found

    async def all_accounts(self) -> list[StaffAccount]:
        return await self.store.accounts()

    async def active_admins(self) -> list[StaffAccount]:
        return [a for a in await self.store.accounts() if a.is_admin and a.active]

    async def create_admin(self, name: str, password: str, *, role: str = "privacy", display_name: str | None = None,
                           lang: str = "sv", force: bool = False) -> StaffAccount:
        """The first admin.  Refused while an active admin exists, unless ``force`` (the way back in when every
        admin lost their password): then an existing account of that name becomes an active admin with this
        password and all its sessions end; otherwise a new account is made."""
        name = check_name(name)
        if await self.active_admins() and not force:
            raise AccountConflict("an admin account exists already; an admin adds accounts on /ui/accounts "
                                  "(or use --force to reset this one)")
        existing = await self.store.account(name)
        if existing is None:
            return await self.add(name, role=role, display_name=display_name, password=password, is_admin=True,
                                  lang=lang)
        if not force:
            raise AccountConflict(f"the account name {name!r} is taken")
        now = iso(self.clock())
        await self.store.update_account(name, {"password_hash": await self._hash(check_password(password)),
                                               "is_admin": True, "disabled_at": None}, revoke_sessions_at=now)
        return await self.get(name)

    async def set_password(self, name: str, password: str, *, keep_session: str | None = None) -> None:
        """A new password; every session of the account ends (but ``keep_session``: the one that changed it)."""
        digest = await self._hash(check_password(password))
        if not await self.store.update_account(name, {"password_hash": digest}, revoke_sessions_at=iso(self.clock()),
                                               keep_session=keep_session):
            raise AccountNotFound()

    async def disable(self, name: str, *, by: str | None = None) -> None:
        """Disable an account: it can no longer log in and its sessions end now, on every instance.  An admin
        cannot disable themself, and the last active admin stays."""
        account = await self.get(name)
        if by is not None and by == name:
            raise LastAdmin("you cannot disable your own account")
        if account.is_admin and account.active and len(await self.active_admins()) <= 1:
            raise LastAdmin()
        now = iso(self.clock())
        await self.store.update_account(name, {"disabled_at": account.disabled_at or now}, revoke_sessions_at=now)

    async def enable(self, name: str) -> None:
        if not await self.store.update_account(name, {"disabled_at": None}):
            raise AccountNotFound()

    async def set_lang(self, name: str, lang: str) -> Lang:
        chosen = check_lang(lang)
        if not await self.store.update_account(name, {"lang": chosen}):
            raise AccountNotFound()
        return chosen

    async def link_oidc(self, name: str, subject: str | None) -> None:
        """Link (or with None, unlink) the identity provider's ``sub`` to an account: OpenID Connect log-ins
        find accounts only through this link, never by e-mail or name."""
        if not await self.store.update_account(name, {"oidc_subject": subject or None}):
            raise AccountNotFound()

    async def revoke_sessions(self, name: str, *, keep: str | None = None) -> int:
        await self.get(name)
        return await self.store.revoke_sessions(name, iso(self.clock()), keep=keep)

    async def live_sessions(self, name: str) -> list[StaffSession]:
        return await self.store.live_sessions(name, iso(self.clock()))

    # -- log-in and sessions --------------------------------------------------------------------------------

    async def login(self, name: str, password: str, address: str | None) -> StaffAccount:
        """The account ``name`` logs into, or ``LoginThrottled`` / ``LoginFailed`` (the same for every failure)."""
        now = self.clock()
        keys = login_keys(name, address)
        since = iso(now - dt.timedelta(seconds=self.throttle.window_s))
        if throttled(await self.store.login_failures(keys, since), keys, self.throttle):
            raise LoginThrottled(f"too many failed log-ins; try again in {self.throttle.window_s // 60} minutes")
        account = await self.store.account(name.strip().lower()) if len(password) <= MAX_PASSWORD else None
        stored = account.password_hash if account is not None else None
        good = await self._verify(stored, password[:MAX_PASSWORD])
        if not good or account is None or not account.active or account.role not in STAFF_ROLES:
            await self.store.add_login_failure(keys, iso(now))
            await self.store.clear_login_failures((), before=since)  # the table holds one window, not history
            raise LoginFailed()
        await self.store.clear_login_failures(keys[:1], before=since)
        if stored is not None and self.hasher.check_needs_rehash(stored):
            await self.store.update_account(account.name, {"password_hash": await self._hash(password)})
        return account

    async def oidc_login(self, subject: str) -> StaffAccount:
        """The active account an admin linked to this identity provider subject, or ``LoginFailed``."""
        account = await self.store.account_by_oidc(subject)
        if account is None or not account.active or account.role not in STAFF_ROLES:
            raise LoginFailed("no active staff account is linked to that identity")
        return account

    async def start_session(self, account: StaffAccount, *, user_agent: str | None = None) -> tuple[str, StaffSession]:
        """A new session for ``account``: (the cookie value, the stored session)."""
        value = secrets.token_urlsafe(32)
        now = self.clock()
        session = StaffSession(
            id=session_id(value), account=account.name, created_at=iso(now), last_seen_at=iso(now),
            expires_at=iso(now + dt.timedelta(seconds=self.sessions.ttl_s)),
            user_agent=_digest(user_agent)[:16] if user_agent else None,
        )
        await self.store.start_session(session)
        return value, session

    async def session(self, cookie_value: str | None) -> tuple[StaffSession, StaffAccount] | None:
        """The live session a cookie value names (and its account), or None; keeps ``last_seen_at`` fresh."""
        if not cookie_value or len(cookie_value) > 128:
            return None
        found = await self.store.session_with_account(session_id(cookie_value))
        if found is None:
            return None
        session, account = found
        now = self.clock()
        if not session_alive(session, account, now, self.sessions):
            return None
        if session.last_seen_at <= iso(now - dt.timedelta(seconds=self.sessions.touch_s)):
            await self.store.touch_session(session.id, iso(now))
        return session, account

    async def logout(self, stored_id: str) -> None:
        await self.store.revoke_session(stored_id, iso(self.clock()))
