"""The OpenAPI 3.1 description of every endpoint, with request schemas taken from the models."""

from __future__ import annotations

from functools import cache
from typing import Any

from gateway.models import RegistrationRequest
from gateway.policy.schema import TransferCategory

_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _problems(*codes: int) -> dict[str, Any]:
    return {
        str(c): {"description": "Problem", "content": {"application/problem+json": {"schema": _PROBLEM}}}
        for c in codes
    }


def _q(name: str, schema: dict[str, Any], desc: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}


@cache
def openapi_document() -> dict[str, Any]:
    req_schema = RegistrationRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = req_schema.pop("$defs", {})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Registrant Gateway",
            "version": "0.1.0",
            "description": "Brokers domain-holder data to registries and partners: minimised per recipient, "
            "tagged with its GDPR Chapter V basis, and logged as a disclosure entry.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "RegistrationRequest": req_schema,
                **defs,
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details with a stable machine-readable code.",
                    "required": ["type", "title", "status", "code"],
                    "properties": {
                        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                        "code": {"type": "string"}, "detail": {"type": "string"}, "instance": {"type": "string"},
                        "errors": {"type": "array", "items": {"type": "object"}},
                    },
                },
                "Registration": {"type": "object", "properties": {
                    "id": {"type": "string"}, "status": {"type": "string", "enum": [
                        "accepted", "delivering", "delivered", "failed", "blocked"]},
                    "transfers": {"type": "array", "items": {"type": "object"}},
                }},
                "Disclosure": {"type": "object", "properties": {
                    "id": {"type": "string"}, "recipient": {"type": "string"},
                    "recipient_country": {"type": "string"}, "outcome": {"type": "string"},
                    "transfer": {"type": "object"}, "fields": {"type": "array", "items": {"type": "string"}},
                }},
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/registrations": {"post": {
                "summary": "Register a domain: validate, minimise, classify, queue delivery (role: ordering)",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": True,
                                "schema": {"type": "string", "minLength": 8, "maxLength": 128}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/RegistrationRequest"}}}},
                "responses": {
                    "202": {"description": "Accepted with its transfer plan", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Registration"}}}},
                    **_problems(400, 401, 403, 409, 413, 415, 422),
                },
            }},
            "/v1/registrations/{reg_id}": {"get": {
                "summary": "A registration's plan, delivery progress and disclosure entries",
                "parameters": [{"name": "reg_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The registration", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Registration"}}}}, **_problems(401, 403, 404)},
            }},
            "/v1/disclosures": {"get": {
                "summary": "The disclosure log (roles: privacy, auditor)",
                "parameters": [
                    _q("recipient", {"type": "string"}, "recipient id"),
                    _q("country", {"type": "string", "pattern": "^[A-Z]{2}$"}, "recipient country"),
                    _q("category", {"type": "string", "enum": [c.value for c in TransferCategory]},
                       "transfer category"),
                    _q("outcome", {"type": "string", "enum": ["delivered", "failed", "blocked"]}, "outcome"),
                    _q("registration_id", {"type": "string"}, "registration"),
                    _q("since", {"type": "string", "format": "date-time"}, "recorded at or after"),
                    _q("until", {"type": "string", "format": "date-time"}, "recorded before"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
                    _q("after", {"type": "integer", "minimum": 0}, "cursor: seq of the last item seen"),
                ],
                "responses": {"200": {"description": "A page of entries", "content": {"application/json": {
                    "schema": {"type": "object", "properties": {
                        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Disclosure"}},
                        "next_after": {"type": ["integer", "null"]}}}}}}, **_problems(401, 403, 422)},
            }},
            "/healthz": {"get": {"summary": "Liveness and store status", "security": [],
                                 "responses": {"200": {"description": "ok"}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (no personal data)", "security": [],
                                 "responses": {"200": {"description": "text exposition"}}}},
        },
    }
