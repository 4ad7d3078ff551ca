"""What every staff page shares: templates, the session check, role checks, CSRF, security headers,
HTML error pages and the navigation.

Other page modules (e.g. data-subject requests) plug in with ``page(...)`` for their handlers,
``render(...)`` for their templates and ``add_nav(app, NavItem(...))`` for a navigation entry.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
import structlog
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from gateway.auth import Role
from gateway.errors import Forbidden, GatewayError
from gateway.http.context import services
from gateway.http.pages.session import (
    SESSION_COOKIE,
    Revocations,
    Session,
    decode_session,
    session_key,
)
from gateway.http.problems import abandon, response_started
from gateway.i18n import SUPPORTED, Lang, from_accept_language, gettext_for, normalise

log = structlog.get_logger("gateway.http.pages")

STAFF_ROLES = (Role.PRIVACY, Role.AUDITOR)

SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str
    roles: frozenset[Role]


@dataclass
class UiState:
    nav: list[NavItem]
    revocations: Revocations


UI_STATE = web.AppKey("ui_state", UiState)

#: The cookie that remembers a visitor's language before (and without) an account preference.
LANG_COOKIE = "rg_lang"


def _environment(lang: Lang) -> jinja2.Environment:
    """One environment per language, each with its catalogue installed (``_``, ``gettext``, ``ngettext``
    in templates): a render never switches a shared environment's language under another request."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.http.pages", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(gettext_for(lang, "ui"), newstyle=True)  # type: ignore[attr-defined]
    env.globals["lang"] = lang
    return env


_ENVS: dict[Lang, jinja2.Environment] = {lang: _environment(lang) for lang in SUPPORTED}


def ui_lang(request: web.Request, session: Session | None) -> Lang:
    """The page language: the account's choice, else the language cookie, else the browser's
    ``Accept-Language``, else Swedish."""
    chosen = getattr(session, "lang", None)
    if isinstance(chosen, str) and chosen:
        return normalise(chosen)
    cookie = request.cookies.get(LANG_COOKIE)
    if cookie:
        return normalise(cookie)
    return from_accept_language(request.headers.get("Accept-Language"))


def ui_gettext(request: web.Request, session: Session | None) -> Callable[[str], str]:
    """``_`` for Python code that builds page text (flash messages, field errors) in the page's language."""
    return gettext_for(ui_lang(request, session), "ui").gettext


def add_nav(app: web.Application, item: NavItem) -> None:
    """Add a navigation entry (shown to the roles it names); call before the app starts."""
    app[UI_STATE].nav.append(item)


def ui_key(request: web.Request) -> bytes:
    return session_key(services(request).registrations.secret)


def current_session(request: web.Request) -> Session | None:
    s = decode_session(ui_key(request), request.cookies.get(SESSION_COOKIE))
    if s is None or request.config_dict[UI_STATE].revocations.revoked(s):
        return None
    return s


def render(
    request: web.Request, template: str, session: Session | None, *, status: int = 200, **ctx: Any
) -> web.Response:
    nav = [] if session is None else [n for n in request.config_dict[UI_STATE].nav if session.role in n.roles]
    html = _ENVS[ui_lang(request, session)].get_template(template).render(
        session=session, nav=nav, path=request.path,
        csrf=session.csrf_token(ui_key(request)) if session is not None else "", **ctx,
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def error_page(request: web.Request, session: Session | None, status: int, title: str, detail: str) -> web.Response:
    return render(request, "error.html", session, status=status, title=title, detail=detail)


def secure_headers(resp: web.StreamResponse) -> web.StreamResponse:
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    return resp


_SAFE_NEXT = re.compile(r"^/ui/[A-Za-z0-9._~/%?&=+-]*$")


def safe_next(value: str | None) -> str:
    """Where to go after login: only a path under /ui/ on this site."""
    if value and _SAFE_NEXT.match(value) and "//" not in value and len(value) <= 2000:
        return value
    return "/ui/disclosures"


def login_redirect(request: web.Request) -> web.HTTPSeeOther:
    target = request.path_qs if request.method == "GET" else "/ui/disclosures"
    return web.HTTPSeeOther(f"/ui/login?next={quote(safe_next(target), safe='')}")


PageHandler = Callable[[web.Request, Session], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def public(handler: Handler) -> Handler:
    """A page that needs no session (login): security headers and HTML errors only."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return secure_headers(await handler(request))
        except web.HTTPException as exc:
            secure_headers(exc)
            raise
        except GatewayError as err:
            return secure_headers(error_page(request, None, err.status, err.title, err.detail))

    return wrapped


def page(*roles: Role) -> Callable[[PageHandler], Handler]:
    """A staff page for ``roles``: no session → login; another role → 403; errors as HTML pages."""

    def deco(handler: PageHandler) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = current_session(request)
            try:
                if session is None:
                    raise login_redirect(request)
                if session.role not in roles:
                    raise Forbidden(f"the {session.role.value} role may not use this page")
                return secure_headers(await handler(request, session))
            except web.HTTPException as exc:
                secure_headers(exc)
                raise
            except GatewayError as err:
                if response_started(request):  # a streamed page (CSV) failed half-way: no second page
                    raise abandon(request, "ui.failed_after_start", err) from None
                if err.status >= 500:
                    log.error("ui.failed", code=err.code, path=request.path)
                return secure_headers(error_page(request, session, err.status, err.title, err.detail))

        return wrapped

    return deco


async def checked_form(request: web.Request, session: Session) -> MultiDictProxy[str]:
    """The POSTed form, after checking its CSRF token against the session."""
    form = await request.post()
    token = form.get("csrf")
    if not session.csrf_ok(ui_key(request), token if isinstance(token, str) else None):
        raise Forbidden("the form's CSRF token is missing or does not belong to your session; reload the page")
    return MultiDictProxy(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))
