"""Server-rendered pages for privacy staff (no JavaScript): login, the disclosure log with filters and
CSV export, disclosure details with the values sent (privacy role only, each read logged), and the
third-country overview.

``add_routes(app)`` mounts everything under ``/ui``; more pages plug in through ``gateway.web.core``
(``page``, ``render``, ``checked_form``) and ``add_nav``.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web

from gateway.errors import NotFound
from gateway.web.core import STAFF_ROLES, UI_STATE, NavItem, UiState, add_nav, public
from gateway.web.session import Revocations, session_key

__all__ = ["NavItem", "add_nav", "add_routes", "session_key"]

_STATIC = {
    name: (files("gateway.web").joinpath("static", name).read_bytes(), ctype)
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
    from gateway.web import disclosures, login, overview

    staff = frozenset(STAFF_ROLES)
    app[UI_STATE] = UiState(nav=[], revocations=Revocations())
    add_nav(app, NavItem("/ui/disclosures", "Disclosure log", staff))
    add_nav(app, NavItem("/ui/third-countries", "Third countries", staff))

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
