"""Telling recipients (Art. 17(2), 19): restriction/objection notices and deletion requests.

HTTPS partners get a message on their API carrying ids and the kind of notice only, never personal
data; registries and the escrow agent have no such message in their protocol, so they are listed for
staff to tell directly.  Every outcome is a request event.  ``RightsService`` makes these calls after
the action they follow, for the API and the staff pages alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.http_partner import HttpPartnerClient, PartnerEndpoint
from gateway.clock import iso, utcnow
from gateway.errors import DeliveryError
from gateway.models import Registrant
from gateway.policy.loader import PolicySet
from gateway.services.changes import ChangeService
from gateway.store.base import DisclosureFilter, Store

#: Outcomes after which a recipient holds, or may hold, the values an entry lists: ``failed`` only as
#: entries written before schema 5 recorded it (with the fields that may have left); a ``failed`` entry
#: written since lists no fields, because nothing left.
REACHED = frozenset({"delivered", "possibly_delivered", "failed"})

PartnerEndpoints = Callable[[str], PartnerEndpoint]


async def art19_notices(
    store: Store, policies: PolicySet, partners: PartnerEndpoints | None, *,
    request_id: str, subject_id: str | None, actor: str, kind: str, scope: str,
) -> list[dict[str, Any]]:
    if not subject_id:
        return []
    received: dict[str, set[str]] = {}
    async for e in store.iter_disclosures(DisclosureFilter(subject_id=subject_id), page=1000):
        if e.fields and e.outcome in REACHED:  # received it, or may have (a frame written, no answer)
            received.setdefault(e.recipient, set()).add(e.registration_id)
    notices = []
    for rid, regs in sorted(received.items()):
        policy = policies.recipients.get(rid)
        marketing = policy is not None and policy.kind == "marketing"
        if not (scope in ("all", rid) or (scope == "marketing" and marketing)):
            continue
        status, how = "manual", "no notice message in this recipient's protocol: tell it directly"
        if policy is not None and policy.https is not None and partners is not None:
            try:
                async with HttpPartnerClient(partners(rid)) as client:
                    for reg_id in sorted(regs):
                        await client.send(f"{policy.https.path}/notices",
                                          {"registration_id": reg_id, "notice": kind, "article": "19"},
                                          idempotency_key=f"notice:{request_id}:{kind}:{reg_id}")
                status, how = "sent", "notice sent to the partner's API"
            except DeliveryError as exc:
                status, how = "failed", f"notice failed ({exc.code}); tell the recipient directly"
        notices.append({"recipient": rid, "registrations": sorted(regs), "status": status, "how": how})
    await store.add_request_event(request_id, iso(utcnow()), actor, "art19_notices", {
        "kind": kind, "notices": [{"recipient": n["recipient"], "status": n["status"]} for n in notices]})
    return notices


async def push_rectification(
    store: Store, changes: ChangeService, *,
    request_id: str, subject_id: str, actor: str, registrant: Registrant,
) -> list[dict[str, Any]]:
    """Art. 16 + 19: the corrected data goes, minimised, to every recipient of the old data."""
    report = [c.as_dict() for c in await changes.push(subject_id, registrant)]
    await store.add_request_event(request_id, iso(utcnow()), actor, "rectification_pushed", {
        "queued": [c["recipient"] for c in report if c["action"] == "queued"],
        "cannot_update": [c["recipient"] for c in report if c["action"] in ("cannot_update", "refused")]})
    return report


async def request_deletions(
    store: Store, policies: PolicySet, partners: PartnerEndpoints | None, *,
    request_id: str, actor: str, report: dict[str, Any],
) -> dict[str, Any]:
    """After crypto-shredding: ask each HTTPS partner whose deletion is possible to delete."""
    for r in report["recipients"]:
        policy = policies.recipients.get(r["recipient"])
        if r["deletion_request"] != "possible" or policy is None or policy.https is None or partners is None:
            continue
        try:
            async with HttpPartnerClient(partners(r["recipient"])) as client:
                for reg_id in r["registrations"]:
                    await client.delete(f"{policy.https.path}/{reg_id}", idempotency_key=f"erase:{request_id}:{reg_id}")
            r["status"] = "requested"
        except DeliveryError as exc:
            r["status"] = "failed"
            r["reason"] = f"deletion request failed ({exc.code}); retry or ask the recipient directly"
        await store.add_request_event(request_id, iso(utcnow()), actor, "deletion_requested", {
            "recipient": r["recipient"], "status": r["status"], "registrations": len(r["registrations"])})
    return report
