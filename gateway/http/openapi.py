"""The OpenAPI 3.1 description of every API route the app registers, with request schemas taken from the models.

One table (:data:`OPERATIONS`) holds what a schema cannot be derived from: per route, who may call it, what it
answers and which problems it can give.  Everything else comes from the code the handlers run: request
bodies from their pydantic models, query parameters from their query models (:mod:`gateway.http.query`),
so a field added to a model is documented without anyone remembering to.  ``tests/contract`` walks
``app.router`` and fails on a route missing here (or documented but gone), then fuzzes the whole document
with every role, so the document and the server cannot drift apart unnoticed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel

from gateway import errors as e
from gateway.auth import Role
from gateway.errors import PROBLEM_DOCS, GatewayError
from gateway.http.api import ledger as ledger_api
from gateway.http.api import lookups, rights
from gateway.http.api import outbox as outbox_api
from gateway.http.api import webhooks as webhooks_api
from gateway.http.docs import ASSETS
from gateway.http.query import DisclosureListQuery
from gateway.http.scrape import NotReady
from gateway.models import Registrant, RegistrationRequest, RenewRequest, TransferRequest

__all__ = ["OPERATIONS", "Operation", "openapi_document"]

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_HEX32 = r"^[0-9a-f]{32}$"
_B64_HASH = {"type": "string", "pattern": ledger_api.ROOT_PATTERN, "description": "base64 of a SHA-256 hash"}

#: Why a problem status can happen, for the responses' descriptions.
_WHY = {
    400: "Malformed body (not JSON, nested too deep) or a missing required header",
    401: "No bearer token, or an unknown one",
    403: "The token's role may not call this",
    404: "No such object (another client's objects look absent too)",
    409: "Conflicts with the object's state",
    410: "The subject's data key was destroyed (erasure)",
    413: "Request body too large",
    414: "Request line too long",
    415: "Content-Type is not application/json",
    422: "Validation failed: field paths and rule names, never the values",
    431: "A header field is too large",
    500: "The server cannot answer correctly and says so",
    503: "Not ready to take traffic (store, schema or delivery loop)",
    502: "A service the gateway depends on failed or is not configured",
}
#: Every route can meet these before its handler runs (aiohttp's limits, turned into problems).
_ALWAYS = (414, 431)
_BODY = (400, 413, 415, 422)
#: The problems of the statuses the middlewares give, not the handler: aiohttp's limits on every route, the
#: bearer check on every route with roles.  Every other status an operation lists must name its codes in
#: ``errors`` (read from the handler and the services it calls); a bare status fails the build.
_DEFAULT_ERRORS: dict[int, tuple[type[GatewayError], ...]] = {
    401: (e.Unauthenticated,), 403: (e.Forbidden,), 414: (e.RequestLineTooLong,), 431: (e.HeaderTooLarge,),
}
#: What reading a JSON body can give (``gateway.http.context.read_json`` and the model's validation).
_BODY_ERRORS = (e.MalformedBody, e.BodyTooDeep, e.PayloadTooLarge, e.UnsupportedMediaType, e.ValidationFailed)
#: What any action on one data-subject request can give (``gateway.rights.service``).
_REQUEST_ERRORS = (*_BODY_ERRORS, e.RequestNotFound, e.RequestClosed, e.SubjectNotIdentified,
                   e.SubjectNotConfirmed, e.SubjectErased)
#: What a query model refuses (``gateway.http.query.parse_query``).
_QUERY_ERRORS = (e.QueryInvalid,)
#: A call to the address lookup service (``adapters.address_lookup`` over ``adapters.http_partner``); a
#: gateway without one configured answers ``delivery_permanent`` too.
_LOOKUP_ERRORS = (e.TransientDeliveryError, e.PermanentDeliveryError)
#: A registration refused by a recipient's policy (``gateway.services.registrations``); the last two at
#: acceptance, before anything is stored (``gateway.policy.eligibility``).
_POLICY_ERRORS = (e.NoRecipientPolicy, e.TransferBlocked, e.RequiredFieldMissing, e.SubjectRestricted,
                  e.NotEligible, e.ProtocolNotSupported)

#: A registration as the ordering system sends it; checked against ``RegistrationRequest`` when the
#: document is built, and against the document's own schema in ``tests/contract``.
REGISTRATION_EXAMPLE: dict[str, Any] = {
    "order_ref": "ORD-1001",
    "domain": "exempel.se",
    "period_years": 1,
    "nameservers": ["ns1.example.net", "ns2.example.net"],
    "purpose": "domain_registration",
    "registrant": {
        "kind": "person",
        "name": "Anna Andersson",
        "national_id": {"scheme": "se_personnummer", "value": "19811218-9876"},
        "address": {"street": ["Storgatan 1"], "city": "Stockholm", "postal_code": "111 22", "country": "SE"},
        "email": "anna.andersson@example.se",
        "phone": "+46 8 123 456 78",
        "language": "sv",
    },
}


@dataclass(frozen=True)
class Operation:
    """What the code cannot say about one route: its roles, its success answer, its problems.

    ``roles`` empty means no token is needed.  ``body`` is the pydantic model the handler validates the
    body with; ``body_required`` False where the handler treats an absent body as ``{}``.  ``ok_media``
    maps each success media type to its schema (None: any)."""

    summary: str
    roles: tuple[str, ...] = ()
    ok: int = 200
    ok_description: str = "OK"
    ok_media: dict[str, dict[str, Any] | None] = field(default_factory=lambda: {"application/json": None})
    problems: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    parameters: tuple[dict[str, Any], ...] = ()
    extra_responses: dict[int, dict[str, Any]] = field(default_factory=dict)
    description: str | None = None
    #: The problems the handler can give, by class (code and status come from the error tree); every status
    #: in ``problems`` needs one, except those the middlewares give (``_DEFAULT_ERRORS``: 401, 403, 414, 431).
    errors: tuple[type[GatewayError], ...] = ()
    body_example: dict[str, Any] | None = None


def _path(name: str, pattern: str | None = None, enum: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    if enum:
        schema["enum"] = enum
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any], desc: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": desc}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"$ref": f"#/components/schemas/{ref}"}}


_REG_ID = _path("reg_id", _HEX32)
_ENTRY_ID = _path("entry_id", _HEX32)
_REQUEST_ID = _path("request_id", _HEX32)
_STAFF = ("privacy", "auditor")
_PRIVACY = ("privacy",)
#: The problems of an action on one data-subject request (privacy role, JSON body, the request's state).
_ACTION = (*_BODY, 404, 409, 410)
_ROW_ID = _path("row_id", outbox_api.ROW_ID_PATTERN)
_NULLABLE_TEXT = {"type": ["string", "null"]}
#: A parked outbox row (``gateway.store.parked_rows``): ids and delivery metadata, never the payload.
_PARKED_ROW = {"type": "object", "additionalProperties": False, "required": [
    "id", "registration_id", "recipient", "purpose", "change_id", "attempts", "last_code", "parked_reason",
    "updated_at"], "properties": {
    "id": {"type": "integer"}, "registration_id": {"type": "string"}, "recipient": {"type": "string"},
    "purpose": {"type": "string"}, "change_id": {"type": "string"}, "attempts": {"type": "integer"},
    "last_code": _NULLABLE_TEXT, "parked_reason": _NULLABLE_TEXT, "updated_at": {"type": "string"}}}
_PARKED_LIST = {"type": "object", "required": ["items", "recipients", "actions"], "properties": {
    "items": {"type": "array", "items": _PARKED_ROW},
    "recipients": {"type": "object", "additionalProperties": {"type": "integer"},
                   "description": "parked rows per recipient id"},
    "actions": {"type": "array", "description": "the latest staff retries and cancels, newest first", "items": {
        "type": "object", "required": ["at", "actor", "action", "row_id", "recipient", "registration_id"],
        "properties": {"at": {"type": "string"}, "actor": {"type": "string"},
                       "action": {"type": "string", "enum": ["retry", "cancel"]}, "row_id": {"type": "integer"},
                       "recipient": _NULLABLE_TEXT, "registration_id": _NULLABLE_TEXT}}}}}
_PARKED_ACTED = {"type": "object", "required": ["id", "state"], "properties": {
    "id": {"type": "integer"}, "state": {"type": "string", "enum": ["pending", "cancelled"]}}}

#: A transfer in as the ordering system sends it: a registration body and the holder's auth code.
TRANSFER_EXAMPLE: dict[str, Any] = {**REGISTRATION_EXAMPLE, "order_ref": "ORD-1002", "auth_code": "Xk7-p2Qz-9mWe"}
#: What renewal, transfer out and deletion answer (``gateway.services.lifecycle``).
_LIFECYCLE_ANSWER = {"type": "object", "required": [
    "registration_id", "operation", "operation_id", "recipient", "queued_at", "links"], "properties": {
    "registration_id": {"type": "string"},
    "operation": {"type": "string", "enum": ["renewal", "transfer_out", "deletion"]},
    "operation_id": {"type": "string", "description": "the change id of the registry's outbox row"},
    "recipient": {"type": "string", "description": "the registry the row goes to"},
    "queued_at": {"type": "string"},
    "ended_at": {"type": "string", "description": "transfer out, deletion: when our role ended (now)"},
    "end_reason": {"type": "string", "enum": ["transferred_out", "deleted"]},
    "links": {"type": "object"}}}
#: What acting on one of the caller's registrations can give (``gateway.services.lifecycle.refusal``).
_LIFECYCLE_ERRORS = (e.NotFound, e.RegistrationEnded, e.RegistrationNotActive, e.NoRecipientPolicy)

OPERATIONS: dict[tuple[str, str], Operation] = {
    # -- registrations (ordering system) --
    ("POST", "/v1/registrations"): Operation(
        "Register a domain: validate, minimise, classify, queue delivery", ("ordering",), ok=202,
        ok_description="Accepted with its transfer plan (a replay answers as the first time)",
        ok_media=_json("Registration"), problems=(*_BODY, 409), body=RegistrationRequest,
        errors=(e.MissingIdempotencyKey, *_BODY_ERRORS, e.IdempotencyConflict, *_POLICY_ERRORS,
                e.SubjectErased,  # the holder erased on every attempt to file under it
                e.KeyRingUnavailable),  # the key ring file cannot be read: nothing is stored
        body_example=REGISTRATION_EXAMPLE,
        parameters=({"name": "Idempotency-Key", "in": "header", "required": True,
                     "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{8,128}$"},
                     "description": "the same key replays the first answer; another body with it is a 409"},),
    ),
    ("GET", "/v1/registrations/{reg_id}"): Operation(
        "A registration's plan, delivery progress and disclosure entries (an ordering client: its own)",
        ("ordering", *_STAFF), ok_media=_json("Registration"), problems=(404,), parameters=(_REG_ID,),
        errors=(e.NotFound,),
    ),
    ("POST", "/v1/registrations/{reg_id}/registrant"): Operation(
        "New registrant data: changed, released fields go to the past recipients of this client's registrations",
        ("ordering",), ok=202, problems=(*_BODY, 404, 410), body=Registrant, parameters=(_REG_ID,),
        errors=(*_BODY_ERRORS, e.NotFound, e.SubjectErased), body_example=REGISTRATION_EXAMPLE["registrant"],
    ),
    # -- the domain's lifecycle (ordering system) --
    ("POST", "/v1/transfers"): Operation(
        "Transfer a domain in: validated, minimised and classified like a registration, then domain:transfer "
        "with the auth code", ("ordering",), ok=202,
        ok_description="Accepted with its transfer plan (a replay answers as the first time); `kind` is `transfer`",
        ok_media=_json("Registration"), problems=(*_BODY, 409), body=TransferRequest,
        errors=(e.MissingIdempotencyKey, *_BODY_ERRORS, e.IdempotencyConflict, *_POLICY_ERRORS,
                e.SubjectErased, e.KeyRingUnavailable),
        body_example=TRANSFER_EXAMPLE,
        parameters=({"name": "Idempotency-Key", "in": "header", "required": True,
                     "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{8,128}$"},
                     "description": "the same key replays the first answer; another body with it is a 409"},),
        description="The registry gets `domain:transfer op=\"request\"` with the auth code (never logged or "
        "echoed); once it shows the domain as ours, the contacts it needs are created (or reused) and a "
        "`domain:update` points the domain at them, each a disclosure entry.  A refused code (2202) parks the "
        "row: the registration shows `failed`.  Partners and escrow get what they get for a registration.",
    ),
    ("POST", "/v1/registrations/{reg_id}/renew"): Operation(
        "Renew one of the caller's domains (domain:renew; no personal data)", ("ordering",), ok=202,
        ok_media={"application/json": _LIFECYCLE_ANSWER}, problems=(*_BODY, 404, 409), body=RenewRequest,
        parameters=(_REG_ID,), errors=(*_BODY_ERRORS, *_LIFECYCLE_ERRORS), body_example={"years": 1},
        description="Only a delivered registration whose role has not ended; each call is one renewal.  The "
        "registration's `expires_at` and its `renewed` event follow the registry's answer.",
    ),
    ("POST", "/v1/registrations/{reg_id}/transfer-out"): Operation(
        "The domain left us: our role ends now; its contacts no other domain of ours uses are deleted at the "
        "registry", ("ordering",), ok=202, ok_media={"application/json": _LIFECYCLE_ANSWER}, problems=(404, 409),
        parameters=(_REG_ID,), errors=_LIFECYCLE_ERRORS,
        description="No body.  A second call answers 409 `registration_ended` with the `end_reason`.  A contact "
        "the registry keeps (2305: the domain still points at it) is listed as held by the registry.",
    ),
    ("POST", "/v1/registrations/{reg_id}/delete"): Operation(
        "Delete one of the caller's domains at its registry: our role ends now; then its unused contacts",
        ("ordering",), ok=202, ok_media={"application/json": _LIFECYCLE_ANSWER}, problems=(404, 409),
        parameters=(_REG_ID,), errors=_LIFECYCLE_ERRORS,
        description="No body.  domain:delete, then contact:delete for each contact no other active domain of "
        "ours at that registry uses, each logged.  A second call answers 409 `registration_ended`.",
    ),
    # -- the disclosure log --
    ("GET", "/v1/disclosures"): Operation(
        "The disclosure log: filtered keyset pages of entries", _STAFF, problems=(422,), errors=(e.QueryInvalid,),
        query=DisclosureListQuery, ok_media={"application/json": {"type": "object", "required": ["items"],
                                                                  "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Disclosure"}},
            "next_after": {"type": ["integer", "null"]}}}},
    ),
    ("GET", "/v1/disclosures/{entry_id}"): Operation(
        "One entry; the privacy role also sees the values sent (each such read is logged)", _STAFF,
        ok_media=_json("Disclosure"), problems=(404,), parameters=(_ENTRY_ID,), errors=(e.NotFound,),
    ),
    # -- operations --
    ("GET", "/healthz"): Operation("Liveness and store status"),
    ("GET", "/readyz"): Operation(
        "Readiness: the store answers with the current schema and the delivery loop is alive",
        problems=(503,), errors=(NotReady,)),
    ("GET", "/openapi.json"): Operation("This document"),
    # -- the served docs --
    ("GET", "/docs"): Operation("This document for people (Redoc, shipped with the gateway)",
                                ok_media={"text/html": {"type": "string"}}),
    ("GET", "/docs/static/{name}"): Operation(
        "The docs page's assets", ok_media={ctype: {"type": "string"} for ctype in sorted(set(ASSETS.values()))},
        problems=(404,), parameters=(_path("name", enum=sorted(ASSETS)),), errors=(e.NotFound,)),
    ("GET", "/docs/problems"): Operation("Every problem code: status, title and meaning",
                                         ok_media={"text/html": {"type": "string"}}),
    ("GET", "/docs/problems/{code}"): Operation(
        "One problem code (what a problem's `type` points at)", ok_media={"text/html": {"type": "string"}},
        problems=(404,), parameters=(_path("code", pattern=r"^[a-z0-9_]+$"),), errors=(e.NotFound,)),
    ("GET", "/metrics"): Operation(
        "Prometheus metrics, no personal data (staff token, or the dedicated scrape token)", _STAFF,
        ok_media={"text/plain": {"type": "string"}},
    ),
    # -- the ledger --
    ("GET", "/v1/ledger/public-key"): Operation("The checkpoint signing key (Ed25519, PEM)",
                                                ok_media=_json("PublicKey")),
    ("GET", "/v1/ledger/checkpoints"): Operation(
        "Every signed checkpoint", _STAFF, ok_media={"application/json": {
            "type": "object", "required": ["items"],
            "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/SignedCheckpoint"}}}}},
    ),
    ("POST", "/v1/ledger/checkpoints"): Operation(
        "Sign a checkpoint of the current head now (or return the one of that size)", _STAFF, ok=201,
        ok_media=_json("CheckpointWithNote"),
    ),
    ("GET", "/v1/ledger/proofs/inclusion"): Operation(
        "Inclusion proof of an entry in a signed checkpoint's tree", _STAFF, ok_media=_json("InclusionProof"),
        problems=(404, 422), query=ledger_api.InclusionQuery, errors=(*_QUERY_ERRORS, e.NotFound),
    ),
    ("GET", "/v1/ledger/proofs/consistency"): Operation(
        "Consistency proof between two stored checkpoints", _STAFF, ok_media=_json("ConsistencyProof"),
        problems=(404, 422), query=ledger_api.ConsistencyQuery, errors=(*_QUERY_ERRORS, e.NotFound),
    ),
    ("GET", "/v1/ledger/audit"): Operation(
        "The rollback check: prove a kept checkpoint's tree (size, root) is a prefix of the head, signed now",
        _STAFF, ok_media=_json("AuditProof"), problems=(422, 500), query=ledger_api.AuditQuery,
        errors=(*_QUERY_ERRORS, e.ProofUnavailable),
        extra_responses={409: {"description": "Refuted: the tree at that size has another root, or the head is "
                               "smaller (rollback, fork)", "content": {"application/problem+json": {
                                   "schema": {"$ref": "#/components/schemas/LedgerInconsistent"}}}}},
        description="Needs no stored checkpoint: the proof is computed from the tree.  Verify it offline "
        "(`gateway ledger audit`); a 500 `proof_unavailable` says the stored tree cannot prove it.",
    ),
    # -- data-subject rights --
    ("POST", "/v1/requests"): Operation(
        "Open a data-subject request (Art. 15-21) with what the person gave", _PRIVACY, ok=201,
        problems=_BODY, body=rights.OpenRequest, errors=(*_BODY_ERRORS, e.IdentifiersMissing),
    ),
    ("GET", "/v1/requests"): Operation(
        "Data-subject requests, by state", _STAFF, problems=(422,), errors=(e.ValidationFailed,),
        parameters=(_query("state", {"type": "string", "enum": ["open", "closed"]}, "open or closed"),),
    ),
    ("GET", "/v1/requests/reminders"): Operation(
        "Open requests due within a number of days or overdue, soonest first (Art. 12(3) deadlines, moved off "
        "Swedish weekends and public holidays)", _STAFF, problems=(422,), errors=(e.ValidationFailed,),
        parameters=(_query("within_days", {"type": "integer", "minimum": 0, "maximum": 92},
                           "days ahead (default 7, at most 92)"),),
    ),
    ("GET", "/v1/requests/{request_id}"): Operation(
        "One request: its deadline, events and candidate records", _STAFF, problems=(404,),
        parameters=(_REQUEST_ID,), errors=(e.RequestNotFound,),
    ),
    ("POST", "/v1/requests/{request_id}/subjects"): Operation(
        "Confirm which candidate records are the person's ([] for none)", _PRIVACY, problems=_ACTION,
        body=rights.ConfirmSubjects, parameters=(_REQUEST_ID,), errors=(*_REQUEST_ERRORS, e.NotACandidate),
    ),
    ("POST", "/v1/requests/{request_id}/extend"): Operation(
        "Extend the deadline once, with reasons (Art. 12(3))", _PRIVACY, problems=_ACTION, body=rights.ExtendBody,
        parameters=(_REQUEST_ID,), errors=(*_REQUEST_ERRORS, e.ExtensionRefused),
    ),
    ("POST", "/v1/requests/{request_id}/extract"): Operation(
        "The register extract (Art. 15) as JSON, with an inclusion proof per entry", _PRIVACY, problems=_ACTION,
        body=rights.ExtractBody, body_required=False, parameters=(_REQUEST_ID,), errors=_REQUEST_ERRORS,
    ),
    ("GET", "/v1/requests/{request_id}/extract.{fmt}"): Operation(
        "The register extract as a JSON, HTML or PDF document", _PRIVACY, problems=(404, 409, 410, 422),
        errors=(e.RequestNotFound, e.NotFound, e.SubjectNotIdentified, e.SubjectNotConfirmed, e.SubjectErased,
                e.ValidationFailed),
        ok_media={"application/json": None, "text/html": {"type": "string"}, "application/pdf": {"type": "string"}},
        parameters=(_REQUEST_ID, _path("fmt", enum=["json", "html", "pdf"]),
                    _query("lang", {"type": "string", "enum": ["sv", "en"]}, "language of the document")),
    ),
    ("POST", "/v1/requests/{request_id}/restrict"): Operation(
        "Restrict processing (Art. 18); the answer's notices say who was told (Art. 19)", _PRIVACY, ok=201,
        problems=_ACTION, body=rights.RestrictBody, body_required=False, parameters=(_REQUEST_ID,),
        errors=(*_REQUEST_ERRORS, e.InvalidScope),
    ),
    ("POST", "/v1/requests/{request_id}/object"): Operation(
        "Object to processing (Art. 21)", _PRIVACY, ok=201, problems=_ACTION, body=rights.ObjectBody,
        body_required=False, parameters=(_REQUEST_ID,), errors=(*_REQUEST_ERRORS, e.InvalidScope),
    ),
    ("POST", "/v1/requests/{request_id}/lift"): Operation(
        "Lift a restriction or objection", _PRIVACY, problems=_ACTION, body=rights.LiftBody,
        parameters=(_REQUEST_ID,), errors=(*_REQUEST_ERRORS, e.RestrictionNotFound),
    ),
    ("POST", "/v1/requests/{request_id}/erase"): Operation(
        "Erase (Art. 17): destroy the data key, ask partners to delete", _PRIVACY, problems=_ACTION,
        body=rights.EmptyBody, body_required=False, parameters=(_REQUEST_ID,), errors=_REQUEST_ERRORS,
    ),
    ("POST", "/v1/requests/{request_id}/rectify"): Operation(
        "Rectify (Art. 16): the corrected data goes, minimised, to every recipient of the old", _PRIVACY, ok=202,
        problems=_ACTION, body=rights.RectifyBody, parameters=(_REQUEST_ID,), errors=(*_REQUEST_ERRORS, e.NotFound),
    ),
    ("POST", "/v1/requests/{request_id}/close"): Operation(
        "Close the request with its outcome", _PRIVACY, problems=_ACTION, body=rights.CloseBody,
        parameters=(_REQUEST_ID,), errors=_REQUEST_ERRORS,
    ),
    ("POST", "/v1/requests/{request_id}/assign"): Operation(
        "Assign the request to a privacy staff account (null: unassign)", _PRIVACY, problems=_ACTION,
        body=rights.AssignBody, parameters=(_REQUEST_ID,), errors=_REQUEST_ERRORS,
    ),
    ("POST", "/v1/requests/{request_id}/notes"): Operation(
        "An internal note on the request, attributed to the caller (never in a letter)", _PRIVACY, ok=201,
        problems=_ACTION, body=rights.NoteBody, parameters=(_REQUEST_ID,), errors=_REQUEST_ERRORS,
    ),
    ("GET", "/v1/art30"): Operation("The record of processing activities (Art. 30)", _STAFF),
    ("GET", "/v1/subjects/{subject_id}/holdings"): Operation(
        "Who holds the subject's data now: per recipient its objects (registry contacts, domains, partner "
        "copies) with since, fields and what ends each; our own copy's retention dates (metadata only)", _STAFF,
        problems=(404,), parameters=(_path("subject_id", _HEX32),), errors=(e.NotFound,),
    ),
    ("POST", "/v1/explain"): Operation(
        "Explain what each recipient of a TLD would get for a sample registrant", _PRIVACY, problems=_BODY,
        body=rights.ExplainBody, errors=_BODY_ERRORS,
    ),
    ("POST", "/v1/retention/purge"): Operation(
        "Delete the values of entries past their purpose's retention period (dry run by default)", _PRIVACY,
        problems=(422,), parameters=(_query("dry_run", {"type": "string", "enum": ["true", "false"]},
                                            "true (default): report only"),), errors=(e.ValidationFailed,),
    ),
    # -- address lookups --
    ("POST", "/v1/lookups"): Operation(
        "Look up a Swedish personnummer's name and address (logged as processing)", ("ordering", "privacy"),
        problems=(*_BODY, 502), body=lookups.LookupBody, errors=(*_BODY_ERRORS, *_LOOKUP_ERRORS),
    ),
    # -- webhooks (ordering system) --
    ("POST", "/v1/webhooks"): Operation(
        "Register a callback URL for the caller's registrations' state changes (signing secret shown once)",
        ("ordering",), ok=201, problems=_BODY, body=webhooks_api.WebhookCreate, errors=_BODY_ERRORS,
        description="Events (`registration.delivered`, `.failed`, `.blocked`, `.changed`) are POSTed with "
        "Standard Webhooks headers `webhook-id` (the event id, for de-duplication), `webhook-timestamp` and "
        "`webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`; retried with backoff until a 2xx.",
    ),
    ("GET", "/v1/webhooks"): Operation(
        "The caller's webhooks with their delivery counts and latest notifications", ("ordering",),
    ),
    ("DELETE", "/v1/webhooks/{webhook_id}"): Operation(
        "End one of the caller's webhooks (undelivered notifications are marked failed)", ("ordering",), ok=204,
        ok_media={}, problems=(404,), parameters=(_path("webhook_id", webhooks_api.WEBHOOK_ID_PATTERN),),
        errors=(e.NotFound,),
    ),
    # -- parked deliveries (staff) --
    ("GET", "/v1/outbox/parked"): Operation(
        "Deliveries parked for staff (permanent refusal, or retries past the recipient's deadline), per recipient, "
        "with the latest staff retries and cancels", _STAFF, problems=(422,), errors=_QUERY_ERRORS,
        query=outbox_api.ParkedQuery, ok_media={"application/json": _PARKED_LIST},
    ),
    ("POST", "/v1/outbox/{row_id}/retry"): Operation(
        "Retry a parked delivery: queued again, due now, with a fresh deadline (logged with the caller)",
        _PRIVACY, ok_media={"application/json": _PARKED_ACTED}, problems=(404, 409), parameters=(_ROW_ID,),
        errors=(e.OutboxRowNotFound, e.NotParked),
    ),
    ("POST", "/v1/outbox/{row_id}/cancel"): Operation(
        "Cancel a parked delivery for good; the registration's status follows (logged with the caller)",
        _PRIVACY, ok_media={"application/json": _PARKED_ACTED}, problems=(404, 409), parameters=(_ROW_ID,),
        errors=(e.OutboxRowNotFound, e.NotParked),
    ),
}


# -- building the document ---------------------------------------------------------------------------

_CONSTRAINT_KEYS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _clean(node: Any) -> Any:
    """Pydantic leaves ``ge``/``le`` as they are when a validator wraps the type (``Seq``, ``Limit``):
    rename them to JSON Schema's keywords so clients and fuzzers see the bounds."""
    if isinstance(node, dict):
        return {_CONSTRAINT_KEYS.get(k, k): _clean(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_clean(v) for v in node]
    return node


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is a string or absent, never JSON null: drop the ``None`` branch of ``X | None``."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            out = {k: v for k, v in schema.items() if k not in ("anyOf", "default")}
            return {**rest[0], **out}
    return {k: v for k, v in schema.items() if k != "default" or v is not None}


class _Schemas:
    """Components collected from the models; one name, one schema (a clash is a bug, raised at build)."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def add(self, name: str, schema: dict[str, Any]) -> None:
        if name in self.components and self.components[name] != schema:
            raise ValueError(f"two different models are both named {name!r} in the OpenAPI document")
        self.components[name] = schema

    def model(self, model: type[BaseModel]) -> dict[str, Any]:
        schema = _clean(model.model_json_schema(ref_template="#/components/schemas/{model}"))
        for name, sub in schema.pop("$defs", {}).items():
            self.add(name, sub)
        self.add(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    def parameters(self, model: type[BaseModel]) -> list[dict[str, Any]]:
        schema = _clean(model.model_json_schema(ref_template="#/components/schemas/{model}"))
        for name, sub in schema.pop("$defs", {}).items():
            self.add(name, sub)
        required = set(schema.get("required", ()))
        out = []
        for name, prop in schema.get("properties", {}).items():
            desc = prop.pop("description", None) or prop.get("title", name)
            prop.pop("title", None)
            out.append(_query(name, _not_null(prop), desc, name in required))
        return out


def problem_example(cls: type[GatewayError]) -> dict[str, Any]:
    """What ``cls`` looks like on the wire (its ``detail`` is the title when the handler adds none)."""
    return {"type": f"{PROBLEM_DOCS}{cls.code}", "title": cls.title, "status": cls.status, "code": cls.code,
            "detail": cls.title}


def problem_codes(op: Operation) -> dict[int, list[type[GatewayError]]]:
    """Per problem status of ``op``, the error classes it stands for (one per code)."""
    statuses = set(op.problems) | set(_ALWAYS) | ({401, 403} if op.roles else set())
    statuses |= {cls.status for cls in op.errors}
    out: dict[int, list[type[GatewayError]]] = {}
    for status in sorted(statuses):
        named = [cls for cls in op.errors if cls.status == status] or list(_DEFAULT_ERRORS.get(status, ()))
        if not named:
            raise ValueError(f"{op.summary!r}: status {status} names no problem code (add its errors)")
        seen: dict[str, type[GatewayError]] = {}
        for cls in named:
            seen.setdefault(cls.code, cls)
        out[status] = list(seen.values())
    return out


def _problem_response(status: int, classes: list[type[GatewayError]]) -> dict[str, Any]:
    codes = [cls.code for cls in classes]
    listed = ", ".join(f"[`{c}`]({PROBLEM_DOCS}{c})" for c in codes)
    media: dict[str, Any] = {"schema": _PROBLEM}
    if classes:
        media["examples"] = {cls.code: {"summary": cls.title, "value": problem_example(cls)} for cls in classes}
    out: dict[str, Any] = {"description": _WHY[status] + (f".  Codes: {listed}" if codes else ""),
                           "x-problem-codes": codes, "content": {"application/problem+json": media}}
    if status == 401:
        out["headers"] = {"WWW-Authenticate": {
            "required": True, "schema": {"type": "string", "pattern": r'^Bearer realm="registrant-gateway"'},
            "description": 'The bearer challenge; `error="invalid_token"` when the token sent is unknown'}}
    return out


def _operation(method: str, path: str, op: Operation, schemas: _Schemas) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(op.ok): {"description": op.ok_description, "content": {
            media: {"schema": schema} if schema is not None else {} for media, schema in op.ok_media.items()}},
    }
    for status, classes in problem_codes(op).items():
        responses[str(status)] = _problem_response(status, classes)
    for status, resp in op.extra_responses.items():
        responses[str(status)] = resp
    params = list(op.parameters)
    if op.query is not None:
        params.extend(schemas.parameters(op.query))
    roles = ", ".join(op.roles) if op.roles else "no token needed"
    doc: dict[str, Any] = {
        "operationId": f"{method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"
                       .replace("-", "_").replace(".", "_"),
        "summary": op.summary,
        "description": (op.description + "\n\n" if op.description else "") + f"Roles: {roles}.",
        "x-roles": list(op.roles),
        "responses": responses,
    }
    if params:
        doc["parameters"] = params
    # OpenAPI 3.1 lets a non-OAuth requirement name the roles it needs: any one of these will do
    doc["security"] = [{"bearer": list(op.roles)}] if op.roles else []
    if op.body is not None:
        media: dict[str, Any] = {"schema": schemas.model(op.body)}
        if op.body_example is not None:
            # as the handler reads it: an example it would refuse fails the build
            op.body.model_validate_json(json.dumps(op.body_example))
            media["examples"] = {"example": {"summary": "A typical body", "value": op.body_example}}
        doc["requestBody"] = {"required": op.body_required, "content": {"application/json": media}}
    return doc


def _roles_description() -> str:
    lines = ["A bearer token issued by the gateway's operators (`Authorization: Bearer <token>`); each token "
             "has one role, and each operation names the roles that may call it (`x-roles`, its description "
             "and the scopes of its security requirement: any one of them will do).  A missing or unknown "
             'token gets 401 with `WWW-Authenticate: Bearer realm="registrant-gateway"`; a known token '
             "of another role gets 403.", ""]
    for role in Role:
        ops = [f"{m} {p}" for (m, p), op in OPERATIONS.items() if role.value in op.roles]
        lines.append(f"- `{role.value}`: {len(ops)} operations")
    return "\n".join(lines)


_SIGNED_CHECKPOINT: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "required": ["origin", "size", "root", "timestamp", "key_id", "signature"],
    "properties": {
        "origin": {"type": "string"}, "size": {"type": "integer", "minimum": 0}, "root": _B64_HASH,
        "timestamp": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"},
        "key_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"}, "signature": {"type": "string"},
    },
    "description": "Signed over the note body '<origin>\\n<size>\\n<root>\\n<timestamp>\\n' (Ed25519).  This "
    "JSON (or the POST answer's note) is the checkpoint file `gateway ledger audit` reads.",
}
_PROOF = {"type": "array", "items": _B64_HASH}
_FIXED_SCHEMAS: dict[str, Any] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details with a stable machine-readable code.",
        "required": ["type", "title", "status", "code"],
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "code": {"type": "string"}, "detail": {"type": "string"}, "instance": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
    },
    "LedgerInconsistent": {"allOf": [{"$ref": "#/components/schemas/Problem"}, {
        "type": "object", "required": ["reason", "size", "head_size", "server_root"],
        "properties": {
            "code": {"const": "ledger_inconsistent"},
            "reason": {"type": "string", "enum": ["beyond_head", "root_mismatch"]},
            "size": {"type": "integer"}, "head_size": {"type": "integer"},
            "server_root": {"anyOf": [_B64_HASH, {"type": "null"}],
                            "description": "this gateway's root at `size` (null when it has fewer entries)"},
        }}]},
    "Registration": {"type": "object", "properties": {
        "id": {"type": "string"}, "status": {"type": "string", "enum": [
            "accepted", "delivering", "delivered", "failed", "blocked"]},
        "transfers": {"type": "array", "items": {"type": "object"}},
    }},
    "Disclosure": {"type": "object", "properties": {
        "id": {"type": "string"}, "recipient": {"type": "string"},
        "recipient_country": {"type": "string"}, "outcome": {"type": "string"},
        "transfer": {"type": "object"}, "fields": {"type": "array", "items": {"type": "string"}},
    }},
    "PublicKey": {"type": "object", "required": ["key_id", "algorithm", "public_key_pem"], "properties": {
        "key_id": {"type": "string"}, "algorithm": {"const": "Ed25519"}, "public_key_pem": {"type": "string"}}},
    "SignedCheckpoint": _SIGNED_CHECKPOINT,
    "CheckpointWithNote": {**_SIGNED_CHECKPOINT, "required": [*_SIGNED_CHECKPOINT["required"], "note"],
                           "properties": {**_SIGNED_CHECKPOINT["properties"], "note": {"type": "string"}}},
    "InclusionProof": {"type": "object", "additionalProperties": False, "required": [
        "entry", "leaf_index", "leaf_hash", "tree_size", "proof", "checkpoint"], "properties": {
        "entry": {"type": "string", "pattern": _HEX32}, "leaf_index": {"type": "integer"}, "leaf_hash": _B64_HASH,
        "tree_size": {"type": "integer"}, "proof": _PROOF,
        "checkpoint": {"$ref": "#/components/schemas/SignedCheckpoint"}}},
    "ConsistencyProof": {"type": "object", "additionalProperties": False, "required": ["from", "to", "proof"],
                         "properties": {"from": {"$ref": "#/components/schemas/SignedCheckpoint"},
                                        "to": {"$ref": "#/components/schemas/SignedCheckpoint"}, "proof": _PROOF}},
    "AuditProof": {"type": "object", "additionalProperties": False, "required": ["from", "to", "proof"],
                   "properties": {
                       "from": {"type": "object", "additionalProperties": False, "required": ["size", "root"],
                                "properties": {"size": {"type": "integer"}, "root": _B64_HASH}},
                       "to": {"$ref": "#/components/schemas/SignedCheckpoint"}, "proof": _PROOF}},
}


@cache
def openapi_document() -> dict[str, Any]:
    schemas = _Schemas()
    for name, schema in _FIXED_SCHEMAS.items():
        schemas.add(name, schema)
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), op in OPERATIONS.items():
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, op, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Registrant Gateway",
            "version": "0.1.0",
            "description": "Brokers domain-holder data to registries and partners: minimised per recipient, "
            "tagged with its GDPR Chapter V basis, and logged as a disclosure entry in a signed, append-only "
            "Merkle tree.  Errors are RFC 9457 problems (application/problem+json) with a stable `code`; "
            f"each code is described at [{PROBLEM_DOCS}{{code}}](/docs/problems), the problem's `type`.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": _roles_description()}},
            "schemas": dict(sorted(schemas.components.items())),
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
