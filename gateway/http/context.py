"""What every HTTP handler, API or page, gets from the running gateway: the services, the caller, the
JSON body, and the background jobs' lifetime helper.

Route modules import this module, never ``gateway.http.app``: the app imports them to build itself,
so reaching back into it would make an import circle.  Services are read through
``request.config_dict`` so the staff pages, a sub-application mounted under ``/ui``, see the same
container as the API without a copy of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from pydantic import ValidationError

from adapters.http_partner import PartnerEndpoint
from gateway.auth import Principal, TokenStore
from gateway.errors import BodyTooDeep, MalformedBody, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from gateway.logs import (
    REQUEST_ID_HEADER,
    DeliveryMetrics,
    Forward,
    delivery_metrics,
    request_id_from,
)
from gateway.rights.service import RightsService
from gateway.services.changes import ChangeService
from gateway.services.ledger import Ledger
from gateway.services.lifecycle import LifecycleService
from gateway.services.registrations import RegistrationService
from gateway.store.base import Store

log = structlog.get_logger("gateway.api")

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


#: Seconds; the API answers in milliseconds, a registration's accept transaction in tens of them.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Metrics:
    """The app's Prometheus registry.  Labels are routes (templates, never a path), status codes,
    outcomes and recipient ids: no value a caller sent.  The gauges are set at scrape time from the
    store (``gateway.http.scrape``); the delivery worker's counters are the process's, forwarded."""

    registry: CollectorRegistry
    requests: Counter
    registrations: Counter
    request_seconds: Histogram
    outbox_rows: Gauge
    outbox_oldest_pending_s: Gauge
    ledger_entries: Gauge
    ledger_unchecked: Gauge
    checkpoint_age_s: Gauge
    schema_version: Gauge
    delivery: DeliveryMetrics

    @classmethod
    def create(cls) -> Metrics:
        reg = CollectorRegistry()
        delivery = delivery_metrics()
        reg.register(Forward(delivery.registry))
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)
        return cls(
            registry=reg,
            requests=Counter("gateway_http_requests", "HTTP requests", ["route", "status"], registry=reg),
            registrations=Counter("gateway_registrations", "Registrations by outcome (accepted, refused)",
                                  ["outcome"], registry=reg),
            request_seconds=Histogram("gateway_http_request_duration_seconds", "HTTP request latency",
                                      ["route", "method"], buckets=HTTP_BUCKETS, registry=reg),
            outbox_rows=Gauge("gateway_outbox_rows", "Outbox rows by recipient and state (pending, in_flight, "
                              "needs_attention = parked for staff, failed, cancelled)", ["recipient", "state"],
                              registry=reg),
            outbox_oldest_pending_s=Gauge("gateway_outbox_oldest_pending_age_seconds",
                                          "Age of the oldest undelivered outbox row per recipient",
                                          ["recipient"], registry=reg),
            ledger_entries=Gauge("gateway_ledger_entries", "Disclosure ledger size (leaves)", registry=reg),
            ledger_unchecked=Gauge("gateway_ledger_entries_since_checkpoint",
                                   "Ledger entries not yet covered by a signed checkpoint", registry=reg),
            checkpoint_age_s=Gauge("gateway_ledger_checkpoint_age_seconds",
                                   "Seconds since the latest signed checkpoint (-1: none yet)", registry=reg),
            schema_version=Gauge("gateway_store_schema_version", "The store's schema version", registry=reg),
            delivery=delivery,
        )


REQUEST_ID = web.RequestKey("request_id", str)


def route_of(request: web.BaseRequest) -> str:
    """The matched route's template (``/v1/registrations/{reg_id}``), never the path itself."""
    match = getattr(request, "match_info", None)
    resource = match.route.resource if match is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_ids(request: web.Request, handler: Any) -> web.StreamResponse:
    """``X-Request-ID`` in (validated) and out, bound to every log line of the request; the services
    store it with the outbox rows the request queues, so the worker binds it on those deliveries' lines."""
    rid = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID] = rid
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(request_id=rid):
        resp: web.StreamResponse = await handler(request)
    services(request).metrics.request_seconds.labels(route_of(request), request.method).observe(
        time.perf_counter() - started)
    return resp


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the id on every response, streamed ones and aiohttp's own included."""
    rid = request.get(REQUEST_ID)
    if rid is not None:
        response.headers[REQUEST_ID_HEADER] = rid


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access line as structured fields: method, route template, status, size, duration and
    the request id; never the path, query or a header (they can quote personal data)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info("http.access", extra={
            "method": request.method, "route": route_of(request), "status": response.status,
            "bytes": response.body_length, "duration_ms": round(time * 1000, 2),
            "request_id": request.get(REQUEST_ID),
        })


class OnDemandJob(Protocol):
    """A batch job that also runs on a timer (set up by the composition root), run now instead."""

    async def run_once(self) -> object: ...


@dataclass
class Services:
    """Everything the handlers use, built once by ``gateway.compose``.

    ``wake`` tells the delivery worker that rows were queued, so it sends them now instead of at its
    next poll; HTTP knows nothing else about the worker.  ``escrow`` is the escrow deposit job, so an
    operator (or a test) holding the app can make a deposit without waiting for its timer."""

    store: Store
    ledger: Ledger
    tokens: TokenStore
    registrations: RegistrationService
    changes: ChangeService
    lifecycle: LifecycleService
    rights: RightsService
    max_body_bytes: int
    metrics: Metrics
    wake: Callable[[], None]
    address_lookup: PartnerEndpoint | None = None
    escrow: OnDemandJob | None = None
    #: SHA-256 of a token that may read ``/metrics`` and nothing else (``GATEWAY_METRICS_TOKEN_SHA256``),
    #: so a scraper needs no staff token; staff tokens (privacy, auditor) may read it as well.
    metrics_token_sha256: str | None = None


SERVICES = web.AppKey("services", Services)


def services(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


def principal(request: web.Request) -> Principal:
    """The bearer token's principal (401 problem if there is none or it is unknown)."""
    return services(request).tokens.authenticate(request.headers.get("Authorization"))


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


#: No request body of ours nests deeper than a handful of levels; this leaves room and stays far below
#: the depth at which the parser would exhaust the stack (``RecursionError``).
MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_tree(raw: Any) -> None:
    """Depth and lone surrogates, iteratively.  JSON may escape a lone surrogate (``"\\ud800"``), which
    ``json.loads`` accepts and pydantic's parser refuses as invalid JSON with no field named; refusing
    it here names the field.  Keys are quoted in ``loc`` like pydantic does (cut to 64 characters),
    except a key that itself holds the surrogate."""
    stack: list[tuple[Any, list[str | int]]] = [(raw, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_JSON_DEPTH:
            raise BodyTooDeep(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, str):
            if _SURROGATE.search(node):
                raise ValidationFailed("1 field(s) failed validation", errors=[
                    {"loc": path, "type": "string_unicode", "msg": "must be valid Unicode (no lone surrogates)"}])
        elif isinstance(node, dict):
            for key, value in node.items():
                if _SURROGATE.search(key):
                    raise ValidationFailed("1 field(s) failed validation", errors=[
                        {"loc": path, "type": "string_unicode", "msg": "a key must be valid Unicode"}])
                stack.append((value, [*path, key[:64]]))
        elif isinstance(node, list):
            stack.extend((value, [*path, i]) for i, value in enumerate(node))


async def read_json(request: web.Request) -> tuple[bytes, Any]:
    """The raw body (for strict model validation) and its parsed object.

    The configured size limit is enforced here, with a problem body; the app's ``client_max_size``
    is only a backstop.  The body must be UTF-8 (``json.loads`` would also guess UTF-16 and UTF-32,
    which the models' parser does not), at most ``MAX_JSON_DEPTH`` deep and free of lone surrogates,
    so what passes here is what the models can read, and a model's errors always name a field."""
    limit = services(request).max_body_bytes
    ctype = request.headers.get("Content-Type", "")
    if ctype.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType()
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes")
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"body exceeds {limit} bytes")
    try:
        raw = json.loads(body.decode("utf-8"))
    except RecursionError:
        raise BodyTooDeep(f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise MalformedBody() from None
    if not isinstance(raw, dict):
        raise ValidationFailed("the body must be a JSON object", errors=[{"loc": [], "type": "object_type"}])
    _check_tree(raw)
    return body, raw


def periodic(interval: float, job: Callable[[], Awaitable[object]], name: str) -> CleanupContext:
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
