"""Named staff accounts on the pages: log-in with a user name and password, sessions kept in the store
(any instance ends them), throttling, the admin page, the language choice, and reads attributed to the
person; through aiohttp's client and, once, real Chromium."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from yarl import URL

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.http.pages.login import ProxySettings, client_address
from tests.conftest import Gateway, Tokens, running_gateway
from tests.web.chromium import chromium_page, fill_login, needs_chromium
from tests.web.conftest import STAFF_PASSWORD, accounts_of, add_staff, login, register_scenario, web_config

pytestmark = pytest.mark.integration

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SAME_ANSWER = "The user name or password is not right."
EN = {"Accept-Language": "en"}


def cookie_of(client: TestClient[Any, Any]) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/ui/"))["rg_session"].value


async def csrf_on(client: TestClient[Any, Any], path: str = "/ui/disclosures") -> str:
    r = await client.get(path)
    assert r.status == 200, (path, r.status)
    m = CSRF.search(await r.text())
    assert m
    return m.group(1)


async def test_login_with_name_and_password_sets_a_random_session_cookie(gateway: Gateway) -> None:
    await add_staff(gateway, "petra", "privacy")
    r = await login(gateway.client, "petra")
    assert r.status == 303 and r.headers["Location"] == "/ui/disclosures"
    [cookie] = [c for c in r.headers.getall("Set-Cookie") if c.startswith("rg_session=")]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert "petra" not in value and len(value) >= 40  # a random value only, nothing to read or forge
    [live] = await accounts_of(gateway).live_sessions("petra")
    assert live.id == hashlib.sha256(value.encode()).hexdigest()  # the store keeps only its hash
    page = await gateway.client.get("/ui/disclosures")
    assert page.status == 200 and "petra" in await page.text()


async def test_failures_look_alike_and_the_login_form_needs_its_csrf_token(gateway: Gateway) -> None:
    await add_staff(gateway, "petra", "privacy")
    await add_staff(gateway, "gone", "privacy", admin=False)
    await accounts_of(gateway).disable("gone")
    answers = set()
    for name, password in (("petra", "not the password"), ("nobody", STAFF_PASSWORD), ("gone", STAFF_PASSWORD)):
        r = await login(gateway.client, name, password=password)
        assert not [c for c in r.headers.getall("Set-Cookie", []) if c.startswith("rg_session=")]
        errors = re.findall(r'<p class="error"[^>]*>([^<]*)</p>', await r.text())
        answers.add((r.status, tuple(errors)))
    assert answers == {(401, (SAME_ANSWER,))}  # whether the account exists, or is disabled, is not told
    # a log-in POST without the form's token never reaches the password check
    r = await gateway.client.post("/ui/login", data={"name": "petra", "password": STAFF_PASSWORD, "csrf": "forged"},
                                  allow_redirects=False)
    assert r.status == 403
    # a bearer token is no password
    r = await login(gateway.client, "staff", password=gateway.tokens.privacy)
    assert r.status == 401


async def test_login_is_throttled_per_name_and_per_address(gateway: Gateway) -> None:
    await add_staff(gateway, "petra", "privacy")
    for _ in range(5):
        assert (await login(gateway.client, "petra", password="a wrong guess!")).status == 401
    r = await login(gateway.client, "petra")  # the right password, too late
    assert r.status == 429
    text = await r.text()
    assert "Too many failed log-ins" in text and "15 minutes" in text and SAME_ANSWER not in text
    r = await login(gateway.client, "nobody-at-all", password="a wrong guess!")  # the address is held up too
    assert r.status == 429


def test_the_client_address_behind_trusted_proxies_only() -> None:
    proxies = ProxySettings(trusted_proxies="127.0.0.1, 10.0.0.0/8").networks()
    assert client_address("203.0.113.5", ["198.51.100.1"], proxies) == "203.0.113.5"  # not a proxy: its own
    assert client_address("127.0.0.1", ["198.51.100.1"], proxies) == "198.51.100.1"
    # the nearest address that is no proxy; what the client itself put further left is not believed
    assert client_address("127.0.0.1", ["192.0.2.66, 198.51.100.1, 10.1.2.3"], proxies) == "198.51.100.1"
    assert client_address("127.0.0.1", ["192.0.2.66", "198.51.100.1"], proxies) == "198.51.100.1"
    assert client_address("127.0.0.1", [], proxies) == "127.0.0.1"
    assert client_address("127.0.0.1", ["198.51.100.1"], ()) == "127.0.0.1"  # no proxies configured


async def test_behind_a_trusted_proxy_each_client_has_its_own_throttle(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_TRUSTED_PROXIES", "127.0.0.1")
    async with running_gateway(tmp_path, pki, sandbox, tokens, config_dir=web_config(tmp_path)) as gw:
        await add_staff(gw, "petra", "privacy")

        async def attempt(name: str, password: str, client: str) -> int:
            page = await gw.client.get("/ui/login")
            m = CSRF.search(await page.text())
            assert m
            r = await gw.client.post("/ui/login", data={"name": name, "password": password, "csrf": m.group(1)},
                                     headers={"X-Forwarded-For": client}, allow_redirects=False)
            return r.status

        for i in range(5):  # one client guessing five names
            assert await attempt(f"guess{i}", "a wrong guess!", "198.51.100.7") == 401
        assert await attempt("petra", STAFF_PASSWORD, "198.51.100.7") == 429
        assert await attempt("petra", STAFF_PASSWORD, "198.51.100.8") == 303  # another client behind the proxy


async def test_sessions_end_on_every_instance(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    """Two gateway instances on one store: a session started on one is ended by the other (log-out, an
    admin's revocation, disabling the account), at once."""
    config = web_config(tmp_path)
    async with running_gateway(tmp_path, pki, sandbox, tokens, config_dir=config) as one, \
            running_gateway(tmp_path, pki, sandbox, tokens, config_dir=config) as two:
        assert one.store is not two.store
        await add_staff(one, "admin", "privacy", admin=True)
        await add_staff(one, "petra", "auditor")

        async def on_two(cookie: str) -> int:
            r = await two.client.get("/ui/disclosures", cookies={"rg_session": cookie}, allow_redirects=False)
            return r.status

        assert (await login(one.client, "petra")).status == 303
        cookie = cookie_of(one.client)
        assert await on_two(cookie) == 200
        r = await one.client.post("/ui/logout", data={"csrf": await csrf_on(one.client)}, allow_redirects=False)
        assert r.status == 303
        assert await on_two(cookie) == 303

        assert (await login(one.client, "petra")).status == 303
        cookie = cookie_of(one.client)
        assert await on_two(cookie) == 200
        assert (await login(two.client, "admin")).status == 303
        csrf = await csrf_on(two.client, "/ui/accounts")
        r = await two.client.post("/ui/accounts/petra/revoke", data={"csrf": csrf}, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/ui/accounts?done=revoke"
        assert (await one.client.get("/ui/disclosures", allow_redirects=False)).status == 303

        assert (await login(one.client, "petra")).status == 303
        r = await two.client.post("/ui/accounts/petra/disable", data={"csrf": csrf}, allow_redirects=False)
        assert r.status == 303
        assert (await one.client.get("/ui/disclosures", allow_redirects=False)).status == 303
        assert (await login(one.client, "petra")).status == 401


async def test_the_accounts_page_is_for_admins_and_every_change_needs_csrf(gateway: Gateway) -> None:
    await add_staff(gateway, "admin", "privacy", admin=True)
    client = gateway.client
    await login(client, "staff")
    r = await client.get("/ui/accounts")
    assert r.status == 403 and r.content_type == "text/html"
    assert "/ui/accounts" not in await (await client.get("/ui/disclosures")).text()
    staff_csrf = await csrf_on(client)
    client.session.cookie_jar.clear()

    await login(client, "admin")
    page = await client.get("/ui/accounts")
    assert page.status == 200
    text = await page.text()
    assert all(f'data-name="{n}"' in text for n in ("admin", "audit", "staff"))
    form = {"name": "Eva.Lund", "display_name": "Eva Lund", "role": "auditor", "lang": "en",
            "password": "eva's long password"}
    for csrf in (None, staff_csrf):  # none, or another session's
        r = await client.post("/ui/accounts", data=form | ({"csrf": csrf} if csrf else {}), allow_redirects=False)
        assert r.status == 403
    assert await accounts_of(gateway).store.account("eva.lund") is None
    csrf = await csrf_on(client, "/ui/accounts")
    r = await client.post("/ui/accounts", data=form | {"csrf": csrf}, allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/ui/accounts?done=added"
    eva = await accounts_of(gateway).get("eva.lund")
    assert (eva.role, eva.display_name, eva.lang, eva.is_admin) == ("auditor", "Eva Lund", "en", False)
    log = [(a["actor"], a["action"], a["object_id"]) for a in await gateway.store.access_log()]
    assert log == [("admin", "account.added", "eva.lund")]  # who changed which account

    # refused: a short password; what was typed stays (never the password)
    r = await client.post("/ui/accounts", data=form | {"name": "kort", "password": "short", "csrf": csrf})
    assert r.status == 422
    text = await r.text()
    assert 'value="kort"' in text and "short" not in re.findall(r'name="password"[^>]*', text)[0]
    # refused: the last admin cannot disable themself
    r = await client.post("/ui/accounts/admin/disable", data={"csrf": csrf})
    assert r.status == 409 and "cannot disable your own account" in await r.text()

    # a new password ends eva's sessions; the new one works
    other: TestClient[Any, Any] = TestClient(client.server)
    await other.start_server()
    try:
        assert (await login(other, "eva.lund", password="eva's long password")).status == 303
        r = await client.post("/ui/accounts/eva.lund/password", data={"csrf": csrf, "password": "eva's new password"},
                              allow_redirects=False)
        assert r.status == 303
        assert (await other.get("/ui/disclosures", allow_redirects=False)).status == 303
        assert (await login(other, "eva.lund", password="eva's new password")).status == 303
    finally:
        await other.close()


async def test_language_is_remembered_per_account(gateway: Gateway) -> None:
    client = gateway.client
    await login(client, "staff")
    csrf = await csrf_on(client)
    r = await client.post("/ui/language", data={"csrf": "forged", "lang": "sv", "next": "/ui/requests"},
                          allow_redirects=False)
    assert r.status == 403
    r = await client.post("/ui/language", data={"csrf": csrf, "lang": "sv", "next": "/ui/requests"},
                          allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/ui/requests"
    assert "rg_lang=sv" in r.headers["Set-Cookie"]
    assert (await accounts_of(gateway).get("staff")).lang == "sv"
    r = await client.post("/ui/language", data={"csrf": csrf, "lang": "de"}, allow_redirects=False)
    assert r.status == 400
    # another browser: the account's language wins over the browser's
    client.session.cookie_jar.clear()
    await login(client, "staff")
    page = await client.get("/ui/disclosures", headers={"Accept-Language": "en"})
    assert 'aria-pressed="true">Svenska' in await page.text()
    # the log-in page's own switch: a cookie only
    client.session.cookie_jar.clear()
    r = await client.get("/ui/login?lang=en&next=/ui/requests", allow_redirects=False)
    target = URL(r.headers["Location"])
    assert r.status == 303 and target.path == "/ui/login" and target.query["next"] == "/ui/requests"
    assert "rg_lang=en" in r.headers["Set-Cookie"]


async def test_reads_are_attributed_to_the_person(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await add_staff(gateway, "petra", "privacy")
    await login(gateway.client, "petra")
    [entry] = [e for e in await gateway.store.disclosures(_all()) if e.recipient == "iis-se" and
               e.command == "contact:create"]
    r = await gateway.client.get(f"/ui/disclosures/{entry.id}")
    assert r.status == 200
    reads = [a for a in await gateway.store.access_log() if a["action"] == "disclosure.values_read"]
    assert [(a["actor"], a["object_id"]) for a in reads] == [("petra", entry.id)]


def _all() -> Any:
    from gateway.store.base import DisclosureFilter

    return DisclosureFilter()


@needs_chromium
async def test_browser_login_language_switch_and_logout(gateway: Gateway) -> None:
    await add_staff(gateway, "petra", "privacy", lang="en")
    server = gateway.client.server
    base = str(server.make_url("/")).rstrip("/")

    def drive() -> dict[str, Any]:
        errors: list[str] = []
        seen: dict[str, Any] = {}
        with chromium_page(errors) as page:
            page.goto(f"{base}/ui/requests")
            page.wait_for_url(re.compile(r"/ui/login\?next="))
            seen["label_name"] = page.locator("label[for=name]").inner_text()
            fill_login(page, "petra", "not the password")
            seen["error"] = page.locator("#login-error").inner_text()
            fill_login(page, "petra")
            page.wait_for_url(re.compile(r"/ui/requests$"))
            seen["who"] = page.locator("form.who span").inner_text()
            page.click("form.language button[value=sv]")
            page.wait_for_url(re.compile(r"/ui/requests$"))
            seen["pressed"] = page.locator("form.language button[aria-pressed=true]").inner_text()
            page.click("form.who button[type=submit]")
            page.wait_for_url(re.compile(r"/ui/login$"))
            page.goto(f"{base}/ui/disclosures")
            page.wait_for_url(re.compile(r"/ui/login\?next="))
        seen["errors"] = errors
        return seen

    seen = await asyncio.to_thread(drive)
    assert seen["label_name"] == "User name"
    assert seen["error"] == SAME_ANSWER
    assert seen["who"].startswith("petra")
    assert seen["pressed"] == "Svenska"
    assert (await accounts_of(gateway).get("petra")).lang == "sv"
    assert [e for e in seen["errors"] if "401" not in e] == []  # only the wrong password's answer


# -- OpenID Connect, against an identity provider the test runs on loopback -----------------------------------

@dataclass
class Idp:
    """A small OpenID Connect provider: discovery, JWKS, an authorize endpoint that logs ``subject`` in at once,
    and a token endpoint that checks the client, the code, the redirect URI and the PKCE verifier."""

    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "test-1"},
                                                                     private=True))
    subject: str = "idp|petra"
    audience: str = "registrant-gateway"
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: int = 0
    base: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.base, "authorization_endpoint": f"{self.base}/authorize",
                                  "token_endpoint": f"{self.base}/token", "jwks_uri": f"{self.base}/jwks",
                                  "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
                                  "id_token_signing_alg_values_supported": ["RS256"]})

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        assert q["response_type"] == "code" and q["client_id"] == "registrant-gateway" and q["scope"] == "openid"
        assert q["code_challenge_method"] == "S256" and len(q["code_challenge"]) == 43
        code = secrets.token_urlsafe(16)
        self.codes[code] = {"challenge": q["code_challenge"], "nonce": q["nonce"], "redirect_uri": q["redirect_uri"]}
        raise web.HTTPFound(f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}")

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        expected = "Basic " + base64.b64encode(b"registrant-gateway:idp-client-secret").decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.codes.pop(str(form.get("code")), None)  # a code is good once
        verifier = str(form.get("code_verifier"))
        if (grant is None or form.get("grant_type") != "authorization_code"
                or form.get("redirect_uri") != grant["redirect_uri"]
                or create_s256_code_challenge(verifier) != grant["challenge"]):
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        claims = {"iss": self.base, "sub": self.subject, "aud": self.audience, "nonce": grant["nonce"],
                  "iat": now, "exp": now + 300}
        id_token = jwt.encode({"alg": "RS256", "kid": "test-1"}, claims, self.key)
        return web.json_response({"access_token": "opaque", "token_type": "Bearer", "id_token": id_token})


async def test_openid_connect_log_in_with_pkce_for_linked_accounts_only(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    idp = Idp()
    idp_server = TestServer(idp.app())
    await idp_server.start_server()
    idp.base = str(idp_server.make_url("")).rstrip("/")
    monkeypatch.setenv("GATEWAY_OIDC_ISSUER", idp.base)
    monkeypatch.setenv("GATEWAY_OIDC_CLIENT_ID", "registrant-gateway")
    monkeypatch.setenv("GATEWAY_OIDC_CLIENT_SECRET", "idp-client-secret")
    try:
        async with running_gateway(tmp_path, pki, sandbox, tokens, config_dir=web_config(tmp_path)) as gw:
            client = gw.client
            page = await (await client.get("/ui/login?next=/ui/requests")).text()
            assert 'href="/ui/login/oidc?next=/ui/requests"' in page.replace("%2F", "/")
            await accounts_of(gw).add("petra", role="privacy", lang="en")  # no password: OpenID Connect only

            # an identity no account is linked to is refused (and gets no account)
            r = await client.get("/ui/login/oidc?next=/ui/requests", headers=EN)
            assert r.status == 403 and "No staff account is linked" in await r.text()
            assert idp.token_requests == 1 and [a.name for a in await accounts_of(gw).all_accounts()] == ["petra"]

            await accounts_of(gw).link_oidc("petra", "idp|petra")
            r = await client.get("/ui/login/oidc?next=/ui/requests", headers=EN)
            assert r.status == 200 and r.url.path == "/ui/requests"
            assert 'form class="who"' in (text := await r.text()) and "petra" in text
            assert [len(await accounts_of(gw).live_sessions("petra"))] == [1]
            client.session.cookie_jar.clear()

            # a callback with another flow's state, or none started, is refused before the provider is asked
            asked = idp.token_requests
            start = await client.get("/ui/login/oidc", headers=EN, allow_redirects=False)
            assert start.status == 303 and URL(start.headers["Location"]).query["code_challenge_method"] == "S256"
            r = await client.get(f"/ui/login/oidc/callback?{urlencode({'code': 'x', 'state': 'forged'})}", headers=EN)
            assert r.status == 403 and idp.token_requests == asked
            client.session.cookie_jar.clear()
            r = await client.get(f"/ui/login/oidc/callback?{urlencode({'code': 'x', 'state': 'x'})}", headers=EN)
            assert r.status == 403

            # an ID token for another client is not accepted
            idp.audience = "another-client"
            r = await client.get("/ui/login/oidc", headers=EN)
            assert r.status == 401 and "could not be verified" in await r.text()
            assert (await client.get("/ui/disclosures", allow_redirects=False)).status == 303

            # a disabled account cannot log in through the provider either
            idp.audience = "registrant-gateway"
            await accounts_of(gw).add("admin", role="privacy", password=STAFF_PASSWORD, is_admin=True)
            await accounts_of(gw).disable("petra", by="admin")
            r = await client.get("/ui/login/oidc", headers=EN)
            assert r.status == 403
    finally:
        await idp_server.close()
