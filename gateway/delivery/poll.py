"""Registry notices: one poll worker per EPP registry endpoint, each message applied once, then acknowledged.

A registry tells the registrar what it did not do itself (a transfer away completed, a domain expired or
deleted by the registry, a contact the registry changed, our own transfer approved or refused) only
through its poll queue.  The holdings ("which recipient still holds what of this person, and why") are
only true if every such message is applied, and applied once.

**Applied once, acknowledged after.**  For each message the worker decides its effect (``effect_of``,
pure), then records it with ONE store call, ``apply_notice``, which keys it by (registry, message id):
the event on the registration, the end of our role, the wake-up of a waiting transfer row and the
unsealed release row all commit together or not at all.  Only after that call returned does the worker
send ``<poll op="ack">``.  A crash (kill -9) between the two leaves the message queued at the registry;
it comes back on the next request, ``apply_notice`` answers False (applied before), and it is
acknowledged then.  A crash before the store call loses nothing either: nothing was recorded and the
message was not acknowledged.

**One worker per endpoint, not per recipient.**  A poll queue belongs to a login (host, port, client
id); recipients that share an endpoint (the development sandbox serves every registry) share its
queue, so one worker reads it and the registration a message is about names the registry recipient
(its TLD's policy).  The queue's key in ``poll_messages`` is ``client_id@host:port``.

**No personal data in logs.**  A message's free text may quote the holder's data: it is read by
``adapters.epp.notices.classify`` and never logged or stored.  Logs and stored details hold message
ids, event kinds, registration ids, registrar ids, statuses and dates only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Collection, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Final

import structlog

from adapters.epp.client import EppClient
from adapters.epp.lifecycle import poll_once
from adapters.epp.notices import (
    ActionCompleted,
    ContactChanged,
    DomainDeleted,
    DomainExpired,
    Notice,
    TransferAway,
    TransferIn,
    Unknown,
    classify,
)
from adapters.epp.types import Endpoint, PollMessage
from gateway.clock import Clock, iso, utcnow
from gateway.outbox.payloads import EppRelease
from gateway.policy.loader import PolicySet
from gateway.policy.schema import RecipientPolicy
from gateway.services.lifecycle import RELEASE_CHANGE_ID, registry_of, unsealed_row
from gateway.store.base import DisclosureFilter, NewOutbox, Store

__all__ = ["Effect", "PollWorker", "effect_of", "poll_workers", "registry_recipient", "release_row"]

log = structlog.get_logger("gateway.delivery")

#: the clTRID prefix of acknowledgements (the step names the message, so a repeated ack repeats its clTRID)
_ACK_PREFIX: Final = "poll"
#: outcomes of an entry after which the registry holds (or may hold) the objects it names
_HELD: Final = frozenset({"delivered", "possibly_delivered"})


@dataclass(frozen=True)
class Effect:
    """What one notice does to the registration it is about (pure data, decided by ``effect_of``).

    ``kind`` is the registration event (and the ``poll_messages`` kind); ``end_reason`` ends our role
    (``registrations.end_reason``); ``wake`` makes the registration's waiting row at the registry due now
    (a transfer in waits for the registry's word); ``release`` queues ``EppRelease(delete_domain=False)``,
    so the registry deletes our contacts no other domain of ours uses.  ``detail`` holds ids, statuses and
    dates only.
    """

    kind: str
    detail: dict[str, Any] = field(default_factory=dict)
    end_reason: str | None = None
    wake: bool = False
    release: bool = False
    domain: str | None = None  # the domain the notice is about, if any (to find its registration)
    contact_id: str | None = None  # the contact the notice is about (a registry's change)


def _transfer_detail(message: PollMessage, status: str) -> dict[str, Any]:
    transfer = message.transfer
    detail: dict[str, Any] = {"status": status}
    if transfer is not None:
        detail |= {"tr_status": transfer.tr_status, "gaining_registrar": transfer.re_id,
                   "losing_registrar": transfer.ac_id, "requested_at": transfer.re_date,
                   "act_by": transfer.ac_date}
    return {k: v for k, v in detail.items() if v is not None}


def effect_of(notice: Notice, message: PollMessage) -> Effect:
    """The effect of ``notice`` (classified from ``message``); pure.

    A transfer away that completed, an expiry and a deletion by the registry end our role and release
    the domain's contacts (the domain itself is gone or someone else's: ``delete_domain=False``).  Our
    own transfer's approval, rejection or cancellation wakes its waiting row, which then completes it
    or parks it (``transfer_not_completed``).  The rest are events only.
    """
    queued = {"queued_at": message.queued_at} if message.queued_at else {}
    match notice:
        case TransferAway(domain=domain, status="approved"):
            return Effect("transferred_away", _transfer_detail(message, "approved") | queued,
                          end_reason="transferred_out", release=True, domain=domain)
        case TransferAway(domain=domain, status=status):
            kinds = {"pending": "transfer_away_requested", "rejected": "transfer_away_rejected",
                     "cancelled": "transfer_away_cancelled"}
            return Effect(kinds[status], _transfer_detail(message, status) | queued, domain=domain)
        case TransferIn(domain=domain, status=status):
            kinds = {"approved": "transfer_approved", "rejected": "transfer_rejected",
                     "cancelled": "transfer_cancelled", "pending": "transfer_pending"}
            return Effect(kinds[status], _transfer_detail(message, status) | queued, wake=status != "pending",
                          domain=domain)
        case DomainExpired(domain=domain):
            return Effect("expired", queued, end_reason="expired", release=True, domain=domain)
        case DomainDeleted(domain=domain):
            return Effect("deleted", queued, end_reason="deleted", release=True, domain=domain)
        case ContactChanged(contact_id=contact_id):
            return Effect("contact_changed", {"contact": contact_id} | queued, contact_id=contact_id)
        case ActionCompleted() as done:
            detail = {"object_type": done.object_type, "object": done.object_id, "ok": done.ok,
                      "cl_trid": done.cl_trid, "sv_trid": done.sv_trid} | queued
            return Effect("action_completed", {k: v for k, v in detail.items() if v is not None},
                          domain=done.object_id if done.object_type == "domain" else None,
                          contact_id=done.object_id if done.object_type == "contact" else None)
        case Unknown():
            # no domain lookup on purpose: an unclassified message is recorded as such (staff read the
            # registry's own queue copy); its text is never kept
            return Effect("unknown", queued)


def release_row(policy: RecipientPolicy, policies: PolicySet, domain: str, at: dt.datetime) -> NewOutbox:
    """The unsealed ``EppRelease(domain, delete_domain=False)`` row for ``policy``'s registry, exactly as the
    API's transfer out queues it (``gateway.services.lifecycle.unsealed_row``), under the same change id: the
    outbox's unique (registration, recipient, change id) then refuses a second release of one registration,
    whichever of the API and a notice ends it first."""
    return unsealed_row(policy, policies, EppRelease(domain, delete_domain=False), RELEASE_CHANGE_ID, at, None)


def registry_recipient(registration: Mapping[str, Any], policies: PolicySet) -> str | None:
    """The registry recipient ``registration`` was planned for (its plan; a raw row carries it as JSON),
    else its TLD's registry."""
    plan = registration.get("plan")
    if plan is None and registration.get("plan_json"):
        plan = json.loads(str(registration["plan_json"]))
    recipient = registry_of({"plan": plan})
    if recipient is None:
        policy = policies.by_tld.get(str(registration.get("tld", "")))
        recipient = policy.recipient if policy is not None else None
    return recipient


def _contacts(objects: Mapping[str, str]) -> set[str]:
    return {v.casefold() for k, v in objects.items() if k == "contact" or k.startswith("contact:")}


@dataclass(eq=False, repr=False)  # compared by identity, as a running loop
class PollWorker:
    """Reads one registry endpoint's poll queue, applies each message once, then acknowledges it."""

    store: Store
    policies: PolicySet
    endpoint: Endpoint
    #: the EPP recipients this endpoint serves (a release or wake-up goes to one of them only)
    recipients: frozenset[str]
    #: an EPP session to the endpoint (pooled in a gateway: ``EppPools.session``)
    session: Callable[[Endpoint], AbstractAsyncContextManager[EppClient]] = EppClient
    _: KW_ONLY
    clock: Clock = utcnow
    #: messages read in one round; a full round is followed by the next at once (the queue is drained)
    max_per_round: int = 100
    #: told when rows were made due (the delivery worker's wake-up), so they go now, not at its next poll
    wake: Callable[[], None] | None = None

    @property
    def registry(self) -> str:
        """The queue's key in ``poll_messages``: a poll queue is one login's (client id at host and port)."""
        return f"{self.endpoint.client_id}@{self.endpoint.host}:{self.endpoint.port}"

    async def run(self, stop: asyncio.Event, interval_s: float) -> None:
        """Poll every ``interval_s`` until ``stop``; a round that read ``max_per_round`` messages is followed
        by another at once.  The first round is after one interval (a process start is not a poll)."""
        full = False
        while not stop.is_set():
            if not full:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval_s)
                    return
                except TimeoutError:
                    pass
            try:
                full = await self.poll_round(stop) >= self.max_per_round
            except Exception as exc:  # the loop outlives a registry outage; say what failed, never with what
                log.error("poll.failed", registry=self.registry, error_type=type(exc).__name__)
                full = False

    async def poll_round(self, stop: asyncio.Event | None = None) -> int:
        """Read, apply and acknowledge messages until the queue is empty or ``max_per_round`` were read;
        returns how many were acknowledged.  A failure leaves the current message queued (raised)."""
        done = 0
        async with self.session(self.endpoint) as client:
            while done < self.max_per_round and not (stop is not None and stop.is_set()):
                message, ack = await poll_once(client, _ACK_PREFIX)
                if message is None:
                    break
                await self.apply(message)
                await ack()  # only now: the effect is durable
                done += 1
        return done

    async def apply(self, message: PollMessage) -> bool:
        """Record ``message``'s effect once; False when it was applied before (it is acknowledged anyway)."""
        effect = effect_of(classify(message, our_client_id=self.endpoint.client_id), message)
        at = self.clock()
        registration: dict[str, Any] | None = None
        others: list[str] = []
        if effect.domain is not None:
            registration = await self.store.registration_for_domain(effect.domain)
        elif effect.contact_id is not None:
            holding = await self.registrations_holding(effect.contact_id)
            if holding:
                registration = await self.store.registration(holding[0])
                others = holding[1:]
        reg_id = registration["id"] if registration is not None else None
        policy = self._registry_policy(registration)
        active = registration is not None and registration.get("ended_at") is None
        outbox: list[NewOutbox] = []
        if effect.release and active and policy is not None and effect.domain is not None:
            outbox.append(release_row(policy, self.policies, effect.domain, at))
        detail = effect.detail | ({"also": others} if others else {})
        applied = await self.store.apply_notice(
            self.registry, message.id, at=iso(at), kind=effect.kind, registration_id=reg_id, detail=detail,
            end_reason=effect.end_reason if active else None,
            wake_recipient=policy.recipient if effect.wake and policy is not None else None,
            outbox=outbox or None,
        )
        if others:
            await self._event_on_others(others, effect, message.id, reg_id, at=iso(at))
        if applied:
            log.info("poll.applied", registry=self.registry, msg_id=message.id, kind=effect.kind,
                     registration=reg_id, released=bool(outbox), ended=effect.end_reason if active else None)
            if (outbox or effect.wake) and self.wake is not None:
                self.wake()
        else:
            log.info("poll.duplicate", registry=self.registry, msg_id=message.id, kind=effect.kind)
        return applied

    def _registry_policy(self, registration: Mapping[str, Any] | None) -> RecipientPolicy | None:
        """The registry recipient's policy of ``registration``, if this endpoint serves that recipient."""
        if registration is None:
            return None
        recipient = registry_recipient(registration, self.policies)
        if recipient is None or recipient not in self.recipients:
            return None
        return self.policies.recipients.get(recipient)

    async def registrations_holding(self, contact_id: str) -> list[str]:
        """Active registrations whose entries at this endpoint's registries name ``contact_id``, sorted.

        Entries name only subject contacts (never the registrar's own role contacts), so a registry's
        change to one of those reaches the registrations of that holder only.  A linear read of these
        recipients' entries: contact changes by a registry are rare, and the log has no index by object.
        """
        wanted = contact_id.casefold()
        ids: set[str] = set()
        for recipient in sorted(self.recipients):
            async for e in self.store.iter_disclosures(DisclosureFilter(recipient=recipient)):
                if e.outcome in _HELD and e.command != "contact:delete" and wanted in _contacts(e.objects):
                    ids.add(e.registration_id)
        ends = await self.store.registration_ends(ids)
        return sorted(rid for rid in ids if ends.get(rid, (None, None))[0] is None)

    async def _event_on_others(
        self, others: Collection[str], effect: Effect, msg_id: str, primary: str | None, *, at: str
    ) -> None:
        """The event of a contact change on every further registration holding the contact.

        ``apply_notice`` takes one registration (the first, by id); the others get the same event here,
        after it and before the ack, each only if it does not have it yet (by message id).  So a crash in
        between is completed when the message comes back, and no registration gets it twice.
        """
        for rid in others:
            events = await self.store.registration_events(rid)
            if any(ev.get("kind") == effect.kind and (ev.get("detail") or {}).get("msg_id") == msg_id
                   for ev in events):
                continue
            await self.store.add_registration_event(
                rid, at=at, kind=effect.kind, source="registry",
                detail=effect.detail | {"msg_id": msg_id, "primary": primary},
            )


def poll_workers(
    store: Store, policies: PolicySet, endpoints: Mapping[str, Endpoint],
    session: Callable[[Endpoint], AbstractAsyncContextManager[EppClient]], *,
    wake: Callable[[], None] | None = None, max_per_round: int = 100,
) -> list[PollWorker]:
    """One worker per distinct EPP endpoint (host, port, client id) of the enabled EPP recipients."""
    groups: dict[tuple[str, int, str], tuple[Endpoint, set[str]]] = {}
    for rid, endpoint in sorted(endpoints.items()):
        policy = policies.recipients.get(rid)
        if policy is None or not policy.enabled or policy.protocol != "epp":
            continue
        key = (endpoint.host, endpoint.port, endpoint.client_id)
        groups.setdefault(key, (endpoint, set()))[1].add(rid)
    return [PollWorker(store, policies, endpoint, frozenset(rids), session, wake=wake, max_per_round=max_per_round)
            for endpoint, rids in groups.values()]
