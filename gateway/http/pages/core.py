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
from typing import Any, cast
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
    Session,
    session_key,
)
from gateway.http.problems import ResponseAbandoned, abandon, response_started
from gateway.i18n import SUPPORTED, Lang, from_accept_language, gettext_for, normalise
from gateway.services.accounts import AccountService
from gateway.store.accounts import AccountStore

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
    #: the account service made from the app's store when the composition root set none (``ACCOUNTS``)
    accounts: AccountService | None = None


UI_STATE = web.AppKey("ui_state", UiState)
#: The staff account service, set on the main app by the composition root (``gateway.compose``).
ACCOUNTS = web.AppKey("accounts", AccountService)
_SESSION = web.RequestKey("ui_session", object)

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


def accounts(request: web.Request) -> AccountService:
    """The staff account service: the composition root's, else one over the app's store (made once)."""
    found = request.config_dict.get(ACCOUNTS)
    if found is not None:
        return found
    state = request.config_dict[UI_STATE]
    if state.accounts is None:
        state.accounts = AccountService(cast(AccountStore, services(request).store))
    return state.accounts


async def current_session(request: web.Request) -> Session | None:
    """The person logged in on this request (looked up in the store once per request), or None."""
    if _SESSION in request:
        return cast(Session | None, request[_SESSION])
    found = await accounts(request).session(request.cookies.get(SESSION_COOKIE))
    session = None
    if found is not None:
        stored, account = found
        session = Session(name=account.name, role=Role(account.role), sid=stored.id, lang=normalise(account.lang),
                          is_admin=account.is_admin, display_name=account.display_name)
    request[_SESSION] = session
    return session


def render(
    request: web.Request, template: str, session: Session | None, *, status: int = 200, **ctx: Any
) -> web.Response:
    nav = [] if session is None else [n for n in request.config_dict[UI_STATE].nav if session.role in n.roles]
    html = _ENVS[ui_lang(request, session)].get_template(template).render(
        session=session, nav=nav, path=request.path,
        csrf=session.csrf_token(ui_key(request)) if session is not None else "", **ctx,
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def N_(message: str) -> str:
    """Mark ``message`` for the catalogues without translating it (``_`` at render time does): for text
    made before any request has a language, such as the navigation's labels."""
    return message


#: The heading of an error page per status, in the page's language; other statuses get the 4xx/5xx one.
ERROR_HEADINGS: Mapping[int, str] = {
    400: N_("The request could not be used"),
    403: N_("Not allowed"),
    404: N_("Page not found"),
    405: N_("Not possible on this page"),
    409: N_("Someone changed this first"),
    413: N_("Too much data"),
    422: N_("The request could not be used"),
    429: N_("Too many attempts"),
    503: N_("Temporarily unavailable"),
}
#: What to do next, per status: every error page says it, in the page's language.
ERROR_HINTS: Mapping[int, str] = {
    403: N_("Your account's role may not use this page, or the form was too old. Reload the page and try again, "
            "or ask an administrator for the right role."),
    404: N_("The address may be mistyped, or what it pointed to no longer exists."),
    405: N_("This address cannot be used that way. Go back and use the page's own links and buttons."),
    429: N_("Wait a few minutes and try again."),
}


def error_heading(status: int) -> str:
    found = ERROR_HEADINGS.get(status)
    if found is not None:
        return found
    return N_("Something went wrong on our side") if status >= 500 else N_("The request could not be carried out")


def error_page(request: web.Request, session: Session | None, status: int, title: str, detail: str,
               headers: Mapping[str, str] | None = None) -> web.Response:
    """An error as an HTML page in the page's language, with a way back: a heading per status, what to do
    next, and the error's own detail (translated when the catalogue knows it, else marked as English so a
    screen reader reads it as such).  ``title`` is the error's English title, kept as the page's code line."""
    gettext = gettext_for(ui_lang(request, session), "ui").gettext
    said = gettext(detail) if detail else ""
    hint = ERROR_HINTS.get(status)
    resp = render(request, "error.html", session, status=status, title=gettext(error_heading(status)),
                  detail=said, detail_lang="" if said != detail else "en", hint=gettext(hint) if hint else "",
                  code=title, error_status=status)
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


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
        except GatewayError as err:  # with the visitor's session, if any: the way back fits who they are
            return await _error_response(request, err.status, err.title, err.detail, {})

    return wrapped


def page(*roles: Role) -> Callable[[PageHandler], Handler]:
    """A staff page for ``roles``: no session → login; another role → 403; errors as HTML pages."""

    def deco(handler: PageHandler) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = await current_session(request)
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


@web.middleware
async def html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error under the pages' mount point as an HTML page, never the API's problem+json: an unknown
    path (404), a method a page does not take (405, with ``Allow``), an error raised outside ``page``/
    ``public`` and an unexpected exception (500, logged by type only: messages can quote input)."""
    try:
        return await handler(request)
    except ResponseAbandoned:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": ", ".join(sorted(exc.allowed_methods))} if isinstance(exc, web.HTTPMethodNotAllowed) else {}
        detail = "" if isinstance(exc, web.HTTPNotFound | web.HTTPMethodNotAllowed) else exc.reason
        return await _error_response(request, exc.status, exc.reason, detail, headers)
    except GatewayError as err:
        if response_started(request):
            raise abandon(request, "ui.failed_after_start", err) from None
        if err.status >= 500:
            log.error("ui.failed", code=err.code, path=request.path)
        return await _error_response(request, err.status, err.title, err.detail, {})
    except Exception as exc:  # never leak internals or input
        if response_started(request):
            raise abandon(request, "ui.crashed_after_start", exc) from None
        log.error("ui.crashed", error_type=type(exc).__name__, path=request.path)
        return await _error_response(request, 500, "Internal error", "", {})


async def _error_response(request: web.Request, status: int, title: str, detail: str,
                          headers: Mapping[str, str]) -> web.Response:
    """The error page, with the visitor's session when it can be had (a failing store must not turn the
    error page itself into a crash)."""
    try:
        session = await current_session(request)
    except Exception:
        session = None
    return cast(web.Response, secure_headers(error_page(request, session, status, title, detail, headers)))


async def checked_form(request: web.Request, session: Session) -> MultiDictProxy[str]:
    """The POSTed form, after checking its CSRF token against the session."""
    form = await request.post()
    token = form.get("csrf")
    if not session.csrf_ok(ui_key(request), token if isinstance(token, str) else None):
        raise Forbidden(N_("the form's CSRF token is missing or does not belong to your session; reload the page"))
    return MultiDictProxy(MultiDict((k, v) for k, v in form.items() if isinstance(v, str)))
