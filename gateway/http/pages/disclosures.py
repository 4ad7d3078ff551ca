"""The disclosure log for staff: who was sent what, for which domain and person, on which basis.

The list answers "which transfers did we make, under which basis, for whom?": one line per entry with
the domain, the data subject, the recipient, the country, the basis in words, the outcome and the time,
newest first, sortable by any column (plain links, no scripts), with the totals for the current
filter and numbered pages.  It is searched in SQL (``gateway.store.workbench``), joined with the
registration for the domain and the order reference.

The data subject is shown by name to the privacy role (decrypted from the values an entry sent, each
name read recorded in the access log) and as a stable pseudonym ("Subject 3f9a0c12") to auditors.

A subject is searched by e-mail or national ID through the blind index; the identifier is POSTed
(never put in a URL, so it is not in access logs or browser history) and the page is then shown for
the one matching subject id.  When the identifier matches several records (a family e-mail address,
a number valid under two schemes) they are listed for staff to choose one, never merged into one
filter: the page and its exports then list exactly the rows of the subject ids in the URL.

Exports (CSV for Excel: UTF-8 with a BOM, ``;`` by default in Swedish; XLSX) carry the same columns
plus the entry's metadata; names only when the privacy role asks for them.  Each export is logged.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDict

from gateway.auth import Role
from gateway.errors import BadFilter, InputError, NotFound, QueryInvalid, SubjectErased
from gateway.http.context import Services, services
from gateway.http.pages.core import STAFF_ROLES, checked_form, page, render, secure_headers, ui_lang
from gateway.http.pages.session import Session
from gateway.http.query import LogFilterQuery, parse_query
from gateway.ledger.entry import DisclosureEntry
from gateway.policy.loader import PolicySet
from gateway.policy.schema import TransferCategory
from gateway.services.workbench import SubjectName, labels, read_names
from gateway.store.base import DisclosureFilter, Store
from gateway.store.workbench import SORTS, LogRow, LogSearch, WorkbenchReads

PAGE_SIZE = 50
PAGE_SIZES = (25, 50, 100, 200)
EXPORT_BATCH = 1000
MAX_PAGE = 1_000_000
SCAN_BATCH = 500
OUTCOMES = ("delivered", "possibly_delivered", "refused", "deleted", "failed", "blocked")
NO_INSTRUMENT = "none"
#: The log's columns a person can sort by, in the table's order.
SORT_COLUMNS = ("time", "domain", "subject", "recipient", "country", "basis", "outcome")
#: The sort columns in words (msgids).
SORT_WORDS: Mapping[str, str] = {"time": "Time (UTC)", "domain": "Domain", "subject": "Data subject",
                                 "recipient": "Recipient", "country": "Country", "basis": "Basis", "outcome": "Outcome"}
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]*$")


def instrument_label(e: DisclosureEntry) -> str:
    """The transfer instrument an entry rests on: the decision or safeguard, the Art. 49 derogation,
    or "" for none (EU/EEA, no personal data, blocked)."""
    if e.instrument:
        return e.instrument
    if e.article:
        return f"Art. {e.article} derogation" if e.category == TransferCategory.DEROGATION else f"Art. {e.article}"
    return ""


#: The transfer categories in words (Chapter V of the GDPR), as msgids.
CATEGORY_WORDS: Mapping[str, str] = {
    "eea": "EU/EEA (no transfer)",
    "no_personal_data": "No personal data",
    "adequacy": "Adequacy decision (Art. 45)",
    "safeguard": "Appropriate safeguards (Art. 46)",
    "derogation": "Derogation (Art. 49)",
    "blocked": "Blocked: no basis",
}
#: The outcomes in words, as msgids.
OUTCOME_WORDS: Mapping[str, str] = {
    "delivered": "Delivered",
    "possibly_delivered": "Possibly delivered",
    "refused": "Refused",
    "deleted": "Deleted",
    "failed": "Failed",
    "blocked": "Blocked",
}


def workbench(store: Store) -> WorkbenchReads:
    """The store's workbench queries (both stores mix them in)."""
    if not isinstance(store, WorkbenchReads):
        raise TypeError("this store has no workbench queries")
    return store


def _text_filter(q: Mapping[str, str], name: str, limit: int) -> str | None:
    value = (q.get(name) or "").strip()
    if not value:
        return None
    if len(value) > limit or not _PRINTABLE.match(value):
        raise BadFilter(f"{name}: at most {limit} printable characters")
    return value


@dataclass(frozen=True)
class LogQuery:
    """The log's filters, sort and page, as they travel in query strings (pages, export links) and forms."""

    values: Mapping[str, str] = field(default_factory=dict)
    subject_ids: tuple[str, ...] = ()
    subject_unmatched: bool = False
    after: int = -1
    sort: str = "time"
    desc: bool = True
    page: int = 1
    size: int = PAGE_SIZE

    @classmethod
    def parse(cls, q: Mapping[str, str], subject_ids: Iterable[str] = ()) -> LogQuery:
        """The filters in ``q`` (a query string or a form) through the query model the API shares
        (``LogFilterQuery``), plus the page's own: domain, order reference, sort, page and page size.
        ``values`` keeps each filter as its canonical text, for links and the form."""
        pairs = [(k, v) for k, v in q.items() if k not in ("subject_id", "subject")]
        pairs += [("subject_id", s) for s in subject_ids]
        try:
            f = parse_query(LogFilterQuery, MultiDict(pairs))
        except QueryInvalid as err:
            raise BadFilter(err.detail) from None
        dumped = f.model_dump(mode="json", exclude={"subject_id", "after"}, exclude_none=True)
        values = {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in dumped.items()}
        domain = _text_filter(q, "domain", 253)
        if domain is not None:
            values["domain"] = domain.lower()
        order_ref = _text_filter(q, "order_ref", 200)
        if order_ref is not None:
            values["order_ref"] = order_ref
        sort = (q.get("sort") or "time").strip()
        if sort not in SORTS:
            raise BadFilter(f"sort: one of {', '.join(SORT_COLUMNS)}")
        direction = (q.get("dir") or ("desc" if sort == "time" else "asc")).strip()
        if direction not in ("asc", "desc"):
            raise BadFilter("dir: asc or desc")
        page_text = (q.get("page") or "1").strip()
        if not (page_text.isascii() and page_text.isdigit() and len(page_text) <= 7) or int(page_text) < 1:
            raise BadFilter("page: a page number")
        size_text = (q.get("size") or str(PAGE_SIZE)).strip()
        if size_text not in {str(s) for s in PAGE_SIZES}:
            raise BadFilter(f"size: one of {', '.join(str(s) for s in PAGE_SIZES)}")
        return cls(values, f.subject_id, q.get("subject") == "unmatched", -1 if f.after is None else f.after,
                   sort, direction == "desc", min(int(page_text), MAX_PAGE), int(size_text))

    @classmethod
    def from_request(cls, request: web.Request) -> LogQuery:
        return cls.parse(request.query, request.query.getall("subject_id", []))

    def filter_pairs(self) -> list[tuple[str, str]]:
        out = list(self.values.items()) + [("subject_id", s) for s in self.subject_ids]
        if self.subject_unmatched:
            out.append(("subject", "unmatched"))
        return out

    def pairs(self, *, after: int | None = None, page: int | None = None, sort: str | None = None,
              desc: bool | None = None) -> list[tuple[str, str]]:
        out = self.filter_pairs()
        sort = self.sort if sort is None else sort
        desc = self.desc if desc is None else desc
        if sort != "time" or not desc:
            out += [("sort", sort), ("dir", "desc" if desc else "asc")]
        if self.size != PAGE_SIZE:
            out.append(("size", str(self.size)))
        page = self.page if page is None else page
        if page > 1:
            out.append(("page", str(page)))
        if after is not None and after >= 0:
            out.append(("after", str(after)))
        return out

    def qs(self, *, after: int | None = None, page: int | None = None) -> str:
        return urlencode(self.pairs(after=after, page=page))

    def filter_qs(self) -> str:
        return urlencode(self.filter_pairs())

    def sort_qs(self, column: str) -> str:
        """The link of a column heading: sorted by it (the other way round if it already is), page 1."""
        if column == self.sort:
            desc = not self.desc
        else:
            desc = column == "time"
        return urlencode(self.pairs(page=1, sort=column, desc=desc))

    def sorted_as(self, column: str) -> str:
        """``aria-sort`` of a column heading."""
        if column != self.sort:
            return "none"
        return "descending" if self.desc else "ascending"

    def without_subject(self) -> LogQuery:
        return replace(self, subject_ids=(), subject_unmatched=False, after=-1, page=1)

    def summary(self) -> str:
        """For the access log: which filters, by name and value (subject ids, never identifiers)."""
        return " ".join(f"{k}={v}" for k, v in self.filter_pairs())[:1000] or "all"

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

    def search(self) -> LogSearch:
        """The store's search for these filters and this sort."""
        v = self.values
        instrument = v.get("instrument")
        return LogSearch(
            recipient=v.get("recipient"), country=v.get("country"), category=v.get("category"),
            outcome=v.get("outcome"), purpose=v.get("purpose"),
            instrument=None if instrument is None else ("" if instrument == NO_INSTRUMENT else instrument),
            third_country=None if "third_country" not in v else v["third_country"] == "true",
            since=_day_start(v["since"]) if "since" in v else None,
            until=_day_start(v["until"], plus_days=1) if "until" in v else None,
            subject_ids=self.subject_ids, domain=v.get("domain"), order_ref=v.get("order_ref"),
            sort=self.sort, descending=self.desc,
        )


def _day_start(day: str, plus_days: int = 0) -> str | None:
    """The stored form of midnight UTC ``plus_days`` after ``day``; None past the last day there is
    (``until=9999-12-31`` is the end of time, not an overflow)."""
    try:
        d = dt.date.fromisoformat(day) + dt.timedelta(days=plus_days)
    except OverflowError:
        return None
    return dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


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
        "sizes": PAGE_SIZES,
        "category_words": CATEGORY_WORDS,
        "outcome_words": OUTCOME_WORDS,
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


async def subject_names(
    svc: Services, session: Session, subject_ids: Iterable[str], *, where: str,
    seen: Iterable[DisclosureEntry] = (),
) -> dict[str, SubjectName]:
    """Names for the privacy role (each read recorded), pseudonyms for everyone else."""
    ids = [s for s in dict.fromkeys(subject_ids) if s]
    secret = svc.registrations.secret
    if session.role is Role.PRIVACY:
        return await read_names(svc.store, svc.ledger, secret, ids, actor=session.name, where=where,
                                seen=list(seen))
    return labels(secret, ids)


def page_numbers(current: int, last: int) -> list[int | None]:
    """The page links to show: the first, the last and two either side of ``current``; None for a gap."""
    keep = sorted({1, last, *range(max(1, current - 2), min(last, current + 2) + 1)})
    out: list[int | None] = []
    for n in keep:
        if out and out[-1] is not None and n - (out[-1] or 0) > 1:
            out.append(None)
        out.append(n)
    return out


def _log_context(q: LogQuery, policies: PolicySet) -> dict[str, Any]:
    return {"q": q, "f": q.values, "opts": filter_options(policies), "sort_columns": SORT_COLUMNS,
            "sort_words": SORT_WORDS}


def _empty() -> dict[str, Any]:
    return {"rows": [], "names": {}, "totals": {}, "total": 0, "pages": [], "last_page": 1, "first_row": 0}


@page(*STAFF_ROLES)
async def log_page(request: web.Request, session: Session) -> web.StreamResponse:
    svc = services(request)
    policies = svc.registrations.policies
    try:
        q = LogQuery.from_request(request)
    except BadFilter as err:
        return render(request, "disclosures.html", session, status=400, error=err.detail, label=instrument_label,
                      **_empty(), **_log_context(LogQuery(), policies))
    if q.subject_unmatched:
        return render(request, "disclosures.html", session, error=None, label=instrument_label, **_empty(),
                      **_log_context(q, policies))
    wb = workbench(svc.store)
    s = q.search()
    totals = await wb.log_totals(s)
    total = sum(totals.values())
    last_page = max(1, math.ceil(total / q.size))
    q = replace(q, page=min(q.page, last_page))
    rows = await wb.log_search(s, offset=(q.page - 1) * q.size, limit=q.size)
    names = await subject_names(svc, session, (r.entry.subject_id or "" for r in rows), where="disclosure-log",
                                seen=[r.entry for r in rows])
    return render(request, "disclosures.html", session, error=None, rows=rows, names=names, totals=totals,
                  total=total, pages=page_numbers(q.page, last_page), last_page=last_page,
                  first_row=(q.page - 1) * q.size + 1, label=instrument_label, **_log_context(q, policies))


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
    q = replace(q, page=1)
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
    return render(request, "disclosures.html", session, error=None, label=instrument_label,
                  subject_choices=choices, **_empty(), **_log_context(q, services(request).registrations.policies))


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
    reg = await svc.store.registration(entry.registration_id)
    subject = labels(svc.registrations.secret, [entry.subject_id]).get(entry.subject_id) if entry.subject_id else None
    return render(request, "disclosure.html", session, e=entry, values=values, values_state=state,
                  instrument=instrument_label(entry), domain=(reg or {}).get("domain"),
                  order_ref=(reg or {}).get("order_ref"), subject=subject, words=filter_options(
                      svc.registrations.policies))


# -- exports -----------------------------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "seq", "id", "recorded_at", "attempted_at", "domain", "order_ref", "subject", "registration_id", "subject_id",
    "recipient", "recipient_name", "recipient_country", "category", "basis", "article", "instrument", "purpose",
    "outcome", "command", "retryable", "fields_sent", "fields_withheld", "result_code", "reason", "sv_trid",
    "cl_trid", "epp_objects", "payload_digest", "values_purged",
)
#: The column added when the privacy role asks for names (each one read is recorded).
NAME_COLUMN = "subject_name"
#: Kept for callers of the previous export: the columns it had, all still present.
CSV_COLUMNS = tuple(c for c in EXPORT_COLUMNS if c not in ("domain", "order_ref", "subject", "basis"))


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # a spreadsheet must not read a cell as a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_row(row: LogRow, subject: SubjectName | None, *, names: bool, words: Mapping[str, str]) -> list[str]:
    """Metadata, the domain and the subject's pseudonym; the name only when asked for; never the values."""
    e = row.entry
    cells: list[Any] = [
        e.leaf_index, e.id, e.recorded_at, e.attempted_at, row.domain, row.order_ref,
        f"Subject {subject.code}" if subject else "", e.registration_id, e.subject_id, e.recipient,
        e.recipient_name, e.recipient_country, e.category, words.get(e.category, e.category), e.article,
        instrument_label(e), e.purpose, e.outcome, e.command, "true" if e.retryable else "false", " ".join(e.fields),
        " ".join(e.withheld), e.result_code, e.reason, e.sv_trid, e.cl_trid,
        " ".join(f"{k}={v}" for k, v in sorted(e.objects.items())), e.payload_digest,
        "true" if e.values_purged else "false",
    ]
    if names:
        cells.append((subject.name or "") if subject else "")
    return [_cell(v) for v in cells]


async def export_rows(svc: Services, session: Session, q: LogQuery, *, names: bool) -> AsyncIterator[list[str]]:
    """Every matching entry in leaf order, batch by batch, as export cells."""
    wb = workbench(svc.store)
    s = replace(q.search(), sort="time", descending=False)
    words = CATEGORY_WORDS  # in English: a column other programs read
    offset = 0
    while True:
        batch = await wb.log_search(s, offset=offset, limit=EXPORT_BATCH)
        if not batch:
            return
        ids = [r.entry.subject_id or "" for r in batch]
        subjects = (await subject_names(svc, session, ids, where="disclosures-export", seen=[r.entry for r in batch])
                    if names else labels(svc.registrations.secret, [i for i in ids if i]))
        for r in batch:
            yield export_row(r, subjects.get(r.entry.subject_id or ""), names=names, words=words)
        if len(batch) < EXPORT_BATCH:
            return
        offset += EXPORT_BATCH


def _export_query(request: web.Request, session: Session) -> tuple[LogQuery, bool]:
    q = replace(LogQuery.from_request(request), after=-1, page=1)
    names = request.query.get("names") == "1"
    if names and session.role is not Role.PRIVACY:
        raise BadFilter("names: only the privacy role may export names")
    return q, names


def _separator(request: web.Request, session: Session) -> str:
    """``;`` for Swedish (Excel in a Swedish locale splits on it), ``,`` for English; ``sep`` overrides."""
    sep = request.query.get("sep", "").strip()
    if sep in (";", "semicolon"):
        return ";"
    if sep in (",", "comma"):
        return ","
    if sep:
        raise BadFilter("sep: semicolon or comma")
    return ";" if ui_lang(request, session) == "sv" else ","


def _stamp(svc: Services) -> str:
    return svc.registrations.clock().astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


@page(*STAFF_ROLES)
async def export_csv(request: web.Request, session: Session) -> web.StreamResponse:
    svc = services(request)
    q, names = _export_query(request, session)
    sep = _separator(request, session)
    await svc.ledger.record_access(session.name, "disclosures.exported",
                                   q.summary() if not names else f"names=1 {q.summary()}"[:1000], None)
    # The first row is read before the response starts, so a query that cannot run at all (store
    # unavailable, a row that does not decode) is an error page.  A failure after the start cannot be
    # one any more: the page wrapper and the problem middleware then end the connection without the
    # final chunk (``gateway.http.problems.abandon``), and the client sees an incomplete download.
    rows = export_rows(svc, session, q, names=names)
    first = await anext(rows, None)
    resp = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="disclosures-{_stamp(svc)}.csv"',
    })
    secure_headers(resp)
    await resp.prepare(request)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=sep, lineterminator="\r\n")
    buf.write("\ufeff")  # so Excel reads UTF-8 (å, ä, ö, ł) instead of the locale's code page
    writer.writerow((*EXPORT_COLUMNS, NAME_COLUMN) if names else EXPORT_COLUMNS)
    n = 0
    row = first
    while row is not None:
        writer.writerow(row)
        n += 1
        if n % 500 == 0:
            await resp.write(buf.getvalue().encode())
            buf.seek(0)
            buf.truncate()
        row = await anext(rows, None)
    await resp.write(buf.getvalue().encode())
    await resp.write_eof()
    return resp


@page(*STAFF_ROLES)
async def export_xlsx(request: web.Request, session: Session) -> web.StreamResponse:
    """The same rows as an Excel workbook (xlsxwriter): text cells stay text, never formulas."""
    import xlsxwriter  # type: ignore[import-untyped]

    svc = services(request)
    q, names = _export_query(request, session)
    summary = f"format=xlsx {'names=1 ' if names else ''}{q.summary()}"[:1000]
    await svc.ledger.record_access(session.name, "disclosures.exported", summary, None)
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
                                     "strings_to_numbers": False})
    sheet = book.add_worksheet("Disclosures")
    bold = book.add_format({"bold": True})
    columns = (*EXPORT_COLUMNS, NAME_COLUMN) if names else EXPORT_COLUMNS
    for c, name in enumerate(columns):
        sheet.write_string(0, c, name, bold)
    r = 0
    async for cells in export_rows(svc, session, q, names=names):
        r += 1
        for c, value in enumerate(cells):
            if c == 0 and value.isdigit():
                sheet.write_number(r, c, int(value))
            else:
                # a text cell is never a formula: the CSV's guard apostrophe is not needed here
                guarded = value[:1] == "'" and value[1:2] in ("=", "+", "-", "@", "\t", "\r")
                sheet.write_string(r, c, value[1:] if guarded else value)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(r, 1), len(columns) - 1)
    for c, width in ((2, 28), (4, 24), (6, 18), (10, 28), (13, 30), (15, 40)):
        sheet.set_column(c, c, width)
    book.close()
    resp = web.Response(body=out.getvalue(), headers={
        "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "Content-Disposition": f'attachment; filename="disclosures-{_stamp(svc)}.xlsx"',
    })
    return resp

