"""The OpenAPI document describes exactly the API routes the app registers, and is a valid document.

Walks ``app.router`` of the real app, so a route added without its description (or a description left
behind by a removed route) fails here, not in a client's integration."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import schemathesis
from aiohttp import web

from gateway.http.openapi import OPERATIONS, openapi_document
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
