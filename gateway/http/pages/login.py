"""Login (paste a bearer token) and logout."""

from __future__ import annotations

from aiohttp import web

from gateway.auth import Role
from gateway.errors import Unauthenticated
from gateway.http.context import services
from gateway.http.pages.core import (
    STAFF_ROLES,
    UI_STATE,
    checked_form,
    current_session,
    page,
    public,
    render,
    safe_next,
    ui_key,
)
from gateway.http.pages.session import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    LOGIN_TTL_S,
    SESSION_COOKIE,
    SESSION_TTL_S,
    Session,
    encode_session,
    login_csrf_ok,
    login_csrf_token,
    login_nonce,
    new_session,
)

LOGIN_PATH = "/ui/login"


def _set_cookie(resp: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int,
                path: str = COOKIE_PATH) -> None:
    resp.set_cookie(name, value, max_age=max_age, path=path, httponly=True, samesite="Strict",
                    secure=request.secure)


def _login_form(request: web.Request, *, status: int = 200, error: str | None = None) -> web.Response:
    nonce = login_nonce()
    resp = render(request, "login.html", None, status=status, error=error,
                  login_csrf=login_csrf_token(ui_key(request), nonce),
                  next=safe_next(request.query.get("next")))
    _set_cookie(resp, request, LOGIN_COOKIE, nonce, LOGIN_TTL_S, path=LOGIN_PATH)
    return resp


@public
async def login_get(request: web.Request) -> web.StreamResponse:
    if current_session(request) is not None:
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    return _login_form(request)


@public
async def login_post(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token, csrf, nxt = form.get("token"), form.get("csrf"), form.get("next")
    if not login_csrf_ok(ui_key(request), request.cookies.get(LOGIN_COOKIE), csrf if isinstance(csrf, str) else None):
        return _login_form(request, status=403, error="The form expired or was not sent from this page. Try again.")
    if not isinstance(token, str) or not token.strip() or len(token) > 512:
        return _login_form(request, status=401, error="Paste your bearer token.")
    try:
        principal = services(request).tokens.authenticate(f"Bearer {token.strip()}")
    except Unauthenticated:
        return _login_form(request, status=401, error="That token is not valid.")
    if principal.role not in STAFF_ROLES:
        return _login_form(request, status=403,
                           error=f"The {principal.role.value} role has no access to the staff pages.")
    session = new_session(principal)
    resp = web.HTTPSeeOther(safe_next(nxt if isinstance(nxt, str) else None))
    _set_cookie(resp, request, SESSION_COOKIE, encode_session(ui_key(request), session), SESSION_TTL_S)
    resp.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    raise resp


@page(Role.PRIVACY, Role.AUDITOR, Role.ORDERING)
async def logout_post(request: web.Request, session: Session) -> web.StreamResponse:
    await checked_form(request, session)
    request.config_dict[UI_STATE].revocations.revoke(session)
    resp = web.HTTPSeeOther(LOGIN_PATH)
    resp.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    raise resp


@public
async def ui_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/ui/disclosures" if current_session(request) else LOGIN_PATH)
