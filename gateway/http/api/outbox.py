"""Parked deliveries for privacy staff: ``GET /v1/outbox/parked`` lists the outbox rows waiting for staff
(``needs_attention``), per recipient; ``POST /v1/outbox/{row_id}/retry`` puts one back in the queue and
wakes the delivery worker; ``POST /v1/outbox/{row_id}/cancel`` gives up on it.  Each action is written to
the access log with the caller's principal (``gateway.services.parked``); the list also shows the latest
actions.  Rows carry ids, recipient, purpose, attempts, the last result code and the parked reason, never
the payload or anything about the subject.

An id that is not a row (or not a number at all) is a ``404 outbox_row_not_found``; a row that is not
parked is a ``409 outbox_row_not_parked``.  The auditor may read the list; only the privacy role acts.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from aiohttp import web

from gateway.auth import Role, require
from gateway.clock import iso, utcnow
from gateway.errors import OutboxRowNotFound
from gateway.http.context import principal, services
from gateway.http.problems import json_response
from gateway.http.query import Limit, QueryModel, RecipientId, parse_query
from gateway.services.parked import ParkedAction, act_on_parked

routes = web.RouteTableDef()

#: An outbox row id in a path: ASCII digits, at most 18 of them (below 2**63 on both databases).
ROW_ID_PATTERN = r"^[0-9]{1,18}$"
_ROW_ID = re.compile(ROW_ID_PATTERN)


class ParkedQuery(QueryModel):
    """``GET /v1/outbox/parked``: one recipient's rows only, and how many staff actions to show."""

    recipient: RecipientId | None = None
    history: Limit = 50


def row_id_of(value: str) -> int:
    """A path's row id; anything else names no row (404, like an unknown one)."""
    if not _ROW_ID.fullmatch(value):
        raise OutboxRowNotFound()
    return int(value)


def per_recipient(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many parked rows each recipient has, by recipient id."""
    return dict(sorted(Counter(r["recipient"] for r in rows).items()))


@routes.get("/v1/outbox/parked")
async def list_parked(request: web.Request) -> web.Response:
    require(principal(request), Role.PRIVACY, Role.AUDITOR)
    q = parse_query(ParkedQuery, request.query)
    store = services(request).store
    rows = await store.parked(q.recipient)
    return json_response({"items": rows, "recipients": per_recipient(rows),
                          "actions": await store.parked_actions(q.history)})


async def _act(request: web.Request, action: ParkedAction) -> web.Response:
    who = principal(request)
    require(who, Role.PRIVACY)
    row_id = row_id_of(request.match_info["row_id"])
    svc = services(request)
    await act_on_parked(svc.store, row_id, action, actor=who.name, now=iso(utcnow()))
    if action == "retry":
        svc.wake()
    return json_response({"id": row_id, "state": "pending" if action == "retry" else "cancelled"})


@routes.post("/v1/outbox/{row_id}/retry")
async def retry_parked(request: web.Request) -> web.Response:
    return await _act(request, "retry")


@routes.post("/v1/outbox/{row_id}/cancel")
async def cancel_parked(request: web.Request) -> web.Response:
    return await _act(request, "cancel")
