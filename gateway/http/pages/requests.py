"""Data-subject requests for staff: the list (deadlines, overdue first), opening a request, and one
request with its full event log and the actions on it (Art. 15 extract, Art. 12(3) extension, Art. 18
restriction, Art. 21 objection, lifting, Art. 17 erasure, closing).

Every action is a POST form with the session's CSRF token and goes through ``RightsService``, which
writes the request event; the privacy role acts, the auditor only reads.  Identifiers a person gives
are POSTed, never put in a URL, and only used for the blind-index lookup (never stored).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal, cast

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


def detail_pairs(detail: Any) -> list[tuple[str, Any]]:
    """An event's detail as (key, value) pairs for the template (values: str or list of str)."""
    if not isinstance(detail, dict):
        return [("", str(detail))]
    out: list[tuple[str, Any]] = []
    for k, v in detail.items():
        if isinstance(v, list | tuple):
            out.append((str(k), [", ".join(f"{a}: {b}" for a, b in x.items()) if isinstance(x, dict) else str(x)
                                 for x in v]))
        elif isinstance(v, bool):
            out.append((str(k), "yes" if v else "no"))
        elif isinstance(v, dict):
            out.append((str(k), "; ".join(f"{a}: {b}" for a, b in v.items())))
        else:
            out.append((str(k), "—" if v is None else str(v)))
    return out


# -- list --------------------------------------------------------------------------------------------------

@page(*STAFF_ROLES)
async def list_page(request: web.Request, session: Session) -> web.StreamResponse:
    rights = services(request).rights
    state = request.query.get("state", "open") or "open"
    if state not in STATES:
        return render(request, "requests.html", session, status=400, rows=[], state="open",
                      error="'state' must be open, closed or all", states=STATES, due_text=due_text,
                      due_class=due_class)
    rows = await rights.list(None if state == "all" else state)
    return render(request, "requests.html", session, rows=rows, state=state, error=None, states=STATES,
                  due_text=due_text, due_class=due_class)


# -- open ------------------------------------------------------------------------------------------------

def _new_context() -> dict[str, Any]:
    return {"kinds": REQUEST_KINDS, "channels": CHANNELS, "schemes": [s.value for s in IdScheme],
            "checks": IDENTITY_CHECKS}


@page(Role.PRIVACY)
async def new_get(request: web.Request, session: Session) -> web.StreamResponse:
    return render(request, "request_new.html", session, f={"kind": "access", "channel": "email",
                                                           "verified_by": session.name},
                  error=None, **_new_context())


@page(Role.PRIVACY)
async def new_post(request: web.Request, session: Session) -> web.StreamResponse:
    form = await checked_form(request, session)
    keys = ("kind", "channel", "identity_check", "verified_by", "email", "national_id", "national_id_scheme",
            "domain")
    f = {k: form.get(k, "").strip() for k in keys}
    identifiers = {k: f[k] for k in ("email", "national_id", "national_id_scheme", "domain") if f[k]}
    if "national_id_scheme" in identifiers and "national_id" not in identifiers:
        del identifiers["national_id_scheme"]
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
    restrictions: list[dict[str, Any]] = []
    if req.get("subject_id"):
        restrictions = await rights.store.restrictions(str(req["subject_id"]))
    pols = rights.policies.recipients
    return render(
        request, "request.html", session, status=status, req=req, data=data, error=error, notice=notice,
        restrictions=restrictions, recipients=sorted((rid, p.name) for rid, p in pols.items()),
        marketing=sorted(rid for rid, p in pols.items() if "marketing" in p.purposes),
        can_act=session.role is Role.PRIVACY, erase_word=ERASE_WORD, due_text=due_text, due_class=due_class(req),
        pairs=detail_pairs, subject_ids=subject_ids(req), f={}, schemes=[s.value for s in IdScheme],
    )


def subject_ids(req: dict[str, Any]) -> list[str]:
    ids = [str(s) for s in (req.get("data") or {}).get("subject_ids") or []]
    if req.get("subject_id") and req["subject_id"] not in ids:
        ids.insert(0, str(req["subject_id"]))
    return ids


NOTICES = {
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
    elif action == "rectify":
        if not (await rights.get(rid)).get("subject_id"):  # said as a form problem, not the API's 404
            raise BadInput("no data subject was found for this request")
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


ACTIONS = {"extend": "extended", "restrict": "restricted", "object": "objected", "lift": "lifted",
           "erase": "erased", "rectify": "rectified", "close": "closed"}


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
    except InputError as err:
        return await _detail(request, session, status=err.status, error=err.detail)
    extract = await rights.extract(rid, session.name, lang)
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
