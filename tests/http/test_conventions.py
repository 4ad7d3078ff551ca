"""Issue 12, HTTP conventions: a 401 carries its bearer challenge (RFC 6750), a 405 names the methods the
path supports (RFC 9110), on the API; the staff pages keep their own answers (a login form, a redirect)."""

from __future__ import annotations

import pytest

from gateway.http.openapi import OPERATIONS
from tests.conftest import Gateway

pytestmark = pytest.mark.integration

CHALLENGE = 'Bearer realm="registrant-gateway"'


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/disclosures"), ("POST", "/v1/registrations"), ("GET", "/metrics"),
    ("POST", "/v1/requests/" + "0" * 32 + "/erase"),
])
async def test_401_without_a_token_carries_the_bare_challenge(gateway: Gateway, method: str, path: str) -> None:
    r = await gateway.client.request(method, path)
    assert r.status == 401
    assert r.headers["WWW-Authenticate"] == CHALLENGE
    assert (await r.json(content_type="application/problem+json"))["code"] == "unauthenticated"


async def test_401_with_an_unknown_token_says_invalid_token(gateway: Gateway) -> None:
    for header in ("Bearer not-a-token", "bearer not-a-token"):
        r = await gateway.client.get("/v1/disclosures", headers={"Authorization": header})
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == f'{CHALLENGE}, error="invalid_token"'
        assert "not-a-token" not in await r.text()
    # another scheme is no bearer token at all: the bare challenge
    r = await gateway.client.get("/v1/disclosures", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status == 401 and r.headers["WWW-Authenticate"] == CHALLENGE


async def test_403_and_success_carry_no_challenge(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/disclosures", headers=gateway.tokens.h("ordering"))
    assert r.status == 403 and "WWW-Authenticate" not in r.headers
    r = await gateway.client.get("/v1/disclosures", headers=gateway.tokens.h("privacy"))
    assert r.status == 200 and "WWW-Authenticate" not in r.headers


def documented_methods(path: str) -> set[str]:
    methods = {m for (m, p) in OPERATIONS if p == path}
    return methods | ({"HEAD"} if "GET" in methods else set())


@pytest.mark.parametrize(("method", "path", "documented"), [
    ("PUT", "/v1/registrations", "/v1/registrations"),
    ("DELETE", "/v1/requests", "/v1/requests"),
    ("PATCH", "/v1/disclosures/" + "0" * 32, "/v1/disclosures/{entry_id}"),
    ("POST", "/healthz", "/healthz"),
    ("DELETE", "/v1/ledger/checkpoints", "/v1/ledger/checkpoints"),
])
async def test_405_names_the_allowed_methods(gateway: Gateway, method: str, path: str, documented: str) -> None:
    r = await gateway.client.request(method, path, headers=gateway.tokens.h("privacy"))
    assert r.status == 405
    allowed = {m.strip() for m in r.headers["Allow"].split(",")}
    assert allowed == documented_methods(documented)
    problem = await r.json(content_type="application/problem+json")
    assert problem["code"] == "method_not_allowed" and problem["type"] == "/docs/problems/method_not_allowed"


async def test_the_pages_keep_their_answers(gateway: Gateway) -> None:
    # no session: a redirect to the login form, not a 401 challenge
    r = await gateway.client.get("/ui/disclosures", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"].startswith("/ui/login")
    assert "WWW-Authenticate" not in r.headers
    # a method the page does not have: the same 405 problem, with Allow
    r = await gateway.client.request("PUT", "/ui/login", allow_redirects=False)
    assert r.status == 405
    assert {m.strip() for m in r.headers["Allow"].split(",")} == {"GET", "HEAD", "POST"}
