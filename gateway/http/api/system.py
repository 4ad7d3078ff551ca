"""For operators and tooling: liveness (``/healthz``), readiness (``/readyz``) and the OpenAPI description
without a token; Prometheus metrics with one (a staff token, or the dedicated scrape token of
``GATEWAY_METRICS_TOKEN_SHA256``)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterator

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.auth import Role, hash_token, require
from gateway.clock import utcnow
from gateway.http import scrape
from gateway.http.context import Metrics, principal, services
from gateway.http.openapi import openapi_document
from gateway.http.problems import json_response, problem_response
from gateway.ledger.keys import unwrap, wrap
from gateway.services.ledger import Ledger
from gateway.store.base import OutboxStat, Store

log = structlog.get_logger("gateway.api")

routes = web.RouteTableDef()

#: How this process delivers (``Settings.delivery_mode``: inprocess, external, off), set by ``gateway.compose``.
DELIVERY_MODE = web.AppKey("delivery_mode", str)


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness, with the outbox at a glance.  ``outbox_pending`` counts only rows the delivery worker sends
    (what a benchmark or an operator waits on to reach zero); the escrow agent's rows wait for the next
    periodic deposit by design and are counted apart, parked rows too."""
    svc = services(request)
    stats = await svc.store.outbox_stats(utcnow())
    policies = svc.registrations.policies.recipients
    batched = {rid for rid, p in policies.items() if p.protocol == "escrow"}
    return json_response({
        "status": "ok", "schema_version": svc.store.schema_version,
        "outbox_pending": sum(s.depth for s in stats if s.recipient not in batched),
        "outbox_awaiting_deposit": sum(s.depth for s in stats if s.recipient in batched),
        "outbox_parked": sum(s.parked for s in stats),
    })


def _keys_usable(ledger: Ledger) -> bool:
    """The key ring still reads (a server follows ``kek.json``), its active key wraps and unwraps a data
    key, and a checkpoint signer is loaded."""
    if ledger.ring_file is not None:
        ledger.ring_file.refresh()  # ConfigError if the file went away or turned unreadable
    ring, probe = ledger.ring, secrets.token_bytes(32)
    return unwrap(ring, wrap(ring, probe, "readyz"), "readyz") == probe and ledger.signer is not None


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready when the store answers with the schema this code knows, the keys are loaded and usable, the
    configuration this process runs on is whole, and the delivery loop (if this process runs one) is
    alive; with delivery in ``gateway worker`` processes ``checks.worker`` is ``external`` (``off``: nothing
    delivers) and ``outbox_oldest_pending_s`` says how long the oldest row has waited.  ``/healthz`` stays a
    liveness check of the process itself.  A refusal names the failed check in ``check`` and the state of
    each in ``checks``; never a path, DSN or key."""
    svc = services(request)
    checks: dict[str, str] = {}

    def not_ready(check: str, detail: str) -> web.Response:
        checks[check] = "failed"
        return problem_response(scrape.NotReady(detail, check=check, checks=checks), request)

    try:
        version = await scrape.schema_in_database(svc.store)
    except Exception as exc:  # the store's error may quote a DSN; say only what failed
        log.warning("readyz.store_unavailable", error_type=type(exc).__name__)
        return not_ready("store", "the store does not answer")
    latest = scrape.latest_schema(svc.store)
    if version != latest:
        return not_ready("store", f"schema version {version}, this gateway needs {latest}")
    checks["store"] = "ok"
    try:
        keys_ok = _keys_usable(svc.ledger)
    except Exception as exc:  # the key file's error may name its path
        log.warning("readyz.keys_unusable", error_type=type(exc).__name__)
        keys_ok = False
    if not keys_ok:
        return not_ready("keys", "the key ring or checkpoint signing key is not usable")
    checks["keys"] = "ok"
    policies = svc.registrations.policies
    if not policies.recipients or not policies.by_tld:
        return not_ready("config", "no recipient policies are loaded")
    checks["config"] = "ok"
    mode = request.config_dict.get(DELIVERY_MODE, "inprocess")
    extra: dict[str, object] = {}
    if mode == "inprocess":
        if not svc.metrics.delivery.workers_alive():
            return not_ready("worker", "the delivery worker loop is not running")
        checks["worker"] = "ok"
    else:
        # ``gateway worker`` processes deliver (each has its own /healthz), or nothing does: this process
        # cannot vouch for them, and accepting is still right while they are down (rows wait).  What it
        # can say cheaply is how long the oldest row has waited (escrow rows wait for the deposit by design).
        checks["worker"] = mode
        batched = {rid for rid, p in svc.registrations.policies.recipients.items() if p.protocol == "escrow"}
        ages = [s.oldest_pending_s for s in await svc.store.outbox_stats(utcnow())
                if s.recipient not in batched and s.oldest_pending_s is not None]
        extra["outbox_oldest_pending_s"] = round(max(ages, default=0.0), 3)
    return json_response({"status": "ready", "schema_version": version, "checks": checks, **extra})


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
    # the per-recipient outbox families, from one query now: a registry of this scrape's own, so a
    # recipient whose rows all went leaves no stale series behind
    outbox = CollectorRegistry(auto_describe=False)
    outbox.register(OutboxCollector(await svc.store.outbox_stats(utcnow())))
    return web.Response(body=data + generate_latest(outbox), headers={"Content-Type": CONTENT_TYPE_LATEST})


class OutboxCollector(Collector):
    """``gateway_outbox_depth`` (pending + in flight), ``gateway_outbox_oldest_pending_seconds`` and
    ``gateway_outbox_parked`` (needs attention) per recipient; the families are described even when empty."""

    def __init__(self, stats: list[OutboxStat]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("gateway_outbox_depth", "Outbox rows waiting to be sent (pending or in "
                                  "flight) per recipient", labels=["recipient"])
        oldest = GaugeMetricFamily("gateway_outbox_oldest_pending_seconds", "Age of the oldest row waiting to "
                                   "be sent per recipient", labels=["recipient"])
        parked = GaugeMetricFamily("gateway_outbox_parked", "Outbox rows parked for staff (needs_attention) "
                                   "per recipient", labels=["recipient"])
        for s in self.stats:
            depth.add_metric([s.recipient], s.depth)
            parked.add_metric([s.recipient], s.parked)
            if s.oldest_pending_s is not None:
                oldest.add_metric([s.recipient], s.oldest_pending_s)
        yield from (depth, oldest, parked)


async def _set_gauges(store: Store, m: Metrics) -> None:
    """The outbox, ledger and schema gauges, from the store at scrape time (stale labels dropped)."""
    figures = await scrape.figures(store)
    now = utcnow()
    m.outbox_rows.clear()
    m.outbox_oldest_pending_s.clear()
    oldest: dict[str, str] = {}
    for f in figures.outbox:
        m.outbox_rows.labels(f.recipient, f.state).set(f.rows)
        waiting = f.state in ("pending", "in_flight")
        if waiting and f.oldest and (f.recipient not in oldest or f.oldest < oldest[f.recipient]):
            oldest[f.recipient] = f.oldest
    for recipient, at in oldest.items():
        m.outbox_oldest_pending_s.labels(recipient).set(scrape.age_s(at, now))
    m.ledger_entries.set(figures.ledger_size)
    m.ledger_unchecked.set(figures.ledger_size - (figures.checkpoint_size or 0))
    m.checkpoint_age_s.set(scrape.age_s(figures.checkpoint_at, now))
    m.schema_version.set(store.schema_version)
