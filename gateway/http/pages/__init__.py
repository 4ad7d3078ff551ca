"""Server-rendered pages for privacy staff (no JavaScript): login, the disclosure log with filters and
CSV export, disclosure details with the values sent (privacy role only, each read logged), and the
third-country overview; data-subject requests (list, opening, each request with its event log and the
actions on it, Art. 15 extracts), the Art. 30 record and the policy explainer.

``add_routes(app)`` mounts everything under ``/ui``; more pages plug in through ``gateway.http.pages.core``
(``page``, ``render``, ``checked_form``) and ``add_nav``.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from gateway.auth import Role
from gateway.errors import NotFound
from gateway.http.pages.core import STAFF_ROLES, UI_STATE, NavItem, UiState, add_nav, public
from gateway.http.pages.session import Revocations, session_key

__all__ = ["NavItem", "add_nav", "add_routes", "session_key"]

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


def add_routes(app: web.Application) -> None:
    """Mount the staff pages on ``app`` (before it starts)."""
    from gateway.http.pages import disclosures, login, overview, requests, rights

    staff = frozenset(STAFF_ROLES)
    app[UI_STATE] = UiState(nav=[], revocations=Revocations())
    add_nav(app, NavItem("/ui/disclosures", "Disclosure log", staff))
    add_nav(app, NavItem("/ui/third-countries", "Third countries", staff))
    add_nav(app, NavItem("/ui/requests", "Requests", staff))
    add_nav(app, NavItem("/ui/art30", "Art. 30 record", staff))
    add_nav(app, NavItem("/ui/explain", "Explainer", frozenset({Role.PRIVACY})))

    r = app.router
    r.add_get("/ui", login.ui_root)
    r.add_get("/ui/", login.ui_root)
    r.add_get("/ui/login", login.login_get)
    r.add_post("/ui/login", login.login_post)
    r.add_post("/ui/logout", login.logout_post)
    r.add_get("/ui/static/{name}", static)
    r.add_get("/ui/disclosures", disclosures.log_page)
    r.add_post("/ui/disclosures", disclosures.log_search)
    r.add_get("/ui/disclosures.csv", disclosures.export_csv)
    r.add_get("/ui/disclosures/{entry_id}", disclosures.detail_page)
    r.add_get("/ui/third-countries", overview.third_countries)
    r.add_get("/ui/requests", requests.list_page)
    r.add_get("/ui/requests/new", requests.new_get)
    r.add_post("/ui/requests/new", requests.new_post)
    rid = "/ui/requests/{request_id}"
    r.add_get(rid, requests.detail_page)
    r.add_post(f"{rid}/extract", requests.extract_post)
    r.add_get(rid + "/extract.{fmt:json|pdf}", requests.extract_download)
    for action, done in requests.ACTIONS.items():
        r.add_post(f"{rid}/{action}", requests.action_handler(action, done))
    r.add_get("/ui/art30", rights.art30_page)
    r.add_get("/ui/art30.json", rights.art30_json)
    r.add_get("/ui/explain", rights.explain_get)
    r.add_post("/ui/explain", rights.explain_post)
