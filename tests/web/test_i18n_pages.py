"""The staff pages in Swedish and English, and their errors as pages: Swedish unless the person (their
account, the language cookie, the browser) asked otherwise; the language switch remembered on the
account; no problem+json anywhere under /ui, every error page with a heading in the page's language and
a way back."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway.http.pages.core import html_errors
from tests.conftest import Gateway
from tests.web.conftest import add_staff, login

pytestmark = pytest.mark.integration

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
H1 = re.compile(r"<h1>(.*?)</h1>", re.S)


def h1(html: str) -> str:
    m = H1.search(html)
    assert m, html[:500]
    return m.group(1).strip()


async def get(gateway: Gateway, path: str, **kw: Any) -> tuple[int, str, str, Any]:
    r = await gateway.client.get(path, **kw)
    return r.status, r.content_type, await r.text(), r


async def test_swedish_is_the_default_before_log_in(gateway: Gateway) -> None:
    status, _ctype, html, _ = await get(gateway, "/ui/login")
    assert status == 200 and '<html lang="sv">' in html
    assert h1(html) == "Logga in" and "Hoppa till innehållet" in html
    # the browser's own language counts when nothing was chosen
    gateway.client.session.cookie_jar.clear()
    _s, _c, html, _ = await get(gateway, "/ui/login", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert '<html lang="en">' in html and h1(html) == "Log in" and "Skip to content" in html


async def test_the_login_pages_language_link_sets_the_cookie(gateway: Gateway) -> None:
    r = await gateway.client.get("/ui/login?lang=en", allow_redirects=False)
    assert r.status == 303 and r.cookies["rg_lang"].value == "en"
    _s, _c, html, _ = await get(gateway, "/ui/login")
    assert h1(html) == "Log in"


async def test_the_switch_is_remembered_on_the_account(gateway: Gateway) -> None:
    await add_staff(gateway, "sofia", "privacy", lang="sv")
    assert (await login(gateway.client, "sofia")).status == 303
    _s, _c, html, _ = await get(gateway, "/ui/art30")
    assert '<html lang="sv">' in html and "Utlämningslogg" in html and "Logga ut" in html
    assert h1(html) == "Register över behandlingar (art. 30)"
    m = CSRF.search(html)
    assert m
    r = await gateway.client.post("/ui/language", data={"lang": "en", "csrf": m.group(1), "next": "/ui/art30"},
                                  allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/ui/art30"
    # a new browser (no cookies): the account's choice still holds after logging in again
    gateway.client.session.cookie_jar.clear()
    assert (await login(gateway.client, "sofia")).status == 303
    gateway.client.session.cookie_jar.update_cookies({"rg_lang": "sv"})  # the account wins over the cookie
    _s, _c, html, _ = await get(gateway, "/ui/art30")
    assert '<html lang="en">' in html and h1(html) == "Record of processing activities (Art. 30)"
    assert "Disclosure log" in html and "Log out" in html


@pytest.mark.parametrize("lang,heading,back", [("sv", "Sidan finns inte", "Tillbaka till utlämningsloggen"),
                                               ("en", "Page not found", "Back to the disclosure log")])
async def test_unknown_ui_paths_are_a_404_page(gateway: Gateway, lang: str, heading: str, back: str) -> None:
    await add_staff(gateway, f"p{lang}", "privacy", lang=lang)
    assert (await login(gateway.client, f"p{lang}")).status == 303
    for path in ("/ui/no-such-page", "/ui/requests/x/y/z", "/ui/static/nothing.css"):
        status, ctype, html, r = await get(gateway, path)
        assert (status, ctype) == (404, "text/html"), path
        assert h1(html) == heading and back in html and 'href="/ui/disclosures"' in html
        assert r.headers["Content-Security-Policy"].startswith("default-src 'none'")
    # outside the mount point the API's problems stay
    status, ctype, _h, _r = await get(gateway, "/uix")
    assert (status, ctype) == (404, "application/problem+json")


async def test_405_is_a_page_naming_the_allowed_methods(gateway: Gateway) -> None:
    r = await gateway.client.delete("/ui/login")
    html = await r.text()
    assert r.status == 405 and r.content_type == "text/html"
    assert "GET" in r.headers["Allow"] and "POST" in r.headers["Allow"]
    assert h1(html) == "Går inte att göra på den här sidan" and 'href="/ui/login"' in html


async def test_403_is_a_page_with_a_way_back(gateway: Gateway) -> None:
    await add_staff(gateway, "granskare", "auditor", lang="sv")
    await login(gateway.client, "granskare")
    status, ctype, html, _ = await get(gateway, "/ui/explain")
    assert (status, ctype) == (403, "text/html")
    assert h1(html) == "Inte tillåtet" and "Tillbaka till utlämningsloggen" in html
    assert 'lang="en"' in html  # the English detail is marked as English for screen readers


async def test_not_logged_in_errors_offer_the_login(gateway: Gateway) -> None:
    status, ctype, html, _ = await get(gateway, "/ui/nowhere")
    assert (status, ctype) == (404, "text/html") and 'href="/ui/login"' in html and "Logga in" in html


async def test_a_crash_is_a_500_page_that_quotes_nothing() -> None:
    """An unexpected exception in a page: a 500 page in the visitor's language, logged by type only, with
    nothing of the exception's message (which can quote input) in the page."""
    async def crash(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("Anna Andersson 19811218-9876")

    app = web.Application(middlewares=[html_errors])
    app.router.add_get("/crash", crash)
    async with TestClient(TestServer(app)) as client:
        r = await client.get("/crash", headers={"Accept-Language": "sv"})
        html = await r.text()
        assert r.status == 500 and r.content_type == "text/html"
        assert h1(html) == "Något gick fel hos oss" and 'href="/ui/login"' in html
        assert "Anna" not in html and "1981" not in html and "RuntimeError" not in html
        assert r.headers["X-Frame-Options"] == "DENY"
