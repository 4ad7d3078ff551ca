"""The disclosure log for staff: filtered list (keyset pages), detail with the values sent, CSV export.

A subject is searched by e-mail or national ID through the blind index; the identifier is POSTed
(never put in a URL, so it is not in access logs or browser history) and the page is then shown for
the one matching subject id.  When the identifier matches several records (a family e-mail address,
a number valid under two schemes) they are listed for staff to choose one, never merged into one
filter: the page and its CSV export then list exactly the rows of the subject ids in the URL, which
are what staff chose here or confirmed on a data-subject request.
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
from multidict import MultiDict

from gateway.auth import Role
from gateway.errors import BadFilter, InputError, NotFound, QueryInvalid, SubjectErased
from gateway.http.context import services
from gateway.http.pages.core import STAFF_ROLES, checked_form, page, render, secure_headers
from gateway.http.pages.session import Session
from gateway.http.query import LogFilterQuery, parse_query
from gateway.ledger.entry import DisclosureEntry
from gateway.policy.loader import PolicySet
from gateway.policy.schema import TransferCategory
from gateway.store.base import DisclosureFilter, Store

PAGE_SIZE = 50
SCAN_BATCH = 500
OUTCOMES = ("delivered", "possibly_delivered", "refused", "deleted", "failed", "blocked")
NO_INSTRUMENT = "none"


def instrument_label(e: DisclosureEntry) -> str:
    """The transfer instrument an entry rests on: the decision or safeguard, the Art. 49 derogation,
    or "" for none (EU/EEA, no personal data, blocked)."""
    if e.instrument:
        return e.instrument
    if e.article:
        return f"Art. {e.article} derogation" if e.category == TransferCategory.DEROGATION else f"Art. {e.article}"
    return ""


@dataclass(frozen=True)
class LogQuery:
    """The log's filters, as they travel in query strings (pages, CSV link) and forms."""

    values: Mapping[str, str] = field(default_factory=dict)
    subject_ids: tuple[str, ...] = ()
    subject_unmatched: bool = False
    after: int = -1

    @classmethod
    def parse(cls, q: Mapping[str, str], subject_ids: Iterable[str] = ()) -> LogQuery:
        """The filters in ``q`` (a query string or a form) through the query model the API shares
        (``LogFilterQuery``); ``values`` keeps each as its canonical text, for links and the form."""
        pairs = [(k, v) for k, v in q.items() if k not in ("subject_id", "subject")]
        pairs += [("subject_id", s) for s in subject_ids]
        try:
            f = parse_query(LogFilterQuery, MultiDict(pairs))
        except QueryInvalid as err:
            raise BadFilter(err.detail) from None
        dumped = f.model_dump(mode="json", exclude={"subject_id", "after"}, exclude_none=True)
        values = {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in dumped.items()}
        return cls(values, f.subject_id, q.get("subject") == "unmatched", -1 if f.after is None else f.after)

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


def _day_start(day: str, plus_days: int = 0) -> str | None:
    """The stored form of midnight UTC ``plus_days`` after ``day``; None past the last day there is
    (``until=9999-12-31`` is the end of time, not an overflow)."""
    try:
        d = dt.date.fromisoformat(day) + dt.timedelta(days=plus_days)
    except OverflowError:
        return None
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


async def subject_candidates(request: web.Request, identifier: str) -> list[dict[str, Any]]:
    """The records an e-mail address or national ID typed into the search matches, found the way a
    data-subject request lists its candidates (``{"subject_id", "matched_by"}``, never merged)."""
    ident = identifier.strip()
    if not ident or len(ident) > 254:
        return []
    try:
        return await services(request).rights.candidates({"email" if "@" in ident else "national_id": ident})
    except InputError:  # not an identifier the index can take: matches nobody
        return []


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
        found = await subject_candidates(request, ident)
        if len(found) > 1:
            return await _choose_subject(request, session, replace(q, subject_ids=(), subject_unmatched=False),
                                         found)
        q = replace(q, subject_ids=tuple(c["subject_id"] for c in found), subject_unmatched=not found)
    raise web.HTTPSeeOther(f"/ui/disclosures?{q.qs()}")


async def _choose_subject(
    request: web.Request, session: Session, q: LogQuery, found: list[dict[str, Any]]
) -> web.Response:
    """Several records match the identifier: list them, each a link to the log filtered to that one
    subject (the rest of the filters kept), and show no rows until staff choose."""
    store = services(request).store
    choices = [{"subject_id": c["subject_id"], "matched_by": c["matched_by"],
                "registrations": len(await store.subject_registrations(c["subject_id"])),
                "href": "/ui/disclosures?" + replace(q, subject_ids=(c["subject_id"],)).qs()} for c in found]
    return render(request, "disclosures.html", session, error=None, rows=[], next_after=None,
                  label=instrument_label, subject_choices=choices,
                  **_log_context(q, services(request).registrations.policies))


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
    "recipient_country", "category", "article", "instrument", "purpose", "outcome", "command", "retryable",
    "fields_sent", "fields_withheld", "result_code", "reason", "sv_trid", "cl_trid", "epp_objects", "payload_digest",
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
        e.command, "true" if e.retryable else "false", " ".join(e.fields), " ".join(e.withheld), e.result_code,
        e.reason,
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
    # The first row is read before the response starts, so a query that cannot run at all (store
    # unavailable, a row that does not decode) is an error page.  A failure after the start cannot be
    # one any more: the page wrapper and the problem middleware then end the connection without the
    # final chunk (``gateway.http.problems.abandon``), and the client sees an incomplete download.
    rows = scan(svc.store, q)
    e = await anext(rows, None)
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
    while e is not None:
        writer.writerow(csv_row(e))
        n += 1
        if n % 500 == 0:
            await resp.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
        e = await anext(rows, None)
    await resp.write(buf.getvalue().encode())
    await resp.write_eof()
    return resp
