"""Registrations from the ordering system: submit one, read it back, report new registrant data."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from gateway.auth import Role, require
from gateway.errors import MissingIdempotencyKey, NotFound, ValidationFailed
from gateway.http.context import principal, read_json, services, validation_problem
from gateway.http.problems import json_response
from gateway.models import Registrant, RegistrationRequest

routes = web.RouteTableDef()

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{8,128}$")
_REG_ID = re.compile(r"[0-9a-f]{32}")


@routes.post("/v1/registrations")
async def post_registration(request: web.Request) -> web.Response:
    return await accept_order(request, RegistrationRequest)


async def accept_order(request: web.Request, model: type[RegistrationRequest]) -> web.Response:
    """An order from the ordering system (a registration, or a transfer in with ``TransferRequest``): the
    idempotency key, the body validated as ``model``, accepted or refused by the registration service."""
    svc = services(request)
    who = principal(request)
    require(who, Role.ORDERING)
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise MissingIdempotencyKey()
    if not _IDEMPOTENCY_KEY.match(key):
        raise ValidationFailed(
            "Idempotency-Key must be 8-128 printable ASCII characters",
            errors=[{"loc": ["header", "Idempotency-Key"], "type": "string_pattern_mismatch"}],
        )
    body, _ = await read_json(request)
    try:
        req = model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    # the idempotency key is bound to the body's bytes as received (``request_hash``)
    status, answer, encoded = await svc.registrations.submit_encoded(who.name, key, body, req)
    svc.metrics.registrations.labels("accepted" if status == 202 else "refused").inc()
    if status == 202:
        svc.wake()
    headers = {"Location": f"/v1/registrations/{answer.get('id') or answer.get('registration_id')}"}
    return web.Response(
        status=status, body=encoded,
        content_type="application/problem+json" if status >= 400 else "application/json", headers=headers,
    )


@routes.get("/v1/registrations/{reg_id}")
async def get_registration(request: web.Request) -> web.Response:
    svc = services(request)
    who = principal(request)
    require(who, Role.ORDERING, Role.PRIVACY, Role.AUDITOR)
    reg_id = request.match_info["reg_id"]
    if not _REG_ID.fullmatch(reg_id):
        raise NotFound("no such registration")
    reg = await svc.store.registration(reg_id)
    # An ordering client sees only its own registrations; others' ids look like absent ones.
    if reg is None or (who.role is Role.ORDERING and reg["client"] != who.name):
        raise NotFound("no such registration")
    reg.pop("client")
    if who.role is Role.ORDERING:
        reg = for_ordering_client(reg)
    return json_response(reg)


def for_ordering_client(reg: dict[str, Any]) -> dict[str, Any]:
    """A registration as its ordering client may see it: without subject ids.  A subject id is the
    gateway's grouping of one holder's records across every client; handed to a client it would let two
    clients learn that they serve the same person, and it is nothing a client can act on."""
    out = {k: v for k, v in reg.items() if k != "subject_id"}
    out["disclosures"] = [{k: v for k, v in e.items() if k != "subject_id"} for e in reg.get("disclosures", [])]
    return out


@routes.post("/v1/registrations/{reg_id}/registrant")
async def change_registrant(request: web.Request) -> web.Response:
    """The ordering system reports new registrant data: changed, released fields go to every past
    recipient of the registrations this client created for this registration's holder (contact:update
    for registries); another client's registrations are neither updated nor named in the answer."""
    svc = services(request)
    who = principal(request)
    require(who, Role.ORDERING)
    reg_id = request.match_info["reg_id"]
    reg = await svc.store.registration(reg_id) if _REG_ID.fullmatch(reg_id) else None
    if reg is None or reg["client"] != who.name or reg["subject_id"] is None:
        raise NotFound("no such registration")
    body, _ = await read_json(request)
    try:
        new = Registrant.model_validate_json(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    scope = await svc.changes.client_scope(reg["subject_id"], reg_id, who.name)
    report = await svc.changes.push(reg["subject_id"], new, purpose="registrant_change", registration_ids=scope)
    svc.wake()
    return json_response({"registration_id": reg_id, "recipients": [c.as_dict() for c in report]}, status=202)
