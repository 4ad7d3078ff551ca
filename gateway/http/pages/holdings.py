"""Who holds a data subject's data now (``/ui/subjects/{subject_id}/holdings``), for privacy staff and
auditors: per recipient the registry contacts, domains and partner copies, each with since when, which
fields and what ends it, and our own copy's retention dates.  The same holdings as the API, the Art. 15
letter and erasure (``gateway.services.holdings``), in the words of the letter: in the page's language, or
the other one (``?lang=sv|en``) to see what the data subject will read.

Nothing on the page is a value: ids, field names, dates and reasons.  Nothing is decrypted, so no read is
written to the access log.
"""

from __future__ import annotations

from aiohttp import web

from gateway.http.context import services
from gateway.http.pages.core import STAFF_ROLES, page, render, ui_lang
from gateway.http.pages.session import Session
from gateway.i18n import SUPPORTED, Lang
from gateway.rights.texts import HOLDINGS

PATH = "/subjects/{subject_id}/holdings"


def _lang(request: web.Request, session: Session) -> Lang:
    asked = request.query.get("lang")
    return asked if asked in SUPPORTED else ui_lang(request, session)  # type: ignore[return-value]


@page(*STAFF_ROLES)
async def holdings_page(request: web.Request, session: Session) -> web.StreamResponse:
    lang = _lang(request, session)
    subject_id = request.match_info["subject_id"]
    held = await services(request).rights.holdings(subject_id, lang)  # NotFound -> the 404 page
    return render(request, "holdings.html", session, h=held, hl_lang=lang, HL=HOLDINGS[lang], subject_id=subject_id)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(PATH, holdings_page)
