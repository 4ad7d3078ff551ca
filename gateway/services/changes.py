"""Registrant changes and rectification (Art. 16, 19): push what changed to every past recipient.

For each recipient that holds a subject's data (a delivered disclosure), the new registrant is
minimised under that recipient's policy and compared with what the recipient was last sent (the
registration's delivery folded with every later update).  Only changed, released fields go: an EPP
``<contact:update>`` with ``chg`` for registries, the changed data for HTTPS partners, a fresh record
for the next escrow deposit.  Each push is an outbox row, so it is delivered and logged exactly like a
registration (one disclosure entry per push, in one transaction with its outcome, crash-safe).
Recipients whose protocol cannot take a change are listed with the reason, for staff.

A push has a scope.  Rights processing (rectification, on the identity staff verified) reaches the
whole subject.  An ordering client's registrant change reaches only the registrations that client
created for that holder (:meth:`ChangeService.client_scope`): one reseller's customer data never reach,
nor name, another reseller's registrations, even when both serve the same person.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import structlog

from gateway.clock import Clock, iso, utcnow
from gateway.errors import SubjectErased
from gateway.ledger.entry import DisclosureEntry
from gateway.models import Registrant
from gateway.outbox.epp import contact_update
from gateway.outbox.payloads import (
    DomainRecord,
    EppContactUpdate,
    HttpsPost,
    OutboxContent,
    OutboxPayload,
    outbox_aad,
    plain,
)
from gateway.policy.classify import classify_transfer
from gateway.policy.loader import PolicySet
from gateway.policy.minimise import minimise
from gateway.policy.restrictions import restriction_refusal
from gateway.services.ledger import Ledger
from gateway.store.base import BASIS_STRONG_ID, DisclosureFilter, NewOutbox, Store


@dataclass(frozen=True)
class RecipientChange:
    registration_id: str
    recipient: str
    changed: tuple[str, ...]
    action: str  # queued | unchanged | cannot_update | refused
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(eq=False, repr=False)  # compared by identity, as a service
class ChangeService:
    """Pushes a subject's changed, released fields to every recipient that holds the old ones."""

    store: Store
    ledger: Ledger
    policies: PolicySet
    clock: Clock = utcnow

    async def _held(
        self, subject_id: str, registration_ids: Collection[str] | None = None
    ) -> dict[tuple[str, str], tuple[DisclosureEntry, dict[str, Any]]]:
        """What each (registration, recipient) last received: the delivery folded with updates; with
        ``registration_ids``, of those registrations only (nothing else is even decrypted)."""
        state: dict[tuple[str, str], tuple[DisclosureEntry, dict[str, Any]]] = {}
        async for e in self.store.iter_disclosures(DisclosureFilter(subject_id=subject_id, outcome="delivered")):
            if registration_ids is not None and e.registration_id not in registration_ids:
                continue
            values = await self.ledger.entry_values(e)
            if values is None and not e.fields:
                continue
            key = (e.registration_id, e.recipient)
            first, held = state.get(key, (e, {}))
            merged = {**held, **(values or {})}
            state[key] = (first, {k: v for k, v in merged.items() if v is not None})
        return state

    async def client_scope(self, subject_id: str, registration_id: str, client: str) -> list[str]:
        """The registrations a registrant change that ``client`` reports through ``registration_id`` (one
        of its own) may reach: every registration that client created for the same holder, when the
        subject is one holder by strong identifier; otherwise that registration alone (a holder record
        without a strong identifier has only it, and a subject made before schema 2 may join strangers
        who merely shared an e-mail address)."""
        key = await self.store.subject_key(subject_id)
        if key is None or key.wrapped is None:
            raise SubjectErased()
        if key.basis != BASIS_STRONG_ID:
            return [registration_id]
        return [r["id"] for r in await self.store.subject_registrations(subject_id, client=client)]

    async def push(
        self, subject_id: str, new: Registrant, *, purpose: str = "rectification",
        registration_ids: Collection[str] | None = None,
    ) -> list[RecipientChange]:
        """Queue the changed released fields to every past recipient; returns what happens to each.

        ``registration_ids`` is the scope: ``None`` (rights processing) is every registration of the
        subject; otherwise only those registrations' recipients are compared, updated and reported."""
        scope = None if registration_ids is None else frozenset(registration_ids)
        dek = await self.ledger.dek(subject_id)
        if dek is None:
            raise SubjectErased()
        now = self.clock()
        restrictions = await self.store.restrictions(subject_id)
        # the API request queuing the rows (bound by the HTTP middleware), for the delivery's log lines
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        report: list[RecipientChange] = []
        by_registration: dict[str, list[NewOutbox]] = {}
        change_id = uuid.uuid4().hex[:16]
        registrations = {r["id"]: r for r in await self.store.subject_registrations(subject_id)}
        for (reg_id, rid), (first, held) in sorted((await self._held(subject_id, scope)).items()):
            policy = self.policies.recipients.get(rid)
            if policy is None:
                report.append(RecipientChange(reg_id, rid, (), "cannot_update", "recipient no longer configured"))
                continue
            m = minimise(new, policy)
            wanted = plain(m.values)
            changed = {k for k in wanted if held.get(k) != wanted[k]} | {k for k in held if k not in wanted}
            if not changed:
                report.append(RecipientChange(reg_id, rid, (), "unchanged"))
                continue
            refused = restriction_refusal(restrictions, policy, purpose)
            decision = classify_transfer(policy, self.policies.jurisdictions, now, policy.purposes[0],
                                         carries_personal_data=True)
            if refused or not decision.allowed:
                report.append(RecipientChange(reg_id, rid, tuple(sorted(changed)), "refused",
                                              refused or decision.reason))
                continue
            payload: OutboxPayload
            sent: set[str]
            reason = None
            if policy.protocol == "epp":
                contact_id = first.objects.get("contact:registrant")
                if contact_id is None:
                    report.append(RecipientChange(reg_id, rid, tuple(sorted(changed)), "cannot_update",
                                                  "the registry holds no contact of the subject"))
                    continue
                cmd, missing = contact_update(contact_id, policy, wanted, changed)
                if cmd is None:
                    report.append(RecipientChange(reg_id, rid, tuple(sorted(changed)), "cannot_update",
                                                  "the registry's contact object cannot take these changes"))
                    continue
                payload = EppContactUpdate(cmd)
                sent = changed - missing
                if missing:
                    reason = f"not updatable at the registry: {', '.join(sorted(missing))} (needs a holder change)"
            elif policy.protocol == "https" and policy.https is not None:
                sent = changed
                payload = HttpsPost(policy.https.path,
                                    {"registration_id": reg_id, "change": change_id,
                                     "data": {k: wanted.get(k) for k in sorted(changed)}},
                                    idempotency_key=f"{reg_id}:{rid}:{change_id}")
            elif policy.protocol == "escrow":
                sent = changed
                reg = registrations[reg_id]  # held entries are of the subject's own registrations
                payload = DomainRecord(domain=reg["domain"], tld=reg["tld"], data=wanted)
            else:
                report.append(RecipientChange(reg_id, rid, tuple(sorted(changed)), "cannot_update",
                                              f"no update over protocol '{policy.protocol}'"))
                continue
            # escrow records are whole; everyone else is sent (and logged with) the changed fields only
            values = wanted if policy.protocol == "escrow" else {k: wanted.get(k) for k in sorted(sent)}
            sealed = self.ledger.seal_json(dek, OutboxContent(payload, values).to_json(),
                                           outbox_aad(reg_id, rid, change_id))
            by_registration.setdefault(reg_id, []).append(NewOutbox(
                recipient=rid, payload_ct=sealed, payload_digest=payload.digest(),
                transfer=decision.as_dict(), fields={"sent": sorted(sent), "withheld": sorted(m.withheld)},
                purpose=purpose, required=False, batch=policy.protocol == "escrow", change_id=change_id,
                request_id=request_id,
            ))
            report.append(RecipientChange(reg_id, rid, tuple(sorted(sent)), "queued", reason))
        for reg_id, items in by_registration.items():
            await self.store.enqueue(reg_id, subject_id, items, iso(now))
        return report
