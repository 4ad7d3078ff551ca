"""The disclosure log for staff: filtered keyset pages of entries, and one entry with its values."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aiohttp import web

from gateway.auth import Role, require
from gateway.errors import NotFound, SubjectErased, ValidationFailed
from gateway.http.context import principal, services
from gateway.http.problems import json_response
from gateway.policy.schema import TransferCategory
from gateway.store.base import DisclosureFilter

routes = web.RouteTableDef()

_FILTERS: dict[str, re.Pattern[str]] = {
    "recipient": re.compile(r"^[a-z0-9][a-z0-9-]{1,40}$"),
    "country": re.compile(r"^[A-Z]{2}$"),
    "category": re.compile("^(" + "|".join(c.value for c in TransferCategory) + ")$"),
    "outcome": re.compile(r"^(delivered|failed|blocked)$"),
    "registration_id": re.compile(r"^[0-9a-f]{32}$"),
    "subject_id": re.compile(r"^[0-9a-f]{32}$"),
    "third_country": re.compile(r"^(true|false)$"),
}


def _parse_time(name: str, value: str) -> str:
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"'{name}' must be an ISO 8601 timestamp",
                               errors=[{"loc": ["query", name], "type": "datetime_parsing"}]) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@routes.get("/v1/disclosures")
async def list_disclosures(request: web.Request) -> web.Response:
    svc = services(request)
    require(principal(request), Role.PRIVACY, Role.AUDITOR)
    q = request.query
    unknown = set(q) - {*_FILTERS, "since", "until", "limit", "after"}
    if unknown:
        raise ValidationFailed("unknown query parameter", errors=[{"loc": ["query", sorted(unknown)[0][:64]],
                                                                     "type": "extra_forbidden"}])
    values: dict[str, Any] = {}
    for name, pattern in _FILTERS.items():
        if name in q:
            if not pattern.match(q[name]):
                raise ValidationFailed(f"bad value for '{name}'",
                                       errors=[{"loc": ["query", name], "type": "pattern_mismatch"}])
            values[name] = q[name] == "true" if name == "third_country" else q[name]
    for name in ("since", "until"):
        if name in q:
            values[name] = _parse_time(name, q[name])
    values["after_seq"] = -1
    for name, lo, hi, default in (("limit", 1, 1000, 100), ("after", 0, 2**62, None)):
        if default is None and name not in q:
            continue
        raw = q.get(name, str(default))
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            raise ValidationFailed(f"'{name}' must be an integer in [{lo}, {hi}]",
                                   errors=[{"loc": ["query", name], "type": "int_range"}])
        values["after_seq" if name == "after" else name] = int(raw)
    rows = await svc.store.disclosures(DisclosureFilter(**values))
    items = [e.as_dict() for e in rows]
    nxt = rows[-1].leaf_index if len(rows) == values["limit"] else None
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
