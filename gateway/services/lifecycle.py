"""A domain's life after its registration, as the ordering system drives it: renewal, transfer out, deletion.

Each is one row for the domain's registry, queued with the registration's event (and, for an end of our
role, its ``ended_at``/``end_reason``) in one transaction (``LifecycleStore.enqueue_unsealed``).  None of
these rows carries personal data (``EppRenew``, ``EppRelease``), so they are queued unsealed: they still go,
and are logged, after the holder's erasure, and their transfer basis is "no personal data".  The delivery
worker does the EPP part (``gateway.delivery.worker``: domain:renew from the expiry the registry shows;
domain:delete, then contact:delete for every contact no other active registration of ours at that registry
still uses, a refusal such as 2305 listed as held by the registry).

Our role ends when the ordering system says so (transfer out, deletion), not when the registry confirms
it: from then on the domain is not ours to act on, and the retention clock of our copy of the holder's
data runs from that moment.  Transfer in is a registration with an auth code
(``RegistrationService.submit`` with a ``TransferRequest``): it carries the holder's data, so it goes
through the same plan, minimisation and Chapter V classification.

What is refused (pure, :func:`refusal`): another client's or an unknown registration (404, so ids of
others look absent), one not (yet) delivered to its registry, and one whose role already ended (409 with
its ``end_reason``: a second transfer out or deletion is refused rather than queued twice).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from gateway.clock import Clock, iso, utcnow
from gateway.errors import GatewayError, NoRecipientPolicy, NotFound, RegistrationEnded, RegistrationNotActive
from gateway.outbox.payloads import EppRelease, EppRenew, OutboxContent
from gateway.policy.classify import classify_transfer
from gateway.policy.loader import PolicySet
from gateway.policy.schema import RecipientPolicy
from gateway.store.base import NewOutbox, Store

log = structlog.get_logger("gateway.lifecycle")

Operation = Literal["renewal", "transfer_out", "deletion"]

#: The registration event each operation writes (source ``api``) and the end of our role it records.
_EVENTS: dict[Operation, tuple[str, str | None]] = {
    "renewal": ("renewal_requested", None),
    "transfer_out": ("transferred_out", "transferred_out"),
    "deletion": ("deletion_requested", "deleted"),
}
#: The change id of the row that ends our role: one per registration and registry, so the outbox's unique
#: (registration, recipient, change_id) refuses a second end queued concurrently (by another instance too).
RELEASE_CHANGE_ID = "release"


def refusal(reg: Mapping[str, Any] | None, client: str) -> GatewayError | None:
    """Pure: why ``client`` may not renew, transfer out or delete registration ``reg``, or None.

    Another client's registration is reported as absent, like everywhere in the API."""
    if reg is None or reg.get("client") != client:
        return NotFound("no such registration")
    if reg.get("ended_at") is not None:
        return RegistrationEnded(f"our role ended ({reg.get('end_reason')})", end_reason=reg.get("end_reason"),
                                 ended_at=reg.get("ended_at"))
    if reg.get("status") != "delivered" or registry_of(reg) is None:
        return RegistrationNotActive(f"the registration is {reg.get('status')}, not delivered to its registry")
    return None


def registry_of(reg: Mapping[str, Any]) -> str | None:
    """The registry the registration was planned for (its plan names each recipient with its kind)."""
    for p in reg.get("plan") or ():
        if p.get("kind") == "registry":
            return str(p["recipient"])
    return None


def unsealed_row(
    policy: RecipientPolicy, policies: PolicySet, payload: EppRenew | EppRelease, change_id: str, at: dt.datetime,
    request_id: str | None,
) -> NewOutbox:
    """Pure: the outbox row of a payload without personal data.  Its purpose is the registry's own (keeping
    the domain registered is the registration's purpose; no retention period of its own is needed for rows
    that send no values), its transfer basis "no personal data", and it does not count towards the
    registration's status (``required`` False: a failed renewal does not make the registration failed)."""
    purpose = policy.purposes[0]
    decision = classify_transfer(policy, policies.jurisdictions, at, purpose, carries_personal_data=False)
    return NewOutbox(
        recipient=policy.recipient, payload_ct=json.dumps(OutboxContent(payload, {}).to_json()).encode(),
        payload_digest=payload.digest(), transfer=decision.as_dict(), fields={"sent": [], "withheld": []},
        purpose=purpose, required=False, change_id=change_id, request_id=request_id,
    )


@dataclass(eq=False)
class LifecycleService:
    """Renewal, transfer out and deletion of an ordering client's own registrations."""

    store: Store
    policies: PolicySet
    clock: Clock = utcnow

    async def renew(self, client: str, reg_id: str, years: int) -> dict[str, Any]:
        """Queue ``domain:renew`` for ``years``; the registration's ``expires_at`` follows once the registry
        answers (event ``renewed``).  Each call is one renewal (a repeated call renews again)."""
        reg, policy = await self._active(client, reg_id)
        # short: the worker's clTRIDs are "<registration id>-<change id>-info", and EPP allows 64 characters
        change_id = f"renew-{uuid.uuid4().hex[:12]}"
        return await self._queue(reg, policy, "renewal", EppRenew(reg["domain"], years), change_id, {"years": years})

    async def transfer_out(self, client: str, reg_id: str) -> dict[str, Any]:
        """The domain leaves us: our role ends now, and the contacts no other domain of ours at the registry
        uses are deleted there (a registry that keeps them while the domain still points at them says 2305,
        which the log lists as held by it)."""
        reg, policy = await self._active(client, reg_id)
        return await self._queue(reg, policy, "transfer_out", EppRelease(reg["domain"], delete_domain=False),
                                 RELEASE_CHANGE_ID, {})

    async def delete(self, client: str, reg_id: str) -> dict[str, Any]:
        """Delete the domain at its registry: our role ends now; domain:delete, then its unused contacts."""
        reg, policy = await self._active(client, reg_id)
        return await self._queue(reg, policy, "deletion", EppRelease(reg["domain"], delete_domain=True),
                                 RELEASE_CHANGE_ID, {})

    async def _active(self, client: str, reg_id: str) -> tuple[dict[str, Any], RecipientPolicy]:
        reg = await self.store.registration(reg_id)
        refused = refusal(reg, client)
        if refused is not None:
            raise refused
        assert reg is not None
        recipient = registry_of(reg)
        policy = self.policies.recipients.get(recipient or "")
        if policy is None:
            raise NoRecipientPolicy("the registration's registry is no longer configured")
        return reg, policy

    async def _queue(
        self, reg: dict[str, Any], policy: RecipientPolicy, op: Operation, payload: EppRenew | EppRelease,
        change_id: str, detail: dict[str, Any],
    ) -> dict[str, Any]:
        now = self.clock()
        at = iso(now)
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        row = unsealed_row(policy, self.policies, payload, change_id, now, request_id)
        kind, end_reason = _EVENTS[op]
        event = {"kind": kind, "source": "api", "detail": {"operation": change_id, **detail}}
        try:
            await self.store.enqueue_unsealed(reg["id"], [row], at, event=event, end_reason=end_reason)
        except Exception:
            # a concurrent end of the same registration (another request, another instance) queued its
            # release first: the unique change id refused this one and its transaction wrote nothing
            again = await self.store.registration(reg["id"])
            if end_reason is not None and again is not None and again.get("ended_at") is not None:
                log.info("lifecycle.concurrent_end", registration=reg["id"], operation=op)
                raise RegistrationEnded(f"our role ended ({again.get('end_reason')})",
                                        end_reason=again.get("end_reason"), ended_at=again.get("ended_at")) from None
            raise
        log.info("lifecycle.queued", registration=reg["id"], operation=op, recipient=policy.recipient)
        answer: dict[str, Any] = {
            "registration_id": reg["id"], "operation": op, "operation_id": change_id, "recipient": policy.recipient,
            "queued_at": at, "links": {"registration": f"/v1/registrations/{reg['id']}"},
        }
        if end_reason is not None:
            answer |= {"ended_at": at, "end_reason": end_reason}
        return answer
