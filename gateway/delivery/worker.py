"""The delivery worker: delivers one claimed outbox row and records what actually reached the recipient.

What is logged is what went over the wire, command by command (``adapters.epp.steps``): each
``contact:create`` of a subject's contact, the ``domain:create``, a partner call, a contact update is its
own disclosure entry, recorded (with the row's progress) before the next command goes out, so a
registration that fails after its contact was created still shows that the registry holds the contact,
and a retry after a crash neither repeats nor forgets a step.  An attempt where nothing left the gateway
(connection refused, TLS failure) is logged as such, with no fields and no values; a frame written with no
answer is ``possibly_delivered``.

Retries are durable (the outbox row goes back to ``pending`` with a backoff), never an in-memory loop.
Transient failures are retried with capped exponential backoff and full jitter until the recipient's
deadline, then the row is parked (``needs_attention``) for staff; permanent refusals park at once, after
undoing what the registration had already created (``contact:delete``).  Each claim carries a fencing
token: once another worker owns the row, this one records nothing.  The GDPR Chapter V basis is evaluated
again at every send (``classify_at_send``): a decision or safeguard that ended since acceptance blocks it.

Only I/O lives here: what a row carries is a typed payload (``gateway.outbox.payloads``), built and
encoded elsewhere; the worker opens it, dispatches on its type to an adapter and records the outcome.
The claiming loop with its bulkheads and breakers is ``gateway.delivery.scheduler``'s.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
import weakref
from collections import ChainMap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Protocol, assert_never

import structlog

from adapters.epp.client import (
    EppClient,
    adopt_with,
    delete_contacts_with,
    make_cl_trid,
    register,
    update_contact_with,
)
from adapters.epp.lifecycle import delete_domain_with, renew_with, transfer_request_with
from adapters.epp.outcomes import frame_may_have_arrived
from adapters.epp.steps import StepObserver, StepOutcome
from adapters.epp.types import (
    ContactUpdate,
    DomainInfoQuery,
    Endpoint,
    EppResult,
    RegistrationCommands,
    RegistrationOutcome,
    UpdateOutcome,
)
from adapters.http_partner import HttpPartnerClient, PartnerEndpoint
from gateway.clock import Clock, iso, utcnow
from gateway.errors import (
    DeliveryError,
    PermanentDeliveryError,
    RegistryUnreachable,
    RequiredFieldMissing,
    SubjectErased,
    TransientDeliveryError,
)
from gateway.ledger.entry import DisclosureEntry
from gateway.ledger.ids import sortable_id
from gateway.logs import DeliveryMetrics, delivery_metrics
from gateway.outbox.epp import RegistrarContact, commands_for, nexus_on_registrant
from gateway.outbox.payloads import (
    UNSEALED_PROTOCOLS,
    DomainRecord,
    EppContactUpdate,
    EppOrder,
    EppRegistration,
    EppRelease,
    EppRenew,
    EppTransferIn,
    HttpsPost,
    OutboxContent,
    Sendable,
    outbox_aad,
)
from gateway.policy.classify import TransferDecision, classify_at_send
from gateway.policy.loader import PolicySet
from gateway.policy.restrictions import restriction_refusal
from gateway.services.ledger import Ledger
from gateway.store.base import DisclosureFilter, OutboxItem, Store

log = structlog.get_logger("gateway.delivery")


def _no_partner_endpoint(recipient: str) -> PartnerEndpoint:
    raise PermanentDeliveryError("no partner endpoint configured for this recipient; nothing was sent")


EppUpdater = Callable[[Endpoint, ContactUpdate, str], Awaitable[UpdateOutcome]]


async def _update_single(endpoint: Endpoint, cmd: ContactUpdate, prefix: str) -> UpdateOutcome:
    async with EppClient(endpoint) as client:
        return await update_contact_with(client, cmd, prefix)


class EppSender(Protocol):
    """Sends a registration's commands, reporting each step (``on_step``) and skipping contacts that
    earlier attempts left at the registry (``held``: our id -> the registry's)."""

    def __call__(
        self, endpoint: Endpoint, commands: RegistrationCommands, cl_trid_prefix: str, *,
        on_step: StepObserver | None = ..., held: Mapping[str, str] | None = ...,
    ) -> Awaitable[RegistrationOutcome]: ...


class ContactDeleter(Protocol):
    """``contact:delete`` of each id, each outcome reported; refusals are reported, not raised."""

    def __call__(
        self, endpoint: Endpoint, ids: Iterable[str], cl_trid_prefix: str, *, on_step: StepObserver | None = ...,
    ) -> Awaitable[dict[str, StepOutcome]]: ...


async def _delete_single(
    endpoint: Endpoint, ids: Iterable[str], cl_trid_prefix: str, *, on_step: StepObserver | None = None,
) -> dict[str, StepOutcome]:
    async with EppClient(endpoint, trid_prefix=cl_trid_prefix) as client:
        return await delete_contacts_with(client, ids, cl_trid_prefix, on_step=on_step)


@dataclass(frozen=True)
class DeliveryReport:
    """What one claimed row's attempt came to, for the scheduler (its circuit breaker counts
    ``transport_failure``: the connection failed, nothing was answered)."""

    outcome: str  # delivered | retry | parked | failed | lost_claim | waiting (a transfer awaiting approval)
    transport_failure: bool = False


class LostClaim(Exception):
    """The row is no longer this claim's (lease lapsed, taken over, or acted on by staff): stop, record
    nothing more."""


#: The commands that create, change or remove a person's contact at a registry (reuse and release read them).
_CONTACT_COMMANDS = ("contact:create", "contact:update", "contact:delete")
#: ... and those that point a domain at contacts.
_LINK_COMMANDS = ("domain:create", "domain:update")

#: A row's last command when it succeeds: its entry is written with the row's finish, one transaction less.
_FINAL_COMMANDS = frozenset({"domain:create", "domain:update", "domain:renew"})

#: Refusals of our own (nothing was sent) after which the row can never go: it ends as ``failed``, not
#: parked for staff.
_TERMINAL_REFUSALS = frozenset({"subject_erased", "recipient_unconfigured"})


@dataclass(eq=False, repr=False)  # compared by identity, as a running worker
class DeliveryWorker:
    """Delivers claimed outbox rows through the adapter each payload type names, and records them."""

    store: Store
    ledger: Ledger
    policies: PolicySet
    endpoints: Callable[[str], Endpoint]
    _: KW_ONLY
    clock: Clock = utcnow
    #: optional cap on attempts before parking; None: only the deadline parks a transiently failing row
    max_attempts: int | None = None
    #: how long, from a row's first failure, transient failures are retried (per recipient in ``deadlines``)
    deadline_s: float = 72 * 3600.0
    deadlines: Mapping[str, float] = field(default_factory=dict)
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    batch: int = 8
    concurrency: int = 4
    send_epp: EppSender = register
    delete_epp: ContactDeleter = _delete_single
    partner_endpoints: Callable[[str], PartnerEndpoint] = _no_partner_endpoint
    lease_s: float = 120.0
    update_epp: EppUpdater = _update_single
    #: an EPP session to a registry for the lifecycle commands (renew, transfer, delete): pooled in a gateway
    epp_session: Callable[[Endpoint], AbstractAsyncContextManager[EppClient]] = EppClient
    #: how long a transfer in waits before it is looked at again (a registry notice wakes it sooner)
    transfer_wait_s: float = 3600.0
    #: deliveries by outcome and EPP latency; the process's (``gateway.logs``) unless given
    metrics: DeliveryMetrics = field(default_factory=delivery_metrics)
    #: the registrar's own contact (company data) that registrations' commands are built with when sent
    registrar: RegistrarContact = field(default_factory=RegistrarContact)
    #: set to deliver now rather than at the next poll (a new registration was accepted)
    wakeup: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._sem = asyncio.Semaphore(self.concurrency)
        self._registrar_contacts: dict[tuple[str, int, str], dict[str, str]] = {}
        #: per (person, registry), while one of their registrations is being sent; weak: gone when unused
        self._person_locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def recover(self) -> int:
        """Requeue rows whose claim is older than the lease: their worker died (kill -9, crash)."""
        now = self.clock()
        n = await self.store.requeue_in_flight(iso(now), iso(now - dt.timedelta(seconds=self.lease_s)))
        if n:
            log.info("outbox.requeued_stale_claims", count=n)
        return n

    async def run_once(self) -> int:
        """Claim one batch of due rows and deliver all of it (tests and one-shot runs; a running gateway
        uses the scheduler, which claims continuously per recipient)."""
        now = self.clock()
        items = await self.store.claim_due(iso(now), self.batch,
                                           lease_until=iso(now + dt.timedelta(seconds=self.lease_s)))
        await asyncio.gather(*(self.deliver(item, renew_claim=True) for item in items))
        return len(items)

    def _backoff(self, attempts: int) -> float:
        cap = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempts - 1)))
        return random.uniform(0, cap)  # full jitter (not for security)

    async def open(self, item: OutboxItem) -> OutboxContent:
        """A row's payload and values; raises ``SubjectErased`` once the subject's data key is gone.  A row
        with no personal data (renewal, release) is stored unsealed, with no subject."""
        if item.subject_id is None:
            plain = OutboxContent.from_json(json.loads(item.payload_ct))
            if plain.payload.protocol not in UNSEALED_PROTOCOLS or plain.values:
                raise PermanentDeliveryError("an unsealed outbox row must carry no personal data; nothing was sent")
            return plain
        sealed = await self.ledger.open_json(
            item.subject_id, item.payload_ct, outbox_aad(item.registration_id, item.recipient, item.change_id)
        )
        return OutboxContent.from_json(sealed)

    async def deliver(self, item: OutboxItem, *, renew_claim: bool = False) -> DeliveryReport:
        """Deliver one claimed row and record the outcome; never raises for a delivery error.

        ``renew_claim``: the row may have waited since its claim (a batch): start only if the claim still
        owns it, with its lease started afresh.  The scheduler claims each row right before delivering it
        and renews the lease with its heartbeat."""
        # the id of the request that queued this row (stored with it, schema 4), on every line of its
        # delivery, whichever process makes it; a row queued outside a request (or before schema 4) has none
        bound = {"request_id": item.request_id} if item.request_id is not None else {}
        with structlog.contextvars.bound_contextvars(**bound):
            async with self._sem:
                try:
                    return await self._deliver(item, renew_claim)
                except LostClaim:
                    log.warning("delivery.claim_lost", recipient=item.recipient, registration=item.registration_id)
                    self.metrics.deliveries.labels(item.recipient, "lost_claim").inc()
                    return DeliveryReport("lost_claim")

    async def _deliver(self, item: OutboxItem, renew_claim: bool) -> DeliveryReport:
        started = self.clock()
        if item.token and renew_claim:
            # rows may wait (in a batch, for a slot) after their claim: start only while the claim still owns
            # the row, and start its lease afresh (the scheduler's heartbeat renews it from here on)
            lease_until = iso(started + dt.timedelta(seconds=self.lease_s))
            if not await self.store.renew_claims([item.token], lease_until):
                raise LostClaim()
        holder = item.subject_id
        if holder is None and item.registration_id:
            # a row without personal data (renewal, release) is logged under the registration's holder, so
            # their extract and holdings show what happened to their domain and contacts
            reg = await self.store.registration(item.registration_id)
            holder = reg.get("subject_id") if reg is not None else None
        attempt = _Attempt(self, item, started, subject_id=holder)
        result: Delivered | DeliveryError
        try:
            content = await self._deliverable(item, attempt)
            attempt.values = content.values
            match self._sendable(item, content, attempt):
                case EppRegistration(commands=commands):
                    result = await self._register(item, attempt, commands)
                case HttpsPost() as post:
                    endpoint = self.partner_endpoints(item.recipient)
                    key = post.idempotency_key or f"{item.registration_id}:{item.recipient}"
                    async with HttpPartnerClient(endpoint) as client:
                        receipt = await client.send(post.path, post.body, idempotency_key=key)
                    result = Delivered(str(receipt.status), None, None,
                                       {"partner_ref": receipt.partner_ref} if receipt.partner_ref else {},
                                       command=f"https:{post.path}")
                case EppContactUpdate(update=update):
                    result = Delivered.from_update(await self.update_epp(
                        self.endpoints(item.recipient), update, f"{item.registration_id}-{item.change_id}"
                    ))
                case EppRenew() as renew:
                    result = await self._renew(item, attempt, renew)
                case EppRelease() as release:
                    result = await self._release(item, attempt, release)
                case EppTransferIn() as transfer:
                    waiting = await self._transfer_in(item, attempt, transfer)
                    if isinstance(waiting, DeliveryReport):
                        return waiting
                    result = waiting
                case DomainRecord(protocol=protocol):  # escrow rows are the escrow job's; RRI has no adapter
                    raise PermanentDeliveryError(f"protocol '{protocol}' has no adapter; nothing was sent",
                                                 refusal="protocol_not_supported")
                case _ as other:  # a new payload type must get a case here (mypy checks)
                    assert_never(other)
        except LostClaim:
            raise
        except DeliveryError as exc:
            result = exc
        except Exception as exc:  # an adapter bug must not lose the attempt; log its type only
            log.error("delivery.adapter_bug", recipient=item.recipient, error_type=type(exc).__name__)
            result = TransientDeliveryError("unexpected adapter error", frame_written=True)
        return await self._finish(item, attempt, result)

    def _sendable(self, item: OutboxItem, content: OutboxContent, attempt: _Attempt) -> Sendable:
        """What goes: the row's payload, or for a registration's order (``EppOrder``) the commands built now,
        from the order, the values sealed beside it, the registry's current policy and our registrar contact.
        The entries then quote the digest of those commands, which is what the registry is sent.  A row
        queued before orders carries its commands built already, and goes as stored, under its own digest."""
        payload = content.payload
        if not isinstance(payload, EppOrder):
            return payload
        policy = self.policies.recipients.get(item.recipient)  # present: ``_deliverable`` checked it
        if policy is None or policy.epp is None:
            raise PermanentDeliveryError("the recipient's policy no longer speaks EPP; nothing was sent",
                                         refusal="protocol_not_supported")
        try:
            commands = commands_for(payload.order, content.values, policy, self.registrar)
        except RequiredFieldMissing:
            raise PermanentDeliveryError("the registry's policy now needs a contact this row's released values "
                                         "cannot make; nothing was sent", refusal="contact_unbuildable") from None
        built = payload.sendable(commands)
        attempt.payload_digest = built.digest()
        return built

    async def _register(self, item: OutboxItem, attempt: _Attempt, commands: RegistrationCommands) -> Delivered:
        """A registration, step by step; a permanent refusal after contacts were created undoes them."""
        endpoint = self.endpoints(item.recipient)
        prefix = item.registration_id
        commands = nexus_on_registrant(commands)  # a .us row queued before the nexus moved to the contact
        attempt.domain_carries = not commands.subject_contacts()
        # one person's registrations at one registry go one at a time in this process, so the second finds the
        # contact the first created instead of racing it into a second copy
        key = (item.subject_id or item.registration_id, item.recipient)
        lock = self._person_locks.get(key)
        if lock is None:
            lock = self._person_locks[key] = asyncio.Lock()
        async with lock:
            reused = await self._reusable_contact(item, commands, attempt)
            known = ChainMap(attempt.held, reused)  # read afresh by every in-pool retry, as steps are recorded
            try:
                outcome = await self.send_epp(endpoint, commands, prefix, on_step=attempt.step, held=known)
            except PermanentDeliveryError:
                if attempt.at_registry():
                    # the registry keeps what a refused registration's contacts carried unless we delete them;
                    # a contact it will not delete (2305 in use, policy) stays listed as held by it
                    await self.delete_epp(endpoint, attempt.at_registry(), prefix, on_step=attempt.step)
                raise
        return Delivered.from_epp(outcome)

    # -- the domain's lifecycle after registration --------------------------------------------------------

    def _provisioned(self, endpoint: Endpoint) -> dict[str, str]:
        return self._registrar_contacts.setdefault((endpoint.host, endpoint.port, endpoint.client_id), {})

    async def _renew(self, item: OutboxItem, attempt: _Attempt, renew: EppRenew) -> Delivered:
        """``domain:renew`` (``adapters.epp.lifecycle.renew_with``).  The expiry it starts from is recorded
        before the command goes out and passed on every retry, so a renewal whose answer was lost is found
        done and never applied twice."""
        endpoint = self.endpoints(item.recipient)
        prefix = f"{item.registration_id}-{item.change_id}"
        async with self.epp_session(endpoint) as client:
            started_from = attempt.extra.get("renew_from")
            if started_from is None:
                info = await client.send(DomainInfoQuery(renew.domain), make_cl_trid(prefix, "info"))
                current = _date(info.ex_date)
                if current is None:
                    raise PermanentDeliveryError("the registry shows no expiry date for the domain; nothing was sent")
                started_from = current.isoformat()
                await attempt.note(renew_from=started_from)
            try:
                done = await renew_with(client, renew.domain, renew.years, prefix,
                                        cur_exp_date=dt.date.fromisoformat(started_from))
            except DeliveryError as exc:
                await attempt.report_failure("domain:renew", renew.domain, exc)
                raise
        await attempt.step(StepOutcome("domain:renew", renew.domain, "delivered", done.result,
                                       reconciled=done.reconciled))
        expires = done.ex_date.isoformat()
        attempt.event("renewed", {"years": renew.years, "expires": expires, **({"reconciled": True}
                                                                             if done.reconciled else {})},
                      expires_at=expires)
        return Delivered(str(done.result.code), done.result.sv_trid, done.result.cl_trid, {"domain": renew.domain},
                         done.reconciled, command="domain:renew")

    async def _release(self, item: OutboxItem, attempt: _Attempt, release: EppRelease) -> Delivered:
        """Our role for a domain ended: delete it (a deletion), then every contact of the registration that no
        other domain of ours at this registry uses; a contact the registry keeps (2305, policy) stays in the
        log as held by it."""
        endpoint = self.endpoints(item.recipient)
        prefix = f"{item.registration_id}-{item.change_id}"
        last: EppResult | None = None
        async with self.epp_session(endpoint) as client:
            if release.delete_domain and not attempt.extra.get("domain_deleted"):
                try:  # an earlier attempt's delete (2303 gone, 2304 pending) is reconciled there
                    deletion = await delete_domain_with(client, release.domain, prefix)
                except DeliveryError as exc:
                    await attempt.report_failure("domain:delete", release.domain, exc)
                    raise
                last = deletion.result
                await attempt.step(StepOutcome("domain:delete", release.domain, "delivered", last,
                                               reconciled=deletion.reconciled))
                await attempt.note(domain_deleted=True)
            unused = await self._unused_contacts(item)
            if unused:
                await delete_contacts_with(client, unused, prefix, on_step=attempt.step)
        code = str(last.code) if last is not None else "1000"
        return Delivered(code, last.sv_trid if last else None, last.cl_trid if last else None,
                         {"domain": release.domain}, command="domain:delete" if release.delete_domain else None,
                         sent=attempt.recorded_any or bool(attempt.pending))

    async def _entries_of(
        self, subject_id: str, recipient: str, keep: Callable[[str], bool],
        commands: Iterable[str] = _CONTACT_COMMANDS,
    ) -> AsyncIterator[DisclosureEntry]:
        """The person's log entries at ``recipient`` of these commands whose registration ``keep`` accepts
        (indexed reads by subject; entries of rows without personal data are filed under the registration's
        holder too)."""
        for command in commands:
            async for e in self.store.iter_disclosures(
                DisclosureFilter(subject_id=subject_id, recipient=recipient, command=command)
            ):
                if keep(e.registration_id):
                    yield e

    async def _unused_contacts(self, item: OutboxItem) -> list[str]:
        """Contacts this registration put or found at the registry that no other active registration of ours
        there points at and that are not deleted yet (decided now, from the log)."""
        mine: set[str] = set()
        others: dict[str, set[str]] = {}
        deleted: set[str] = set()
        reg = await self.store.registration(item.registration_id)
        subject_id = reg.get("subject_id") if reg else None
        if subject_id is None:
            return []
        regs = {r["id"] for r in await self.store.subject_registrations(subject_id)} | {item.registration_id}
        async for e in self._entries_of(subject_id, item.recipient, regs.__contains__,
                                        (*_CONTACT_COMMANDS, *_LINK_COMMANDS)):
            ids = {v for k, v in e.objects.items() if k == "contact" or k.startswith("contact:")}
            if e.command == "contact:delete":
                if e.outcome == "deleted":
                    deleted |= ids
                continue
            if e.outcome not in ("delivered", "possibly_delivered"):
                continue
            if e.registration_id == item.registration_id:
                mine |= ids
            else:
                others.setdefault(e.registration_id, set()).update(ids)
        ends = await self.store.registration_ends(list(others))
        in_use = set().union(*(ids for rid, ids in others.items() if ends.get(rid, (None, None))[0] is None))
        return sorted(mine - in_use - deleted)

    async def _transfer_in(
        self, item: OutboxItem, attempt: _Attempt, transfer: EppTransferIn
    ) -> Delivered | DeliveryReport:
        """Request the transfer; once the registry shows the domain as ours (at once, or after the losing
        registrar or the registry approved it: the poll worker wakes this row), create or reuse our contacts
        and point the domain at them.  While the transfer is pending the row waits, logging nothing."""
        endpoint = self.endpoints(item.recipient)
        name = transfer.commands.domain.name
        prefix = item.registration_id
        async with self.epp_session(endpoint) as client:
            if not attempt.extra.get("transfer_requested"):
                try:  # asking again finds it pending (2300) or ours (2106): reconciled there
                    answer = await transfer_request_with(client, name, transfer.auth_pw, transfer.years, prefix)
                except DeliveryError as exc:
                    await attempt.report_failure("domain:transfer", name, exc)
                    raise
                attempt.event("transfer_requested", {"status": answer.status})
                await attempt.step(StepOutcome("domain:transfer", name, "delivered", answer.result,
                                               reconciled=answer.reconciled))
                await attempt.note(transfer_requested=True)
            info = await client.send(DomainInfoQuery(name), make_cl_trid(prefix, "transfer-info"))
            if not _same_registrar(info.cl_id, endpoint.client_id):
                if "pendingTransfer" in info.statuses:
                    return await self._wait(item, attempt, "transfer pending approval")
                raise PermanentDeliveryError("the transfer was not completed (rejected or cancelled); the domain "
                                             "stays with its registrar", refusal="transfer_not_completed")
            result = await adopt_with(client, transfer.commands, prefix, on_step=attempt.step,
                                      held=attempt.held, provisioned=self._provisioned(endpoint))
        if not attempt.extra.get("transfer_completed"):
            attempt.event("transfer_completed", {})
            await attempt.note(transfer_completed=True)
        return Delivered(str(result.code), result.sv_trid, result.cl_trid, {"domain": name}, command="domain:update")

    async def _wait(self, item: OutboxItem, attempt: _Attempt, why: str) -> DeliveryReport:
        """Put the row back until ``transfer_wait_s`` from now (a registry notice wakes it sooner)."""
        now = self.clock()
        await self._commit(item, [], state="pending", now=now, attempt=attempt,
                           next_at=iso(now + dt.timedelta(seconds=self.transfer_wait_s)), last_code="1001")
        log.info("delivery.waiting", recipient=item.recipient, registration=item.registration_id, why=why)
        return DeliveryReport("waiting")

    async def _reusable_contact(
        self, item: OutboxItem, commands: RegistrationCommands, attempt: _Attempt
    ) -> dict[str, str]:
        """The registry's existing contact of this subject, when it holds exactly the values this registration
        would send: a second domain of the same person then points at it instead of creating another copy
        of the same data (one object per person and registry while the data is unchanged, and one target
        for rectification).  Empty when the registration has not exactly one subject contact, when this row
        already created its own, or when no contact of the person at this registry matches."""
        subject_contacts = commands.subject_contacts()
        if item.subject_id is None or len(subject_contacts) != 1 or attempt.held or attempt.uncertain:
            return {}
        ours = subject_contacts[0].id
        current: dict[str, dict[str, Any]] = {}  # registry contact id -> the values it holds now
        created_by: dict[str, str] = {}  # registry contact id -> the registration that created it
        gone: set[str] = set()
        async for e in self._entries_of(item.subject_id, item.recipient, lambda r: r != item.registration_id):
            cid = e.objects.get("contact")
            if cid is None:
                continue
            if e.command == "contact:delete" and e.outcome in ("deleted", "possibly_delivered"):
                gone.add(cid)
            elif e.command in ("contact:create", "contact:update") and e.outcome == "delivered":
                values = await self.ledger.entry_values(e)
                if values is not None:
                    current[cid] = {**current.get(cid, {}), **values} if e.command == "contact:update" else values
                if e.command == "contact:create":
                    created_by.setdefault(cid, e.registration_id)
        wanted = {k: v for k, v in (attempt.values or {}).items() if v is not None}
        matching = [cid for cid, held in current.items()
                    if cid not in gone and {k: v for k, v in held.items() if v is not None} == wanted]
        if not matching:
            return {}
        # only a contact of the same ordering client's registrations: a registrant change one client reports
        # reaches that client's registrations alone, so another client's domain must never share its contact
        reg = await self.store.registration(item.registration_id)
        for cid in matching:
            creator = await self.store.registration(created_by.get(cid, ""))
            if reg is not None and creator is not None and creator["client"] == reg["client"]:
                log.debug("delivery.contact_reused", recipient=item.recipient, contact=cid)
                return {ours: cid}
        return {}

    async def _deliverable(self, item: OutboxItem, attempt: _Attempt) -> OutboxContent:
        """The row's content, if it may still go: its subject is not erased, its recipient is still
        configured, no restriction placed since acceptance forbids it, and a Chapter V basis holds at this
        moment (fail closed at the last moment; the entry carries this send-time decision)."""
        try:
            content = await self.open(item)
        except SubjectErased:
            raise PermanentDeliveryError("the subject was erased before delivery; nothing was sent",
                                         refusal="subject_erased") from None
        policy = self.policies.recipients.get(item.recipient)
        if policy is None:
            raise PermanentDeliveryError("recipient no longer configured; nothing was sent",
                                         refusal="recipient_unconfigured")
        decision = classify_at_send(policy, self.policies.jurisdictions, self.clock(), item.purpose,
                                    carries_personal_data=bool(item.fields.get("sent")))
        attempt.decision = decision
        if not decision.allowed:
            raise PermanentDeliveryError(f"no transfer basis at the time of sending: {decision.reason}; "
                                         "nothing was sent", refusal="transfer_blocked_at_send")
        if item.subject_id is not None:
            rows = await self.store.restrictions(item.subject_id)
            if restriction_refusal(rows, policy, item.purpose) is not None:
                raise PermanentDeliveryError("the subject restricted this processing; nothing was sent",
                                             result_code=None, refusal="subject_restricted")
        return content

    async def _finish(self, item: OutboxItem, attempt: _Attempt, result: Delivered | DeliveryError) -> DeliveryReport:
        now = self.clock()
        entries: list[DisclosureEntry] = []
        entries.extend(attempt.pending)
        if isinstance(result, Delivered):
            if not attempt.recorded_any and not attempt.pending and result.sent:  # one command (partner, update)
                entries.append(await attempt.entry(
                    "delivered", fields=attempt.sent_fields, objects=result.objects, result_code=result.result_code,
                    sv_trid=result.sv_trid, cl_trid=result.cl_trid, command=result.command,
                    reason="reconciled after restart" if result.reconciled else None, values=attempt.values,
                ))
            log.info("delivery.delivered", recipient=item.recipient, registration=item.registration_id,
                     code=result.result_code, sv_trid=result.sv_trid, reconciled=result.reconciled)
            await self._commit(item, entries, state="done", now=now, attempt=attempt, last_code=result.result_code)
            self.metrics.deliveries.labels(item.recipient, "delivered").inc()
            return DeliveryReport("delivered")

        refusal = result.extra.get("refusal")
        code = str(result.result_code) if result.result_code is not None else str(refusal or result.code)
        if not attempt.failure_recorded:
            # the failing command was not reported as a step: say what left (possibly the frame), or that
            # nothing did (connection refused, TLS failure, a refusal of our own)
            written = frame_may_have_arrived(result) and refusal is None
            answered = result.result_code is not None
            outcome = "blocked" if refusal else "refused" if answered else "possibly_delivered" if written else "failed"
            entries.append(await attempt.entry(
                outcome, fields=attempt.sent_fields if written else (), objects={}, result_code=code,
                command=result.extra.get("epp_command"), reason=result.detail,
                values=attempt.values if written else None, retryable=isinstance(result, TransientDeliveryError),
            ))
        transient = isinstance(result, TransientDeliveryError)
        transport = isinstance(result, RegistryUnreachable)  # what the endpoint's circuit breaker counts
        deadline = dt.datetime.fromisoformat(item.deadline_at) if item.deadline_at else None
        first_deadline = None
        if transient:
            if deadline is None:
                deadline = now + dt.timedelta(seconds=self.deadlines.get(item.recipient, self.deadline_s))
                first_deadline = iso(deadline)
            over = now >= deadline or (self.max_attempts is not None and item.attempts >= self.max_attempts)
            if not over:
                log.warning("delivery.retry", recipient=item.recipient, registration=item.registration_id,
                            code=code, attempt=item.attempts)
                next_at = iso(now + dt.timedelta(seconds=self._backoff(item.attempts)))
                await self._commit(item, entries, state="pending", now=now, attempt=attempt, next_at=next_at,
                                   deadline_at=first_deadline, last_code=code)
                self.metrics.deliveries.labels(item.recipient, "retry").inc()
                return DeliveryReport("retry", transport_failure=transport)
            reason = f"retry deadline passed (last: {code})"
        else:
            reason = f"{refusal or 'refused'} ({code})"
        if refusal in _TERMINAL_REFUSALS:
            state, parked, label = "failed", None, "failed"
        else:
            state, parked, label = "needs_attention", reason, "parked"
        log.warning("delivery.failed", recipient=item.recipient, registration=item.registration_id,
                    code=code, parked=parked is not None, attempt=item.attempts)
        await self._commit(item, entries, state=state, now=now, attempt=attempt, parked_reason=parked,
                           deadline_at=first_deadline, last_code=code)
        self.metrics.deliveries.labels(item.recipient, label).inc()
        return DeliveryReport(label, transport_failure=transport)

    async def _commit(
        self, item: OutboxItem, entries: list[DisclosureEntry], *, state: str, now: dt.datetime,
        attempt: _Attempt, next_at: str | None = None, parked_reason: str | None = None,
        deadline_at: str | None = None, last_code: str | None = None,
    ) -> None:
        owned = await self.store.finish(
            item, entries, state=state, next_attempt_at=next_at, now=iso(now), parked_reason=parked_reason,
            deadline_at=deadline_at,
            progress=attempt.progress() if attempt.recorded_any or attempt.pending else None,
            last_code=last_code, events=attempt.events,
        )
        if not owned:
            raise LostClaim()

    async def record(
        self,
        item: OutboxItem,
        started: dt.datetime,
        result: Delivered | DeliveryError,
        values: dict[str, Any],
        *,
        payload_digest: str | None = None,
    ) -> None:
        """One attempt of a batch job (an escrow deposit): its entry and the row's next state, in one
        transaction.  ``values`` are those that (may have) left; ``payload_digest`` replaces the row's own,
        since what left is the deposit, not the row's payload."""
        attempt = _Attempt(self, item, started, payload_digest=payload_digest)
        attempt.values = values or None
        policy = self.policies.recipients.get(item.recipient)
        if policy is not None:
            attempt.decision = classify_at_send(policy, self.policies.jurisdictions, started, item.purpose,
                                                carries_personal_data=bool(item.fields.get("sent")))
        if isinstance(result, Delivered):
            result = Delivered(result.result_code, result.sv_trid, result.cl_trid, result.objects,
                               result.reconciled, command=result.command or "escrow:deposit")
        elif not values:
            result.extra["frame_written"] = False
        else:
            result.extra.setdefault("frame_written", True)
        await self._finish(item, attempt, result)


class _Attempt:
    """One attempt at one row: the send-time decision, what its steps left at the recipient, and the
    entries recorded for them (each with the row's progress, in one transaction, fenced by the claim)."""

    def __init__(self, worker: DeliveryWorker, item: OutboxItem, started: dt.datetime, *,
                 payload_digest: str | None = None, subject_id: str | None = None) -> None:
        self.worker = worker
        self.item = item
        #: whom the entries are about: the row's subject, or the registration's holder for a row without one
        self.subject_id = subject_id if subject_id is not None else item.subject_id
        self.started = started
        self.payload_digest = payload_digest
        self.decision: TransferDecision | None = None
        self.values: dict[str, Any] | None = None
        #: subject contacts the registry holds from this row (our id -> the registry's), earlier attempts' too
        self.held: dict[str, str] = dict(item.progress.get("contacts", {}))
        #: contacts whose create got no answer: sent again by the next attempt, which settles them (2302 ->
        #: <info> shows ours -> delivered, reconciled; or created then), and undone with the held ones
        self.uncertain: dict[str, str] = dict(item.progress.get("uncertain", {}))
        self.deleted: list[str] = list(item.progress.get("deleted", []))
        #: other facts a step left (lifecycle: a transfer requested, a renewal's starting expiry)
        self.extra: dict[str, Any] = {k: v for k, v in item.progress.items()
                                      if k not in ("contacts", "uncertain", "deleted")}
        self.recorded_any = False
        self.failure_recorded = False
        self.domain_carries = False
        #: entries of the row's last command, written with the row's finish
        self.pending: list[DisclosureEntry] = []
        #: events on the registration (renewed, transfer requested ...), written with the next step or finish
        self.events: list[dict[str, Any]] = []

    def event(self, kind: str, detail: dict[str, Any], *, expires_at: str | None = None) -> None:
        """An event on the registration, made durable in the same transaction as the next step's entry (or the
        row's finish), so the entry and the event are written together or not at all."""
        self.events.append({"at": iso(self.worker.clock()), "kind": kind, "source": "gateway", "detail": detail,
                            "expires_at": expires_at})

    @property
    def sent_fields(self) -> tuple[str, ...]:
        return tuple(self.item.fields.get("sent", ()))

    def progress(self) -> dict[str, Any]:
        return {**self.extra, "contacts": dict(self.held), "uncertain": dict(self.uncertain),
                "deleted": list(self.deleted)}

    async def note(self, **facts: Any) -> None:
        """Record facts about this row's progress (e.g. where a renewal started from) durably, with no entry,
        before the command they guard goes out."""
        self.extra.update(facts)
        if not await self.worker.store.record_step(self.item, [], progress=self.progress(),
                                                   now=iso(self.worker.clock()), events=self.events):
            raise LostClaim()
        self.events = []
        self.recorded_any = True

    async def report_failure(self, command: str, object_id: str, exc: DeliveryError) -> None:
        """A lifecycle command that failed: logged as refused or possibly delivered when it reached the
        registry; nothing when it never left."""
        if exc.result_code is not None:
            await self.step(StepOutcome(command, object_id, "refused", code=str(exc.result_code)))
        elif frame_may_have_arrived(exc):
            await self.step(StepOutcome(command, object_id, "possibly_delivered", code=exc.code))

    def at_registry(self) -> list[str]:
        """Every contact id the registry holds or may hold from this row: what undoing it must delete."""
        return sorted(set(self.held.values()) | set(self.uncertain.values()))

    async def step(self, step: StepOutcome) -> None:
        """Record one command's outcome durably before the next one goes out (fenced by the claim)."""
        # a thick registry's domain:create only points at contacts; a registration without subject contacts
        # carries whatever its policy released in the domain:create itself
        carries = step.command in ("contact:create", "contact:update") or (
            step.command == "domain:create" and self.domain_carries and bool(self.sent_fields)
        )
        objects: dict[str, str]
        if step.command.startswith("domain:"):
            objects = {"domain": step.object_id, **{f"contact:{role}": cid for role, cid in step.links}}
        elif step.command == "contact:delete":
            objects = {"contact": step.object_id}
        else:
            objects = {"contact": step.held_id, **{f"contact:{role}": step.held_id for role in step.roles}}
        result = step.result
        if step.state == "delivered":
            if step.command == "contact:create":
                self.held[step.object_id] = step.held_id
                self.uncertain.pop(step.object_id, None)
            elif step.command == "contact:delete":
                self.held = {k: v for k, v in self.held.items() if v != step.object_id}
                self.uncertain = {k: v for k, v in self.uncertain.items() if v != step.object_id}
                self.deleted.append(step.object_id)
            outcome = "deleted" if step.command in ("contact:delete", "domain:delete") else "delivered"
        else:
            self.failure_recorded = True
            if step.state == "possibly_delivered" and step.command == "contact:create":
                self.uncertain[step.object_id] = step.held_id  # the registry may hold it: undo reaches it
            outcome = step.state
        values = self.values if carries and step.state != "refused" else None
        entry = await self.entry(
            outcome, fields=self.sent_fields if values is not None else (), objects=objects,
            result_code=str(result.code) if result is not None else step.code,
            sv_trid=result.sv_trid if result is not None else None,
            cl_trid=result.cl_trid if result is not None else None, command=step.command,
            reason="reconciled via <info>" if step.reconciled else None, values=values,
        )
        if step.state == "delivered" and step.command in _FINAL_COMMANDS:
            # the row's last command: its entry goes with the row's finish, in the same transaction (a crash in
            # between is settled by the retry's <info>, as any lost answer)
            self.pending.append(entry)
            return
        owned = await self.worker.store.record_step(self.item, [entry], progress=self.progress(),
                                                    now=entry.recorded_at, events=self.events)
        if not owned:
            raise LostClaim()
        self.events = []
        self.recorded_any = True

    async def entry(
        self, outcome: str, *, fields: tuple[str, ...], objects: dict[str, str], result_code: str | None,
        command: str | None, reason: str | None, values: dict[str, Any] | None,
        sv_trid: str | None = None, cl_trid: str | None = None, retryable: bool = False,
    ) -> DisclosureEntry:
        item, worker = self.item, self.worker
        policy = worker.policies.recipients.get(item.recipient)
        transfer: Mapping[str, Any] = self.decision.as_dict() if self.decision is not None else item.transfer
        entry_id = sortable_id()
        dek = await worker.ledger.dek(item.subject_id) if item.subject_id and values else None  # sealed rows only
        values_ct = worker.ledger.seal_json(dek, values, f"entry:{entry_id}") if values and dek is not None else None
        return DisclosureEntry(
            id=entry_id, subject_id=self.subject_id, values_ct=values_ct, registration_id=item.registration_id,
            recipient=item.recipient, recipient_name=policy.name if policy else item.recipient,
            recipient_country=str(transfer["country"]), category=str(transfer["category"]),
            article=transfer.get("article"), instrument=transfer.get("instrument"), purpose=item.purpose,
            withheld=tuple(item.fields["withheld"]), payload_digest=self.payload_digest or item.payload_digest,
            attempted_at=iso(self.started), recorded_at=iso(worker.clock()), outcome=outcome, fields=fields,
            objects=objects, result_code=result_code, sv_trid=sv_trid, cl_trid=cl_trid, reason=reason,
            retryable=retryable, command=command,
        )


@dataclass(frozen=True)
class Delivered:
    """A recipient's acceptance, whatever the protocol: its result code and the ids it gave back."""

    result_code: str
    sv_trid: str | None
    cl_trid: str | None
    objects: dict[str, str]
    reconciled: bool = False
    command: str | None = None
    #: False when the operation had nothing to send (a release with no contact left to delete): no entry
    sent: bool = True

    @classmethod
    def from_epp(cls, outcome: RegistrationOutcome) -> Delivered:
        r = outcome.domain_result
        return cls(str(r.code), r.sv_trid, r.cl_trid, dict(outcome.objects), outcome.reconciled,
                   command="domain:create")

    @classmethod
    def from_update(cls, outcome: UpdateOutcome) -> Delivered:
        r = outcome.result
        return cls(str(r.code), r.sv_trid, r.cl_trid, {"contact": outcome.object_id}, outcome.reconciled,
                   command="contact:update")


def _date(value: str | None) -> dt.date | None:
    """An EPP date-time (``2027-11-30T12:00:00.0Z``) as its date; None when absent or unreadable."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        return None


def _same_registrar(a: str | None, b: str) -> bool:
    return a is not None and a.casefold() == b.casefold()

