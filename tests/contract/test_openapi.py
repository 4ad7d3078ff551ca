"""The OpenAPI document describes exactly the API routes the app registers, and is a valid document.

Walks ``app.router`` of the real app, so a route added without its description (or a description left
behind by a removed route) fails here, not in a client's integration."""

from __future__ import annotations

import re
from typing import Any

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
