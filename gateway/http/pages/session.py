"""Staff sessions for the web pages: what a page knows about the person logged in, the cookies, and CSRF
tokens bound to the session.

The session itself lives in the store (``gateway.services.accounts``): the ``rg_session`` cookie holds
only a random value whose SHA-256 is the stored session's id, so any gateway instance can end it.  Nothing
about a data subject is ever in a cookie.  CSRF tokens are ``HMAC(key, "csrf" || session id)``: a form
from another session (or none) is refused, and a session that ended takes its tokens with it.  The key is
derived from the gateway secret (``session_key``), never the secret itself.

The log-in form has no session yet: its CSRF token is the MAC of a nonce in a short-lived cookie scoped to
the log-in path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from gateway.auth import Principal, Role
from gateway.i18n import Lang

SESSION_COOKIE = "rg_session"
LOGIN_COOKIE = "rg_login"
COOKIE_PATH = "/ui"
LOGIN_TTL_S = 15 * 60


def session_key(secret: bytes) -> bytes:
    """The UI's own key: HMAC(secret, "ui-session"), so it is never the secret itself."""
    return hmac.new(secret, b"ui-session", hashlib.sha256).digest()


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(key: bytes, purpose: str, data: bytes) -> bytes:
    return hmac.new(key, purpose.encode("ascii") + b"\x00" + data, hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    """The person behind a request: their account ``name`` (what every action and read is attributed to),
    role, admin flag and language, and ``sid``, the stored session's id."""

    name: str
    role: Role
    sid: str
    lang: Lang = "sv"
    is_admin: bool = False
    display_name: str = ""

    @property
    def principal(self) -> Principal:
        return Principal(self.name, self.role)

    def csrf_token(self, key: bytes) -> str:
        """Bound to this session: a token from another session (or none) is refused."""
        return _b64e(_mac(key, "csrf", self.sid.encode("ascii", "replace")))

    def csrf_ok(self, key: bytes, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf_token(key), token)


def login_nonce() -> str:
    return secrets.token_urlsafe(24)


def login_csrf_token(key: bytes, nonce: str) -> str:
    """Login form CSRF (there is no session yet): the hidden field must be the MAC of the nonce in
    the short-lived login cookie."""
    return _b64e(_mac(key, "login", nonce.encode("ascii", "replace")))


def login_csrf_ok(key: bytes, nonce: str | None, token: str | None) -> bool:
    return bool(nonce) and token is not None and hmac.compare_digest(login_csrf_token(key, nonce or ""), token)

