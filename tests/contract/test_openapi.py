"""The OpenAPI document describes exactly the API routes the app registers, and is a valid document.

Walks ``app.router`` of the real app, so a route added without its description (or a description left
behind by a removed route) fails here, not in a client's integration."""

from __future__ import annotations

import re
import secrets
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from aiohttp import web

from gateway.http.openapi import OPERATIONS, Operation, openapi_document, problem_codes
from gateway.http.pages import MOUNT
from tests.conftest import Gateway


def registered_api_routes(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every route of the app itself; the staff pages' sub-app is not API."""
    out: set[tuple[str, str]] = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if path is None or str(path).startswith(MOUNT):  # the /ui sub-application (its prefix resource)
            continue
        out.add((route.method, re.sub(r"\{(\w+):[^}]*\}", r"{\1}", str(path))))
    return out


async def test_every_registered_api_route_is_documented(contract_gateway: Gateway) -> None:
    registered = registered_api_routes(contract_gateway.client.app)
    assert len(registered) >= 29
    documented = {(m.upper(), p) for p, ops in openapi_document()["paths"].items() for m in ops}
    assert registered - documented == set(), "routes without an OpenAPI description"
    assert documented - registered == set(), "OpenAPI describes routes the app does not have"
    assert set(OPERATIONS) == documented


async def test_the_document_is_served_and_valid(contract_gateway: Gateway) -> None:
    r = await contract_gateway.client.get("/openapi.json")
    doc: dict[str, Any] = await r.json()
    assert doc == openapi_document()
    schema = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(OPERATIONS)
    for (method, path), op in OPERATIONS.items():
        described = doc["paths"][path][method.lower()]
        assert str(op.ok) in described["responses"]
        if op.roles:
            assert {"401", "403"} <= set(described["responses"]), (method, path)
        else:
            assert described["security"] == []
        for status, resp in described["responses"].items():
            if int(status) >= 400:
                assert "application/problem+json" in resp["content"], (method, path, status)
    # request bodies come from the handlers' models, query parameters from their query models
    rights = doc["paths"]["/v1/requests"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert rights == {"$ref": "#/components/schemas/OpenRequest"}
    params = {p["name"]: p for p in doc["paths"]["/v1/disclosures"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 1000 and "ge" not in params["limit"]["schema"]
    audit = {p["name"]: p for p in doc["paths"]["/v1/ledger/audit"]["get"]["parameters"]}
    assert audit["size"]["required"] and audit["root"]["schema"]["pattern"]


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> Any:
    """A JSON Schema 2020-12 validator for ``schema`` whose ``#/components/...`` refs resolve in ``doc``."""
    return jsonschema_rs.Draft202012Validator({**schema, "components": doc["components"]})


def test_every_example_validates_against_its_schema() -> None:
    doc = openapi_document()
    checked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            media = [("request", m) for m in op.get("requestBody", {}).get("content", {}).values()]
            media += [(status, m) for status, r in op["responses"].items() for m in r.get("content", {}).values()]
            for where, m in media:
                for name, example in m.get("examples", {}).items():
                    errors = [e.message for e in _validator(doc, m["schema"]).iter_errors(example["value"])]
                    assert errors == [], (method, path, where, name, errors)
                    checked += 1
    assert checked > 100
    # the request example of a registration, and problem examples with their code's type
    post = doc["paths"]["/v1/registrations"]["post"]
    assert post["requestBody"]["content"]["application/json"]["examples"]["example"]["value"]["domain"]
    conflict = post["responses"]["409"]["content"]["application/problem+json"]["examples"]["idempotency_conflict"]
    assert conflict["value"]["type"] == "/docs/problems/idempotency_conflict"
    # a wrong example is caught, so the check above is not vacuous
    bad = {**post["requestBody"]["content"]["application/json"]["examples"]["example"]["value"], "period_years": 0}
    assert not _validator(doc, {"$ref": "#/components/schemas/RegistrationRequest"}).is_valid(bad)


def test_problem_codes_and_roles_are_named_per_operation() -> None:
    doc = openapi_document()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for (method, path), op in OPERATIONS.items():
        described = doc["paths"][path][method.lower()]
        assert described["x-roles"] == list(op.roles)
        assert described["security"] == ([{"bearer": list(op.roles)}] if op.roles else [])
        for role in op.roles:
            assert role in described["description"]
        for status, resp in described["responses"].items():
            if int(status) >= 400 and "x-problem-codes" in resp:
                codes = resp["x-problem-codes"]
                assert codes, (method, path, status)
                examples = resp["content"]["application/problem+json"]["examples"]
                assert set(examples) == set(codes)
                assert all(ex["value"]["status"] == int(status) for ex in examples.values())
                assert all(f"/docs/problems/{c}" in resp["description"] for c in codes)
        if op.roles:
            assert described["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True

    def codes(method: str, path: str, status: int) -> set[str]:
        return set(doc["paths"][path][method]["responses"][str(status)]["x-problem-codes"])

    assert {"idempotency_conflict"} <= codes("post", "/v1/registrations", 409)
    assert {"idempotency_key_required", "malformed_body"} <= codes("post", "/v1/registrations", 400)
    assert {"transfer_blocked", "no_recipient_policy", "validation_failed"} <= codes("post", "/v1/registrations", 422)
    assert {"subject_erased"} <= codes("post", "/v1/registrations/{reg_id}/registrant", 410)
    assert codes("get", "/v1/disclosures", 422) == {"query_invalid"}
    assert codes("get", "/v1/disclosures/{entry_id}", 404) == {"not_found"}
    assert {"request_closed", "subject_not_confirmed"} <= codes("post", "/v1/requests/{request_id}/erase", 409)
    assert {"extension_refused"} <= codes("post", "/v1/requests/{request_id}/extend", 409)
    assert {"identifiers_missing"} <= codes("post", "/v1/requests", 422)
    # the operations beyond registrations and rights name their codes too, not a status's default
    assert codes("get", "/v1/ledger/proofs/inclusion", 422) == {"query_invalid"}
    assert codes("get", "/v1/ledger/audit", 500) == {"proof_unavailable"}
    assert codes("post", "/v1/lookups", 502) == {"delivery_transient", "delivery_permanent"}
    assert codes("delete", "/v1/webhooks/{webhook_id}", 404) == {"not_found"}
    assert {"not_found", "request_not_found"} <= codes("get", "/v1/requests/{request_id}/extract.{fmt}", 404)
    # a status listed without the errors that give it fails the build instead of falling back to a guess
    with pytest.raises(ValueError, match="names no problem code"):
        problem_codes(Operation("bare", ("privacy",), problems=(404,)))


#: A stand-in per path parameter: well-formed, naming nothing that exists (or, for the docs, something that does).
_PATH_VALUES = {"reg_id": "0" * 32, "entry_id": "0" * 32, "request_id": "0" * 32, "webhook_id": "0" * 32,
                "fmt": "json", "code": "not_found", "row_id": "0", "subject_id": "0" * 32}
_ROLES = ("ordering", "privacy", "auditor")


def _concrete(path: str, described: dict[str, Any]) -> str:
    """``path`` with its parameters filled in (an enum's first value, else a stand-in)."""
    for p in described.get("parameters", ()):
        if p["in"] == "path":
            value = p["schema"]["enum"][0] if "enum" in p["schema"] else _PATH_VALUES[p["name"]]
            path = path.replace("{" + p["name"] + "}", value)
    return path


async def test_every_problem_a_small_set_of_real_calls_gets_is_documented(contract_gateway: Gateway) -> None:
    """Per operation: no token, an unknown token, each role it does not allow, and (with a role it allows) a
    malformed query and malformed bodies.  Every problem answered must be listed in ``x-problem-codes`` of
    its status, so a handler raising a code its operation does not name fails here, not in a client."""
    doc = openapi_document()
    client = contract_gateway.client
    tokens = contract_gateway.tokens
    drift: list[tuple[str, str, str, int, str | None]] = []
    seen: dict[int, set[str]] = {}

    async def call(method: str, path: str, what: str, url: str, headers: dict[str, str],
                   data: bytes | None = None) -> int:
        r = await client.request(method, url, headers=headers, data=data)
        if r.status >= 400:
            body = await r.json(content_type=None)
            code = body.get("code") if isinstance(body, dict) else None
            response = doc["paths"][path][method.lower()]["responses"].get(str(r.status), {})
            if code not in response.get("x-problem-codes", ()):
                drift.append((method, path, what, r.status, code))
            seen.setdefault(r.status, set()).add(str(code))
        else:
            await r.read()
        return r.status

    for (method, path), op in OPERATIONS.items():
        described = doc["paths"][path][method.lower()]
        url = _concrete(path, described)
        if not op.roles:
            assert await call(method, path, "no token", url, {}) < 500 or path == "/readyz", (method, path)
            continue
        assert await call(method, path, "no token", url, {}) == 401, (method, path)
        assert await call(method, path, "unknown token", url, {"Authorization": "Bearer nope"}) == 401
        for role in _ROLES:
            if role not in op.roles:
                assert await call(method, path, f"role {role}", url, tokens.h(role)) == 403, (method, path, role)
        allowed = tokens.h(op.roles[0]) | {"Idempotency-Key": secrets.token_hex(8)}
        query = [p["name"] for p in described.get("parameters", ()) if p["in"] == "query"]
        if query:
            assert await call(method, path, "bad query", f"{url}?{query[0]}=~bad~", allowed) == 422, (method, path)
        if op.body is not None:
            json_type = allowed | {"Content-Type": "application/json"}
            for what, headers, data in (("not JSON", json_type, b"{"), ("not an object", json_type, b"[]"),
                                        ("too deep", json_type, b'{"a":' * 40 + b"1" + b"}" * 40),
                                        ("text/plain", allowed | {"Content-Type": "text/plain"}, b"{}")):
                assert await call(method, path, what, url, headers, data) >= 400, (method, path, what)
    assert drift == [], "problems answered that their operation does not document"
    # the calls above did meet the middlewares' and the handlers' problems, so the check is not vacuous
    assert {"unauthenticated"} <= seen[401] and {"forbidden"} <= seen[403]
    assert {"query_invalid", "validation_failed"} <= seen[422]
    assert {"malformed_body", "body_too_deep"} <= seen[400] and {"unsupported_media_type"} <= seen[415]
