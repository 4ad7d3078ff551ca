"""Registrar data escrow deposits (ICANN RAA 3.6): the gTLD registrations queued since the last
deposit go to the escrow agent as one deposit, encrypted to the agent's key.

Each registration in a deposit becomes a disclosure entry of its subject (so the subject's register
extract shows it) carrying the deposit id, the fields it held and the deposit's SHA-256; together the
entries of one deposit id list every subject and field the deposit held.  Outcomes are recorded like
any delivery: one transaction per outbox row, with the entry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from adapters.escrow import EscrowClient, EscrowRecord
from adapters.http_partner import PartnerEndpoint
from gateway.clock import iso
from gateway.delivery.worker import Delivered, DeliveryWorker
from gateway.errors import DeliveryError, PermanentDeliveryError, SubjectErased, TransientDeliveryError
from gateway.services.registrations import outbox_aad
from gateway.store.base import OutboxItem

log = structlog.get_logger("gateway.escrow")

#: Registrant fields → the escrow record's contact keys (RFC 5733 names, as the deposit uses).
_CONTACT_KEYS = {
    "name": "name", "organisation": "org", "street": "street", "city": "city", "state": "sp",
    "postal_code": "pc", "country": "cc", "phone": "voice", "fax": "fax", "email": "email",
    "national_id": "national_id", "vat_number": "vat_number",
}


@dataclass(frozen=True)
class DepositReport:
    deposit_id: str
    registrations: int
    subjects: int
    fields: list[str]
    sha256: str | None
    delivered: bool


class EscrowJob:
    def __init__(
        self,
        worker: DeliveryWorker,
        recipient: str,
        endpoint: PartnerEndpoint,
        agent_key: X25519PublicKey,
        registrar_id: str,
    ) -> None:
        self.worker = worker
        self.recipient = recipient
        self.endpoint = endpoint
        self.agent_key = agent_key
        self.registrar_id = registrar_id

    async def run_once(self, limit: int = 50_000) -> DepositReport | None:
        store, ledger = self.worker.store, self.worker.ledger
        started = self.worker.clock()
        items = await store.claim_due(iso(started), limit, batch_recipient=self.recipient)
        if not items:
            return None
        deposit_id = uuid.uuid4().hex
        records: dict[str, EscrowRecord] = {}  # one record per domain: a later change replaces it
        kept: list[tuple[OutboxItem, dict[str, Any]]] = []
        for item in items:
            try:
                sealed = await ledger.open_json(item.subject_id, item.payload_ct,
                                                outbox_aad(item.registration_id, item.recipient, item.change_id))
            except SubjectErased:  # erased before the deposit: nothing of theirs goes
                entry, state, nxt = await self.worker.entry_for(
                    item, started, None, PermanentDeliveryError("the subject was erased before the deposit"), {}
                )
                await store.finish(item, entry, state=state, next_attempt_at=nxt, now=entry.recorded_at)
                continue
            payload = sealed["payload"]
            values: dict[str, Any] = sealed["values"]
            contact = {_CONTACT_KEYS[k]: v for k, v in values.items() if k in _CONTACT_KEYS}
            previous = records.get(payload["domain"])
            records[payload["domain"]] = EscrowRecord(
                domain=payload["domain"], tld=payload["tld"], subject_id=item.subject_id or "",
                # the holder is also the admin contact (policies map admin to the subject); the tech
                # and billing contacts are the registrar's own, which the agent holds already
                contacts={"registrant": contact, "admin": contact},
                nameservers=tuple(payload.get("nameservers") or (previous.nameservers if previous else ())),
                expires=payload.get("expires") or (previous.expires if previous else None),
            )
            kept.append((item, values))
        if not kept:
            return DepositReport(deposit_id, 0, 0, [], None, False)
        outcome: Delivered | None = None
        error: DeliveryError | None = None
        summary_fields: list[str] = []
        sha: str | None = None
        try:
            async with EscrowClient(self.endpoint, self.agent_key) as client:
                summary, receipt = await client.deposit(
                    list(records.values()), registrar_id=self.registrar_id, deposit_id=deposit_id, watermark=started
                )
            summary_fields, sha = list(summary.fields), summary.sha256
            outcome = Delivered(str(receipt.status), None, None, {"deposit_id": deposit_id,
                                                                    "deposit_sha256": summary.sha256})
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # adapter bug: keep the rows for the next deposit
            log.error("escrow.adapter_bug", error_type=type(exc).__name__)
            error = TransientDeliveryError("unexpected escrow adapter error")
        for item, values in kept:
            entry, state, nxt = await self.worker.entry_for(item, started, outcome, error, values)
            if outcome is not None:
                entry = replace(entry, payload_digest=f"sha256:{sha}")
            await store.finish(item, entry, state=state, next_attempt_at=nxt, now=entry.recorded_at)
        log.info("escrow.deposit", deposit=deposit_id, registrations=len(kept), delivered=outcome is not None)
        return DepositReport(deposit_id, len(kept), len({i.subject_id for i, _ in kept}), summary_fields, sha,
                             outcome is not None)
