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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
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
from gateway.ledger.ids import sortable_id
from gateway.models import RegistrationRequest, TransferRequest
from gateway.outbox.epp import RegistrarContact, carried_by_order, commands_for, registration_order
from gateway.outbox.payloads import (
    DomainRecord,
    EppOrder,
    HttpsPost,
    OutboxContent,
    OutboxPayload,
    Sendable,
    canonical_json,
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
from gateway.store.base import AcceptContext, Accepted, NewOutbox, Store

#: How often a registration looks for its holder again after an erasure raced it (see ``Store.accept``).
_SUBJECT_ATTEMPTS = 3


@dataclass(frozen=True)
class _Decision:
    """``Store.accept_request``'s ``decide`` for one attempt: no decision (the store replays the earlier
    answer) when the key has one, else ``RegistrationService._decide``; the answer it will give is left in
    ``decided`` for the caller to return once the store says the write is durable."""

    service: RegistrationService
    client: str
    key: str
    rhash: str
    req: RegistrationRequest
    links: tuple[tuple[str, str], ...]
    merge_on: str | None
    now: dt.datetime
    request_id: str | None
    decided: list[tuple[int, dict[str, Any], bytes]]
    last: bool = False

    def __call__(self, ctx: AcceptContext) -> Accepted | None:
        if ctx.prior is not None:
            return None
        accepted, answer = self.service._decide(ctx, self.client, self.key, self.rhash, self.req, self.links,
                                                self.merge_on, self.now, self.request_id, last=self.last)
        self.decided[:] = [answer]
        return accepted


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


def registration_row(
    req: RegistrationRequest, reg_id: str, p: RecipientPlan, registrar: RegistrarContact, secret: bytes,
    today: dt.date, *, auth_pw: str | None = None,
) -> tuple[OutboxPayload, RecipientPlan]:
    """Pure: what a recipient's outbox row carries, and the plan narrowed to the fields that will really go.

    An EPP registry's row is an order (``EppOrder``; with ``auth_pw``, a transfer in): the delivery worker
    builds its commands when it sends them, and nothing here builds or encodes a command.  The released
    fields the registry has no element for are known without them (``carried_by_order``, exactly what the
    built contact carries), so the plan, the row's fields and the log say what will leave."""
    if p.policy.protocol == "epp":
        order = registration_order(req, reg_id, p.minimised, p.policy, registrar, secret)
        released = set(p.minimised.values)
        carried = carried_by_order(order, p.minimised.values, p.policy)
        if carried != released:
            m = p.minimised
            dropped = {f: "released, but this registry has no element for it: not sent" for f in released - carried}
            p = dataclasses.replace(p, minimised=dataclasses.replace(
                m, values={k: v for k, v in m.values.items() if k in carried}, withheld={**m.withheld, **dropped}))
        return EppOrder(order, auth_pw=auth_pw), p
    values = plain(p.minimised.values)
    if p.policy.protocol == "https" and p.policy.https is not None:
        return HttpsPost(p.policy.https.path, {"registration_id": reg_id, "domain": req.domain, "data": values}), p
    # escrow; a registry protocol without an adapter is refused at acceptance (``acceptance_refusal``) and
    # only rows queued before that reach here (the worker refuses them, see DomainRecord)
    return DomainRecord(domain=req.domain, tld=req.tld, data=values, nameservers=tuple(req.nameservers),
                        expires=expected_expiry(today, req.period_years), protocol=p.policy.protocol), p


def registration_payload(
    req: RegistrationRequest, reg_id: str, p: RecipientPlan, registrar: RegistrarContact, secret: bytes,
    today: dt.date, *, auth_pw: str | None = None,
) -> tuple[Sendable, RecipientPlan]:
    """Pure: exactly what the adapter will send for a recipient (its digest goes into the disclosure
    entries), and the narrowed plan: the row as accepted, with an order's commands built as the delivery
    worker builds them from the values sealed beside it."""
    row, p = registration_row(req, reg_id, p, registrar, secret, today, auth_pw=auth_pw)
    if isinstance(row, EppOrder):
        return row.sendable(commands_for(row.order, plain(p.minimised.values), p.policy, registrar)), p
    return row, p


def request_hash(body: bytes) -> str:
    """The idempotency hash of a request: SHA-256 of its body exactly as received (``sha256:``-prefixed,
    which tells it from the hashes stored before, see ``_legacy_hash``).  The same key with other bytes is
    another request, even if it parses to the same JSON (keys reordered, whitespace)."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _legacy_hash(body: bytes) -> str | None:
    """The hash stored by versions that hashed the parsed body re-encoded (sorted keys, ASCII), so a retry
    that straddles an upgrade still replays its answer; None if the body does not parse."""
    try:
        raw = json.loads(body)
    except ValueError:
        return None
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
        self, client: str, key: str, body: bytes | Mapping[str, Any], req: RegistrationRequest
    ) -> tuple[int, dict[str, Any]]:
        """Returns (HTTP status, body); see :meth:`submit_encoded`."""
        status, answer, _ = await self.submit_encoded(client, key, body, req)
        return status, answer

    async def submit_encoded(
        self, client: str, key: str, body: bytes | Mapping[str, Any], req: RegistrationRequest
    ) -> tuple[int, dict[str, Any], bytes]:
        """Returns (HTTP status, body, the body's JSON bytes); replays the stored answer for a repeated key.
        The bytes of a new answer are the ones stored under the key: the answer is encoded once.

        ``body`` is the request body as received, hashed as it is for the idempotency key (``request_hash``);
        an in-process caller with no body bytes passes the parsed object, hashed in canonical form.

        One store call (``Store.accept_request``): it reads the earlier answer under the key, the holder of
        the strong identifier with its wrapped key and restrictions, hands them to ``_decide`` (plan, seal,
        all pure) and writes what it returns.  Another call only when a race makes the write refuse (the
        holder erased, or made first by a concurrent request: ``SubjectErased``), or the holder's key was
        re-wrapped under a kid this process's ring lacks: the attempt is read and decided again.

        A ``TransferRequest`` is a transfer in: the same plan, minimisation, Chapter V classification and
        eligibility as a registration (the registry gets the same contacts, once the transfer is approved),
        with the registry's row an order carrying the auth code instead of a domain:create, and the
        registration filed as ``kind`` 'transfer'.  Partners (escrow, e-mail) are sent as for a
        registration: the domain is ours to sponsor either way."""
        data = body if isinstance(body, bytes) else canonical_json(body)
        rhash = request_hash(data)
        links, merge_on = self.ledger.identity_of(req.registrant)
        # refused before anything is stored: an unknown TLD, a registry protocol without an adapter, a
        # registrant the registry's own rules turn away (nothing queued, logged or kept under the key); a key
        # that already has an answer still replays it, as it would have before the policy changed
        refused: GatewayError | None
        try:
            refused = acceptance_refusal(req, recipients_for(req.tld, self.policies), self.policies.jurisdictions)
        except NoRecipientPolicy as e:
            refused = e
        if refused is not None:
            prior = await self.store.idempotent_response(client, key)
            if prior is not None:
                return self._replayed(prior, data, rhash)
            raise refused
        # the API request queuing the rows (bound by the HTTP middleware), for the delivery's log lines; read
        # here because ``_decide`` may run on the store's writer thread, outside this task's context
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        for attempt in range(1, _SUBJECT_ATTEMPTS + 1):
            now = self.clock()
            decided: list[tuple[int, dict[str, Any], bytes]] = []
            decide = _Decision(self, client, key, rhash, req, links, merge_on, now, request_id, decided,
                               last=attempt == _SUBJECT_ATTEMPTS)
            try:
                prior = await self.store.accept_request(client, key, merge_on, iso(now), decide)
            except SubjectErased:
                # the holder was erased (by any process) between reading it and filing under it, another
                # request made the holder first (``SubjectRaced``), or its key moved to a kid we lack: the
                # store wrote nothing; the next attempt reads again and finds the live holder, or none
                if attempt == _SUBJECT_ATTEMPTS:
                    raise
                continue
            if prior is not None:
                return self._replayed(prior, data, rhash)
            return decided[0]
        raise AssertionError("unreachable")

    def _decide(
        self, ctx: AcceptContext, client: str, key: str, rhash: str, req: RegistrationRequest,
        links: tuple[tuple[str, str], ...], merge_on: str | None, now: dt.datetime, request_id: str | None, *,
        last: bool = False,
    ) -> tuple[Accepted, tuple[int, dict[str, Any], bytes]]:
        """One attempt, on what the store read: the holder, plan, seal under the holder's key; the
        acceptance to write and the answer to give once it is durable.  No I/O: the store may call it inside
        its write transaction."""
        reg_id = sortable_id()
        subject = self.ledger.subject_from_read(ctx.holder, links, merge_on, last=last)
        # a new subject (none was found, or the one read was erased since) has no restrictions yet
        restrictions = ctx.restrictions if subject.new is None else ()
        plans = plan_registration(req, self.policies, now, restrictions)
        auth_code = req.auth_code if isinstance(req, TransferRequest) else None
        refused = [p for p in plans if p.refusal is not None]
        blocking = [p for p in refused if p.policy.required]
        rows: list[tuple[int, OutboxPayload]] = []
        contact_links: list[tuple[str, str]] = []
        # every refusal is logged; a required recipient's refusal stops the whole registration
        entries = [self._blocked_entry(reg_id, subject.id, p, now) for p in refused]
        if blocking:
            status_text = "blocked"
        else:
            status_text = "accepted"
            for i, p in enumerate(plans):
                if p.refusal is not None:
                    continue
                row, plans[i] = registration_row(req, reg_id, p, self.registrar, self.secret, now.date(),
                                                 auth_pw=auth_code)
                if isinstance(row, EppOrder) and row.order.needs_subject(p.policy):
                    # the registry contact id made of this subject: a person may quote it to be found
                    contact_links.append(("contact_id", self.ledger.indexer.index("contact_id", row.order.contact_id)))
                rows.append((i, row))
        # each thing is built once: the plan view goes into the answer, the registration and the rows
        plan_view = [p.as_dict() for p in plans]
        outbox: list[NewOutbox] = []
        for i, row in rows:
            p = plans[i]
            content, digest = OutboxContent(row, plain(p.minimised.values)).encoded()
            outbox.append(
                NewOutbox(
                    recipient=p.policy.recipient,
                    payload_ct=self.ledger.seal_bytes(subject.dek, content, outbox_aad(reg_id, p.policy.recipient)),
                    payload_digest=digest,
                    transfer=plan_view[i]["transfer"],
                    fields={"sent": plan_view[i]["fields_sent"], "withheld": sorted(p.minimised.withheld)},
                    purpose=p.policy.purposes[0],
                    required=p.policy.required and p.policy.protocol != "escrow",
                    batch=p.policy.protocol == "escrow",
                    request_id=request_id,
                )
            )
        answer: dict[str, Any] = {
            "id": reg_id,
            "status": status_text,
            "order_ref": req.order_ref,
            "domain": req.domain,
            "accepted_at": iso(now),
            "transfers": plan_view,
            "links": {"self": f"/v1/registrations/{reg_id}"},
        }
        if auth_code is not None:
            answer["kind"] = "transfer"
        if blocking:
            first = blocking[0].refusal
            assert first is not None
            http_status = first.status
            answer = first.problem(instance=f"/v1/registrations/{reg_id}") | {
                "registration_id": reg_id, "transfers": plan_view,
            }
        else:
            http_status = 202
        registration = {
            "id": reg_id, "order_ref": req.order_ref, "domain": req.domain, "tld": req.tld,
            "status": status_text, "plan": plan_view, "subject_id": subject.id,
            "kind": "registration" if auth_code is None else "transfer",
            # the language the person ordered in: the Art. 15 letter's default
            "language": req.registrant.language,
        }
        # the plan is encoded once: its bytes are stored as the registration's plan and are the answer's
        # transfers, and the answer's bytes are both what the key replays and the HTTP body
        plan_json = orjson.dumps(plan_view)
        response_json = orjson.dumps({**answer, "transfers": orjson.Fragment(plan_json)})
        accepted = Accepted(
            registration=registration, idempotency=(client, key, rhash), status=http_status,
            response=answer, outbox=outbox, entries=entries, subject=subject.new,
            subject_links=subject.links + tuple(contact_links), plan_json=plan_json, response_json=response_json,
        )
        return accepted, (http_status, answer, response_json)

    @staticmethod
    def _replayed(prior: tuple[str, int, dict[str, Any]], data: bytes, rhash: str
                  ) -> tuple[int, dict[str, Any], bytes]:
        prior_hash, status, answer = prior
        if prior_hash != rhash and (prior_hash.startswith("sha256:") or prior_hash != _legacy_hash(data)):
            raise IdempotencyConflict("this Idempotency-Key was used with a different request body")
        return status, answer, orjson.dumps(answer)

    @staticmethod
    def _blocked_entry(reg_id: str, subject_id: str, p: RecipientPlan, now: dt.datetime) -> DisclosureEntry:
        assert p.refusal is not None
        return DisclosureEntry(
            id=sortable_id(), registration_id=reg_id, recipient=p.policy.recipient,
            recipient_name=p.policy.name, recipient_country=p.policy.country,
            category=p.decision.category.value, article=p.decision.article, instrument=p.decision.instrument,
            purpose=p.policy.purposes[0], outcome="blocked", fields=(), withheld=tuple(
                sorted({*p.minimised.fields_sent, *p.minimised.withheld})
            ),
            objects={}, attempted_at=iso(now), recorded_at=iso(now),
            result_code=p.refusal.code, reason=p.refusal.detail, subject_id=subject_id,
        )
