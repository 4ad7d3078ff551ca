"""Holdings: who holds which of a person's data *now*, and what ends each holding.

The disclosure log says what was sent; holdings say what is still out there.  Both come from the same
entries: a registry contact made by a ``contact:create`` (or changed by a ``contact:update``) is held
until a ``contact:delete`` the registry accepted; a domain is held while its registration is ours (and,
after our role ended, until its ``domain:delete`` went through); an HTTPS partner's or the escrow
agent's copy is held as the recipient's own retention says.  Our own copy (the sealed values in the
log) is held until the retention date, counted from the end of the registration
(``RetentionConfig.purge_date``, the rule the retention job follows).

The computation is pure (``holdings``), so the API, the staff page, the Art. 15 letter and erasure's
deletion plan all say the same thing; ``load`` reads its inputs from the store.  Nothing here reads a
value: ids, field names, dates and reasons only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.ledger.entry import DisclosureEntry
from gateway.policy.schema import RecipientPolicy
from gateway.rights.config import RetentionConfig
from gateway.rights.texts import Lang, holding_end_text
from gateway.store.base import DisclosureFilter, Store

ObjectKind = Literal["contact", "domain", "copy"]
#: Outbox states of a row that has not finished: a release (domain:delete, contact:delete) still to come.
_UNFINISHED = frozenset({"pending", "in_flight", "needs_attention"})
#: Registration statuses while the registration may become, or is, a domain of ours.
ACTIVE_STATUSES = frozenset({"accepted", "delivering", "delivered"})
#: Outcomes after which the recipient holds (or may hold) what an entry carried.
_HOLDS = frozenset({"delivered", "possibly_delivered"})
_CONTACT_WRITES = frozenset({"contact:create", "contact:update"})
_DOMAIN_WRITES = frozenset({"domain:create", "domain:update", "domain:transfer"})


@dataclass(frozen=True)
class RegistrationFacts:
    """What holdings need of one registration (no personal data)."""

    id: str
    domain: str
    status: str
    updated_at: str
    expires_at: str | None = None
    ended_at: str | None = None
    end_reason: str | None = None
    #: recipients with an outbox row of this registration not finished yet (a release still to run)
    unfinished: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        return self.ended_at is None and self.status in ACTIVE_STATUSES

    @property
    def end(self) -> str | None:
        """When our relationship for this registration ended: ``ended_at``, or for one that never became a
        domain of ours (refused, failed) its last change; None while it is ours."""
        if self.ended_at is not None:
            return self.ended_at
        return None if self.status in ACTIVE_STATUSES else self.updated_at


@dataclass(frozen=True)
class End:
    """What ends a holding, as data: ``kind`` names the case, the rest are its facts; the words are
    ``texts.holding_end_text``'s, in either language."""

    kind: str
    at: str | None = None
    reason: str | None = None
    code: str | None = None

    def text(self, lang: Lang = "en") -> str:
        return holding_end_text(self.kind, lang, at=self.at, reason=self.reason, code=self.code)


@dataclass(frozen=True)
class Holding:
    kind: ObjectKind
    id: str
    since: str
    fields: tuple[str, ...]
    ends: End
    registrations: tuple[str, ...]
    #: for a domain: the registry contacts it points at that hold this person's data (role -> id)
    links: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self, lang: Lang = "en") -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind, "id": self.id, "since": self.since, "fields": list(self.fields),
            "ends": self.ends.text(lang), "ends_kind": self.ends.kind, "registrations": list(self.registrations),
        }
        if self.kind == "domain":
            out["links"] = dict(self.links)
        return out


@dataclass(frozen=True)
class RecipientHoldings:
    recipient: str
    name: str
    country: str
    kind: str | None
    objects: tuple[Holding, ...]

    def as_dict(self, lang: Lang = "en") -> dict[str, Any]:
        return {"recipient": self.recipient, "name": self.name, "country": self.country, "kind": self.kind,
                "objects": [o.as_dict(lang) for o in self.objects]}


@dataclass(frozen=True)
class OwnCopy:
    """The sealed values our log still keeps for one registration and purpose, and when they go."""

    registration_id: str
    domain: str | None
    purpose: str
    entries: int
    purge_on: str | None  # ISO date; None while not known (the registration is ours) or never (unconfigured)
    ends: End

    def as_dict(self, lang: Lang = "en") -> dict[str, Any]:
        return {"registration_id": self.registration_id, "domain": self.domain, "purpose": self.purpose,
                "entries": self.entries, "purge_on": self.purge_on, "ends": self.ends.text(lang),
                "ends_kind": self.ends.kind}


@dataclass(frozen=True)
class Holdings:
    subject_ids: tuple[str, ...]
    recipients: tuple[RecipientHoldings, ...]
    own: tuple[OwnCopy, ...]
    measured_from: str
    erased: bool

    def recipient(self, rid: str) -> RecipientHoldings | None:
        return next((r for r in self.recipients if r.recipient == rid), None)

    def as_dict(self, lang: Lang = "en") -> dict[str, Any]:
        return {
            "subject_id": self.subject_ids[0] if self.subject_ids else None,
            "recipients": [r.as_dict(lang) for r in self.recipients],
            "retention": {"measured_from": self.measured_from, "erased": self.erased,
                          "copies": [c.as_dict(lang) for c in self.own]},
        }


def _time(text: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


@dataclass
class _Object:
    since: str
    fields: set[str] = field(default_factory=set)
    registrations: set[str] = field(default_factory=set)
    links: dict[str, str] = field(default_factory=dict)

    def add(self, e: DisclosureEntry) -> None:
        self.since = min(self.since, e.recorded_at)
        self.fields.update(e.fields)
        self.registrations.add(e.registration_id)


def _links(objects: Mapping[str, str]) -> dict[str, str]:
    return {k.split(":", 1)[1]: v for k, v in objects.items() if k.startswith("contact:")}


@dataclass
class _Recipient:
    contacts: dict[str, _Object] = field(default_factory=dict)
    domains: dict[str, _Object] = field(default_factory=dict)
    copies: dict[str, _Object] = field(default_factory=dict)
    #: contact id -> the last delete's outcome and code (deleted, refused, possibly_delivered)
    contact_deletes: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    domain_deletes: dict[str, tuple[str, str | None]] = field(default_factory=dict)


def _note(objs: dict[str, _Object], key: str, e: DisclosureEntry) -> _Object:
    obj = objs.setdefault(key, _Object(e.recorded_at))
    obj.add(e)
    return obj


def _collect(entries: Iterable[DisclosureEntry]) -> dict[str, _Recipient]:
    """Per recipient, the objects the entries made or touched, and the deletions the recipient answered."""
    out: dict[str, _Recipient] = {}
    for e in sorted(entries, key=lambda x: (x.leaf_index or 0, x.recorded_at)):
        r = out.setdefault(e.recipient, _Recipient())
        command = e.command
        if command == "contact:delete" and "contact" in e.objects:
            r.contact_deletes[e.objects["contact"]] = (e.outcome, e.result_code)
            continue
        if command == "domain:delete" and "domain" in e.objects:
            r.domain_deletes[e.objects["domain"]] = (e.outcome, e.result_code)
            continue
        if e.outcome not in _HOLDS:
            continue
        if command in _CONTACT_WRITES and "contact" in e.objects:
            if e.fields:  # a contact of the person: it carries their data (registrar contacts carry none)
                _note(r.contacts, e.objects["contact"], e)
        elif command in _DOMAIN_WRITES and "domain" in e.objects:
            obj = _note(r.domains, e.objects["domain"], e)
            if _links(e.objects):
                obj.links = _links(e.objects)  # the latest command's links are what the domain points at now
        elif command is None and "domain" in e.objects:  # an entry from before schema 5: one per registration
            obj = _note(r.domains, e.objects["domain"], e)
            obj.links = _links(e.objects)
            if e.fields:
                for cid in obj.links.values():
                    _note(r.contacts, cid, e)
        elif e.fields and (command is None or command.startswith("https:")):
            key = e.objects.get("deposit_id") or e.objects.get("partner_ref") or e.registration_id
            _note(r.copies, key, e)
    return out


def _contact_end(cid: str, obj: _Object, r: _Recipient, regs: Mapping[str, RegistrationFacts]) -> End | None:
    outcome, code = r.contact_deletes.get(cid, ("", None))
    if outcome == "deleted":
        return None
    if outcome == "refused":
        return End("kept_by_registry", code=code)
    if outcome == "possibly_delivered":
        return End("delete_unanswered")
    users = set(obj.registrations) | {d for dom in r.domains.values() if cid in dom.links.values()
                                      for d in dom.registrations}
    if any(regs[rid].active for rid in users if rid in regs):
        return End("contact_in_use")
    return End("contact_unused")


def _domain_end(name: str, obj: _Object, r: _Recipient, recipient: str,
                regs: Mapping[str, RegistrationFacts]) -> End | None:
    mine = [regs[rid] for rid in sorted(obj.registrations) if rid in regs]
    if not mine:
        return None
    live = [g for g in mine if g.active]
    if live:
        return End("domain_active", at=max((g.expires_at or "" for g in live), default="") or None)
    last = max(mine, key=lambda g: g.end or "")
    outcome, code = r.domain_deletes.get(name, ("", None))
    if outcome == "deleted":
        return None
    if outcome in ("refused", "possibly_delivered"):
        return End("domain_delete_unconfirmed", at=last.end, reason=last.end_reason or "failed", code=code)
    if last.end_reason == "deleted" and any(recipient in g.unfinished for g in mine):
        return End("domain_ended", at=last.end, reason="deleted")
    return None  # transferred away, expired, or deleted and confirmed: not held by us any more


def _copy_end(obj: _Object, policy: RecipientPolicy | None, regs: Mapping[str, RegistrationFacts]) -> End:
    if policy is not None and policy.kind == "escrow":
        if any(regs[rid].active for rid in obj.registrations if rid in regs):
            return End("escrow_active", reason=policy.retention)
        return End("escrow_ended", reason=policy.retention)
    return End("partner_copy", reason=policy.retention if policy is not None else None)


def holdings(
    subject_ids: Iterable[str],
    entries: Iterable[DisclosureEntry],
    registrations: Mapping[str, RegistrationFacts],
    policies: Mapping[str, RecipientPolicy],
    retention: RetentionConfig,
    *,
    erased: bool = False,
) -> Holdings:
    """Per recipient, the objects holding the person's data now, each with since, fields and what ends
    it; and our own copies (sealed values) with their retention dates.  ``entries`` must include the
    registrations' entries without a subject (the releases' ``contact:delete`` and ``domain:delete``)."""
    entries = list(entries)
    out = []
    for rid, r in sorted(_collect(entries).items()):
        policy = policies.get(rid)
        objects: list[Holding] = []
        held_contacts: set[str] = set()
        for cid, obj in sorted(r.contacts.items()):
            end = _contact_end(cid, obj, r, registrations)
            if end is not None:
                held_contacts.add(cid)
                objects.append(Holding("contact", cid, obj.since, tuple(sorted(obj.fields)), end,
                                       tuple(sorted(obj.registrations))))
        for name, obj in sorted(r.domains.items()):
            links = {role: cid for role, cid in obj.links.items() if cid in held_contacts}
            if not obj.fields and not links:
                continue  # a thin registry's domain (or one pointing at no contact of the person): no data of theirs
            end = _domain_end(name, obj, r, rid, registrations)
            if end is not None:
                objects.append(Holding("domain", name, obj.since, tuple(sorted(obj.fields)), end,
                                       tuple(sorted(obj.registrations)), links))
        for key, obj in sorted(r.copies.items()):
            objects.append(Holding("copy", key, obj.since, tuple(sorted(obj.fields)),
                                   _copy_end(obj, policy, registrations), tuple(sorted(obj.registrations))))
        if objects:
            last = max((e for e in entries if e.recipient == rid), key=lambda e: e.recorded_at)
            out.append(RecipientHoldings(rid, policy.name if policy else last.recipient_name,
                                         policy.country if policy else last.recipient_country,
                                         policy.kind if policy else None, tuple(objects)))
    return Holdings(tuple(subject_ids), tuple(out), own_copies(entries, registrations, retention, erased=erased),
                    retention.measured_from, erased)


def own_copies(
    entries: Iterable[DisclosureEntry], registrations: Mapping[str, RegistrationFacts], retention: RetentionConfig,
    *, erased: bool = False,
) -> tuple[OwnCopy, ...]:
    """The log's sealed values per registration and purpose, with the date the retention job purges them."""
    groups: dict[tuple[str, str], list[DisclosureEntry]] = {}
    for e in entries:
        if e.values_ct is not None:
            groups.setdefault((e.registration_id, e.purpose), []).append(e)
    out = []
    for (reg_id, purpose), group in sorted(groups.items()):
        reg = registrations.get(reg_id)
        end = reg.end if reg is not None else None
        dates = [retention.purge_date(purpose, _time(e.recorded_at), _time(end) if end else None) for e in group]
        if purpose not in retention.purposes:
            ends, on = End("own_unconfigured"), None
        elif any(d is None for d in dates):
            ends, on = End("own_while_active", reason=str(retention.purposes[purpose].period_months)), None
        else:
            on = max(d for d in dates if d is not None).date().isoformat()
            ends = End("own_purge", at=on)
        if erased:
            ends = End("own_erased", at=on)
        out.append(OwnCopy(reg_id, reg.domain if reg else None, purpose, len(group), on, ends))
    return tuple(out)


# -- reading the inputs ---------------------------------------------------------------------------------


async def registration_facts(store: Store, reg_id: str) -> RegistrationFacts | None:
    reg = await store.registration(reg_id)
    if reg is None:
        return None
    return RegistrationFacts(
        id=reg_id, domain=str(reg["domain"]), status=str(reg["status"]), updated_at=str(reg["updated_at"]),
        expires_at=reg.get("expires_at"), ended_at=reg.get("ended_at"), end_reason=reg.get("end_reason"),
        unfinished=frozenset(str(d["recipient"]) for d in reg.get("deliveries", []) if d["state"] in _UNFINISHED),
    )


async def load(
    store: Store, subject_ids: Iterable[str]
) -> tuple[list[DisclosureEntry], dict[str, RegistrationFacts], bool]:
    """The subjects' entries with their registrations' subject-less ones (releases carry no personal data and
    are queued without a subject), each registration's facts, and whether every subject is erased."""
    entries: dict[str, DisclosureEntry] = {}
    reg_ids: set[str] = set()
    erased = True
    any_subject = False
    for sid in subject_ids:
        any_subject = True
        key = await store.subject_key(sid)
        erased = erased and (key is None or key.wrapped is None)
        async for e in store.iter_disclosures(DisclosureFilter(subject_id=sid), page=1000):
            entries[e.id] = e
            reg_ids.add(e.registration_id)
        reg_ids.update(str(r["id"]) for r in await store.subject_registrations(sid))
    regs: dict[str, RegistrationFacts] = {}
    for rid in sorted(reg_ids):
        facts = await registration_facts(store, rid)
        if facts is not None:
            regs[rid] = facts
        async for e in store.iter_disclosures(DisclosureFilter(registration_id=rid), page=1000):
            if e.subject_id is None:
                entries.setdefault(e.id, e)
    return sorted(entries.values(), key=lambda e: e.leaf_index or 0), regs, erased and any_subject


async def subject_holdings(
    store: Store, subject_ids: Iterable[str], policies: Mapping[str, RecipientPolicy], retention: RetentionConfig,
) -> Holdings:
    ids = list(subject_ids)
    entries, regs, erased = await load(store, ids)
    return holdings(ids, entries, regs, policies, retention, erased=erased)
