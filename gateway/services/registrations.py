"""Accepting a registration: plan (pure) then persist (one transaction).

The plan says, per recipient, what goes, what is withheld, and on which Chapter V basis.  If any
recipient of a registration is refused, nothing is sent to anyone (fail closed): a registration
is one act towards its registry, and a half-delivered one would be worse than none.  Before that,
what the registry would refuse whatever we send (a protocol without an adapter, a registrant its own
eligibility rules turn away: ``gateway.policy.eligibility``) is refused with nothing stored at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from adapters.escrow import is_gtld
from gateway.clock import Clock, iso, utcnow
from gateway.errors import (
    GatewayError,
    IdempotencyConflict,
    NoRecipientPolicy,
    RequiredFieldMissing,
    SubjectErased,
    SubjectRestricted,
    TransferBlocked,
)
from gateway.ledger.entry import DisclosureEntry
from gateway.models import RegistrationRequest, TransferRequest
from gateway.outbox.epp import RegistrarContact, build_commands, carried_fields
from gateway.outbox.payloads import (
    DomainRecord,
    EppRegistration,
    EppTransferIn,
    HttpsPost,
    OutboxContent,
    OutboxPayload,
    outbox_aad,
    plain,
)
from gateway.policy.classify import TransferDecision, classify_transfer
from gateway.policy.eligibility import acceptance_refusal
from gateway.policy.loader import PolicySet
from gateway.policy.minimise import Minimised, minimise
from gateway.policy.restrictions import restriction_refusal
from gateway.policy.schema import RecipientPolicy
from gateway.services.ledger import Ledger
from gateway.store.base import Accepted, NewOutbox, Store

#: How often a registration looks for its holder again after an erasure raced it (see ``Store.accept``).
_SUBJECT_ATTEMPTS = 3


@dataclass(frozen=True)
class RecipientPlan:
    policy: RecipientPolicy
    decision: TransferDecision
    minimised: Minimised
    refusal: GatewayError | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "recipient": self.policy.recipient,
            "recipient_name": self.policy.name,
            "kind": self.policy.kind,
            "country": self.policy.country,
            "transfer": self.decision.as_dict(),
            "fields_sent": list(self.minimised.fields_sent),
            "fields_withheld": dict(sorted(self.minimised.withheld.items())),
            "disclose": self.minimised.disclose.model_dump() if self.minimised.disclose else None,
            "refused": None if self.refusal is None else {
                "code": self.refusal.code, "detail": self.refusal.detail,
            },
        }


def recipients_for(tld: str, policies: PolicySet) -> list[RecipientPolicy]:
    """The TLD's registry first, then escrow (gTLD names only) and the enabled partners."""
    registry = policies.registry_for(tld)
    if registry is None:
        raise NoRecipientPolicy(f"no recipient policy for .{tld}")
    others = [
        p for p in policies.recipients.values()
        if p.enabled and p.kind != "registry"
        and (p.on_registration == "all" or (p.on_registration == "gtld" and is_gtld(tld)))
    ]
    return [registry, *sorted(others, key=lambda p: p.recipient)]


def plan_registration(
    req: RegistrationRequest,
    policies: PolicySet,
    at: dt.datetime,
    restrictions: Sequence[Mapping[str, Any]] = (),
) -> list[RecipientPlan]:
    """Pure: which recipients get what, on which basis, at time ``at``, given the subject's
    restrictions and objections."""
    plans = []
    for policy in recipients_for(req.tld, policies):
        purpose = policy.purposes[0]
        m = minimise(req.registrant, policy)
        decision = classify_transfer(
            policy, policies.jurisdictions, at, purpose, carries_personal_data=bool(m.values)
        )
        refusal: GatewayError | None = None
        restricted = restriction_refusal(restrictions, policy, purpose)
        if restricted is not None:
            refusal = SubjectRestricted(f"{policy.recipient}: {restricted}")
        elif not decision.allowed:
            refusal = TransferBlocked(f"transfer to {policy.recipient} blocked: {decision.reason}")
        elif m.missing_required:
            refusal = RequiredFieldMissing(
                f"{policy.recipient} requires: {', '.join(m.missing_required)}",
            )
        plans.append(RecipientPlan(policy, decision, m, refusal))
    return plans


def expected_expiry(today: dt.date, years: int) -> str:
    """The date a registration made ``today`` should run to; the registry computes the real one."""
    try:
        return today.replace(year=today.year + years).isoformat()
    except ValueError:  # 29 February
        return today.replace(year=today.year + years, day=28).isoformat()


def registration_payload(
    req: RegistrationRequest, reg_id: str, p: RecipientPlan, registrar: RegistrarContact, secret: bytes,
    today: dt.date,
) -> tuple[OutboxPayload, RecipientPlan]:
    """Pure: exactly what the adapter will send (its digest goes into the disclosure entry), and the
    plan narrowed to the fields that payload really carries."""
    if p.policy.protocol == "epp":
        cmds = build_commands(req, reg_id, p.minimised, p.policy, registrar, secret)
        released = set(p.minimised.values)
        subject = [c for c in cmds.contacts if c.id != registrar.id]
        carried = carried_fields(subject[0], released) if subject else set()
        if carried != released:
            m = p.minimised
            dropped = {f: "released, but this registry has no element for it: not sent" for f in released - carried}
            p = dataclasses.replace(p, minimised=dataclasses.replace(
                m, values={k: v for k, v in m.values.items() if k in carried}, withheld={**m.withheld, **dropped}))
        return EppRegistration(cmds), p
    values = plain(p.minimised.values)
    if p.policy.protocol == "https" and p.policy.https is not None:
        return HttpsPost(p.policy.https.path, {"registration_id": reg_id, "domain": req.domain, "data": values}), p
    # escrow; a registry protocol without an adapter is refused at acceptance (``acceptance_refusal``) and
    # only rows queued before that reach here (the worker refuses them, see DomainRecord)
    return DomainRecord(domain=req.domain, tld=req.tld, data=values, nameservers=tuple(req.nameservers),
                        expires=expected_expiry(today, req.period_years), protocol=p.policy.protocol), p


def request_hash(raw: Any) -> str:
    return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(eq=False, repr=False)  # compared by identity, and no repr that could print the secret
class RegistrationService:
    """Plans a registration and writes it, with its outbox rows and refusals, in one transaction."""

    store: Store
    ledger: Ledger
    policies: PolicySet
    registrar: RegistrarContact
    secret: bytes
    clock: Clock = utcnow

    async def submit(
        self, client: str, key: str, raw: Any, req: RegistrationRequest
    ) -> tuple[int, dict[str, Any]]:
        """Returns (HTTP status, body); replays the stored answer for a repeated key.

        A ``TransferRequest`` is a transfer in: the same plan, minimisation, Chapter V classification and
        eligibility as a registration (the registry gets the same contacts, once the transfer is approved),
        with the registry's row an ``EppTransferIn`` carrying the auth code instead of a domain:create, and
        the registration filed as ``kind`` 'transfer'.  Partners (escrow, e-mail) are sent as for a
        registration: the domain is ours to sponsor either way."""
        rhash = request_hash(raw)
        prior = await self.store.idempotent_response(client, key)
        if prior is not None:
            return self._replay(prior, rhash)

        # refused before anything is stored: an unknown TLD, a registry protocol without an adapter, a
        # registrant the registry's own rules turn away (nothing queued, logged or kept under the key)
        refused = acceptance_refusal(req, recipients_for(req.tld, self.policies), self.policies.jurisdictions)
        if refused is not None:
            raise refused
        for attempt in range(1, _SUBJECT_ATTEMPTS + 1):
            try:
                return await self._submit(client, key, rhash, req)
            except SubjectErased:
                # the holder was erased (by any process) between finding it and filing under it: the
                # store wrote nothing; the next attempt finds no live subject and starts a fresh one
                if attempt == _SUBJECT_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _submit(self, client: str, key: str, rhash: str, req: RegistrationRequest) -> tuple[int, dict[str, Any]]:
        """One attempt: find the holder, plan, seal under the holder's key and write it all at once."""
        now = self.clock()
        reg_id = uuid.uuid4().hex
        # the API request queuing the rows (bound by the HTTP middleware), for the delivery's log lines
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        subject = await self.ledger.subject_for(req.registrant)
        restrictions = await self.store.restrictions(subject.id)
        plans = plan_registration(req, self.policies, now, restrictions)
        auth_code = req.auth_code if isinstance(req, TransferRequest) else None
        refused = [p for p in plans if p.refusal is not None]
        blocking = [p for p in refused if p.policy.required]
        outbox: list[NewOutbox] = []
        contact_links: list[tuple[str, str]] = []
        # every refusal is logged; a required recipient's refusal stops the whole registration
        entries = [self._blocked_entry(reg_id, subject.id, p, now) for p in refused]
        if blocking:
            status_text = "blocked"
        else:
            status_text = "accepted"
            today = self.clock().date()
            for i, p in enumerate(plans):
                if p.refusal is not None:
                    continue
                payload, p = registration_payload(req, reg_id, p, self.registrar, self.secret, today)
                plans[i] = p
                if auth_code is not None and isinstance(payload, EppRegistration):
                    # the same contacts and roles, reached by a transfer request instead of a domain:create
                    payload = EppTransferIn(auth_pw=auth_code, years=req.period_years, commands=payload.commands)
                # the registry contact ids made of this subject: a person may quote one to be found
                contacts = payload.commands.contacts if isinstance(payload, EppRegistration | EppTransferIn) else ()
                contact_links += [("contact_id", self.ledger.indexer.index("contact_id", c.id))
                                  for c in contacts if c.id != self.registrar.id]
                sealed = self.ledger.seal_json(subject.dek, OutboxContent(payload, plain(p.minimised.values)).to_json(),
                                               outbox_aad(reg_id, p.policy.recipient))
                outbox.append(
                    NewOutbox(
                        recipient=p.policy.recipient, payload_ct=sealed, payload_digest=payload.digest(),
                        transfer=p.decision.as_dict(),
                        fields={"sent": list(p.minimised.fields_sent), "withheld": sorted(p.minimised.withheld)},
                        purpose=p.policy.purposes[0],
                        required=p.policy.required and p.policy.protocol != "escrow",
                        batch=p.policy.protocol == "escrow",
                        request_id=request_id,
                    )
                )
        plan_view = [p.as_dict() for p in plans]
        body: dict[str, Any] = {
            "id": reg_id,
            "status": status_text,
            "order_ref": req.order_ref,
            "domain": req.domain,
            "accepted_at": iso(now),
            "transfers": plan_view,
            "links": {"self": f"/v1/registrations/{reg_id}"},
        }
        if auth_code is not None:
            body["kind"] = "transfer"
        if blocking:
            first = blocking[0].refusal
            assert first is not None
            http_status = first.status
            body = first.problem(instance=f"/v1/registrations/{reg_id}") | {
                "registration_id": reg_id, "transfers": plan_view,
            }
        else:
            http_status = 202
        registration = {
            "id": reg_id, "order_ref": req.order_ref, "domain": req.domain, "tld": req.tld,
            "status": status_text, "plan": plan_view, "subject_id": subject.id,
            "kind": "registration" if auth_code is None else "transfer",
        }
        raced = await self.store.accept(
            Accepted(
                registration=registration, idempotency=(client, key, rhash), status=http_status,
                response=body, outbox=outbox, entries=entries, subject=subject.new,
                subject_links=subject.links + tuple(contact_links),
            ),
            iso(now),
        )
        if raced is not None:
            return self._replay(raced, rhash)
        return http_status, body

    @staticmethod
    def _replay(prior: tuple[str, int, dict[str, Any]], rhash: str) -> tuple[int, dict[str, Any]]:
        prior_hash, status, body = prior
        if prior_hash != rhash:
            raise IdempotencyConflict("this Idempotency-Key was used with a different request body")
        return status, body

    @staticmethod
    def _blocked_entry(reg_id: str, subject_id: str, p: RecipientPlan, now: dt.datetime) -> DisclosureEntry:
        assert p.refusal is not None
        return DisclosureEntry(
            id=uuid.uuid4().hex, registration_id=reg_id, recipient=p.policy.recipient,
            recipient_name=p.policy.name, recipient_country=p.policy.country,
            category=p.decision.category.value, article=p.decision.article, instrument=p.decision.instrument,
            purpose=p.policy.purposes[0], outcome="blocked", fields=(), withheld=tuple(
                sorted({*p.minimised.fields_sent, *p.minimised.withheld})
            ),
            objects={}, attempted_at=iso(now), recorded_at=iso(now),
            result_code=p.refusal.code, reason=p.refusal.detail, subject_id=subject_id,
        )
