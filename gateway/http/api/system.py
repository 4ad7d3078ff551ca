"""For operators and tooling, without a token: health, the OpenAPI description, Prometheus metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.http.context import services
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


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    data = generate_latest(services(request).metrics.registry)
    return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})
