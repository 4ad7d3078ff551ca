"""The HTTP API (aiohttp): registrations for the ordering system, the disclosure log for staff."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from pydantic import ValidationError

from adapters.http_partner import PartnerEndpoint
from gateway.auth import Principal, Role, TokenStore, require
from gateway.delivery.escrow_job import EscrowJob
from gateway.delivery.worker import DeliveryWorker
from gateway.errors import (
    MalformedBody,
    MissingIdempotencyKey,
    NotFound,
    PayloadTooLarge,
    SubjectErased,
    UnsupportedMediaType,
    ValidationFailed,
)
from gateway.http.openapi import openapi_document
from gateway.http.problems import json_response, problem_middleware
from gateway.models import Registrant, RegistrationRequest
from gateway.policy.schema import TransferCategory
from gateway.services.changes import ChangeService
from gateway.services.ledger import Ledger
from gateway.services.registrations import RegistrationService
from gateway.store.base import DisclosureFilter, Store

log = structlog.get_logger("gateway.api")

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{8,128}$")


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    registrations: Counter

    @classmethod
    def create(cls) -> Metrics:
        reg = CollectorRegistry()
        return cls(
            registry=reg,
            requests=Counter("gateway_http_requests", "HTTP requests", ["route", "status"], registry=reg),
            registrations=Counter("gateway_registrations", "Registrations by answer", ["status"], registry=reg),
        )


@dataclass
class Services:
    store: Store
    ledger: Ledger
    tokens: TokenStore
    registrations: RegistrationService
    worker: DeliveryWorker | None
    max_body_bytes: int
    poll_s: float
    metrics: Metrics
    checkpoint_interval_s: float = 0.0
    escrow: EscrowJob | None = None
    escrow_interval_s: float = 0.0
    address_lookup: PartnerEndpoint | None = None
    config_dir: Path | None = None
    retention_interval_s: float = 0.0


SERVICES = web.AppKey("services", Services)


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


def _principal(request: web.Request) -> Principal:
    return _services(request).tokens.authenticate(request.headers.get("Authorization"))


def validation_problem(exc: ValidationError) -> ValidationFailed:
    """Field paths and rule names only: pydantic's ``input`` and ``ctx`` may quote personal data."""
    errors = [
        {
            "loc": [str(p)[:64] for p in e["loc"]],
            "type": e["type"],
            "msg": e["msg"],
        }
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    return ValidationFailed(f"{len(errors)} field(s) failed validation", errors=errors)


async def _read_json(request: web.Request, limit: int) -> tuple[bytes, Any]:
    ctype = request.headers.get("Content-Type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType()
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes")
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedBody() from None
    if not isinstance(raw, dict):
        raise ValidationFailed("the body must be a JSON object", errors=[{"loc": [], "type": "object_type"}])
    return body, raw


async def post_registration(request: web.Request) -> web.Response:
    svc = _services(request)
    principal = _principal(request)
    require(principal, Role.ORDERING)
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise MissingIdempotencyKey()
    if not _IDEMPOTENCY_KEY.match(key):
        raise ValidationFailed(
            "Idempotency-Key must be 8-128 printable ASCII characters",
            errors=[{"loc": ["header", "Idempotency-Key"], "type": "string_pattern_mismatch"}],
        )
    body, raw = await _read_json(request, svc.max_body_bytes)
    try:
        req = RegistrationRequest.model_validate_json(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    status, answer = await svc.registrations.submit(principal.name, key, raw, req)
    svc.metrics.registrations.labels("accepted" if status == 202 else "refused").inc()
    if status == 202 and svc.worker is not None:
        svc.worker.wakeup.set()
    headers = {"Location": f"/v1/registrations/{answer.get('id') or answer.get('registration_id')}"}
    if status >= 400:
        return web.Response(
            status=status, body=json.dumps(answer).encode(), content_type="application/problem+json",
            headers=headers,
        )
    return json_response(answer, status=status, headers=headers)


async def change_registrant(request: web.Request) -> web.Response:
    """The ordering system reports new registrant data: changed, released fields go to every past
    recipient of this registration's holder (contact:update for registries)."""
    svc = _services(request)
    principal = _principal(request)
    require(principal, Role.ORDERING)
    reg_id = request.match_info["reg_id"]
    reg = await svc.store.registration(reg_id) if re.fullmatch(r"[0-9a-f]{32}", reg_id) else None
    if reg is None or reg["client"] != principal.name or reg["subject_id"] is None:
        raise NotFound("no such registration")
    body, _ = await _read_json(request, svc.max_body_bytes)
    try:
        new = Registrant.model_validate_json(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    changes = ChangeService(svc.store, svc.ledger, svc.registrations.policies)
    report = await changes.push(reg["subject_id"], new, purpose="registrant_change")
    if svc.worker is not None:
        svc.worker.wakeup.set()
    return json_response({"registration_id": reg_id, "recipients": [c.as_dict() for c in report]}, status=202)


async def get_registration(request: web.Request) -> web.Response:
    svc = _services(request)
    principal = _principal(request)
    require(principal, Role.ORDERING, Role.PRIVACY, Role.AUDITOR)
    reg_id = request.match_info["reg_id"]
    if not re.fullmatch(r"[0-9a-f]{32}", reg_id):
        raise NotFound("no such registration")
    reg = await svc.store.registration(reg_id)
    # An ordering client sees only its own registrations; others' ids look like absent ones.
    if reg is None or (principal.role is Role.ORDERING and reg["client"] != principal.name):
        raise NotFound("no such registration")
    reg.pop("client")
    return json_response(reg)


_FILTERS: dict[str, re.Pattern[str]] = {
    "recipient": re.compile(r"^[a-z0-9][a-z0-9-]{1,40}$"),
    "country": re.compile(r"^[A-Z]{2}$"),
    "category": re.compile("^(" + "|".join(c.value for c in TransferCategory) + ")$"),
    "outcome": re.compile(r"^(delivered|failed|blocked)$"),
    "registration_id": re.compile(r"^[0-9a-f]{32}$"),
    "subject_id": re.compile(r"^[0-9a-f]{32}$"),
    "third_country": re.compile(r"^(true|false)$"),
}


def _parse_time(name: str, value: str) -> str:
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed(f"'{name}' must be an ISO 8601 timestamp",
                               errors=[{"loc": ["query", name], "type": "datetime_parsing"}]) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def list_disclosures(request: web.Request) -> web.Response:
    svc = _services(request)
    principal = _principal(request)
    require(principal, Role.PRIVACY, Role.AUDITOR)
    q = request.query
    unknown = set(q) - {*_FILTERS, "since", "until", "limit", "after"}
    if unknown:
        raise ValidationFailed("unknown query parameter", errors=[{"loc": ["query", sorted(unknown)[0][:64]],
                                                                     "type": "extra_forbidden"}])
    values: dict[str, Any] = {}
    for name, pattern in _FILTERS.items():
        if name in q:
            if not pattern.match(q[name]):
                raise ValidationFailed(f"bad value for '{name}'",
                                       errors=[{"loc": ["query", name], "type": "pattern_mismatch"}])
            values[name] = q[name] == "true" if name == "third_country" else q[name]
    for name in ("since", "until"):
        if name in q:
            values[name] = _parse_time(name, q[name])
    values["after_seq"] = -1
    for name, lo, hi, default in (("limit", 1, 1000, 100), ("after", 0, 2**62, None)):
        if default is None and name not in q:
            continue
        raw = q.get(name, str(default))
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            raise ValidationFailed(f"'{name}' must be an integer in [{lo}, {hi}]",
                                   errors=[{"loc": ["query", name], "type": "int_range"}])
        values["after_seq" if name == "after" else name] = int(raw)
    rows = await svc.store.disclosures(DisclosureFilter(**values))
    items = [e.as_dict() for e in rows]
    nxt = rows[-1].leaf_index if len(rows) == values["limit"] else None
    return json_response({"items": items, "next_after": nxt})


async def get_disclosure(request: web.Request) -> web.Response:
    """One entry; the privacy role also sees the values sent, decrypted, and that read is logged."""
    svc = _services(request)
    principal = _principal(request)
    require(principal, Role.PRIVACY, Role.AUDITOR)
    entry_id = request.match_info["entry_id"]
    entry = await svc.store.disclosure(entry_id) if re.fullmatch(r"[0-9a-f]{32}", entry_id) else None
    if entry is None:
        raise NotFound("no such disclosure")
    body = entry.as_dict()
    if principal.role is Role.PRIVACY:
        try:
            body["values"] = await svc.ledger.entry_values(entry)
            body["values_erased"] = False
        except SubjectErased:
            body["values"], body["values_erased"] = None, True
        await svc.ledger.record_access(principal.name, "disclosure.values_read", entry.id, entry.subject_id)
    return json_response(body)


async def healthz(request: web.Request) -> web.Response:
    svc = _services(request)
    pending = await svc.store.pending_count()
    return json_response({"status": "ok", "schema_version": svc.store.schema_version, "outbox_pending": pending})


async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def metrics(request: web.Request) -> web.Response:
    data = generate_latest(_services(request).metrics.registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def count_requests(request: web.Request, handler: Any) -> web.StreamResponse:
    resp: web.StreamResponse = await handler(request)
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    _services(request).metrics.requests.labels(route, str(resp.status)).inc()
    return resp


def build_app(services: Services) -> web.Application:
    # client_max_size is a backstop; the handler enforces the configured limit with a problem body.
    app = web.Application(
        middlewares=[count_requests, problem_middleware], client_max_size=services.max_body_bytes * 4
    )
    app[SERVICES] = services
    app.router.add_post("/v1/registrations", post_registration)
    app.router.add_get("/v1/registrations/{reg_id}", get_registration)
    app.router.add_post("/v1/registrations/{reg_id}/registrant", change_registrant)
    app.router.add_get("/v1/disclosures", list_disclosures)
    app.router.add_get("/v1/disclosures/{entry_id}", get_disclosure)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/metrics", metrics)
    from gateway.http.api import ledger as ledger_routes

    ledger_routes.add_routes(app)
    from gateway.http.api import lookups as lookup_routes
    from gateway.http.api import rights as rights_routes
    from gateway.http.pages import add_routes as add_ui_routes

    rights_routes.add_routes(app)
    lookup_routes.add_routes(app)
    add_ui_routes(app)

    if services.worker is not None:
        worker = services.worker

        async def worker_ctx(app: web.Application) -> Any:
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(stop, services.poll_s))
            yield
            stop.set()
            await task

        app.cleanup_ctx.append(worker_ctx)
    for interval, job, name in (
        (services.checkpoint_interval_s, services.ledger.checkpoint, "ledger.checkpoint"),
        (services.escrow_interval_s, services.escrow.run_once if services.escrow else None, "escrow.deposit"),
    ):
        if interval > 0 and job is not None:
            app.cleanup_ctx.append(_periodic(interval, job, name))
    return app


def _periodic(interval: float, job: Callable[[], Awaitable[object]], name: str) -> Callable[
        [web.Application], AsyncIterator[None]]:
    """A background job every ``interval`` seconds, for the app's lifetime; failures are logged by type."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await job()
                except Exception as exc:  # keep running; say what failed, never with what
                    log.error(f"{name}_failed", error_type=type(exc).__name__)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx

