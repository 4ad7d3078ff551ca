"""Third-country transfers at a glance, for a date range: counts per recipient, basis and month, charts
drawn on the server (transfers per month by category, top recipients, delivered against blocked), the
transfers per data subject and domain ("for whom?"), and the instruments (adequacy decisions,
recipients' safeguards) that have ended or end within the warning window.

One page answers "which third-country transfers did we make last month, under which basis, for
whom?": pick "Last month", read the table or the charts, and the subject list below names each person
(to the privacy role, each name read recorded) with a link to exactly those entries in the log.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.errors import BadFilter
from gateway.http.context import services
from gateway.http.pages import charts
from gateway.http.pages.core import STAFF_ROLES, page, render, ui_gettext
from gateway.http.pages.disclosures import CATEGORY_WORDS, NO_INSTRUMENT, OUTCOME_WORDS, subject_names, workbench
from gateway.http.pages.session import Session
from gateway.policy.loader import PolicySet
from gateway.store.workbench import SubjectTransfers, TransferCount

WARN_DAYS = 90
#: Subject rows listed at most (the log has the rest, by its links).
SUBJECT_ROWS = 200
TOP_RECIPIENTS = 10
#: At most this many months in one range (a table column each).
MAX_MONTHS = 36

#: The outcome columns of the third-country table (one entry per command that reached the recipient).
OUTCOME_COLUMNS = ("delivered", "possibly_delivered", "blocked", "failed", "refused", "deleted")
#: The third-country categories, in chart order, with their colours.
CATEGORIES = (("adequacy", charts.PALETTE[0]), ("safeguard", charts.PALETTE[1]), ("derogation", charts.PALETTE[4]),
              ("blocked", charts.PALETTE[3]))


def _log_link(pairs: Sequence[tuple[str, str]]) -> str:
    return "/ui/disclosures?" + urlencode([("third_country", "true"), *pairs])


@dataclass(frozen=True)
class Range:
    """The days shown, both inclusive."""

    first: dt.date
    last: dt.date

    @property
    def since(self) -> str:
        return _instant(self.first)

    @property
    def until(self) -> str | None:
        try:
            return _instant(self.last + dt.timedelta(days=1))
        except OverflowError:
            return None

    def months(self) -> list[str]:
        out: list[str] = []
        y, m = self.first.year, self.first.month
        while (y, m) <= (self.last.year, self.last.month) and len(out) < MAX_MONTHS:
            out.append(f"{y:04d}-{m:02d}")
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out

    def log_pairs(self) -> list[tuple[str, str]]:
        return [("since", self.first.isoformat()), ("until", self.last.isoformat())]

    def qs(self) -> str:
        return urlencode([("from", self.first.isoformat()), ("to", self.last.isoformat())])


def _instant(d: dt.date) -> str:
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def month_start(d: dt.date, back: int = 0) -> dt.date:
    """The first day of the month ``back`` months before ``d``'s."""
    index = d.year * 12 + d.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def presets(today: dt.date) -> list[tuple[str, Range]]:
    """The ranges one click away (msgids, ranges)."""
    this_month = month_start(today)
    last_month = month_start(today, 1)
    return [
        ("Last month", Range(last_month, this_month - dt.timedelta(days=1))),
        ("This month", Range(this_month, today)),
        ("Last 12 months", Range(month_start(today, 11), today)),
        ("This year", Range(dt.date(today.year, 1, 1), today)),
    ]


def parse_range(q: Mapping[str, str], today: dt.date) -> Range:
    """``from`` and ``to`` (days, inclusive); the last 12 months by default; at most ``MAX_MONTHS``."""
    def day(name: str, default: dt.date) -> dt.date:
        text = (q.get(name) or "").strip()
        if not text:
            return default
        if not (len(text) == 10 and text.isascii()):
            raise BadFilter(f"{name}: a date, YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise BadFilter(f"{name}: a date, YYYY-MM-DD") from None

    first = day("from", month_start(today, 11))
    last = day("to", today)
    if last < first:
        raise BadFilter("to: on or after from")
    if (last.year * 12 + last.month) - (first.year * 12 + first.month) >= MAX_MONTHS:
        raise BadFilter(f"from: at most {MAX_MONTHS} months in one range")
    return Range(first, last)


@dataclass
class TransferRow:
    """One recipient and basis: its entries by outcome and by month."""

    recipient: str
    recipient_name: str
    country: str
    category: str
    instrument: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOME_COLUMNS, 0))
    months: dict[str, int] = field(default_factory=dict)
    base: tuple[tuple[str, str], ...] = ()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def link(self, outcome: str | None = None) -> str:
        q = [("recipient", self.recipient), ("instrument", self.instrument or NO_INSTRUMENT), *self.base]
        if outcome:
            q.append(("outcome", outcome))
        return _log_link(q)


def transfer_rows(counts: Sequence[TransferCount], rng: Range) -> list[TransferRow]:
    rows: dict[tuple[str, str, str], TransferRow] = {}
    for c in counts:
        key = (c.recipient, c.category, c.instrument)
        row = rows.get(key)
        if row is None:
            row = rows[key] = TransferRow(c.recipient, c.recipient_name, c.country, c.category, c.instrument,
                                          base=tuple(rng.log_pairs()))
        row.counts[c.outcome] = row.counts.get(c.outcome, 0) + c.count
        row.months[c.month] = row.months.get(c.month, 0) + c.count
    return sorted(rows.values(), key=lambda r: (r.recipient, r.category, r.instrument))


@dataclass(frozen=True)
class Chart:
    """A chart and the table of the same numbers shown beside it."""

    svg: str
    head: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def build_charts(counts: Sequence[TransferCount], months: Sequence[str],
                 _: Callable[[str], str]) -> dict[str, Chart]:
    by_cat: dict[tuple[str, str], int] = defaultdict(int)
    by_recipient: dict[str, int] = defaultdict(int)
    outcome_month: dict[tuple[str, str], int] = defaultdict(int)
    for c in counts:
        by_cat[(c.category, c.month)] += c.count
        by_recipient[f"{c.recipient_name} ({c.country})"] += c.count
        group = c.outcome if c.outcome in ("delivered", "blocked") else "other"
        outcome_month[(group, c.month)] += c.count
    cat_series = [charts.Series(_(CATEGORY_WORDS[cat]), tuple(by_cat[(cat, m)] for m in months), colour)
                  for cat, colour in CATEGORIES]
    monthly = charts.stacked_bars(
        _("Third-country transfers per month, by basis"),
        _("Stacked bars: one per month, each split by the transfer basis. The table beside it has the numbers."),
        months, cat_series)
    top = sorted(by_recipient.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_RECIPIENTS]
    recipients = charts.horizontal_bars(
        _("Top recipients in third countries"),
        _("Horizontal bars: entries per recipient, largest first. The table beside it has the numbers."), top)
    outcome_groups = (("delivered", _("Delivered"), charts.PALETTE[2]), ("blocked", _("Blocked"), charts.PALETTE[3]),
                      ("other", _("Other outcomes"), charts.PALETTE[6]))
    out_series = [charts.Series(label, tuple(outcome_month[(g, m)] for m in months), colour)
                  for g, label, colour in outcome_groups]
    outcomes = charts.stacked_bars(
        _("Delivered and blocked, per month"),
        _("Stacked bars: one per month, split into delivered, blocked and other outcomes."), months, out_series)
    return {
        "monthly": Chart(monthly, (_("Month"), *(s.name for s in cat_series)),
                         tuple((m, *(str(s.values[i]) for s in cat_series)) for i, m in enumerate(months))),
        "recipients": Chart(recipients, (_("Recipient"), _("Entries")), tuple((k, str(v)) for k, v in top)),
        "outcomes": Chart(outcomes, (_("Month"), *(s.name for s in out_series)),
                          tuple((m, *(str(s.values[i]) for s in out_series)) for i, m in enumerate(months))),
    }


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


def subject_link(t: SubjectTransfers, rng: Range) -> str:
    pairs = [("recipient", t.recipient), *rng.log_pairs()]
    if t.subject_id:
        pairs.append(("subject_id", t.subject_id))
    if t.domain:
        pairs.append(("domain", t.domain))
    return _log_link(pairs)


@page(*STAFF_ROLES)
async def third_countries(request: web.Request, session: Session) -> web.StreamResponse:
    svc = services(request)
    today = svc.registrations.clock().astimezone(dt.UTC).date()
    due = instruments_due(svc.registrations.policies, today)
    _ = ui_gettext(request, session)
    common: dict[str, Any] = {"today": today, "outcomes": OUTCOME_COLUMNS, "warn_days": WARN_DAYS,
                              "expiring": [i for i in due if not i.expired], "expired": [i for i in due if i.expired],
                              "presets": presets(today), "category_words": CATEGORY_WORDS,
                              "outcome_words": OUTCOME_WORDS}
    try:
        rng = parse_range(request.query, today)
    except BadFilter as err:
        rng = parse_range({}, today)
        return render(request, "third_countries.html", session, status=400, error=err.detail, rng=rng, rows=[],
                      totals=dict.fromkeys(OUTCOME_COLUMNS, 0), months=[], charts=None, subjects=[], names={},
                      subject_link=subject_link, subjects_cut=False, **common)
    wb = workbench(svc.store)
    counts = await wb.transfer_counts(rng.since, rng.until)
    months = rng.months()
    rows = transfer_rows(counts, rng)
    totals = {k: sum(r.counts.get(k, 0) for r in rows) for k in OUTCOME_COLUMNS}
    subjects = await wb.subject_transfers(rng.since, rng.until, limit=SUBJECT_ROWS + 1)
    cut = len(subjects) > SUBJECT_ROWS
    subjects = subjects[:SUBJECT_ROWS]
    names = await subject_names(svc, session, (t.subject_id or "" for t in subjects), where="third-countries")
    return render(request, "third_countries.html", session, error=None, rng=rng, rows=rows, totals=totals,
                  months=months, charts=build_charts(counts, months, _) if counts else None, subjects=subjects,
                  names=names, subject_link=subject_link, subjects_cut=cut, **common)
