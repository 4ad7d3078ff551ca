"""The disclosure log for staff: filtered list (keyset pages), detail with the values sent, CSV export.

A subject is searched by e-mail or national ID through the blind index; the identifier is POSTed
(never put in a URL, so it is not in access logs or browser history) and the page is then shown for
the matching subject ids.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.auth import Role
from gateway.errors import BadFilter, NotFound, SubjectErased
from gateway.http.context import services
from gateway.http.pages.core import STAFF_ROLES, checked_form, page, render, secure_headers
from gateway.http.pages.session import Session
from gateway.ledger.entry import DisclosureEntry
from gateway.policy.loader import PolicySet
from gateway.policy.schema import TransferCategory
from gateway.store.base import DisclosureFilter, Store

PAGE_SIZE = 50
SCAN_BATCH = 500
OUTCOMES = ("delivered", "failed", "blocked", "refused")
NO_INSTRUMENT = "none"


def instrument_label(e: DisclosureEntry) -> str:
    """The transfer instrument an entry rests on: the decision or safeguard, the Art. 49 derogation,
    or "" for none (EU/EEA, no personal data, blocked)."""
    if e.instrument:
        return e.instrument
    if e.article:
        return f"Art. {e.article} derogation" if e.category == TransferCategory.DEROGATION else f"Art. {e.article}"
    return ""


_PATTERNS: dict[str, re.Pattern[str]] = {
    "recipient": re.compile(r"^[a-z0-9][a-z0-9-]{1,40}$"),
    "country": re.compile(r"^[A-Z]{2}$"),
    "category": re.compile("^(" + "|".join(c.value for c in TransferCategory) + ")$"),
    "outcome": re.compile("^(" + "|".join(OUTCOMES) + ")$"),
    "purpose": re.compile(r"^[a-z0-9_]{1,64}$"),
    "third_country": re.compile(r"^(true|false)$"),
    "instrument": re.compile(r"^[^\x00-\x1f\x7f]{1,300}$"),
    "since": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "until": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
}
_SUBJECT_ID = re.compile(r"^[0-9a-f]{32}$")
_KEYS = (*_PATTERNS, "subject_id", "subject", "after")


@dataclass(frozen=True)
class LogQuery:
    """The log's filters, as they travel in query strings (pages, CSV link) and forms."""

    values: Mapping[str, str] = field(default_factory=dict)
    subject_ids: tuple[str, ...] = ()
    subject_unmatched: bool = False
    after: int = -1

    @classmethod
    def parse(cls, q: Mapping[str, str], subject_ids: Iterable[str] = ()) -> LogQuery:
        values: dict[str, str] = {}
        for name, pattern in _PATTERNS.items():
            raw = q.get(name, "").strip()
            if not raw:
                continue
            if not pattern.match(raw):
                raise BadFilter(f"'{name}' has a value that is not allowed")
            values[name] = raw
        for name in ("since", "until"):
            if name in values:
                try:
                    dt.date.fromisoformat(values[name])
                except ValueError:
                    raise BadFilter(f"'{name}' must be a date (YYYY-MM-DD)") from None
        ids = tuple(subject_ids)
        for sid in ids:
            if not _SUBJECT_ID.match(sid):
                raise BadFilter("'subject_id' must be a subject id")
        if len(ids) > 20:
            raise BadFilter("too many subject ids")
        after = q.get("after", "")
        if after and (not after.isdigit() or int(after) > 2**62):
            raise BadFilter("'after' must be a non-negative integer")
        return cls(values, ids, q.get("subject") == "unmatched", int(after) if after else -1)

    @classmethod
    def from_request(cls, request: web.Request) -> LogQuery:
        return cls.parse(request.query, request.query.getall("subject_id", []))

    def pairs(self, *, after: int | None = None) -> list[tuple[str, str]]:
        out = list(self.values.items()) + [("subject_id", s) for s in self.subject_ids]
        if self.subject_unmatched:
            out.append(("subject", "unmatched"))
        if after is not None and after >= 0:
            out.append(("after", str(after)))
        return out

    def qs(self, *, after: int | None = None) -> str:
        return urlencode(self.pairs(after=after))

    def without_subject(self) -> LogQuery:
        return replace(self, subject_ids=(), subject_unmatched=False, after=-1)

    def summary(self) -> str:
        """For the access log: which filters, by name and value (subject ids, never identifiers)."""
        return " ".join(f"{k}={v}" for k, v in self.pairs())[:1000] or "all"

    def store_filter(self, subject_id: str | None) -> DisclosureFilter:
        v = self.values
        return DisclosureFilter(
            recipient=v.get("recipient"), country=v.get("country"), category=v.get("category"),
            outcome=v.get("outcome"), subject_id=subject_id,
            third_country=None if "third_country" not in v else v["third_country"] == "true",
            since=_day_start(v["since"]) if "since" in v else None,
            until=_day_start(v["until"], plus_days=1) if "until" in v else None,
            after_seq=self.after, limit=SCAN_BATCH,
        )

    def matches(self, e: DisclosureEntry) -> bool:
        """The filters the store has no column test for."""
        if "purpose" in self.values and e.purpose != self.values["purpose"]:
            return False
        if "instrument" in self.values:
            want = self.values["instrument"]
            return instrument_label(e) == ("" if want == NO_INSTRUMENT else want)
        return True


def _day_start(day: str, plus_days: int = 0) -> str:
    d = dt.date.fromisoformat(day) + dt.timedelta(days=plus_days)
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


async def scan(store: Store, q: LogQuery) -> AsyncIterator[DisclosureEntry]:
    """Every matching entry from ``q.after`` on, in leaf order (several subject ids merged)."""
    if q.subject_unmatched:
        return
    if len(q.subject_ids) <= 1:
        async for e in store.iter_disclosures(q.store_filter(q.subject_ids[0] if q.subject_ids else None),
                                              page=SCAN_BATCH):
            if q.matches(e):
                yield e
        return
    streams = [store.iter_disclosures(q.store_filter(sid), page=SCAN_BATCH) for sid in q.subject_ids]
    heads: list[DisclosureEntry | None] = [await anext(s, None) for s in streams]
    while True:
        live = [(h.leaf_index or 0, i) for i, h in enumerate(heads) if h is not None]
        if not live:
            return
        _, i = min(live)
        head = heads[i]
        assert head is not None
        if q.matches(head):
            yield head
        heads[i] = await anext(streams[i], None)


async def page_of(store: Store, q: LogQuery, size: int | None = None) -> tuple[list[DisclosureEntry], int | None]:
    """One page and the keyset cursor of the next one (None on the last page)."""
    size = size or PAGE_SIZE
    rows: list[DisclosureEntry] = []
    more = False
    async for e in scan(store, q):
        if len(rows) == size:
            more = True
            break
        rows.append(e)
    return rows, (rows[-1].leaf_index if more and rows else None)


def filter_options(policies: PolicySet) -> dict[str, Any]:
    recipients = sorted(policies.recipients.values(), key=lambda p: p.recipient)
    instruments: set[str] = set()
    for d in policies.jurisdictions.adequacy:
        instruments.add(d.decision)
    for p in recipients:
        instruments.update(s.instrument for s in p.safeguards)
        if p.derogation is not None:
            instruments.add(f"Art. {p.derogation.article} derogation")
    return {
        "recipients": [(p.recipient, p.name) for p in recipients],
        "countries": sorted({p.country for p in recipients}),
        "categories": [c.value for c in TransferCategory],
        "instruments": sorted(instruments),
        "purposes": sorted({purpose for p in recipients for purpose in p.purposes}),
        "outcomes": OUTCOMES,
        "no_instrument": NO_INSTRUMENT,
    }


async def find_subject_ids(request: web.Request, identifier: str) -> list[str]:
    """The subjects an e-mail address or national ID typed into the search belongs to, found the way a
    data-subject request finds them."""
    ident = identifier.strip()
    if not ident or len(ident) > 254:
        return []
    ids, _ = await services(request).rights.find_subjects({"email" if "@" in ident else "national_id": ident})
    return ids


def _log_context(q: LogQuery, policies: PolicySet) -> dict[str, Any]:
    return {"q": q, "f": q.values, "opts": filter_options(policies)}


@page(*STAFF_ROLES)
async def log_page(request: web.Request, session: Session) -> web.StreamResponse:
    svc = services(request)
    policies = svc.registrations.policies
    try:
        q = LogQuery.from_request(request)
    except BadFilter as err:
        return render(request, "disclosures.html", session, status=400, error=err.detail, rows=[], next_after=None,
                      label=instrument_label, **_log_context(LogQuery(), policies))
    rows, nxt = await page_of(svc.store, q)
    return render(request, "disclosures.html", session, error=None, rows=rows, next_after=nxt,
                  label=instrument_label, **_log_context(q, policies))


@page(*STAFF_ROLES)
async def log_search(request: web.Request, session: Session) -> web.StreamResponse:
    """The filter form with a subject identifier: resolve it here, then show the page by subject id."""
    form = await checked_form(request, session)
    q = LogQuery.parse(form, form.getall("subject_id", []))
    ident = form.get("subject", "").strip()
    if ident:
        ids = await find_subject_ids(request, ident)
        q = replace(q, subject_ids=tuple(ids[:20]), subject_unmatched=not ids)
    raise web.HTTPSeeOther(f"/ui/disclosures?{q.qs()}")


def _display(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_display(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_display(v)}" for k, v in value.items())
    return "" if value is None else str(value)


@page(*STAFF_ROLES)
async def detail_page(request: web.Request, session: Session) -> web.StreamResponse:
    svc = services(request)
    entry_id = request.match_info["entry_id"]
    entry = await svc.store.disclosure(entry_id) if re.fullmatch(r"[0-9a-f]{32}", entry_id) else None
    if entry is None:
        raise NotFound("no such disclosure")
    values: list[tuple[str, str]] | None = None
    state = "hidden"
    if session.role is Role.PRIVACY:
        if entry.values_purged:
            state = "purged"
        else:
            try:
                raw = await svc.ledger.entry_values(entry)
            except SubjectErased:
                state = "erased"
            else:
                state = "none" if raw is None else "shown"
                values = None if raw is None else [(k, _display(v)) for k, v in sorted(raw.items())]
        await svc.ledger.record_access(session.name, "disclosure.values_read", entry.id, entry.subject_id)
    return render(request, "disclosure.html", session, e=entry, values=values, values_state=state,
                  instrument=instrument_label(entry))


CSV_COLUMNS = (
    "seq", "id", "recorded_at", "attempted_at", "registration_id", "subject_id", "recipient", "recipient_name",
    "recipient_country", "category", "article", "instrument", "purpose", "outcome", "retryable", "fields_sent",
    "fields_withheld", "result_code", "reason", "sv_trid", "cl_trid", "epp_objects", "payload_digest",
    "values_purged",
)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # a spreadsheet must not read a cell as a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_row(e: DisclosureEntry) -> list[str]:
    """Metadata only: never the values sent."""
    return [_cell(v) for v in (
        e.leaf_index, e.id, e.recorded_at, e.attempted_at, e.registration_id, e.subject_id, e.recipient,
        e.recipient_name, e.recipient_country, e.category, e.article, instrument_label(e), e.purpose, e.outcome,
        "true" if e.retryable else "false", " ".join(e.fields), " ".join(e.withheld), e.result_code, e.reason,
        e.sv_trid, e.cl_trid, " ".join(f"{k}={v}" for k, v in sorted(e.objects.items())), e.payload_digest,
        "true" if e.values_purged else "false",
    )]


@page(*STAFF_ROLES)
async def export_csv(request: web.Request, session: Session) -> web.StreamResponse:
    svc = services(request)
    q = LogQuery.from_request(request)
    q = replace(q, after=-1)
    await svc.ledger.record_access(session.name, "disclosures.exported", q.summary(), None)
    stamp = svc.registrations.clock().astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="disclosures-{stamp}.csv"',
    })
    secure_headers(resp)
    await resp.prepare(request)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    buf.write("\ufeff")  # so spreadsheet programs read UTF-8
    writer.writerow(CSV_COLUMNS)
    n = 0
    async for e in scan(svc.store, q):
        writer.writerow(csv_row(e))
        n += 1
        if n % 500 == 0:
            await resp.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
    await resp.write(buf.getvalue().encode())
    await resp.write_eof()
    return resp
