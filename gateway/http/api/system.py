"""For operators and tooling: health and the OpenAPI description without a token; Prometheus metrics
with one (a staff token, or the dedicated scrape token of ``GATEWAY_METRICS_TOKEN_SHA256``)."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.auth import Role, hash_token, require
from gateway.http.context import principal, services
from gateway.http.openapi import openapi_document
from gateway.http.problems import json_response

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    svc = services(request)
    pending = await svc.store.pending_count()
    return json_response({"status": "ok", "schema_version": svc.store.schema_version, "outbox_pending": pending})


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
    data = generate_latest(svc.metrics.registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})
