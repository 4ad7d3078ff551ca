"""The staff pages through aiohttp's client: login, sessions and their cookie, CSRF, roles, values,
erasure, CSV export, escaping and security headers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import secrets
import ssl
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar, TCPConnector, web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from adapters.epp.tls import DevPki
from gateway.auth import Role
from gateway.errors import BadInput
from gateway.http.context import SERVICES, Services
from gateway.http.pages import MOUNT, pages_app
from gateway.http.pages.disclosures import LogQuery
from gateway.http.pages.session import Session, session_key
from gateway.http.problems import problem_middleware
from tests.conftest import VALID_BODY, Gateway
from tests.web.conftest import OLD_SCC, STAFF_PASSWORD, accounts_of, register_scenario
from tests.web.conftest import login as staff_login

pytestmark = pytest.mark.integration

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PERSONAL = ("Anna Andersson", "anna.andersson", "Storgatan", "19811218", "811218", "123 456 78", "Kenji", "Tokyo")


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, html
    return m.group(1)


async def login(client: TestClient[Any, Any], token: str, *, follow: bool = False) -> Any:
    """Log in as the staff account of the bearer token's role (``tests.web.conftest.login``)."""
    return await staff_login(client, token, follow=follow)


def services(gateway: Gateway) -> Services:
    app: web.Application | None = gateway.client.app
    assert app is not None
    return app[SERVICES]


def key_of(gateway: Gateway) -> bytes:
    return session_key(services(gateway).registrations.secret)


async def page_csrf(client: TestClient[Any, Any], path: str = "/ui/disclosures") -> str:
    r = await client.get(path)
    assert r.status == 200
    return csrf_of(await r.text())


async def access_log(gateway: Gateway) -> list[dict[str, Any]]:
    return await gateway.store.access_log()


# -- login, session cookie, logout --------------------------------------------------------------------

async def test_login_sets_a_strict_httponly_session_cookie(gateway: Gateway) -> None:
    r = await login(gateway.client, gateway.tokens.privacy)
    assert r.status == 303 and r.headers["Location"] == "/ui/disclosures"
    [cookie] = [c for c in r.headers.getall("Set-Cookie") if c.startswith("rg_session=")]
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= attrs
    assert "SameSite=Strict" in cookie and "Path=/ui" in cookie
    assert "secure" not in attrs  # plain http here; see the TLS test
    value = cookie.split(";")[0].split("=", 1)[1]
    found = await accounts_of(gateway).session(value)
    assert found is not None and found[1].name == "staff" and found[1].role == Role.PRIVACY.value
    assert "staff" not in value and STAFF_PASSWORD not in cookie  # a random value, nothing else
    page = await gateway.client.get("/ui/disclosures")
    assert page.status == 200
    assert "staff" in await page.text()


async def test_secure_cookie_over_https(gateway: Gateway, pki: DevPki) -> None:
    app = web.Application(middlewares=[problem_middleware])
    app[SERVICES] = services(gateway)
    app.add_subapp(MOUNT, pages_app())
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    server = TestServer(app)
    await server.start_server(ssl=ctx)
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
    client_ctx.check_hostname = False
    try:
        async with ClientSession(connector=TCPConnector(ssl=client_ctx), cookie_jar=CookieJar(unsafe=True)) as http:
            url = server.make_url("/ui/login")
            assert url.scheme == "https"
            async with http.get(url) as page:
                token = csrf_of(await page.text())
                assert "Secure" in page.headers["Set-Cookie"]
            async with http.post(url, data={"name": "audit", "password": STAFF_PASSWORD, "csrf": token},
                                 allow_redirects=False) as r:
                assert r.status == 303
                [cookie] = [c for c in r.headers.getall("Set-Cookie") if c.startswith("rg_session=")]
                assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    finally:
        await server.close()


async def test_bad_password_and_missing_login_csrf_are_refused(gateway: Gateway) -> None:
    r = await staff_login(gateway.client, "staff", password="not-the-password")
    assert r.status == 401
    assert "not right" in await r.text()
    # a login POST without the form's token (or with another one) never reaches the password check
    page = await gateway.client.get("/ui/login")
    good = {"name": "staff", "password": STAFF_PASSWORD}
    r = await gateway.client.post("/ui/login", data=good | {"csrf": "forged"}, allow_redirects=False)
    assert r.status == 403
    assert not [c for c in r.headers.getall("Set-Cookie", []) if c.startswith("rg_session=")]
    gateway.client.session.cookie_jar.clear()
    r = await gateway.client.post("/ui/login", data=good | {"csrf": csrf_of(await page.text())},
                                  allow_redirects=False)
    assert r.status == 403  # the login cookie that token belongs to is gone


async def test_pages_need_a_valid_session(gateway: Gateway) -> None:
    r = await gateway.client.get("/ui/disclosures?outcome=blocked&country=CN", allow_redirects=False)
    assert r.status == 303
    target = URL(r.headers["Location"])
    assert target.path == "/ui/login" and target.query["next"] == "/ui/disclosures?outcome=blocked&country=CN"
    accounts = accounts_of(gateway)
    ended, stored = await accounts.start_session(await accounts.get("staff"))
    await accounts.logout(stored.id)
    live, _ = await accounts.start_session(await accounts.get("audit"))
    for value in (secrets.token_urlsafe(32), ended, live[:-1], live + "x", "garbage"):
        r = await gateway.client.get("/ui/disclosures", cookies={"rg_session": value}, allow_redirects=False)
        assert r.status == 303, value


async def test_logout_needs_csrf_and_ends_the_session(gateway: Gateway) -> None:
    await login(gateway.client, gateway.tokens.privacy)
    cookie = gateway.client.session.cookie_jar.filter_cookies(gateway.client.make_url("/ui/"))["rg_session"].value
    r = await gateway.client.post("/ui/logout", data={"csrf": "wrong"}, allow_redirects=False)
    assert r.status == 403
    assert "CSRF" in await r.text()
    assert (await gateway.client.get("/ui/disclosures", allow_redirects=False)).status == 200
    r = await gateway.client.post("/ui/logout", data={"csrf": await page_csrf(gateway.client)}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/ui/login"
    # the old cookie value is no good any more, even if someone kept it
    r = await gateway.client.get("/ui/disclosures", cookies={"rg_session": cookie}, allow_redirects=False)
    assert r.status == 303


async def test_csrf_token_is_bound_to_the_session(gateway: Gateway) -> None:
    key = key_of(gateway)
    other = Session("staff", Role.PRIVACY, "0" * 64).csrf_token(key)  # another session of the same account
    await login(gateway.client, gateway.tokens.privacy)
    r = await gateway.client.post("/ui/disclosures", data={"csrf": other, "subject": "anna@example.se"},
                                  allow_redirects=False)
    assert r.status == 403
    r = await gateway.client.post("/ui/disclosures", data={"subject": "anna@example.se"}, allow_redirects=False)
    assert r.status == 403
    r = await gateway.client.post("/ui/disclosures", data={"csrf": await page_csrf(gateway.client),
                                                           "outcome": "delivered"}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/ui/disclosures?outcome=delivered"


# -- roles --------------------------------------------------------------------------------------------

async def test_ordering_role_gets_no_staff_session(gateway: Gateway) -> None:
    # the ordering system's bearer token is no password, and no staff account can have its role
    r = await staff_login(gateway.client, "shop", password=gateway.tokens.ordering)
    assert r.status == 401
    assert not [c for c in r.headers.getall("Set-Cookie", []) if c.startswith("rg_session=")]
    with pytest.raises(BadInput):
        await accounts_of(gateway).add("shop", role="ordering", password=STAFF_PASSWORD)


async def test_auditor_sees_metadata_but_never_values(gateway: Gateway) -> None:
    await register_scenario(gateway)
    # the log's unit is the command: .se is a contact:create (the values) and then a domain:create (none)
    se_entries = [e for e in await gateway.store.disclosures(LogQuery().store_filter(None)) if e.recipient == "iis-se"]
    assert [e.command for e in se_entries] == ["contact:create", "domain:create"]
    se = se_entries[0]
    await login(gateway.client, gateway.tokens.auditor)
    r = await gateway.client.get(f"/ui/disclosures/{se.id}")
    assert r.status == 200
    html = await r.text()
    assert "iis-se" in html and se.sv_trid and se.sv_trid in html and se.objects["contact"] in html
    assert "contact:create" in html
    assert "RGREGISTRAR" not in html  # the registrar's own role contact is company data, never logged
    assert "Only the privacy role sees the values sent" in html
    for value in PERSONAL:
        assert value not in html
    for path in ("/ui/disclosures", "/ui/third-countries"):
        assert (await gateway.client.get(path)).status == 200
    assert [a for a in await access_log(gateway) if a["action"] == "disclosure.values_read"] == []

    gateway.client.session.cookie_jar.clear()
    await login(gateway.client, gateway.tokens.privacy)
    html = await (await gateway.client.get(f"/ui/disclosures/{se.id}")).text()
    assert "Anna Andersson" in html and "Storgatan 1" in html
    reads = [a for a in await access_log(gateway) if a["action"] == "disclosure.values_read"]
    assert [(a["actor"], a["object_id"], a["subject_id"]) for a in reads] == [("staff", se.id, se.subject_id)]


async def test_erased_subject_shows_erased(gateway: Gateway) -> None:
    r = await gateway.post(VALID_BODY)
    reg = await gateway.wait_status((await r.json())["id"], {"delivered"})
    entry_id = reg["disclosures"][0]["id"]
    entry = await gateway.store.disclosure(entry_id)
    assert entry is not None and entry.subject_id
    await services(gateway).ledger.shred(entry.subject_id, dt.datetime.now(dt.UTC).isoformat())
    await login(gateway.client, gateway.tokens.privacy)
    html = await (await gateway.client.get(f"/ui/disclosures/{entry_id}")).text()
    assert 'id="erased"' in html and "Anna" not in html


async def test_unknown_disclosure_is_a_404_page(gateway: Gateway) -> None:
    await login(gateway.client, gateway.tokens.privacy)
    for path in ("/ui/disclosures/" + "f" * 32, "/ui/disclosures/not-an-id"):
        r = await gateway.client.get(path)
        assert r.status == 404 and r.content_type == "text/html"


async def test_the_mounted_pages_keep_the_apps_urls_and_middlewares(gateway: Gateway) -> None:
    """The pages are a sub-application under /ui: the same absolute URLs, HTML error pages under /ui (a
    problem document only outside it), and every page counted by the request metrics like the API."""
    r = await gateway.client.get("/ui", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/ui/login"
    assert (await gateway.client.get("/ui/login")).status == 200
    r = await gateway.client.get("/ui/static/ui.css")
    assert r.status == 200 and r.content_type == "text/css"
    r = await gateway.client.get("/ui/no-such-page")
    assert r.status == 404 and r.content_type == "text/html"
    assert "<h1" in await r.text() and 'href="/ui/login"' in await r.text()  # a page with a way back
    r = await gateway.client.get("/uix")
    assert r.status == 404 and r.content_type == "application/problem+json"
    assert (await r.json())["instance"] == "/uix"
    r = await gateway.client.delete("/ui/login")
    assert r.status == 405 and r.content_type == "text/html" and "POST" in r.headers["Allow"]
    metrics = await (await gateway.client.get("/metrics", headers=gateway.tokens.h("auditor"))).text()
    assert 'gateway_http_requests_total{route="/ui/login",status="200"} 1.0' in metrics
    assert 'gateway_http_requests_total{route="unmatched",status="404"} 2.0' in metrics


# -- the log: filters, subject search, export ------------------------------------------------------

async def test_filters_and_subject_search(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await login(gateway.client, gateway.tokens.privacy)

    async def recipients(query: str) -> list[str]:
        # oldest first, so the lists below read in the order the scenario registered (the page's default
        # is newest first)
        r = await gateway.client.get("/ui/disclosures?" + "&".join(filter(None, [query, "sort=time&dir=asc"])))
        assert r.status == 200, await r.text()
        return re.findall(r'data-recipient="([a-z0-9-]+)"', await r.text())

    # one row per command: the thick registries (.se, .org, .jp) a contact:create and a domain:create each,
    # thin .com a domain:create, blocked .cn the one blocked entry
    assert await recipients("") == ["iis-se", "iis-se", "pir-org", "pir-org", "verisign-com", "jprs-jp", "jprs-jp",
                                    "cnnic-cn"]
    assert await recipients("third_country=true") == ["pir-org", "pir-org", "jprs-jp", "jprs-jp", "cnnic-cn"]
    assert await recipients("third_country=false") == ["iis-se", "iis-se", "verisign-com"]
    assert await recipients("instrument=Commission+Implementing+Decision+%28EU%29+2019%2F419") == [
        "jprs-jp", "jprs-jp"]
    assert await recipients("instrument=none") == ["iis-se", "iis-se", "verisign-com", "cnnic-cn"]
    assert await recipients("outcome=blocked") == ["cnnic-cn"]
    assert await recipients("country=US") == ["pir-org", "pir-org", "verisign-com"]
    assert await recipients("purpose=escrow") == []
    [first] = await gateway.store.disclosures(replace(LogQuery().store_filter(None), limit=1))
    today = dt.date.fromisoformat(first.recorded_at[:10])
    assert len(await recipients(f"since={today}&until={today}")) == 8
    assert await recipients(f"until={today - dt.timedelta(days=1)}") == []

    # subject by national id, typed in another form: found through the blind index, not in the URL
    csrf = await page_csrf(gateway.client)
    r = await gateway.client.post("/ui/disclosures", data={"csrf": csrf, "subject": "811218-9876",
                                                           "third_country": "true"}, allow_redirects=False)
    assert r.status == 303
    location = r.headers["Location"]
    assert "811218" not in location and "subject_id=" in location and "third_country=true" in location
    assert await recipients(location.split("?", 1)[1]) == ["pir-org", "pir-org"]
    r = await gateway.client.post("/ui/disclosures", data={"csrf": csrf, "subject": "Kenji.Sato@EXAMPLE.jp"},
                                  allow_redirects=True)
    assert re.findall(r'data-recipient="([a-z0-9-]+)"', await r.text()) == ["jprs-jp", "jprs-jp"]
    r = await gateway.client.post("/ui/disclosures", data={"csrf": csrf, "subject": "nobody@example.org"})
    html = await r.text()
    assert 'id="no-subject"' in html and "data-recipient" not in html and "nobody@" not in str(r.url)


async def test_bad_filters_and_escaping(gateway: Gateway) -> None:
    await login(gateway.client, gateway.tokens.privacy)
    r = await gateway.client.get("/ui/disclosures?country=sweden")
    assert r.status == 400
    # what used to be a 500: "²".isdigit() is true and int("²") fails; the day after 9999-12-31
    for query in ("after=²", "after=¹²", "after=" + "9" * 5000, "since=٢٠٢٤-01-01", "since=2024-02-30",
                  "instrument=%E2%80%AEevil", "instrument=a%00b", "outcome=lost", "third_country=yes"):
        for path in ("/ui/disclosures", "/ui/disclosures.csv"):
            r = await gateway.client.get(f"{path}?{query}")
            assert r.status == 400 and r.content_type == "text/html", (path, query, r.status)
            assert query.split("=")[0] in await r.text()
    for query in ("until=9999-12-31", "since=0001-01-01&until=9999-12-31", "country=&recipient=&after="):
        for path in ("/ui/disclosures", "/ui/disclosures.csv"):
            r = await gateway.client.get(f"{path}?{query}")
            assert r.status == 200, (path, query, r.status)
    r = await gateway.client.post("/ui/disclosures", data={"csrf": await page_csrf(gateway.client), "after": "²"})
    assert r.status == 400
    r = await gateway.client.get("/ui/disclosures?instrument=%3Cscript%3Ealert(1)%3C/script%3E")
    html = await r.text()
    assert r.status == 200
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_csv_export_is_metadata_only_and_logged(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await login(gateway.client, gateway.tokens.auditor)
    r = await gateway.client.get("/ui/disclosures.csv?third_country=true")
    assert r.status == 200
    assert r.headers["Content-Type"].startswith("text/csv")
    assert re.fullmatch(r'attachment; filename="disclosures-\d{8}T\d{6}Z\.csv"', r.headers["Content-Disposition"])
    assert r.headers["X-Frame-Options"] == "DENY"
    text = (await r.read()).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["recipient"] for row in rows] == ["pir-org", "pir-org", "jprs-jp", "jprs-jp", "cnnic-cn"]
    assert rows[0]["instrument"] == "Commission Implementing Decision (EU) 2021/914, module 1"
    assert [row["outcome"] for row in rows] == ["delivered"] * 4 + ["blocked"]
    for value in PERSONAL:
        assert value not in text
    [log] = [a for a in await access_log(gateway) if a["action"] == "disclosures.exported"]
    assert log["actor"] == "audit" and log["object_id"] == "third_country=true" and log["subject_id"] is None


async def test_third_country_overview_counts(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await login(gateway.client, gateway.tokens.auditor)
    html = await (await gateway.client.get("/ui/third-countries")).text()
    rows = re.findall(r'<tr class="transfer" data-recipient="([a-z0-9-]+)".*?</tr>', html, re.S)
    assert rows == ["cnnic-cn", "jprs-jp", "pir-org"]
    expiring = html.split('id="expiring"')[1].split('id="expired"')[0]
    assert "2021/914, module 1" in expiring and "pir-org" in expiring
    expired = html.split('id="expired"')[1]
    assert OLD_SCC in expired and "2021/1772" in expired


async def test_security_headers(gateway: Gateway) -> None:
    r = await gateway.client.get("/ui/login")
    await login(gateway.client, gateway.tokens.privacy)
    for resp in (r, await gateway.client.get("/ui/disclosures"), await gateway.client.get("/ui/static/ui.css")):
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp and "'unsafe-inline'" not in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    html = await (await gateway.client.get("/ui/third-countries")).text()
    assert "<script" not in html and " style=" not in html
