"""Data-subject requests for staff: the list (deadlines, overdue first), opening a request, and one
request with its candidate records, its full event log and the actions on it (confirming whose records
these are, Art. 15 extract, Art. 12(3) extension, Art. 18 restriction, Art. 21 objection, lifting,
Art. 17 erasure, Art. 16 rectification, closing).

Every action is a POST form with the session's CSRF token and goes through ``RightsService``, which
writes the request event; the privacy role acts, the auditor only reads.  Identifiers a person gives
are POSTed, never put in a URL, and only used for the blind-index lookup (never stored).

The identifiers only list candidates; staff tick the records that are the person's (a lone candidate
matched by a strong identifier comes pre-ticked) and confirm, and only then are the actions on the
person's data offered.  The service refuses them before confirmation whatever the page shows.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal, cast
from urllib.parse import urlencode

from aiohttp import web
from markupsafe import Markup
from multidict import MultiDictProxy

from gateway.auth import Role
from gateway.errors import BadInput, ConfirmationMissing, GatewayError, InputError
from gateway.http.context import services
from gateway.http.pages.core import STAFF_ROLES, Handler, checked_form, page, render
from gateway.http.pages.rights import registrant_from_form
from gateway.http.pages.session import Session
from gateway.http.problems import json_response
from gateway.models import IdScheme
from gateway.rights.service import REQUEST_KINDS, RequestKind

CHANNELS = ("email", "letter", "web_form", "phone", "in_person")
#: The identifiers the form takes, in the service's names (``street`` one line per line of the address).
IDENTIFIER_FIELDS = ("email", "national_id", "national_id_scheme", "phone", "name", "street", "postal_code",
                     "country", "contact_id", "domain")
STATES = ("open", "closed", "all")
ERASE_WORD = "ERASE"
DUE_SOON_DAYS = 7
IDENTITY_CHECKS = ("BankID signature", "Reply from the e-mail address on record", "ID document checked in person",
                   "Signed letter with a copy of an ID document")


def _lang(value: str | None) -> Literal["sv", "en"]:
    if value == "en":
        return "en"
    if value in (None, "", "sv"):
        return "sv"
    raise BadInput("'lang' must be 'sv' or 'en'")


def _request_id(request: web.Request) -> str:
    return request.match_info["request_id"]


def due_text(days_left: int | None) -> str:
    if days_left is None:
        return "—"
    if days_left < 0:
        return f"{-days_left} day{'s' if days_left != -1 else ''} overdue"
    if days_left == 0:
        return "due today"
    return f"{days_left} day{'s' if days_left != 1 else ''} left"


def due_class(row: dict[str, Any]) -> str:
    d = row.get("days_left")
    if row.get("state") == "closed" or d is None:
        return "closed"
    if d < 0:
        return "overdue"
    return "due-soon" if d <= DUE_SOON_DAYS else "due-later"


def _plain(value: Any) -> str:
    return " + ".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)


def detail_pairs(detail: Any) -> list[tuple[str, Any]]:
    """An event's detail as (key, value) pairs for the template (values: str or list of str)."""
    if not isinstance(detail, dict):
        return [("", str(detail))]
    out: list[tuple[str, Any]] = []
    for k, v in detail.items():
        if isinstance(v, list | tuple):
            out.append((str(k), [", ".join(f"{a}: {_plain(b)}" for a, b in x.items()) if isinstance(x, dict)
                                 else str(x) for x in v]))
        elif isinstance(v, bool):
            out.append((str(k), "yes" if v else "no"))
        elif isinstance(v, dict):
            out.append((str(k), "; ".join(f"{a}: {b}" for a, b in v.items())))
        else:
            out.append((str(k), "—" if v is None else str(v)))
    return out


def subject_state(row: dict[str, Any]) -> str:
    """Where a request stands on who it is about, for the list."""
    confirmed = row.get("confirmed_subject_ids")
    if confirmed is not None:
        return f"confirmed ({len(confirmed)})" if confirmed else "confirmed: none"
    n = int(row.get("candidate_count") or 0)
    return f"{n} candidate{'s' if n != 1 else ''} to confirm" if n else "no candidate found"


# -- list --------------------------------------------------------------------------------------------------

@page(*STAFF_ROLES)
async def list_page(request: web.Request, session: Session) -> web.StreamResponse:
    rights = services(request).rights
    state = request.query.get("state", "open") or "open"
    if state not in STATES:
        return render(request, "requests.html", session, status=400, rows=[], state="open",
                      error="'state' must be open, closed or all", states=STATES, due_text=due_text,
                      due_class=due_class, subject_state=subject_state)
    rows = await rights.list(None if state == "all" else state)
    return render(request, "requests.html", session, rows=rows, state=state, error=None, states=STATES,
                  due_text=due_text, due_class=due_class, subject_state=subject_state)


# -- open ------------------------------------------------------------------------------------------------

def _new_context() -> dict[str, Any]:
    return {"kinds": REQUEST_KINDS, "channels": CHANNELS, "schemes": [s.value for s in IdScheme],
            "checks": IDENTITY_CHECKS}


@page(Role.PRIVACY)
async def new_get(request: web.Request, session: Session) -> web.StreamResponse:
    return render(request, "request_new.html", session, f={"kind": "access", "channel": "email",
                                                           "verified_by": session.name, "country": "SE"},
                  error=None, **_new_context())


@page(Role.PRIVACY)
async def new_post(request: web.Request, session: Session) -> web.StreamResponse:
    form = await checked_form(request, session)
    f = {k: form.get(k, "").strip() for k in ("kind", "channel", "identity_check", "verified_by", *IDENTIFIER_FIELDS)}
    identifiers = {k: f[k] for k in IDENTIFIER_FIELDS if f[k]}
    if "national_id_scheme" in identifiers and "national_id" not in identifiers:
        del identifiers["national_id_scheme"]
    passport = identifiers.get("national_id_scheme") == IdScheme.PASSPORT.value
    if "country" in identifiers and not (passport or identifiers.keys() & {"name", "street", "postal_code"}):
        del identifiers["country"]  # the form's default country is used only with an address or a passport
    try:
        if f["kind"] not in REQUEST_KINDS:
            raise BadInput("choose the kind of request")
        out = await services(request).rights.open_request(
            kind=cast(RequestKind, f["kind"]), channel=f["channel"], identity_check=f["identity_check"],
            verified_by=f["verified_by"], actor=session.name, identifiers=identifiers,
        )
    except InputError as err:
        fields = ", ".join(".".join(str(p) for p in e.get("loc", [])) for e in err.extra.get("errors", []))
        return render(request, "request_new.html", session, status=err.status, f=f,
                      error=err.detail + (f" ({fields})" if fields else ""), **_new_context())
    raise web.HTTPSeeOther(f"/ui/requests/{out['id']}")


# -- one request ------------------------------------------------------------------------------------------

async def _detail(request: web.Request, session: Session, *, status: int = 200, error: str | None = None,
                  notice: str | None = None) -> web.Response:
    rights = services(request).rights
    req = await rights.get(_request_id(request))
    data = req.get("data") or {}
    confirmed = req.get("confirmed_subject_ids")
    restrictions: list[dict[str, Any]] = []
    for sid in confirmed or []:
        restrictions += await rights.store.restrictions(sid)
    pols = rights.policies.recipients
    log_query = urlencode([("subject_id", s) for s in confirmed or []])
    return render(
        request, "request.html", session, status=status, req=req, data=data, error=error, notice=notice,
        restrictions=restrictions, recipients=sorted((rid, p.name) for rid, p in pols.items()),
        marketing=sorted(rid for rid, p in pols.items() if "marketing" in p.purposes),
        can_act=session.role is Role.PRIVACY, erase_word=ERASE_WORD, due_text=due_text, due_class=due_class(req),
        pairs=detail_pairs, confirmed=confirmed, subject_ids=confirmed or [], candidates=req["candidates"],
        log_query=log_query, f={}, schemes=[s.value for s in IdScheme],
    )


NOTICES = {
    "confirmed": "Confirmed. The actions below act on exactly the records ticked; the others are left alone.",
    "rectified": "The corrected data was queued, minimised, to every recipient of the old data (Art. 16, 19). "
                 "The log lists recipients that cannot be updated: tell them directly.",
    "extended": "The deadline was extended. Tell the data subject, with the reasons, within the first month.",
    "restricted": "Restriction recorded: further disclosures are refused. Art. 19: partners with an API were sent a "
                  "notice; tell the recipients marked manual or failed in the log directly.",
    "objected": "Objection recorded: disclosures in its scope are refused from now on. Art. 19 notices as for a "
                "restriction: see the log.",
    "lifted": "Restriction lifted. The data subject must have been told before (Art. 18(3)).",
    "erased": "Erased: the subject's data keys are destroyed. Partners with an API were asked to delete (see the "
              "log); follow up the other deletion requests listed below.",
    "closed": "The request is closed.",
}


@page(*STAFF_ROLES)
async def detail_page(request: web.Request, session: Session) -> web.StreamResponse:
    done = request.query.get("done")
    return await _detail(request, session, notice=NOTICES.get(done) if done else None)


async def _act(request: web.Request, session: Session, action: str, form: MultiDictProxy[str]) -> None:
    rights = services(request).rights
    rid = _request_id(request)
    who = session.name
    if action == "extend":
        await rights.extend(rid, who, form.get("reason", ""))
    elif action == "restrict":
        scope = form.get("scope", "all").strip() or "all"
        await rights.restrict(rid, who, scope)
    elif action == "object":
        scope = form.get("scope", "marketing").strip() or "marketing"
        await rights.object(rid, who, scope)
    elif action == "lift":
        restriction = form.get("restriction_id", "").strip()
        if not re.fullmatch(r"[0-9a-f]{32}", restriction):
            raise BadInput("choose the restriction to lift")
        await rights.lift(rid, restriction, who)
    elif action == "erase":
        if form.get("confirm", "").strip() != ERASE_WORD:
            raise ConfirmationMissing(f"type {ERASE_WORD} in the confirmation field to erase")
        await rights.erase(rid, who)
    elif action == "subjects":
        chosen = [s.strip() for s in form.getall("subject_id", [])]
        none = form.get("none", "").strip() == "yes"
        if none and chosen:
            raise BadInput("tick the records that are the person's, or 'none of these', not both")
        if not none and not chosen:
            raise BadInput("tick the records that are the person's, or 'none of these' if no record is")
        await rights.confirm_subjects(rid, who, chosen)
    elif action == "rectify":
        if (await rights.get(rid)).get("confirmed_subject_ids") == []:  # a form problem, not the API's 404
            raise BadInput("staff confirmed that no record is the person's: there is nothing to rectify")
        await rights.rectify(rid, who, registrant_from_form(form))
    elif action == "close":
        await rights.close(rid, who, form.get("outcome", ""))
    else:  # pragma: no cover - routes name the actions
        raise BadInput("unknown action")


def action_handler(action: str, done: str) -> Handler:
    @page(Role.PRIVACY)
    async def handler(request: web.Request, session: Session) -> web.StreamResponse:
        form = await checked_form(request, session)
        await services(request).rights.get(_request_id(request))  # 404 page for an unknown request
        try:
            await _act(request, session, action, form)
        except InputError as err:
            return await _detail(request, session, status=err.status, error=f"{err.title}: {err.detail}"
                                 if err.detail != err.title else err.title)
        raise web.HTTPSeeOther(f"/ui/requests/{_request_id(request)}?done={done}")

    handler.__name__ = f"{action}_post"
    return handler


ACTIONS = {"subjects": "confirmed", "extend": "extended", "restrict": "restricted", "object": "objected",
           "lift": "lifted", "erase": "erased", "rectify": "rectified", "close": "closed"}


# -- the Art. 15 extract ------------------------------------------------------------------------------------

_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S | re.I)


def letter_body(html: str) -> Markup:
    """The letter ``render_html`` made (autoescaped by its own template), without its document shell, so
    it sits in the staff page under our CSP (its inline <style> is replaced by ui.css)."""
    m = _BODY.search(html)
    if m is None:  # pragma: no cover - the letter template always has a body
        raise GatewayError("the extract letter could not be rendered")
    return Markup(m.group(1))  # noqa: S704 - produced by the rights service's autoescaping template


@page(Role.PRIVACY)
async def extract_post(request: web.Request, session: Session) -> web.StreamResponse:
    form = await checked_form(request, session)
    rights = services(request).rights
    rid = _request_id(request)
    try:
        lang = _lang(form.get("lang"))
        extract = await rights.extract(rid, session.name, lang)
    except InputError as err:
        return await _detail(request, session, status=err.status, error=err.detail)
    registrations: dict[str, dict[str, Any]] = {}
    for sid in extract["subject_ids"]:
        for reg in await rights.store.subject_registrations(sid):
            registrations[reg["id"]] = reg
    return render(request, "extract.html", session, x=extract, letter=letter_body(rights.render_html(extract)),
                  lang=lang, rid=rid, registrations=sorted(registrations.values(), key=lambda r: r["created_at"]))


@page(Role.PRIVACY)
async def extract_download(request: web.Request, session: Session) -> web.StreamResponse:
    rights = services(request).rights
    rid = _request_id(request)
    lang = _lang(request.query.get("lang"))
    fmt = request.match_info["fmt"]
    extract = await rights.extract(rid, session.name, lang)
    stamp = rights.clock().astimezone(dt.UTC).strftime("%Y%m%d")
    name = f"extract-{rid}-{lang}-{stamp}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "json":
        return json_response(extract, headers=headers)
    return web.Response(body=rights.render_pdf(extract), content_type="application/pdf", headers=headers)
