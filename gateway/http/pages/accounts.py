"""The admin page for staff accounts (``/ui/accounts``, admin accounts only): add an account, disable or
enable one, set a new password, end its sessions, link its OpenID Connect identity.

Every change is a POST form with the session's CSRF token and redirects back with a notice (POST, redirect,
GET), so a reload never repeats it.  A refused change shows the page again with what went wrong and what was
typed (never the password).  Disabling an account or setting its password ends its sessions on every
gateway instance at once (the store's sessions, ``gateway.services.accounts``).  Each change is written to
the access log as ``account.<action>`` with the admin who made it and the account it was made to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from gateway.auth import Role
from gateway.errors import AccountNotFound, BadInput, Forbidden, GatewayError
from gateway.http.context import services
from gateway.http.pages.core import STAFF_ROLES, accounts, checked_form, page, render, ui_gettext
from gateway.http.pages.session import Session
from gateway.i18n import SUPPORTED

PATH = "/ui/accounts"
ACTIONS = ("disable", "enable", "password", "revoke", "oidc")


def _admin(session: Session) -> None:
    if not session.is_admin:
        raise Forbidden("only an admin account may manage staff accounts")


async def _logged(request: web.Request, session: Session, action: str, name: str) -> None:
    """Account changes go to the access log with who made them (``account.<action>``, the account's name)."""
    await services(request).ledger.record_access(session.name, f"account.{action}", name, None)


def _notices(_: Callable[[str], str]) -> dict[str, str]:
    return {
        "added": _("The account was added."),
        "disable": _("The account was disabled and its sessions ended."),
        "enable": _("The account was enabled."),
        "password": _("The password was set and the account's sessions ended."),
        "revoke": _("The account's sessions were ended."),
        "oidc": _("The identity provider link was saved."),
    }


async def _page(request: web.Request, session: Session, *, status: int = 200, error: str | None = None,
                notice: str | None = None, form: Mapping[str, str] | None = None) -> web.Response:
    svc = accounts(request)
    rows = []
    for a in await svc.all_accounts():
        rows.append({"a": a, "sessions": len(await svc.live_sessions(a.name)) if a.active else 0})
    return render(request, "accounts.html", session, status=status, rows=rows, error=error, notice=notice,
                  f=dict(form or {"role": "privacy", "lang": "sv"}), roles=[r.value for r in STAFF_ROLES],
                  languages=SUPPORTED)


@page(Role.PRIVACY, Role.AUDITOR)
async def accounts_page(request: web.Request, session: Session) -> web.StreamResponse:
    _admin(session)
    done = request.query.get("done", "")
    return await _page(request, session, notice=_notices(ui_gettext(request, session)).get(done))


@page(Role.PRIVACY, Role.AUDITOR)
async def add_post(request: web.Request, session: Session) -> web.StreamResponse:
    _admin(session)
    form = await checked_form(request, session)
    kept = {k: form.get(k, "") for k in ("name", "display_name", "role", "lang", "is_admin")}
    try:
        added = await accounts(request).add(
            form.get("name", ""), role=form.get("role", ""), display_name=form.get("display_name") or None,
            password=form.get("password", ""), is_admin=form.get("is_admin") == "on", lang=form.get("lang", "sv"))
    except GatewayError as err:
        return await _page(request, session, status=err.status, error=f"{err.title}: {err.detail}", form=kept)
    await _logged(request, session, "added", added.name)
    raise web.HTTPSeeOther(f"{PATH}?done=added")


def action_handler(action: str) -> Any:
    @page(Role.PRIVACY, Role.AUDITOR)
    async def handler(request: web.Request, session: Session) -> web.StreamResponse:
        _admin(session)
        form = await checked_form(request, session)
        name = request.match_info["name"]
        svc = accounts(request)
        try:
            if action == "disable":
                await svc.disable(name, by=session.name)
            elif action == "enable":
                await svc.enable(name)
            elif action == "password":
                await svc.set_password(name, form.get("password", ""),
                                       keep_session=session.sid if name == session.name else None)
            elif action == "revoke":
                await svc.revoke_sessions(name, keep=session.sid if name == session.name else None)
            elif action == "oidc":
                subject = form.get("oidc_subject", "").strip()
                if len(subject) > 255:
                    raise BadInput("an OpenID Connect subject is at most 255 characters")
                await svc.link_oidc(name, subject or None)
            else:  # pragma: no cover - routes are made from ACTIONS
                raise AccountNotFound()
        except GatewayError as err:
            return await _page(request, session, status=err.status, error=f"{err.title}: {err.detail}")
        await _logged(request, session, action, name)
        raise web.HTTPSeeOther(f"{PATH}?done={action}")

    return handler


def add_routes(r: web.UrlDispatcher) -> None:
    """The routes, relative to the pages' mount point."""
    r.add_get("/accounts", accounts_page)
    r.add_post("/accounts", add_post)
    for action in ACTIONS:
        r.add_post(f"/accounts/{{name}}/{action}", action_handler(action))
