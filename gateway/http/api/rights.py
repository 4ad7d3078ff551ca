"""Data-subject rights endpoints (privacy role; the auditor may read requests and the Art. 30 record).

Bodies are validated strictly (unknown fields rejected); problems name fields, never values.  The
extract endpoints return decrypted personal data and are never cached.

A request is opened with what the person gave; its view lists the candidate records those identifiers
match, with how each matched.  ``POST /v1/requests/{id}/subjects`` is the staff's confirmation of which
candidates are the person's; every action on the person's data (extract, erase, restrict, object,
lift, rectify) acts on exactly those and answers ``409 subject_not_confirmed`` before.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.auth import Principal, Role, require
from gateway.errors import ValidationFailed
from gateway.http.context import principal, read_json, services, validation_problem
from gateway.http.problems import json_response
from gateway.models import Registrant, UsNexus
from gateway.rights.casework import NOTE_LIMIT, REMINDER_DAYS
from gateway.rights.service import MAX_CANDIDATES, RightsService

routes = web.RouteTableDef()

Short = Annotated[str, Field(min_length=1, max_length=200)]
M = TypeVar("M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True, frozen=True,
                              hide_input_in_errors=True)


StreetLine = Annotated[str, Field(min_length=1, max_length=255)]


class Identifiers(_Body):
    """What the person gave; any one of them lists candidates (name and address only together)."""

    email: Annotated[str, Field(min_length=3, max_length=254)] | None = None
    national_id: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    national_id_scheme: Annotated[str, Field(max_length=32)] | None = None
    contact_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    domain: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    phone: Annotated[str, Field(min_length=3, max_length=32)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    street: StreetLine | Annotated[list[StreetLine], Field(min_length=1, max_length=3)] | None = None
    postal_code: Annotated[str, Field(min_length=1, max_length=16)] | None = None
    country: Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")] | None = None

    def as_service_identifiers(self) -> dict[str, str]:
        """The given identifiers as the service takes them (street lines joined by newlines)."""
        out: dict[str, str] = {}
        for k, v in self.model_dump().items():
            if v is not None:
                out[k] = "\n".join(v) if isinstance(v, list) else v
        return out


class OpenRequest(_Body):
    kind: Literal["access", "rectification", "erasure", "restriction", "objection"]
    channel: Annotated[str, Field(min_length=1, max_length=40)]
    identity_check: Short
    verified_by: Annotated[str, Field(min_length=1, max_length=80)]
    identifiers: Identifiers


class ConfirmSubjects(_Body):
    """The candidates staff confirmed as the person's; ``[]`` says none of them is."""

    subject_ids: Annotated[list[Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]], Field(max_length=MAX_CANDIDATES)]


class ExtendBody(_Body):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class ExtractBody(_Body):
    lang: Literal["sv", "en"] = "sv"


class RestrictBody(_Body):
    scope: Annotated[str, Field(min_length=1, max_length=64)] = "all"


class ObjectBody(_Body):
    scope: Annotated[str, Field(min_length=1, max_length=64)] = "marketing"


class LiftBody(_Body):
    restriction_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class EmptyBody(_Body):
    pass


class CloseBody(_Body):
    outcome: Short


class AssignBody(_Body):
    assignee: Annotated[str, Field(min_length=1, max_length=80)] | None


class NoteBody(_Body):
    text: Annotated[str, Field(min_length=1, max_length=NOTE_LIMIT)]


class RectifyBody(_Body):
    registrant: Registrant


class ExplainBody(_Body):
    tld: Annotated[str, Field(min_length=2, max_length=63)]
    registrant: Registrant
    #: the order's .us declaration, so the explainer can tell whether .us eligibility is met
    us_nexus: UsNexus | None = None


def _rights(request: web.Request) -> RightsService:
    return services(request).rights


def _request_id(request: web.Request) -> str:
    return request.match_info["request_id"]


def _privacy(request: web.Request) -> Principal:
    p = principal(request)
    require(p, Role.PRIVACY)
    return p


def _staff(request: web.Request) -> None:
    require(principal(request), Role.PRIVACY, Role.AUDITOR)


async def _body(request: web.Request, model: type[M]) -> M:
    try:
        if not request.body_exists:
            return model.model_validate({})
        raw, _ = await read_json(request)
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_problem(exc) from None


async def _action(request: web.Request, model: type[M]) -> tuple[RightsService, str, str, M]:
    """What an action on one request needs, checked in this order: the privacy role, then the body.
    Returns the service, the request id, the actor and the validated body."""
    actor = _privacy(request).name
    body = await _body(request, model)
    return _rights(request), _request_id(request), actor, body


def _lang(request: web.Request) -> Literal["sv", "en"]:
    lang = request.query.get("lang", "sv")
    if lang == "sv":
        return "sv"
    if lang == "en":
        return "en"
    raise ValidationFailed("'lang' must be 'sv' or 'en'", errors=[{"loc": ["query", "lang"], "type": "enum"}])


_RID = "/v1/requests/{request_id}"


@routes.post("/v1/requests")
async def open_request(request: web.Request) -> web.Response:
    p = _privacy(request)
    b = await _body(request, OpenRequest)
    ids = b.identifiers.as_service_identifiers()
    out = await _rights(request).open_request(
        kind=b.kind, channel=b.channel, identity_check=b.identity_check, verified_by=b.verified_by,
        actor=p.name, identifiers=ids,
    )
    return json_response(out, status=201, headers={"Location": f"/v1/requests/{out['id']}"})


@routes.get("/v1/requests")
async def list_requests(request: web.Request) -> web.Response:
    _staff(request)
    unknown = set(request.query) - {"state"}
    if unknown:
        raise ValidationFailed("unknown query parameter",
                               errors=[{"loc": ["query", sorted(unknown)[0][:64]], "type": "extra_forbidden"}])
    return json_response({"items": await _rights(request).list(request.query.get("state"))})


@routes.get("/v1/requests/reminders")
async def request_reminders(request: web.Request) -> web.Response:
    """Open requests due within ``within_days`` (default 7, at most 92) or overdue, soonest first."""
    _staff(request)
    raw = request.query.get("within_days", str(REMINDER_DAYS))
    if not raw.isdigit() or int(raw) > 92 or set(request.query) - {"within_days"}:
        raise ValidationFailed("'within_days' must be a whole number of days up to 92",
                               errors=[{"loc": ["query", "within_days"], "type": "int_parsing"}])
    return json_response({"items": await _rights(request).reminders(within_days=int(raw))})


@routes.get(_RID)
async def get_request(request: web.Request) -> web.Response:
    _staff(request)
    return json_response(await _rights(request).get(_request_id(request)))


@routes.post(f"{_RID}/subjects")
async def confirm_subjects(request: web.Request) -> web.Response:
    """Staff confirm which candidate records are the person's (only candidates; ``[]`` for none)."""
    rights, request_id, actor, b = await _action(request, ConfirmSubjects)
    return json_response(await rights.confirm_subjects(request_id, actor, list(b.subject_ids)))


@routes.post(f"{_RID}/extend")
async def extend(request: web.Request) -> web.Response:
    rights, request_id, actor, b = await _action(request, ExtendBody)
    return json_response(await rights.extend(request_id, actor, b.reason))


@routes.post(f"{_RID}/extract")
async def post_extract(request: web.Request) -> web.Response:
    rights, request_id, actor, b = await _action(request, ExtractBody)
    return json_response(await rights.extract(request_id, actor, b.lang), headers={"Cache-Control": "no-store"})


@routes.get(_RID + "/extract.{fmt:json|html|pdf}")
async def get_extract(request: web.Request) -> web.Response:
    p = _privacy(request)
    fmt = request.match_info["fmt"]
    rights = _rights(request)
    request_id = _request_id(request)
    extract = await rights.extract(request_id, p.name, _lang(request))
    headers = {"Cache-Control": "no-store"}
    if fmt == "json":
        headers["Content-Disposition"] = f'attachment; filename="extract-{request_id}.json"'
        return json_response(extract, headers=headers)
    if fmt == "html":
        return web.Response(text=rights.render_html(extract), content_type="text/html", charset="utf-8",
                            headers=headers)
    headers["Content-Disposition"] = f'inline; filename="extract-{request_id}.pdf"'
    return web.Response(body=rights.render_pdf(extract), content_type="application/pdf", headers=headers)


@routes.post(f"{_RID}/restrict")
async def restrict(request: web.Request) -> web.Response:
    """Art. 18; the answer's ``notices`` say which recipients were told (Art. 19) and which staff must tell."""
    rights, request_id, actor, b = await _action(request, RestrictBody)
    return json_response(await rights.restrict(request_id, actor, b.scope), status=201)


@routes.post(f"{_RID}/object")
async def object_(request: web.Request) -> web.Response:
    """Art. 21; notices as for a restriction."""
    rights, request_id, actor, b = await _action(request, ObjectBody)
    return json_response(await rights.object(request_id, actor, b.scope), status=201)


@routes.post(f"{_RID}/lift")
async def lift(request: web.Request) -> web.Response:
    rights, request_id, actor, b = await _action(request, LiftBody)
    return json_response(await rights.lift(request_id, b.restriction_id, actor))


@routes.post(f"{_RID}/erase")
async def erase(request: web.Request) -> web.Response:
    """Crypto-shred, then ask every HTTPS partner that may delete to do so (Art. 17(2), 19)."""
    rights, request_id, actor, _ = await _action(request, EmptyBody)
    return json_response(await rights.erase(request_id, actor))


@routes.post(f"{_RID}/rectify")
async def rectify(request: web.Request) -> web.Response:
    """Art. 16 + 19: the corrected data goes, minimised, to every recipient of the old data."""
    rights, request_id, actor, b = await _action(request, RectifyBody)
    report = await rights.rectify(request_id, actor, b.registrant)
    return json_response({"request_id": request_id, "recipients": report}, status=202)


@routes.post(f"{_RID}/close")
async def close(request: web.Request) -> web.Response:
    rights, request_id, actor, b = await _action(request, CloseBody)
    return json_response(await rights.close(request_id, actor, b.outcome))


@routes.post(f"{_RID}/assign")
async def assign(request: web.Request) -> web.Response:
    """Assign the request to a privacy staff account (``null``: unassign)."""
    rights, request_id, actor, b = await _action(request, AssignBody)
    return json_response(await rights.assign(request_id, actor, b.assignee))


@routes.post(f"{_RID}/notes")
async def add_note(request: web.Request) -> web.Response:
    """An internal note on the request, attributed to the caller; it never reaches a letter."""
    rights, request_id, actor, b = await _action(request, NoteBody)
    return json_response(await rights.add_note(request_id, actor, b.text), status=201)


@routes.get("/v1/art30")
async def art30(request: web.Request) -> web.Response:
    _staff(request)
    return json_response(await _rights(request).art30())


@routes.post("/v1/explain")
async def explain(request: web.Request) -> web.Response:
    """What each recipient of a TLD would get for a sample registrant, with the registry's eligibility rules
    that apply and whether the sample meets them; nothing is sent or stored."""
    _privacy(request)
    if not request.body_exists:
        raise ValidationFailed("a JSON body with 'tld' and 'registrant' is required",
                               errors=[{"loc": [], "type": "missing"}])
    b = await _body(request, ExplainBody)
    return json_response(_rights(request).explain(b.registrant, b.tld, us_nexus=b.us_nexus))


@routes.get("/v1/subjects/{subject_id}/holdings")
async def holdings(request: web.Request) -> web.Response:
    """Who holds the subject's data now, per recipient (contacts, domains, partner copies, each with since,
    fields and what ends it) and our own copy's retention.  Privacy and auditor roles: metadata only,
    nothing is decrypted, so no access-log entry is written."""
    _staff(request)
    return json_response(await _rights(request).holdings(request.match_info["subject_id"]),
                         headers={"Cache-Control": "no-store"})


@routes.post("/v1/retention/purge")
async def purge(request: web.Request) -> web.Response:
    _privacy(request)
    unknown = set(request.query) - {"dry_run"}
    raw = request.query.get("dry_run", "true")
    if unknown or raw not in ("true", "false"):
        raise ValidationFailed("'dry_run' must be 'true' or 'false'",
                               errors=[{"loc": ["query", "dry_run"], "type": "bool_parsing"}])
    out: dict[str, Any] = await _rights(request).retention(dry_run=raw == "true")
    return json_response(out)
