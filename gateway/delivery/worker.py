"""The delivery worker: claims due outbox rows, sends them, records each outcome.

Retries are durable (the outbox row goes back to ``pending`` with a backoff), not an in-memory
loop, so a crash never forgets a retry.  Transient errors are retried with exponential backoff and
full jitter up to ``max_attempts``; permanent ones are never retried.  Every attempt, success or
not, becomes a disclosure entry in the same transaction as the outbox update.

Only I/O lives here: what a row carries is a typed payload (``gateway.outbox.payloads``), built and
encoded elsewhere; the worker opens it, dispatches on its type to an adapter and records the outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, assert_never

import structlog

from adapters.epp.client import EppClient, register, update_contact_with
from adapters.epp.types import ContactUpdate, Endpoint, RegistrationCommands, RegistrationOutcome, UpdateOutcome
from adapters.http_partner import HttpPartnerClient, PartnerEndpoint
from gateway.clock import Clock, iso, utcnow
from gateway.errors import DeliveryError, PermanentDeliveryError, SubjectErased, TransientDeliveryError
from gateway.ledger.entry import DisclosureEntry
from gateway.logs import DeliveryMetrics, WorkerBeat, delivery_metrics
from gateway.outbox.payloads import (
    DomainRecord,
    EppContactUpdate,
    EppRegistration,
    HttpsPost,
    OutboxContent,
    outbox_aad,
)
from gateway.policy.loader import PolicySet
from gateway.policy.restrictions import restriction_refusal
from gateway.services.ledger import Ledger
from gateway.store.base import OutboxItem, Store

log = structlog.get_logger("gateway.delivery")


def _no_partner_endpoint(recipient: str) -> PartnerEndpoint:
    raise PermanentDeliveryError("no partner endpoint configured for this recipient; nothing was sent")


EppUpdater = Callable[[Endpoint, ContactUpdate, str], Awaitable[UpdateOutcome]]


async def _update_single(endpoint: Endpoint, cmd: ContactUpdate, prefix: str) -> UpdateOutcome:
    async with EppClient(endpoint) as client:
        return await update_contact_with(client, cmd, prefix)


EppSender = Callable[[Endpoint, RegistrationCommands, str], Awaitable[RegistrationOutcome]]


@dataclass(eq=False, repr=False)  # compared by identity, as a running worker
class DeliveryWorker:
    """Claims due outbox rows and delivers each through the adapter its payload type names."""

    store: Store
    ledger: Ledger
    policies: PolicySet
    endpoints: Callable[[str], Endpoint]
    _: KW_ONLY
    clock: Clock = utcnow
    max_attempts: int = 6
    backoff_base_s: float = 1.0
    backoff_max_s: float = 300.0
    batch: int = 8
    concurrency: int = 4
    send_epp: EppSender = register
    partner_endpoints: Callable[[str], PartnerEndpoint] = _no_partner_endpoint
    lease_s: float = 120.0
    update_epp: EppUpdater = _update_single
    #: deliveries by outcome and EPP latency; the process's (``gateway.logs``) unless given
    metrics: DeliveryMetrics = field(default_factory=delivery_metrics)
    #: set to deliver now rather than at the next poll (a new registration was accepted)
    wakeup: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._sem = asyncio.Semaphore(self.concurrency)

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
        # liveness for /readyz: a beat per round; a loop that ends other than by ``stop`` is marked crashed
        beat = self.metrics.workers[id(self)] = WorkerBeat(lease_s=max(self.lease_s, 3 * poll_s))
        try:
            await self._loop(stop, poll_s, beat)
        except asyncio.CancelledError:
            self.metrics.workers.pop(id(self), None)
            raise
        except BaseException:
            beat.crashed = True
            raise
        self.metrics.workers.pop(id(self), None)

    async def _loop(self, stop: asyncio.Event, poll_s: float, beat: WorkerBeat) -> None:
        loop = asyncio.get_running_loop()
        next_recovery = loop.time()
        while not stop.is_set():
            beat.at = time.monotonic()
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

    async def open(self, item: OutboxItem) -> OutboxContent:
        """A row's payload and values; raises ``SubjectErased`` once the subject's data key is gone."""
        sealed = await self.ledger.open_json(
            item.subject_id, item.payload_ct, outbox_aad(item.registration_id, item.recipient, item.change_id)
        )
        return OutboxContent.from_json(sealed)

    async def _deliver(self, item: OutboxItem) -> None:
        # the id of the request that queued this row (stored with it, schema 4), on every line of its
        # delivery, whichever process makes it; a row queued outside a request (or before schema 4) has none
        bound = {"request_id": item.request_id} if item.request_id is not None else {}
        with structlog.contextvars.bound_contextvars(**bound):
            await self._deliver_bound(item)

    async def _deliver_bound(self, item: OutboxItem) -> None:
        async with self._sem:
            started = self.clock()
            result: Delivered | DeliveryError
            sent: dict[str, Any] = {}  # the values, from the moment they may have left
            try:
                content = await self._deliverable(item)
                match content.payload:
                    case EppRegistration(commands=commands):
                        sent = content.values
                        result = Delivered.from_epp(await self.send_epp(
                            self.endpoints(item.recipient), commands, item.registration_id))
                    case HttpsPost() as post:
                        endpoint = self.partner_endpoints(item.recipient)
                        sent = content.values
                        key = post.idempotency_key or f"{item.registration_id}:{item.recipient}"
                        async with HttpPartnerClient(endpoint) as client:
                            receipt = await client.send(post.path, post.body, idempotency_key=key)
                        result = Delivered(str(receipt.status), None, None,
                                           {"partner_ref": receipt.partner_ref} if receipt.partner_ref else {})
                    case EppContactUpdate(update=update):
                        sent = content.values
                        result = Delivered.from_update(await self.update_epp(
                            self.endpoints(item.recipient), update, f"{item.registration_id}-{item.change_id}"
                        ))
                    case DomainRecord(protocol=protocol):  # escrow rows are the escrow job's; RRI has no adapter
                        raise PermanentDeliveryError(f"protocol '{protocol}' has no adapter yet; nothing was sent")
                    case _:  # a new payload type must get a case here (mypy checks)
                        assert_never(content.payload)
            except DeliveryError as exc:
                result = exc
            except Exception as exc:  # an adapter bug must not lose the attempt; log its type only
                log.error("delivery.adapter_bug", recipient=item.recipient, error_type=type(exc).__name__)
                result = TransientDeliveryError("unexpected adapter error")
            await self.record(item, started, result, sent)

    async def _deliverable(self, item: OutboxItem) -> OutboxContent:
        """The row's content, if it may still go: its subject is not erased, its recipient is still
        configured, and no restriction placed since acceptance forbids it (fail closed at the last moment)."""
        try:
            content = await self.open(item)
        except SubjectErased:
            raise PermanentDeliveryError("the subject was erased before delivery; nothing was sent") from None
        if item.recipient not in self.policies.recipients:
            raise PermanentDeliveryError("recipient no longer configured; nothing was sent")
        if item.subject_id is not None:
            rows = await self.store.restrictions(item.subject_id)
            if restriction_refusal(rows, self.policies.recipients[item.recipient], item.purpose) is not None:
                raise PermanentDeliveryError("the subject restricted this processing; nothing was sent",
                                             result_code=None, refusal="subject_restricted")
        return content

    async def record(
        self,
        item: OutboxItem,
        started: dt.datetime,
        result: Delivered | DeliveryError,
        values: dict[str, Any],
        *,
        payload_digest: str | None = None,
    ) -> None:
        """Writes one attempt's disclosure entry and the row's next state, in one transaction.

        ``values`` are those that (may have) left, sealed into the entry; ``payload_digest`` replaces
        the row's own where what left is not the row's payload (an escrow deposit)."""
        entry, state, next_at = await self._entry(item, started, result, values, payload_digest)
        await self.store.finish(item, entry, state=state, next_attempt_at=next_at, now=entry.recorded_at)
        self.metrics.deliveries.labels(item.recipient, "retry" if state == "pending" else entry.outcome).inc()

    async def _entry(
        self,
        item: OutboxItem,
        started: dt.datetime,
        result: Delivered | DeliveryError,
        values: dict[str, Any],
        payload_digest: str | None,
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
            "payload_digest": payload_digest or item.payload_digest,
            "attempted_at": iso(started),
            "recorded_at": iso(now),
        }
        if isinstance(result, Delivered):
            entry = DisclosureEntry(
                **base, outcome="delivered", fields=tuple(item.fields["sent"]), objects=dict(result.objects),
                result_code=result.result_code, sv_trid=result.sv_trid, cl_trid=result.cl_trid,
                reason="reconciled after restart" if result.reconciled else None,
            )
            log.info("delivery.delivered", recipient=item.recipient, registration=item.registration_id,
                     code=result.result_code, sv_trid=result.sv_trid, reconciled=result.reconciled)
            return entry, "done", None
        retry = isinstance(result, TransientDeliveryError) and item.attempts < self.max_attempts
        refusal = result.extra.get("refusal")
        refused = refusal is not None
        code = str(result.result_code) if result.result_code is not None else str(refusal or result.code)
        entry = DisclosureEntry(
            **base, outcome="blocked" if refused else "failed", retryable=retry,
            fields=tuple(item.fields["sent"]) if values else (),
            objects={}, result_code=code, reason=result.detail,
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

    @classmethod
    def from_update(cls, outcome: UpdateOutcome) -> Delivered:
        r = outcome.result
        return cls(str(r.code), r.sv_trid, r.cl_trid, {"contact": outcome.object_id}, outcome.reconciled)
