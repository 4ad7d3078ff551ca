"""Staff sessions for the web pages: a signed, expiring cookie, and CSRF tokens bound to it.

The cookie holds ``base64url(json{n, r, exp, sid}) "." base64url(HMAC-SHA256(key, payload))``: the
principal's name and role, an absolute expiry and a random session id.  Nothing personal about a data
subject is ever in it.  The key is derived from the gateway secret (``session_key``) so rotating the
secret ends every session.  Sessions are stateless; logging out clears the cookie and remembers the
session id as revoked in memory until it would have expired.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field

from gateway.auth import Principal, Role

SESSION_COOKIE = "rg_session"
LOGIN_COOKIE = "rg_login"
COOKIE_PATH = "/ui"
SESSION_TTL_S = 4 * 3600
LOGIN_TTL_S = 15 * 60


def session_key(secret: bytes) -> bytes:
    """The UI's own key: HMAC(secret, "ui-session"), so it is never the secret itself."""
    return hmac.new(secret, b"ui-session", hashlib.sha256).digest()


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, purpose: str, data: bytes) -> bytes:
    return hmac.new(key, purpose.encode("ascii") + b"\x00" + data, hashlib.sha256).digest()


@dataclass(frozen=True)
class Session:
    name: str
    role: Role
    expires: int
    sid: str

    @property
    def principal(self) -> Principal:
        return Principal(self.name, self.role)

    def csrf_token(self, key: bytes) -> str:
        """Bound to this session: a token from another session (or none) is refused."""
        return _b64e(_mac(key, "csrf", self.sid.encode("ascii")))

    def csrf_ok(self, key: bytes, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf_token(key), token)


def new_session(principal: Principal, now: float | None = None, ttl_s: int = SESSION_TTL_S) -> Session:
    now = time.time() if now is None else now
    return Session(principal.name, principal.role, int(now) + ttl_s, secrets.token_hex(16))


def encode_session(key: bytes, s: Session) -> str:
    payload = json.dumps({"n": s.name, "r": s.role.value, "exp": s.expires, "sid": s.sid},
                         separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64e(payload)}.{_b64e(_mac(key, 'session', payload))}"


def decode_session(key: bytes, value: str | None, now: float | None = None) -> Session | None:
    """The session in a cookie value, or None if it is absent, forged, malformed or expired."""
    if not value or value.count(".") != 1 or len(value) > 1024:
        return None
    body, sig = value.split(".")
    try:
        payload, mac = _b64d(body), _b64d(sig)
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(mac, _mac(key, "session", payload)):
        return None
    try:
        data = json.loads(payload)
        s = Session(str(data["n"]), Role(data["r"]), int(data["exp"]), str(data["sid"]))
    except (ValueError, KeyError, TypeError):
        return None
    if s.expires <= (time.time() if now is None else now):
        return None
    return s


def login_nonce() -> str:
    return secrets.token_urlsafe(24)


def login_csrf_token(key: bytes, nonce: str) -> str:
    """Login form CSRF (there is no session yet): the hidden field must be the MAC of the nonce in
    the short-lived login cookie."""
    return _b64e(_mac(key, "login", nonce.encode("ascii", "replace")))


def login_csrf_ok(key: bytes, nonce: str | None, token: str | None) -> bool:
    return bool(nonce) and token is not None and hmac.compare_digest(login_csrf_token(key, nonce or ""), token)


@dataclass
class Revocations:
    """Session ids logged out before their expiry (per process; sessions also expire on their own)."""

    _ids: dict[str, int] = field(default_factory=dict)

    def revoke(self, s: Session) -> None:
        self._prune()
        self._ids[s.sid] = s.expires

    def revoked(self, s: Session) -> bool:
        return s.sid in self._ids

    def _prune(self) -> None:
        now = time.time()
        for sid in [k for k, exp in self._ids.items() if exp <= now]:
            del self._ids[sid]
