"""Who read what: every decryption, export, extract and staff action the access log holds, by whom and
when, filterable by person, kind, data subject and date, newest first, in numbered pages.

The access log is recorded by every path that reads personal data (``Ledger.record_access``); this
page only reads it back.  Subjects are shown by their pseudonym (a link to their disclosures), never
by name: reading the list of reads must not itself decrypt anything.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.errors import BadFilter
from gateway.http.context import services
from gateway.http.pages.core import STAFF_ROLES, page, render
from gateway.http.pages.disclosures import PAGE_SIZE, PAGE_SIZES, page_numbers, workbench
from gateway.http.pages.session import Session
from gateway.services.workbench import labels
from gateway.store.workbench import AccessSearch

#: The kinds of access in words (msgids); an action not listed is shown as recorded.
ACTION_WORDS: Mapping[str, str] = {
    "disclosure.values_read": "Values of a disclosure decrypted",
    "subject.name_read": "Name of a data subject decrypted",
    "request.subject_read": "A request's data subject read",
    "disclosures.exported": "Disclosure log exported",
    "rights.extract": "Art. 15 extract made",
    "outbox.retry": "Parked delivery retried",
    "outbox.cancel": "Parked delivery cancelled",
}
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def action_words(action: str) -> str:
    if action.startswith("address_lookup:"):
        return "Address lookup"
    return ACTION_WORDS.get(action, action)


def object_link(action: str, object_id: str) -> str | None:
    """Where the object of an access is shown, if it has a page."""
    if action == "disclosure.values_read" and _HEX32.match(object_id):
        return f"/ui/disclosures/{object_id}"
    if action == "request.subject_read" and _HEX32.match(object_id):
        return f"/ui/requests/{object_id}"
    if action == "rights.extract" and _HEX32.match(object_id):
        return f"/ui/requests/{object_id}"
    return None


def _day(q: Mapping[str, str], name: str, plus_days: int = 0) -> tuple[str, str | None]:
    text = (q.get(name) or "").strip()
    if not text:
        return "", None
    try:
        day = dt.date.fromisoformat(text) if len(text) == 10 and text.isascii() else None
    except ValueError:
        day = None
    if day is None:
        raise BadFilter(f"{name}: a date, YYYY-MM-DD")
    try:
        d = day + dt.timedelta(days=plus_days)
    except OverflowError:
        return text, None
    return text, dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


@dataclass(frozen=True)
class AccessQuery:
    values: Mapping[str, str]
    search: AccessSearch
    page: int = 1
    size: int = PAGE_SIZE

    @classmethod
    def parse(cls, q: Mapping[str, str]) -> AccessQuery:
        values: dict[str, str] = {}
        for name, pattern in (("actor", _NAME), ("action", _NAME), ("subject_id", _HEX32)):
            v = (q.get(name) or "").strip()
            if v:
                if not pattern.match(v):
                    raise BadFilter(f"{name}: not a valid value")
                values[name] = v
        since_text, since = _day(q, "since")
        until_text, until = _day(q, "until", plus_days=1)
        if since_text:
            values["since"] = since_text
        if until_text:
            values["until"] = until_text
        page_text = (q.get("page") or "1").strip()
        if not (page_text.isascii() and page_text.isdigit() and len(page_text) <= 7) or int(page_text) < 1:
            raise BadFilter("page: a page number")
        size_text = (q.get("size") or str(PAGE_SIZE)).strip()
        if size_text not in {str(s) for s in PAGE_SIZES}:
            raise BadFilter(f"size: one of {', '.join(str(s) for s in PAGE_SIZES)}")
        search = AccessSearch(values.get("actor"), values.get("action"), values.get("subject_id"), since, until)
        return cls(values, search, int(page_text), int(size_text))

    def qs(self, *, page: int | None = None) -> str:
        pairs = list(self.values.items())
        if self.size != PAGE_SIZE:
            pairs.append(("size", str(self.size)))
        page = self.page if page is None else page
        if page > 1:
            pairs.append(("page", str(page)))
        return urlencode(pairs)


@page(*STAFF_ROLES)
async def access_page(request: web.Request, session: Session) -> web.StreamResponse:
    svc = services(request)
    wb = workbench(svc.store)
    actors, actions = await wb.access_facets()
    ctx: dict[str, Any] = {"actors": actors, "actions": actions, "words": action_words, "sizes": PAGE_SIZES,
                           "link": object_link}
    try:
        q = AccessQuery.parse(request.query)
    except BadFilter as err:
        return render(request, "access.html", session, status=400, error=err.detail, rows=[], total=0, pages=[],
                      q=AccessQuery({}, AccessSearch()), f={}, subjects={}, last_page=1, first_row=0, **ctx)
    total = await wb.access_count(q.search)
    last_page = max(1, math.ceil(total / q.size))
    q = AccessQuery(q.values, q.search, min(q.page, last_page), q.size)
    rows = await wb.access_search(q.search, offset=(q.page - 1) * q.size, limit=q.size)
    subjects = labels(svc.registrations.secret, [r["subject_id"] for r in rows if r["subject_id"]])
    return render(request, "access.html", session, error=None, rows=rows, total=total, q=q, f=q.values,
                  subjects=subjects, pages=page_numbers(q.page, last_page), last_page=last_page,
                  first_row=(q.page - 1) * q.size + 1, **ctx)
