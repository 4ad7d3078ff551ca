"""For operators and tooling: liveness (``/healthz``), readiness (``/readyz``) and the OpenAPI description
without a token; Prometheus metrics with one (a staff token, or the dedicated scrape token of
``GATEWAY_METRICS_TOKEN_SHA256``)."""

from __future__ import annotations

import hmac

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.auth import Role, hash_token, require
from gateway.clock import utcnow
from gateway.http import scrape
from gateway.http.context import Metrics, principal, services
from gateway.http.openapi import openapi_document
from gateway.http.problems import json_response, problem_response
from gateway.store.base import Store

log = structlog.get_logger("gateway.api")

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    svc = services(request)
    pending = await svc.store.pending_count()
    return json_response({"status": "ok", "schema_version": svc.store.schema_version, "outbox_pending": pending})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready when the store answers with the schema this code knows and the delivery loop (if this
    process runs one) is alive; ``/healthz`` stays a liveness check of the process itself."""
    svc = services(request)
    try:
        version = await scrape.schema_in_database(svc.store)
    except Exception as exc:  # the store's error may quote a DSN; say only what failed
        log.warning("readyz.store_unavailable", error_type=type(exc).__name__)
        return problem_response(scrape.NotReady("the store does not answer"), request)
    latest = scrape.latest_schema(svc.store)
    if version != latest:
        return problem_response(scrape.NotReady(f"schema version {version}, this gateway needs {latest}"), request)
    if not svc.metrics.delivery.workers_alive():
        return problem_response(scrape.NotReady("the delivery worker loop is not running"), request)
    return json_response({"status": "ready", "schema_version": version})


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


def _scrape_token_ok(request: web.Request, sha256: str | None) -> bool:
    header = request.headers.get("Authorization", "")
    if sha256 is None or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(hash_token(header[7:].strip()), sha256)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Request counts by route and status, and registrations by answer: no personal data, but traffic
    patterns per route (who is looked up how often, when staff export) are nobody else's business."""
    svc = services(request)
    if not _scrape_token_ok(request, svc.metrics_token_sha256):
        require(principal(request), Role.PRIVACY, Role.AUDITOR)
    await _set_gauges(svc.store, svc.metrics)
    data = generate_latest(svc.metrics.registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _set_gauges(store: Store, m: Metrics) -> None:
    """The outbox, ledger and schema gauges, from the store at scrape time (stale labels dropped)."""
    figures = await scrape.figures(store)
    now = utcnow()
    m.outbox_rows.clear()
    m.outbox_oldest_pending_s.clear()
    oldest: dict[str, str] = {}
    for f in figures.outbox:
        m.outbox_rows.labels(f.recipient, f.state).set(f.rows)
        if f.state != "failed" and f.oldest and (f.recipient not in oldest or f.oldest < oldest[f.recipient]):
            oldest[f.recipient] = f.oldest
    for recipient, at in oldest.items():
        m.outbox_oldest_pending_s.labels(recipient).set(scrape.age_s(at, now))
    m.ledger_entries.set(figures.ledger_size)
    m.ledger_unchecked.set(figures.ledger_size - (figures.checkpoint_size or 0))
    m.checkpoint_age_s.set(scrape.age_s(figures.checkpoint_at, now))
    m.schema_version.set(store.schema_version)
