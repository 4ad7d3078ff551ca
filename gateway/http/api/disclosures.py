"""The disclosure log for staff: filtered keyset pages of entries, and one entry with its values."""

from __future__ import annotations

import re

from aiohttp import web

from gateway.auth import Role, require
from gateway.errors import NotFound, SubjectErased
from gateway.http.context import principal, services
from gateway.http.problems import json_response
from gateway.http.query import DisclosureListQuery, parse_query

routes = web.RouteTableDef()

@routes.get("/v1/disclosures")
async def list_disclosures(request: web.Request) -> web.Response:
    svc = services(request)
    require(principal(request), Role.PRIVACY, Role.AUDITOR)
    q = parse_query(DisclosureListQuery, request.query)
    rows = await svc.store.disclosures(q.store_filter())
    items = [e.as_dict() for e in rows]
    nxt = rows[-1].leaf_index if len(rows) == q.limit else None
    return json_response({"items": items, "next_after": nxt})


@routes.get("/v1/disclosures/{entry_id}")
async def get_disclosure(request: web.Request) -> web.Response:
    """One entry; the privacy role also sees the values sent, decrypted, and that read is logged."""
    svc = services(request)
    who = principal(request)
    require(who, Role.PRIVACY, Role.AUDITOR)
    entry_id = request.match_info["entry_id"]
    entry = await svc.store.disclosure(entry_id) if re.fullmatch(r"[0-9a-f]{32}", entry_id) else None
    if entry is None:
        raise NotFound("no such disclosure")
    body = entry.as_dict()
    if who.role is Role.PRIVACY:
        try:
            body["values"] = await svc.ledger.entry_values(entry)
            body["values_erased"] = False
        except SubjectErased:
            body["values"], body["values_erased"] = None, True
        await svc.ledger.record_access(who.name, "disclosure.values_read", entry.id, entry.subject_id)
    return json_response(body)
