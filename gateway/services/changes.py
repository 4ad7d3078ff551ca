"""Registrant changes and rectification (Art. 16, 19): push what changed to every past recipient.

For each recipient that holds a subject's data (a delivered disclosure), the new registrant is
minimised under that recipient's policy and compared with what the recipient was last sent (the
registration's delivery folded with every later update).  Only changed, released fields go: an EPP
``<contact:update>`` with ``chg`` for registries, the changed data for HTTPS partners, a fresh record
for the next escrow deposit.  Each push is an outbox row, so it is delivered and logged exactly like a
registration (one disclosure entry per push, in one transaction with its outcome, crash-safe).
Recipients whose protocol cannot take a change are listed with the reason, for staff.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from typing import Any

from adapters.epp.types import (
    Address,
    ContactUpdate,
    ContactUpdateExtension,
    EuridContactUpdate,
    IisContactUpdate,
    PostalInfoChange,
)
from gateway.clock import Clock, iso, utcnow
from gateway.errors import SubjectErased
from gateway.ledger.entry import DisclosureEntry
from gateway.models import Registrant, epp_phone
from gateway.outbox.epp import contact_update_to_json, payload_digest
from gateway.policy.classify import classify_transfer
from gateway.policy.loader import PolicySet
from gateway.policy.minimise import minimise
from gateway.policy.restrictions import restriction_refusal
from gateway.policy.schema import RecipientPolicy
from gateway.services.ledger import Ledger
from gateway.services.registrations import outbox_aad
from gateway.store.base import DisclosureFilter, NewOutbox, Store

_POSTAL = ("name", "organisation")
_ADDRESS = ("street", "city", "state", "postal_code", "country")
#: Fields a registry keeps fixed on a contact: a change needs a new contact (a holder change).
_FIXED = {"iis": {"national_id", "national_id_scheme", "kind"}, "dkhm": {"national_id", "kind"},
          "norid": {"national_id", "kind"}, "eurid": {"kind"}}


@dataclass(frozen=True)
class RecipientChange:
    registration_id: str
    recipient: str
    changed: tuple[str, ...]
    action: str  # queued | unchanged | cannot_update | refused
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _plain(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def contact_update(contact_id: str, policy: RecipientPolicy, new: dict[str, Any],
                   changed: set[str]) -> tuple[ContactUpdate | None, set[str]]:
    """Pure: the <contact:update> for the changed released fields, and the fields it cannot carry."""
    assert policy.epp is not None
    fixed = set().union(*(_FIXED.get(e, set()) for e in policy.epp.extensions)) & changed
    postal: PostalInfoChange | None = None
    if changed & {*_POSTAL, *_ADDRESS}:
        texts = [str(new.get("name", "")), str(new.get("city", "")), *new.get("street", []),
                 str(new.get("organisation") or "")]
        addr = None
        if changed & set(_ADDRESS):
            addr = Address(city=new["city"], cc=new["country"], street=tuple(new.get("street", ())),
                           sp=new.get("state"), pc=new.get("postal_code"))
        postal = PostalInfoChange(
            type="int" if all(t.isascii() for t in texts) else "loc",
            name=new.get("name") if "name" in changed else None,
            org=(new.get("organisation") or "") if "organisation" in changed else None,
            addr=addr,
        )
    exts: list[ContactUpdateExtension] = []
    if "iis" in policy.epp.extensions and "vat_number" in changed and new.get("vat_number"):
        exts.append(IisContactUpdate(vatno=new["vat_number"]))
    eurid: dict[str, str] = {}
    if "eurid" in policy.epp.extensions:  # a value can be changed there, not removed
        for field, member in (("vat_number", "vat"), ("language", "lang"), ("citizenship", "country_of_citizenship")):
            if field in changed and new.get(field):
                eurid[member] = new[field]
        if eurid:
            exts.append(EuridContactUpdate(**eurid))  # type: ignore[arg-type]
    phone = new.get("phone")
    fax = new.get("fax")
    cmd = ContactUpdate(
        id=contact_id,
        postal_info=(postal,) if postal else (),
        voice=(epp_phone(phone) if phone else "") if "phone" in changed else None,
        fax=(epp_phone(fax) if fax else "") if "fax" in changed else None,
        email=new.get("email") if "email" in changed else None,
        extensions=tuple(exts),
    )
    carried = {f for f in changed if f in (*_POSTAL, *_ADDRESS, "phone", "fax", "email")}
    carried |= {"vat_number"} if any(isinstance(e, IisContactUpdate) for e in exts) else set()
    carried |= {f for f, m in (("vat_number", "vat"), ("language", "lang"),
                               ("citizenship", "country_of_citizenship")) if m in eurid}
    missing = (changed - carried) | fixed
    return (cmd if carried else None), missing


class ChangeService:
    def __init__(self, store: Store, ledger: Ledger, policies: PolicySet, clock: Clock = utcnow) -> None:
        self.store = store
        self.ledger = ledger
        self.policies = policies
        self.clock = clock

    async def _held(self, subject_id: str) -> dict[tuple[str, str], tuple[DisclosureEntry, dict[str, Any]]]:
        """What each (registration, recipient) last received: the delivery folded with updates."""
        state: dict[tuple[str, str], tuple[DisclosureEntry, dict[str, Any]]] = {}
        after = -1
        while True:
            page = await self.store.disclosures(DisclosureFilter(subject_id=subject_id, outcome="delivered",
                                                                 after_seq=after, limit=500))
            for e in page:
                values = await self.ledger.entry_values(e)
                if values is None and not e.fields:
                    continue
                key = (e.registration_id, e.recipient)
                first, held = state.get(key, (e, {}))
                merged = {**held, **(values or {})}
                state[key] = (first, {k: v for k, v in merged.items() if v is not None})
            if len(page) < 500:
                return state
            after = page[-1].leaf_index or 0

    async def push(self, subject_id: str, new: Registrant, *, purpose: str = "rectification") -> list[RecipientChange]:
        """Queue the changed released fields to every past recipient; returns what happens to each."""
        dek = await self.ledger.dek(subject_id)
        if dek is None:
            raise SubjectErased()
        now = self.clock()
        restrictions = await self.store.restrictions(subject_id)
        report: list[RecipientChange] = []
        by_registration: dict[str, list[NewOutbox]] = {}
        change_id = uuid.uuid4().hex[:16]
        registrations = {r["id"]: r for r in await self.store.subject_registrations(subject_id)}
        for (reg_id, rid), (first, held) in sorted((await self._held(subject_id)).items()):
            policy = self.policies.recipients.get(rid)
            if policy is None:
                report.append(RecipientChange(reg_id, rid, (), "cannot_update", "recipient no longer configured"))
                continue
            m = minimise(new, policy)
            wanted = {k: _plain(v) for k, v in m.values.items()}
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
            payload: dict[str, Any]
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
                payload = {"protocol": "epp-update", "contact_update": contact_update_to_json(cmd)}
                sent = changed - missing
                if missing:
                    reason = f"not updatable at the registry: {', '.join(sorted(missing))} (needs a holder change)"
            elif policy.protocol == "https" and policy.https is not None:
                sent = changed
                payload = {"protocol": "https", "path": policy.https.path,
                           "idempotency_key": f"{reg_id}:{rid}:{change_id}",
                           "body": {"registration_id": reg_id, "change": change_id,
                                    "data": {k: wanted.get(k) for k in sorted(changed)}}}
            elif policy.protocol == "escrow":
                sent = changed
                reg = registrations.get(reg_id, {})
                payload = {"protocol": "escrow", "domain": reg.get("domain"), "tld": reg.get("tld"), "data": wanted}
            else:
                report.append(RecipientChange(reg_id, rid, tuple(sorted(changed)), "cannot_update",
                                              f"no update over protocol '{policy.protocol}'"))
                continue
            # escrow records are whole; everyone else is sent (and logged with) the changed fields only
            values = wanted if policy.protocol == "escrow" else {k: wanted.get(k) for k in sorted(sent)}
            sealed = self.ledger.seal_json(dek, {"payload": payload, "values": values},
                                           outbox_aad(reg_id, rid, change_id))
            by_registration.setdefault(reg_id, []).append(NewOutbox(
                recipient=rid, payload_ct=sealed, payload_digest=payload_digest(payload),
                transfer=decision.as_dict(), fields={"sent": sorted(sent), "withheld": sorted(m.withheld)},
                purpose=purpose, required=False, batch=policy.protocol == "escrow", change_id=change_id,
            ))
            report.append(RecipientChange(reg_id, rid, tuple(sorted(sent)), "queued", reason))
        for reg_id, items in by_registration.items():
            await self.store.enqueue(reg_id, subject_id, items, iso(now))
        return report
