"""Registrar data escrow deposits (ICANN RAA 3.6): the gTLD registrations queued since the last
deposit go to the escrow agent as one deposit, encrypted to the agent's key.

Each registration in a deposit becomes a disclosure entry of its subject (so the subject's register
extract shows it) carrying the deposit id, the fields it held and the deposit's SHA-256; together the
entries of one deposit id list every subject and field the deposit held.  Outcomes are recorded like
any delivery: one transaction per outbox row, with the entry.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from adapters.escrow import EscrowClient, EscrowRecord
from adapters.http_partner import PartnerEndpoint
from gateway.clock import iso
from gateway.delivery.worker import Delivered, DeliveryWorker
from gateway.errors import DeliveryError, PermanentDeliveryError, SubjectErased, TransientDeliveryError
from gateway.outbox.escrow import deposit_record
from gateway.outbox.payloads import DomainRecord
from gateway.store.base import OutboxItem

log = structlog.get_logger("gateway.escrow")


@dataclass(frozen=True)
class DepositReport:
    deposit_id: str
    registrations: int
    subjects: int
    fields: list[str]
    sha256: str | None
    delivered: bool


@dataclass(eq=False, repr=False)  # compared by identity, as a running job
class EscrowJob:
    """Folds the escrow agent's queued records into one deposit; shares the worker's store, ledger,
    clock and recording, so a deposit's outcomes are logged exactly like any delivery."""

    worker: DeliveryWorker
    recipient: str
    endpoint: PartnerEndpoint
    agent_key: X25519PublicKey
    registrar_id: str

    async def run_once(self, limit: int = 50_000) -> DepositReport | None:
        started = self.worker.clock()
        items = await self.worker.store.claim_due(iso(started), limit, batch_recipient=self.recipient)
        if not items:
            return None
        deposit_id = uuid.uuid4().hex
        records: dict[str, EscrowRecord] = {}  # one record per domain: a later change replaces it
        kept: list[tuple[OutboxItem, dict[str, Any]]] = []
        for item in items:
            try:
                content = await self.worker.open(item)
            except SubjectErased:  # erased before the deposit: nothing of theirs goes
                await self._refuse(item, started, "the subject was erased before the deposit")
                continue
            record = content.payload
            if not isinstance(record, DomainRecord):  # this recipient's rows are records; never sent elsewhere
                await self._refuse(item, started, "the queued payload is not an escrow record; nothing was sent")
                continue
            records[record.domain] = deposit_record(record, content.values, item.subject_id or "",
                                                    records.get(record.domain))
            kept.append((item, content.values))
        if not kept:
            return DepositReport(deposit_id, 0, 0, [], None, False)
        result: Delivered | DeliveryError
        summary_fields: list[str] = []
        sha: str | None = None
        try:
            async with EscrowClient(self.endpoint, self.agent_key) as client:
                summary, receipt = await client.deposit(
                    list(records.values()), registrar_id=self.registrar_id, deposit_id=deposit_id, watermark=started
                )
            summary_fields, sha = list(summary.fields), summary.sha256
            result = Delivered(str(receipt.status), None, None, {"deposit_id": deposit_id,
                                                                   "deposit_sha256": summary.sha256})
        except DeliveryError as exc:
            result = exc
        except Exception as exc:  # adapter bug: keep the rows for the next deposit
            log.error("escrow.adapter_bug", error_type=type(exc).__name__)
            result = TransientDeliveryError("unexpected escrow adapter error")
        delivered = isinstance(result, Delivered)
        digest = f"sha256:{sha}" if delivered else None  # a delivered row's entry quotes the deposit's digest
        for item, values in kept:
            await self.worker.record(item, started, result, values, payload_digest=digest)
        log.info("escrow.deposit", deposit=deposit_id, registrations=len(kept), delivered=delivered)
        return DepositReport(deposit_id, len(kept), len({i.subject_id for i, _ in kept}), summary_fields, sha,
                             delivered)

    async def _refuse(self, item: OutboxItem, started: dt.datetime, detail: str) -> None:
        """Log a row that cannot join the deposit as failed for good, with nothing sent: left claimed,
        it would come back after every lease and never go."""
        await self.worker.record(item, started, PermanentDeliveryError(detail), {})
