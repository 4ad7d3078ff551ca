"""The served docs for people: ``/docs`` (Redoc over ``/openapi.json``, its assets shipped in the package) and
``/docs/problems/{code}``, the page each problem's ``type`` points at.  No token needed.

``/docs`` alone relaxes the content security policy (Redoc needs inline styles and a blob worker); the
problem pages get a policy that allows nothing at all."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import NotFound
from gateway.http.docs import ASSETS, DOCS_CSP, PAGE_CSP, asset, docs_page, problem_index, problem_page

routes = web.RouteTableDef()

_COMMON = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


def _html(text: str, csp: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8",
                        headers={**_COMMON, "Content-Security-Policy": csp, "Cache-Control": "no-cache"})


@routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    return _html(docs_page(), DOCS_CSP)


@routes.get("/docs/static/{name}")
async def docs_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    ctype = ASSETS.get(name)
    if ctype is None:
        raise NotFound("no such file")
    return web.Response(body=asset(name), content_type=ctype, charset="utf-8",
                        headers={**_COMMON, "Cache-Control": "public, max-age=86400"})


@routes.get("/docs/problems")
async def problems(request: web.Request) -> web.Response:
    return _html(problem_index(), PAGE_CSP)


@routes.get("/docs/problems/{code}")
async def problem(request: web.Request) -> web.Response:
    page = problem_page(request.match_info["code"])
    if page is None:
        raise NotFound("no such problem code")
    return _html(page, PAGE_CSP)
