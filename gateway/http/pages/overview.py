"""Third-country transfers at a glance: outcomes per recipient and instrument, and the instruments
(adequacy decisions, recipients' safeguards) that have ended or end within the warning window."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

from gateway.http.context import services
from gateway.http.pages.core import STAFF_ROLES, page, render
from gateway.http.pages.disclosures import NO_INSTRUMENT, instrument_label
from gateway.http.pages.session import Session
from gateway.policy.loader import PolicySet
from gateway.store.base import DisclosureFilter, Store

WARN_DAYS = 90


#: The outcome columns of the third-country table (one entry per command that reached the recipient).
OUTCOME_COLUMNS = ("delivered", "possibly_delivered", "blocked", "failed", "refused", "deleted")


@dataclass
class TransferRow:
    recipient: str
    recipient_name: str
    country: str
    category: str
    instrument: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COLUMNS, 0))

    def link(self, outcome: str | None = None) -> str:
        q = [("recipient", self.recipient), ("third_country", "true"),
             ("instrument", self.instrument or NO_INSTRUMENT)]
        if outcome:
            q.append(("outcome", outcome))
        return "/ui/disclosures?" + urlencode(q)


async def transfer_counts(store: Store) -> list[TransferRow]:
    """One pass over the third-country entries (the log is append-only; a store-side aggregate can
    replace this scan when the log grows large)."""
    rows: dict[tuple[str, str, str], TransferRow] = {}
    async for e in store.iter_disclosures(DisclosureFilter(third_country=True), page=1000):
        label = instrument_label(e)
        key = (e.recipient, e.category, label)
        row = rows.get(key)
        if row is None:
            row = rows[key] = TransferRow(e.recipient, e.recipient_name, e.recipient_country, e.category, label)
        row.counts[e.outcome] = row.counts.get(e.outcome, 0) + 1
    return sorted(rows.values(), key=lambda r: (r.recipient, r.category, r.instrument))


@dataclass(frozen=True)
class InstrumentDue:
    kind: str  # "adequacy" | "safeguard"
    article: str
    instrument: str
    holder: str  # the territory, or the recipient
    valid_until: dt.date
    days_left: int  # negative once ended
    confirmed: bool
    recipients: tuple[str, ...]  # who relies on it
    covered_after: str | None  # what else is in force the day after it ends (or today, if it has)

    @property
    def expired(self) -> bool:
        return self.days_left < 0


def instruments_due(policies: PolicySet, today: dt.date, warn_days: int = WARN_DAYS) -> list[InstrumentDue]:
    out: list[InstrumentDue] = []
    adequacy = policies.jurisdictions.adequacy
    recipients = sorted(policies.recipients.values(), key=lambda p: p.recipient)
    for d in adequacy:
        if d.valid_until is None or (d.valid_until - today).days > warn_days:
            continue
        after = max(today, d.valid_until + dt.timedelta(days=1))
        other = next((o.decision for o in adequacy if o is not d and o.country == d.country and o.in_force(after)),
                     None)
        users = tuple(p.recipient for p in recipients if p.country == d.country and p.sends_personal_data)
        out.append(InstrumentDue("adequacy", "45", d.decision, f"{d.territory} ({d.country})", d.valid_until,
                                 (d.valid_until - today).days, d.confirmed, users, other))
    for p in recipients:
        for s in p.safeguards:
            if s.valid_until is None or (s.valid_until - today).days > warn_days:
                continue
            after = max(today, s.valid_until + dt.timedelta(days=1))
            cover = next((f"adequacy: {a.decision}" for a in adequacy if a.country == p.country and a.in_force(after)),
                         None)
            cover = cover or next((f"Art. {o.article}: {o.instrument}" for o in p.safeguards
                                   if o is not s and o.in_force(after)), None)
            holder = f"{p.name} ({p.recipient}, {p.country})" + ("" if p.enabled else ", disabled")
            out.append(InstrumentDue("safeguard", s.article, s.instrument, holder, s.valid_until,
                                     (s.valid_until - today).days, s.confirmed, (p.recipient,), cover))
    return sorted(out, key=lambda i: (i.valid_until, i.holder))


@page(*STAFF_ROLES)
async def third_countries(request: web.Request, session: Session) -> web.StreamResponse:
    svc = services(request)
    today = svc.registrations.clock().astimezone(dt.UTC).date()
    due = instruments_due(svc.registrations.policies, today)
    rows = await transfer_counts(svc.store)
    totals = {k: sum(r.counts.get(k, 0) for r in rows) for k in OUTCOME_COLUMNS}
    return render(request, "third_countries.html", session, rows=rows, totals=totals, today=today,
                  outcomes=OUTCOME_COLUMNS,
                  warn_days=WARN_DAYS, expiring=[i for i in due if not i.expired],
                  expired=[i for i in due if i.expired])
