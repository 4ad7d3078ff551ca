"""A domain's lifecycle from the ordering system: transfer in, renewal, transfer out, deletion.

Transfer in is a registration with an auth code (same validation, plan and idempotency as
``POST /v1/registrations``); the other three act on one of the caller's own registrations
(``gateway.services.lifecycle``).  Each queues work for the delivery worker, wakes it and answers 202.
"""

from __future__ import annotations

import re
from typing import Literal

from aiohttp import web
from pydantic import ValidationError

from gateway.auth import Role, require
from gateway.errors import NotFound
from gateway.http.api.registrations import accept_order
from gateway.http.context import principal, read_json, services, validation_problem
from gateway.http.problems import json_response
from gateway.models import RenewRequest, TransferRequest

routes = web.RouteTableDef()

_REG_ID = re.compile(r"[0-9a-f]{32}")


def _reg_id(request: web.Request) -> str:
    """The path's registration id; a malformed one is as absent as an unknown one."""
    reg_id = request.match_info["reg_id"]
    if not _REG_ID.fullmatch(reg_id):
        raise NotFound("no such registration")
    return reg_id


@routes.post("/v1/transfers")
async def post_transfer(request: web.Request) -> web.Response:
    """A domain transferred in: validated, minimised and classified like a registration; the registry's row
    requests the transfer with the auth code, then points the domain at the contacts it needs."""
    return await accept_order(request, TransferRequest)


@routes.post("/v1/registrations/{reg_id}/renew")
async def renew(request: web.Request) -> web.Response:
    svc = services(request)
    who = principal(request)
    require(who, Role.ORDERING)
    reg_id = _reg_id(request)
    body, _ = await read_json(request)
    try:
        req = RenewRequest.model_validate_json(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    answer = await svc.lifecycle.renew(who.name, reg_id, req.years)
    svc.wake()
    return json_response(answer, status=202)


@routes.post("/v1/registrations/{reg_id}/transfer-out")
async def transfer_out(request: web.Request) -> web.Response:
    """The ordering system reports the domain leaving us (no body)."""
    return await _end(request, "transfer_out")


@routes.post("/v1/registrations/{reg_id}/delete")
async def delete(request: web.Request) -> web.Response:
    """Delete the domain at its registry (no body)."""
    return await _end(request, "delete")


async def _end(request: web.Request, how: Literal["transfer_out", "delete"]) -> web.Response:
    """The end of our role for one of the caller's registrations; the release row goes out at once."""
    svc = services(request)
    who = principal(request)
    require(who, Role.ORDERING)
    end = svc.lifecycle.transfer_out if how == "transfer_out" else svc.lifecycle.delete
    answer = await end(who.name, _reg_id(request))
    svc.wake()
    return json_response(answer, status=202)
