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

Once confirmed, the page says whom the request is about (name, e-mail, domains: decrypted for the privacy
role, each read in the access log; a pseudonym for auditors) and offers the action that fits the request's
kind (``gateway.rights.casework.KIND_ACTIONS``), plus extending and closing.  The rectification form starts
from the person's current values and, when a field is invalid, comes back with what was typed and the
message next to that field.  Requests have an assignee (a privacy staff account) and internal notes
(request events of kind ``note``, which no letter reads); the list starts with the requests due within a
week or overdue, each deadline with its weekday and the Swedish day off it was moved from.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import gettext
import re
from typing import Any, Literal, cast
from urllib.parse import urlencode

from aiohttp import web
from babel.dates import format_date
from markupsafe import Markup
from multidict import MultiDictProxy

from gateway.auth import Role
from gateway.errors import BadInput, ConfirmationMissing, GatewayError, InputError
from gateway.http.context import services
from gateway.http.pages.core import N_, STAFF_ROLES, Handler, checked_form, page, render, ui_gettext, ui_lang
from gateway.http.pages.rights import registrant_from_form
from gateway.http.pages.session import Session
from gateway.http.problems import json_response
from gateway.i18n import gettext_for
from gateway.models import IdScheme
from gateway.rights.casework import (
    FORM_FIELDS,
    NOTE_LIMIT,
    REMINDER_DAYS,
    CurrentValues,
    actions_for,
    error_message,
    field_of,
    form_values,
)
from gateway.rights.deadlines import extension_refusal
from gateway.rights.service import REQUEST_KINDS, RequestKind
from gateway.services.workbench import labels

CHANNELS = ("email", "letter", "web_form", "phone", "in_person")
#: The identifiers the form takes, in the service's names (``street`` one line per line of the address).
IDENTIFIER_FIELDS = ("email", "national_id", "national_id_scheme", "phone", "name", "street", "postal_code",
                     "country", "contact_id", "domain")
STATES = ("open", "closed", "all")
ERASE_WORD = "ERASE"
DUE_SOON_DAYS = 7
#: The message ids as they are (English): the texts' language when no page language is given.
_ENGLISH = gettext.NullTranslations()
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


def due_text(days_left: int | None, tr: gettext.NullTranslations = _ENGLISH) -> str:
    """Days to the deadline in words, in ``tr``'s language."""
    if days_left is None:
        return "—"
    if days_left < 0:
        return tr.ngettext("%(num)d day overdue", "%(num)d days overdue", -days_left) % {"num": -days_left}
    if days_left == 0:
        return tr.gettext("due today")
    return tr.ngettext("%(num)d day left", "%(num)d days left", days_left) % {"num": days_left}


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


def subject_state(row: dict[str, Any], tr: gettext.NullTranslations = _ENGLISH) -> str:
    """Where a request stands on who it is about, for the list."""
    confirmed = row.get("confirmed_subject_ids")
    if confirmed is not None:
        return tr.gettext("confirmed (%(num)d)") % {"num": len(confirmed)} if confirmed else tr.gettext(
            "confirmed: none")
    n = int(row.get("candidate_count") or 0)
    return (tr.ngettext("%(num)d candidate to confirm", "%(num)d candidates to confirm", n) % {"num": n} if n
            else tr.gettext("no candidate found"))


#: The steps of a request's event log, in words (the stored action stays the machine's name).
EVENT_WORDS: dict[str, str] = {
    "opened": N_("Opened"), "candidates_found": N_("Candidate records found"),
    "no_candidates": N_("No candidate records"), "subjects_confirmed": N_("Records confirmed"),
    "extended": N_("Deadline extended"), "extract": N_("Extract made"), "restricted": N_("Processing restricted"),
    "objected": N_("Objection recorded"), "lifted": N_("Restriction lifted"), "erased": N_("Erased"),
    "rectified": N_("Rectified"), "closed": N_("Closed"), "note": N_("Note"), "assigned": N_("Assigned"),
    "deletion_requested": N_("Deletion requested"), "rectification_pushed": N_("Rectification sent"),
}


def _texts(request: web.Request, session: Session) -> dict[str, Any]:
    """``due_text`` and ``subject_state`` in the page's language, for the templates."""
    tr = gettext_for(ui_lang(request, session), "ui")
    return {"due_text": functools.partial(due_text, tr=tr), "subject_state": functools.partial(subject_state, tr=tr)}


# -- list --------------------------------------------------------------------------------------------------

@page(*STAFF_ROLES)
async def list_page(request: web.Request, session: Session) -> web.StreamResponse:
    rights = services(request).rights
    state = request.query.get("state", "open") or "open"
    if state not in STATES:
        return render(request, "requests.html", session, status=400, rows=[], state="open",
                      error=ui_gettext(request, session)("'state' must be open, closed or all"), states=STATES,
                      due_class=due_class, reminders=[], deadlines={}, day=str, reminder_days=REMINDER_DAYS,
                      mine=[], **_texts(request, session))
    rows = await rights.list(None if state == "all" else state)
    lang = ui_lang(request, session)
    soon = await rights.reminders()
    views = {r["id"]: rights.deadline_view(r) for r in [*rows, *soon] if r["state"] == "open"}
    return render(request, "requests.html", session, rows=rows, state=state, error=None, states=STATES,
                  due_class=due_class, **_texts(request, session), reminders=soon,
                  deadlines=views, day=lambda d: long_date(d, lang), reminder_days=REMINDER_DAYS,
                  mine=[r for r in soon if r.get("assignee") == session.name])


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
                  notice: str | None = None, typed: dict[str, str] | None = None,
                  field_errors: dict[str, str] | None = None) -> web.Response:
    rights = services(request).rights
    req = await rights.get(_request_id(request))
    data = req.get("data") or {}
    confirmed = req.get("confirmed_subject_ids")
    whom = await _whom(request, session, req)
    prefill: dict[str, str] = typed if typed is not None else next(
        (form_values(w["values"]) for w in whom if w.get("values")), {})
    lang = ui_lang(request, session)
    restrictions: list[dict[str, Any]] = []
    for sid in confirmed or []:
        restrictions += await rights.store.restrictions(sid)
    pols = rights.policies.recipients
    log_query = urlencode([("subject_id", s) for s in confirmed or []])
    return render(
        request, "request.html", session, status=status, req=req, data=data, error=error, notice=notice,
        restrictions=restrictions, recipients=sorted((rid, p.name) for rid, p in pols.items()),
        marketing=sorted(rid for rid, p in pols.items() if "marketing" in p.purposes),
        can_act=session.role is Role.PRIVACY, erase_word=ERASE_WORD, due_text=_texts(request, session)["due_text"],
        event_words=EVENT_WORDS,
        due_class=due_class(req),
        pairs=detail_pairs, confirmed=confirmed, subject_ids=confirmed or [], candidates=req["candidates"],
        log_query=log_query, f=prefill, schemes=[s.value for s in IdScheme], whom=whom,
        fits=actions_for(str(req["kind"])), field_errors=field_errors or {},
        assignees=[a.name for a in await rights.assignees()], deadline=rights.deadline_view(req),
        day=lambda d: long_date(d, lang), notes=[e for e in req["events"] if e["action"] == "note"],
        note_limit=NOTE_LIMIT, can_extend=extension_refusal(
            dt.datetime.fromisoformat(str(req["opened_at"])).date(), rights.clock().date(),
            already_extended=bool(data.get("extension"))) is None,
    )


async def _whom(request: web.Request, session: Session, req: dict[str, Any]) -> list[dict[str, Any]]:
    """Whom the request is about, per confirmed record: name, e-mail and domains, decrypted for the privacy
    role (each read recorded in the access log); a pseudonymous label and the domains for auditors."""
    confirmed = req.get("confirmed_subject_ids") or []
    domains = {c["subject_id"]: c["domains"] for c in req["candidates"]}
    svc = services(request)
    names = labels(svc.registrations.secret, confirmed)
    values: dict[str, CurrentValues | None] = {}
    if session.role is Role.PRIVACY:
        values = await svc.rights.current_values(str(req["id"]), session.name)
    out = []
    for sid in confirmed:
        current = values.get(sid)
        v = current.values if current is not None else {}
        out.append({"subject_id": sid, "label": names[sid].code, "values": v,
                    "transformed_only": current.transformed_only if current is not None else [],
                     "name": v.get("name"), "email": v.get("email"), "organisation": v.get("organisation"),
                     "domains": domains.get(sid, []), "erased": sid in values and values[sid] is None})
    return out


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
    "assigned": "The assignee was changed.",
    "noted": "The note was added to the request's log. Notes are internal: they never reach a letter.",
}


@page(*STAFF_ROLES)
async def detail_page(request: web.Request, session: Session) -> web.StreamResponse:
    done = request.query.get("done")
    notice = NOTICES.get(done) if done else None
    return await _detail(request, session, notice=ui_gettext(request, session)(notice) if notice else None)


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
    elif action == "assign":
        assignee = session.name if form.get("me", "") == "yes" else form.get("assignee", "").strip()
        await rights.assign(rid, who, assignee or None)
    elif action == "note":
        await rights.add_note(rid, who, form.get("text", ""))
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
            _ = ui_gettext(request, session)
            if action == "rectify":  # what was typed stays, each problem next to its field
                typed = {k: form.get(k, "") for k in FORM_FIELDS}
                problems = field_errors(err)
                return await _detail(request, session, status=err.status, typed=typed, field_errors=problems,
                                     error=_("The correction was not sent: check the fields marked below.")
                                     if problems else _(err.detail))
            return await _detail(request, session, status=err.status, error=f"{_(err.title)}: {_(err.detail)}"
                                 if err.detail != err.title else _(err.title))
        raise web.HTTPSeeOther(f"/ui/requests/{_request_id(request)}?done={done}")

    handler.__name__ = f"{action}_post"
    return handler


ACTIONS = {"subjects": "confirmed", "extend": "extended", "restrict": "restricted", "object": "objected",
           "lift": "lifted", "erase": "erased", "rectify": "rectified", "close": "closed", "assign": "assigned",
           "note": "noted"}


def field_errors(err: InputError) -> dict[str, str]:
    """A validation problem's errors by rectification form field (the first message per field)."""
    out: dict[str, str] = {}
    for e in err.extra.get("errors", []) if isinstance(err.extra.get("errors"), list) else []:
        name = field_of(e.get("loc", []))
        if name and name not in out:
            out[name] = error_message(str(e.get("msg", "")))
    return out


def long_date(day: dt.date, lang: str) -> str:
    """A date with its weekday, in the page's language ("måndag 4 januari 2027")."""
    return format_date(day, format="full", locale=lang)


# -- the Art. 15 extract ------------------------------------------------------------------------------------

_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S | re.I)


def letter_body(html: str) -> Markup:
    """The letter ``render_html`` made (autoescaped by its own template), without its document shell, so
    it sits in the staff page under our CSP (its inline <style> is replaced by ui.css)."""
    m = _BODY.search(html)
    if m is None:  # pragma: no cover - the letter template always has a body
        raise GatewayError("the extract letter could not be rendered")
    return Markup(m.group(1))  # noqa: S704 - produced by the rights service's autoescaping template


def _letter_lang(value: str | None) -> Literal["sv", "en"] | None:
    """The letter's language from the form or query: none (or "auto") means the registrant's recorded one."""
    return None if value in (None, "", "auto") else _lang(value)


@page(Role.PRIVACY)
async def extract_post(request: web.Request, session: Session) -> web.StreamResponse:
    form = await checked_form(request, session)
    rights = services(request).rights
    rid = _request_id(request)
    try:
        lang = _letter_lang(form.get("lang"))
        rights.check_letter_ready()  # before anything is read: no extract is made for a letter that cannot be
        extract = await rights.extract(rid, session.name, lang)
        letter = letter_body(rights.render_html(extract))
    except InputError as err:
        return await _detail(request, session, status=err.status, error=err.detail)
    registrations: dict[str, dict[str, Any]] = {}
    for sid in extract["subject_ids"]:
        for reg in await rights.store.subject_registrations(sid):
            registrations[reg["id"]] = reg
    return render(request, "extract.html", session, x=extract, letter=letter, letter_lang=extract["lang"], rid=rid,
                  warnings=rights.letter_warnings(extract, ui_gettext(request, session)),
                  registrations=sorted(registrations.values(), key=lambda r: r["created_at"]))


@page(Role.PRIVACY)
async def extract_download(request: web.Request, session: Session) -> web.StreamResponse:
    rights = services(request).rights
    rid = _request_id(request)
    lang = _letter_lang(request.query.get("lang"))
    fmt = request.match_info["fmt"]
    if fmt != "json":
        rights.check_letter_ready()
    extract = await rights.extract(rid, session.name, lang)
    stamp = rights.clock().astimezone(dt.UTC).strftime("%Y%m%d")
    name = f"extract-{rid}-{extract['lang']}-{stamp}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "json":
        return json_response(extract, headers=headers)
    # printing takes a second or more of CPU: off the event loop, so other requests are not held up
    body = await asyncio.to_thread(rights.render_pdf, extract)
    return web.Response(body=body, content_type="application/pdf", headers=headers)
