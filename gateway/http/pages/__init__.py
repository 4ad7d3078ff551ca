"""Server-rendered pages for privacy staff (no JavaScript): login, the disclosure log with filters and
CSV export, disclosure details with the values sent (privacy role only, each read logged), and the
third-country overview; data-subject requests (list, opening, each request with its event log and the
actions on it, Art. 15 extracts), the Art. 30 record and the policy explainer; parked deliveries per
registry with Retry and Cancel (``outbox``).

``pages_app()`` is a sub-application for ``app.add_subapp(MOUNT, ...)``: its own routes and UI state,
with the parent's middlewares (problems, request counting) around it and the parent's services read
through ``request.config_dict``.  More pages plug in through ``gateway.http.pages.core`` (``page``,
``render``, ``checked_form``) and ``add_nav``.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from gateway.auth import Role
from gateway.errors import NotFound
from gateway.http.pages import access, accounts, disclosures, holdings, login, oidc, outbox, overview, requests, rights
from gateway.http.pages.core import N_, STAFF_ROLES, UI_STATE, NavItem, UiState, add_nav, html_errors, public
from gateway.http.pages.session import COOKIE_PATH, session_key

__all__ = ["MOUNT", "NavItem", "add_nav", "pages_app", "session_key"]

#: Where ``build_app`` mounts the pages: their links and redirects are absolute paths under it, and the
#: session cookie is scoped to it, so the two must not differ.
MOUNT = COOKIE_PATH

_STATIC = {
    name: (files("gateway.http.pages").joinpath("static", name).read_bytes(), ctype)
    for name, ctype in (("ui.css", "text/css"), ("favicon.svg", "image/svg+xml"))
}


@public
async def static(request: web.Request) -> web.StreamResponse:
    found = _STATIC.get(request.match_info["name"])
    if found is None:
        raise NotFound("no such file")
    body, ctype = found
    return web.Response(body=body, content_type=ctype, headers={"Cache-Control": "public, max-age=3600"})


def pages_app() -> web.Application:
    """The staff pages, to mount at ``MOUNT`` (paths below are relative to it)."""
    app = web.Application(middlewares=[html_errors])  # no problem+json under /ui: errors are pages
    staff = frozenset(STAFF_ROLES)
    app[UI_STATE] = UiState(nav=[])
    add_nav(app, NavItem("/ui/disclosures", N_("Disclosure log"), staff))
    add_nav(app, NavItem("/ui/third-countries", N_("Third countries"), staff))
    add_nav(app, NavItem("/ui/access", N_("Who read what"), staff))
    add_nav(app, NavItem("/ui/requests", N_("Requests"), staff))
    add_nav(app, NavItem("/ui/art30", N_("Art. 30 record"), staff))
    add_nav(app, NavItem("/ui/explain", N_("Explainer"), frozenset({Role.PRIVACY})))
    add_nav(app, NavItem("/ui/outbox", N_("Parked deliveries"), staff))

    r = app.router
    r.add_get("", login.ui_root)
    r.add_get("/", login.ui_root)
    r.add_get("/login", login.login_get)
    r.add_post("/login", login.login_post)
    r.add_post("/logout", login.logout_post)
    r.add_post("/language", login.language_post)
    r.add_get("/static/{name}", static)
    r.add_get("/disclosures", disclosures.log_page)
    r.add_post("/disclosures", disclosures.log_search)
    r.add_get("/disclosures.csv", disclosures.export_csv)
    r.add_get("/disclosures.xlsx", disclosures.export_xlsx)
    r.add_get("/disclosures/{entry_id}", disclosures.detail_page)
    r.add_get("/third-countries", overview.third_countries)
    r.add_get("/access", access.access_page)
    r.add_get("/requests", requests.list_page)
    r.add_get("/requests/new", requests.new_get)  # before "/requests/{request_id}", which "new" also matches
    r.add_post("/requests/new", requests.new_post)
    rid = "/requests/{request_id}"
    r.add_get(rid, requests.detail_page)
    r.add_post(f"{rid}/extract", requests.extract_post)
    r.add_get(rid + "/extract.{fmt:json|pdf}", requests.extract_download)
    for action, done in requests.ACTIONS.items():
        r.add_post(f"{rid}/{action}", requests.action_handler(action, done))
    r.add_get("/art30", rights.art30_page)
    r.add_get("/art30.json", rights.art30_json)
    r.add_get("/explain", rights.explain_get)
    r.add_post("/explain", rights.explain_post)
    outbox.add_routes(r)
    holdings.add_routes(r)
    accounts.add_routes(r)
    oidc.add_routes(r)
    return app
