"""Log-in with a staff account's user name and password, log-out, and the language choice.

A good log-in starts a session in the store and sets its cookie (a random value, nothing else).  Every
failure is answered alike ("the user name or password is not right"), and past the throttling limit the
page says to wait (429) without checking anything, so the page never tells whether an account exists.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlencode

from aiohttp import web
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.auth import Role
from gateway.errors import LoginFailed, LoginThrottled
from gateway.http.pages.core import (
    LANG_COOKIE,
    accounts,
    checked_form,
    current_session,
    page,
    public,
    render,
    safe_next,
    ui_gettext,
    ui_key,
)
from gateway.http.pages.session import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    LOGIN_TTL_S,
    SESSION_COOKIE,
    Session,
    login_csrf_ok,
    login_csrf_token,
    login_nonce,
)
from gateway.i18n import SUPPORTED

LOGIN_PATH = "/ui/login"
#: A year: the language is a preference, not a credential.
LANG_COOKIE_TTL_S = 365 * 24 * 3600


#: Whether OpenID Connect log-in is configured (set by the composition root).
OIDC_ENABLED = web.AppKey("oidc_enabled", bool)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The reverse proxies whose ``X-Forwarded-For`` is believed (set by the composition root).
TRUSTED_PROXIES = web.AppKey("trusted_proxies", tuple[Network, ...])


class ProxySettings(BaseSettings):
    """``GATEWAY_TRUSTED_PROXIES``: addresses or networks (comma-separated) of the reverse proxies in front of
    the gateway.  Behind one, every log-in would otherwise come from the proxy's address, and the throttle per
    address would hold up everyone after five failures by anyone."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    trusted_proxies: str = ""

    def networks(self) -> tuple[Network, ...]:
        return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in self.trusted_proxies.split(",")
                     if p.strip())


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def client_address(peer: str | None, forwarded_for: Sequence[str], proxies: Sequence[Network]) -> str | None:
    """The address a log-in comes from: the peer, or, when the peer is a trusted proxy, the nearest address
    in ``X-Forwarded-For`` that is not one (entries further left are the client's own claims)."""
    if not peer or not proxies or not _within(peer, proxies):
        return peer
    hops = [h.strip() for line in forwarded_for for h in line.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _within(hop, proxies):
            return hop[:64]
    return peer


def _set_cookie(resp: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int,
                path: str = COOKIE_PATH) -> None:
    resp.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="Strict",
                    secure=request.secure)


def _login_form(request: web.Request, *, status: int = 200, error: str | None = None, name: str = "",
                nxt: str | None = None) -> web.Response:
    """The form; after a failed attempt, with the name typed and where to go after logging in kept."""
    nonce = login_nonce()
    resp = render(request, "login.html", None, status=status, error=error, name=name,
                  login_csrf=login_csrf_token(ui_key(request), nonce),
                  next=safe_next(nxt if nxt is not None else request.query.get("next")),
                  oidc=request.config_dict.get(OIDC_ENABLED, False), languages=SUPPORTED)
    _set_cookie(resp, request, LOGIN_COOKIE, nonce, LOGIN_TTL_S, path=LOGIN_PATH)
    return resp


@public
async def login_get(request: web.Request) -> web.StreamResponse:
    if await current_session(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    chosen = request.query.get("lang")
    if chosen in SUPPORTED:  # the log-in page's language links: remembered in a cookie, then the page again
        resp = web.HTTPSeeOther(f"{LOGIN_PATH}?{urlencode({'next': safe_next(request.query.get('next'))})}")
        _set_cookie(resp, request, LANG_COOKIE, chosen, LANG_COOKIE_TTL_S)
        raise resp
    return _login_form(request)


async def start_session(request: web.Request, account_name: str, nxt: str | None) -> web.HTTPSeeOther:
    """The redirect that logs ``account_name`` in: a new session's cookie, the account's language remembered."""
    svc = accounts(request)
    account = await svc.get(account_name)
    value, _ = await svc.start_session(account, user_agent=request.headers.get("User-Agent"))
    resp = web.HTTPSeeOther(safe_next(nxt))
    _set_cookie(resp, request, SESSION_COOKIE, value, svc.sessions.ttl_s)
    _set_cookie(resp, request, LANG_COOKIE, account.lang, LANG_COOKIE_TTL_S)
    resp.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return resp


@public
async def login_post(request: web.Request) -> web.StreamResponse:
    _ = ui_gettext(request, None)
    form = await request.post()
    name, password, csrf, posted_next = form.get("name"), form.get("password"), form.get("csrf"), form.get("next")
    nxt = posted_next if isinstance(posted_next, str) else None
    if not login_csrf_ok(ui_key(request), request.cookies.get(LOGIN_COOKIE), csrf if isinstance(csrf, str) else None):
        return _login_form(request, status=403, nxt=nxt,
                           error=_("The form expired or was not sent from this page. Try again."))
    if not isinstance(name, str) or not isinstance(password, str) or not name.strip() or not password:
        return _login_form(request, status=401, nxt=nxt, error=_("Enter your user name and password."))
    try:
        proxies = request.config_dict.get(TRUSTED_PROXIES)
        address = client_address(request.remote, request.headers.getall("X-Forwarded-For", []), proxies or ())
        account = await accounts(request).login(name, password, address)
    except LoginThrottled:
        return _login_form(request, status=429, name=name[:64], nxt=nxt, error=_(
            "Too many failed log-ins for this user name or from this address. Wait 15 minutes and try again."))
    except LoginFailed:
        return _login_form(request, status=401, name=name[:64], nxt=nxt,
                           error=_("The user name or password is not right."))
    raise await start_session(request, account.name, nxt)


@page(Role.PRIVACY, Role.AUDITOR, Role.ORDERING)
async def logout_post(request: web.Request, session: Session) -> web.StreamResponse:
    await checked_form(request, session)
    await accounts(request).logout(session.sid)
    resp = web.HTTPSeeOther(LOGIN_PATH)
    resp.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    raise resp


@page(Role.PRIVACY, Role.AUDITOR)
async def language_post(request: web.Request, session: Session) -> web.StreamResponse:
    """The language switch: stored on the account (so it follows the person to any browser) and in a cookie
    (so the log-in page speaks it too); back to the page the switch was on."""
    form = await checked_form(request, session)
    lang = await accounts(request).set_lang(session.name, form.get("lang", ""))
    resp = web.HTTPSeeOther(safe_next(form.get("next")))
    _set_cookie(resp, request, LANG_COOKIE, lang, LANG_COOKIE_TTL_S)
    raise resp


@public
async def ui_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/ui/disclosures" if await current_session(request) else LOGIN_PATH)
