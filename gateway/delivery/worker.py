"""The delivery worker: claims due outbox rows, sends them, records each outcome.

Retries are durable (the outbox row goes back to ``pending`` with a backoff), not an in-memory
loop, so a crash never forgets a retry.  Transient errors are retried with exponential backoff and
full jitter up to ``max_attempts``; permanent ones are never retried.  Every attempt, success or
not, becomes a disclosure entry in the same transaction as the outbox update.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from adapters.epp.client import EppClient, register, update_contact_with
from adapters.epp.types import ContactUpdate, Endpoint, RegistrationCommands, RegistrationOutcome, UpdateOutcome
from adapters.http_partner import HttpPartnerClient, PartnerEndpoint
from gateway.clock import Clock, iso, utcnow
from gateway.errors import DeliveryError, PermanentDeliveryError, SubjectErased, TransientDeliveryError
from gateway.ledger.entry import DisclosureEntry
from gateway.outbox.epp import commands_from_json, contact_update_from_json
from gateway.policy.loader import PolicySet
from gateway.policy.restrictions import restriction_refusal
from gateway.services.ledger import Ledger
from gateway.services.registrations import outbox_aad
from gateway.store.base import OutboxItem, Store

log = structlog.get_logger("gateway.delivery")

def _no_partner_endpoint(recipient: str) -> PartnerEndpoint:
    raise PermanentDeliveryError("no partner endpoint configured for this recipient; nothing was sent")


EppUpdater = Callable[[Endpoint, ContactUpdate, str], Awaitable[UpdateOutcome]]


async def _update_single(endpoint: Endpoint, cmd: ContactUpdate, prefix: str) -> UpdateOutcome:
    async with EppClient(endpoint) as client:
        return await update_contact_with(client, cmd, prefix)


EppSender = Callable[[Endpoint, RegistrationCommands, str], Awaitable[RegistrationOutcome]]


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        policies: PolicySet,
        endpoints: Callable[[str], Endpoint],
        *,
        clock: Clock = utcnow,
        max_attempts: int = 6,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 300.0,
        batch: int = 8,
        concurrency: int = 4,
        send_epp: EppSender = register,
        partner_endpoints: Callable[[str], PartnerEndpoint] | None = None,
        lease_s: float = 120.0,
        update_epp: EppUpdater | None = None,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.policies = policies
        self.endpoints = endpoints
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.batch = batch
        self._sem = asyncio.Semaphore(concurrency)
        self.send_epp = send_epp
        self.partner_endpoints = partner_endpoints or _no_partner_endpoint
        self.wakeup = asyncio.Event()
        self.lease_s = lease_s
        self.update_epp = update_epp or _update_single

    async def recover(self) -> int:
        """Requeue rows whose claim is older than the lease: their worker died (kill -9, crash)."""
        now = self.clock()
        n = await self.store.requeue_in_flight(iso(now), iso(now - dt.timedelta(seconds=self.lease_s)))
        if n:
            log.info("outbox.requeued_stale_claims", count=n)
        return n

    async def run_once(self) -> int:
        items = await self.store.claim_due(iso(self.clock()), self.batch)
        await asyncio.gather(*(self._deliver(item) for item in items))
        return len(items)

    async def run(self, stop: asyncio.Event, poll_s: float) -> None:
        loop = asyncio.get_running_loop()
        next_recovery = loop.time()
        while not stop.is_set():
            try:
                if loop.time() >= next_recovery:  # also picks up rows of other instances that died
                    await self.recover()
                    next_recovery = loop.time() + self.lease_s / 2
                n = await self.run_once()
            except Exception as exc:  # the loop must survive a bad row; log the type, never a message
                log.error("worker.loop_error", error_type=type(exc).__name__)
                n = 0
            if n == 0:
                self.wakeup.clear()
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wakeup.wait())]
                await asyncio.wait(waiters, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()

    def _backoff(self, attempts: int) -> float:
        cap = min(self.backoff_max_s, self.backoff_base_s * (2 ** (attempts - 1)))
        return random.uniform(0, cap)  # full jitter (not for security)

    async def _deliver(self, item: OutboxItem) -> None:
        async with self._sem:
            started = self.clock()
            outcome: Delivered | None = None
            error: DeliveryError | None = None
            values: dict[str, Any] = {}
            sent = False
            try:
                try:
                    sealed = await self.ledger.open_json(
                        item.subject_id, item.payload_ct,
                        outbox_aad(item.registration_id, item.recipient, item.change_id),
                    )
                except SubjectErased:
                    raise PermanentDeliveryError("the subject was erased before delivery; nothing was sent") from None
                payload, values = sealed["payload"], sealed["values"]
                if item.recipient not in self.policies.recipients:
                    raise PermanentDeliveryError("recipient no longer configured; nothing was sent")
                if await self._restricted(item):
                    raise PermanentDeliveryError("the subject restricted this processing; nothing was sent",
                                                 result_code=None, refusal="subject_restricted")
                protocol = payload.get("protocol")
                if protocol == "epp":
                    commands = commands_from_json(payload["commands"])
                    sent = True
                    outcome = Delivered.from_epp(
                        await self.send_epp(self.endpoints(item.recipient), commands, item.registration_id)
                    )
                elif protocol == "https":
                    endpoint = self.partner_endpoints(item.recipient)
                    sent = True
                    key = payload.get("idempotency_key") or f"{item.registration_id}:{item.recipient}"
                    async with HttpPartnerClient(endpoint) as client:
                        receipt = await client.send(payload["path"], payload["body"], idempotency_key=key)
                    outcome = Delivered(str(receipt.status), None, None,
                                        {"partner_ref": receipt.partner_ref} if receipt.partner_ref else {})
                elif protocol == "epp-update":
                    update = contact_update_from_json(payload["contact_update"])
                    sent = True
                    result = await self.update_epp(self.endpoints(item.recipient), update,
                                                   f"{item.registration_id}-{item.change_id}")
                    outcome = Delivered(str(result.result.code), result.result.sv_trid, result.result.cl_trid,
                                        {"contact": result.object_id}, result.reconciled)
                else:
                    raise PermanentDeliveryError(f"protocol '{protocol}' has no adapter yet; nothing was sent")
            except DeliveryError as exc:
                error = exc
            except Exception as exc:  # an adapter bug must not lose the attempt; log its type only
                log.error("delivery.adapter_bug", recipient=item.recipient, error_type=type(exc).__name__)
                error = TransientDeliveryError("unexpected adapter error")
            await self._record(item, started, outcome, error, values if sent else {})

    async def _restricted(self, item: OutboxItem) -> bool:
        """Fail closed at the last moment too: a restriction placed after acceptance still holds."""
        if item.subject_id is None:
            return False
        policy = self.policies.recipients[item.recipient]
        rows = await self.store.restrictions(item.subject_id)
        return restriction_refusal(rows, policy, item.purpose) is not None

    async def _record(
        self,
        item: OutboxItem,
        started: dt.datetime,
        outcome: Delivered | None,
        error: DeliveryError | None,
        values: dict[str, Any],
    ) -> None:
        entry, state, next_at = await self.entry_for(item, started, outcome, error, values)
        await self.store.finish(item, entry, state=state, next_attempt_at=next_at, now=entry.recorded_at)

    async def entry_for(
        self,
        item: OutboxItem,
        started: dt.datetime,
        outcome: Delivered | None,
        error: DeliveryError | None,
        values: dict[str, Any],
    ) -> tuple[DisclosureEntry, str, str | None]:
        """The disclosure entry for one attempt, and the outbox row's next state."""
        policy = self.policies.recipients.get(item.recipient)
        now = self.clock()
        transfer: dict[str, Any] = item.transfer
        entry_id = uuid.uuid4().hex
        dek = await self.ledger.dek(item.subject_id) if item.subject_id else None
        values_ct = (
            self.ledger.seal_json(dek, values, f"entry:{entry_id}") if values and dek is not None else None
        )
        base = {
            "id": entry_id,
            "subject_id": item.subject_id,
            "values_ct": values_ct,
            "registration_id": item.registration_id,
            "recipient": item.recipient,
            "recipient_name": policy.name if policy else item.recipient,
            "recipient_country": transfer["country"],
            "category": transfer["category"],
            "article": transfer["article"],
            "instrument": transfer["instrument"],
            "purpose": item.purpose,
            "withheld": tuple(item.fields["withheld"]),
            "payload_digest": item.payload_digest,
            "attempted_at": iso(started),
            "recorded_at": iso(now),
        }
        if outcome is not None:
            entry = DisclosureEntry(
                **base, outcome="delivered", fields=tuple(item.fields["sent"]), objects=dict(outcome.objects),
                result_code=outcome.result_code, sv_trid=outcome.sv_trid, cl_trid=outcome.cl_trid,
                reason="reconciled after restart" if outcome.reconciled else None,
            )
            log.info("delivery.delivered", recipient=item.recipient, registration=item.registration_id,
                     code=outcome.result_code, sv_trid=outcome.sv_trid, reconciled=outcome.reconciled)
            return entry, "done", None
        assert error is not None
        retry = isinstance(error, TransientDeliveryError) and item.attempts < self.max_attempts
        refusal = error.extra.get("refusal")
        refused = refusal is not None
        code = str(error.result_code) if error.result_code is not None else str(refusal or error.code)
        entry = DisclosureEntry(
            **base, outcome="blocked" if refused else "failed", retryable=retry,
            fields=tuple(item.fields["sent"]) if values else (),
            objects={}, result_code=code, reason=error.detail,
        )
        log.warning("delivery.failed", recipient=item.recipient, registration=item.registration_id,
                    code=code, retry=retry, attempt=item.attempts)
        if retry:
            return entry, "pending", iso(now + dt.timedelta(seconds=self._backoff(item.attempts)))
        return entry, "failed", None


@dataclass(frozen=True)
class Delivered:
    """A recipient's acceptance, whatever the protocol: its result code and the ids it gave back."""

    result_code: str
    sv_trid: str | None
    cl_trid: str | None
    objects: dict[str, str]
    reconciled: bool = False

    @classmethod
    def from_epp(cls, outcome: RegistrationOutcome) -> Delivered:
        r = outcome.domain_result
        return cls(str(r.code), r.sv_trid, r.cl_trid, dict(outcome.objects), outcome.reconciled)
