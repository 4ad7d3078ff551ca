"""Issue 12, the served docs: Redoc at /docs from the package's own files (rendered in Chromium, nothing
fetched from outside the gateway), and a page per problem code that every problem's ``type`` resolves to."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from importlib.resources import files
from urllib.parse import urljoin, urlsplit

import pytest

from gateway.errors import PROBLEM_DOCS, GatewayError
from gateway.http.docs import ASSETS, DOCS_CSP, problem_docs
from gateway.http.openapi import OPERATIONS, openapi_document
from gateway.http.pages.core import SECURITY_HEADERS
from tests.conftest import Gateway
from tests.web.chromium import chromium_page, needs_chromium

pytestmark = pytest.mark.integration


def all_error_classes() -> list[type[GatewayError]]:
    out: list[type[GatewayError]] = []
    todo: list[type[GatewayError]] = [GatewayError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


# -- the problem pages --------------------------------------------------------------------------------

async def test_every_code_of_the_error_tree_and_the_document_has_a_page(gateway: Gateway) -> None:
    codes = {cls.code for cls in all_error_classes()}
    documented = {c for ops in openapi_document()["paths"].values() for op in ops.values()
                  for resp in op["responses"].values() for c in resp.get("x-problem-codes", ())}
    assert documented <= codes, "the document names codes the error tree lacks"
    assert set(problem_docs()) == codes
    index = await gateway.client.get("/docs/problems")
    assert index.status == 200 and index.content_type == "text/html"
    text = await index.text()
    for cls in all_error_classes():
        assert f'id="{cls.code}"' in text, cls
        r = await gateway.client.get(f"{PROBLEM_DOCS}{cls.code}")
        assert r.status == 200, cls.code
        page = await r.text()
        assert f"<code>{cls.code}</code>" in page and str(cls.status) in page
        first_line = (cls.__doc__ or "").strip().split("\n")[0].split("  ")[0][:30]
        assert first_line.split(";")[0][:20] in page.replace("&#x27;", "'"), cls.code


async def test_an_unknown_code_is_a_404_problem(gateway: Gateway) -> None:
    r = await gateway.client.get("/docs/problems/no_such_code")
    assert r.status == 404 and r.content_type == "application/problem+json"


async def follow_type(gateway: Gateway, problem: dict[str, object], request_url: str) -> str:
    target = urljoin(request_url, str(problem["type"]))
    assert urlsplit(target).netloc == urlsplit(request_url).netloc  # resolves on this gateway
    r = await gateway.client.get(urlsplit(target).path)
    assert r.status == 200 and r.content_type == "text/html"
    return await r.text()


async def test_the_type_of_real_problems_resolves_to_a_page_naming_the_code(gateway: Gateway) -> None:
    base = str(gateway.client.make_url("/"))
    cases = [
        ("/v1/disclosures/" + "0" * 32, "privacy", 404, "not_found"),
        ("/v1/disclosures?limit=many", "privacy", 422, "query_invalid"),
        ("/v1/requests/" + "0" * 32, "privacy", 404, "request_not_found"),
        ("/v1/disclosures", None, 401, "unauthenticated"),
        ("/v1/disclosures", "ordering", 403, "forbidden"),
    ]
    for path, role, status, code in cases:
        r = await gateway.client.get(path, headers=gateway.tokens.h(role) if role else {})
        assert r.status == status, path
        problem = await r.json(content_type="application/problem+json")
        assert problem["code"] == code and problem["type"] == f"/docs/problems/{code}"
        page = await follow_type(gateway, problem, urljoin(base, path))
        assert f"<code>{code}</code>" in page and f"<title>Problem {code} " in page
    # a body that fails validation
    r = await gateway.post({"domain": "exempel.se"})
    assert r.status == 422
    problem = await r.json(content_type="application/problem+json")
    assert "validation_failed" in await follow_type(gateway, problem, urljoin(base, "/v1/registrations"))


# -- the Redoc page -----------------------------------------------------------------------------------

async def test_docs_relax_the_csp_for_themselves_only(gateway: Gateway) -> None:
    r = await gateway.client.get("/docs")
    assert r.status == 200 and r.content_type == "text/html"
    assert r.headers["Content-Security-Policy"] == DOCS_CSP
    assert "'unsafe-eval'" not in DOCS_CSP and "http" not in DOCS_CSP
    html = await r.text()
    assert 'spec-url="/openapi.json"' in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "the page must load nothing from elsewhere"
    problems = await gateway.client.get("/docs/problems")
    assert "unsafe" not in problems.headers["Content-Security-Policy"]
    login = await gateway.client.get("/ui/login")
    assert login.headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]


async def test_assets_are_shipped_in_the_package_with_their_licence(gateway: Gateway) -> None:
    shipped = files("gateway.http.docs").joinpath("static")
    assert "MIT License" in shipped.joinpath("redoc.LICENSE").read_text(encoding="utf-8")
    for name in ASSETS:
        r = await gateway.client.get(f"/docs/static/{name}")
        assert r.status == 200, name
        assert await r.read() == shipped.joinpath(name).read_bytes()
    r = await gateway.client.get("/docs/static/..%2Fapp.py")
    assert r.status == 404
    r = await gateway.client.get("/docs/static/nothing.js")
    assert r.status == 404 and r.content_type == "application/problem+json"


@dataclass
class Seen:
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    operations: int = 0
    title: str = ""
    text: str = ""


def drive(base: str) -> Seen:
    seen = Seen()
    with chromium_page(seen.errors) as page:
        page.on("request", lambda req: seen.requests.append(req.url))
        page.on("pageerror", lambda exc: seen.errors.append(f"pageerror: {exc}"))
        page.goto(f"{base}/docs")
        page.wait_for_selector('[data-section-id^="operation/"]', timeout=60_000)
        page.wait_for_load_state("networkidle")
        seen.operations = page.locator('[data-section-id^="operation/"]').count()
        seen.title = page.title()
        seen.text = page.locator("body").inner_text()
    return seen


@needs_chromium
async def test_the_docs_page_renders_every_operation_in_chromium(gateway: Gateway) -> None:
    base = str(gateway.client.make_url("/")).rstrip("/")
    assert base.startswith("http://127.0.0.1:")
    seen = await asyncio.to_thread(drive, base)
    assert seen.errors == [], (seen.errors, seen.requests)
    assert seen.operations == len(OPERATIONS)
    assert "Register a domain" in seen.text and "Registrant Gateway" in seen.text
    assert seen.requests, "the browser made no request at all"
    outside = [u for u in seen.requests if not (u.startswith(base + "/") or u.startswith(("blob:", "data:")))]
    assert outside == [], "only loopback traffic"
    assert f"{base}/openapi.json" in seen.requests
    assert f"{base}/docs/static/redoc.standalone.js" in seen.requests
