"""Composition root: settings → store, policies, tokens, services, worker, background jobs, app.  All
I/O set-up lives here, and this is the only place that knows both the HTTP app and the delivery side."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import signal
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from pathlib import Path
from typing import Annotated, Any, cast

import structlog
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from adapters.epp.tls import ensure_dev_pki
from adapters.epp.types import Endpoint
from adapters.http_partner import PartnerEndpoint
from gateway.auth import TokenStore, write_dev_tokens
from gateway.delivery.epp_pools import EppPools
from gateway.delivery.escrow_job import EscrowJob
from gateway.delivery.poll import poll_workers
from gateway.delivery.scheduler import Scheduler
from gateway.delivery.wake import WakeListener, wake_sender
from gateway.delivery.webhooks import WebhookSender
from gateway.delivery.worker import DeliveryWorker
from gateway.errors import ConfigError, PermanentDeliveryError, RecipientUnrouted
from gateway.http.api.system import DELIVERY_MODE
from gateway.http.api.webhooks import WEBHOOK_SETTINGS, WebhookSettings
from gateway.http.app import build_app
from gateway.http.context import CleanupContext, Metrics, Services, periodic
from gateway.http.pages import oidc
from gateway.http.pages.core import ACCOUNTS
from gateway.http.pages.login import TRUSTED_PROXIES, ProxySettings
from gateway.ledger.checkpoint import load_or_create_signing_key
from gateway.ledger.keys import BlindIndexer, KeyRing
from gateway.logs import delivery_metrics
from gateway.outbox.epp import RegistrarContact
from gateway.policy.loader import PolicySet, load_model, load_policies
from gateway.rights.config import load_controller, load_retention
from gateway.rights.recipients import PartnerEndpoints
from gateway.rights.service import RightsService
from gateway.services.accounts import AccountService
from gateway.services.changes import ChangeService
from gateway.services.ledger import Ledger
from gateway.services.lifecycle import LifecycleService
from gateway.services.registrations import RegistrationService
from gateway.settings import Settings
from gateway.store.accounts import AccountStore
from gateway.store.base import Store
from gateway.store.sqlite import SqliteStore

log = structlog.get_logger("gateway.rights")


class EndpointConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    host: str
    port: Annotated[int, Field(ge=1, le=65535)]
    client_id: str
    password_env: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None


class PartnerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    base_url: str
    token_env: str
    ca_file: str | None = None
    timeout_s: float = 10.0

    def endpoint(self, name: str, where: Path) -> PartnerEndpoint:
        token = os.environ.get(self.token_env)
        if token is None:
            raise ConfigError(f"{where}: {name}: ${self.token_env} is not set")
        return PartnerEndpoint(base_url=self.base_url, token=token, timeout_s=self.timeout_s,
                               verify=self.ca_file or True, name=name)


class EscrowConfig(PartnerConfig):
    recipient: str
    agent_public_key_file: Path  # X25519, PEM
    registrar_id: str
    interval_s: Annotated[float, Field(gt=0)] = 86_400.0


class EndpointsFile(BaseModel):
    """Where each recipient is reached; secrets come from named environment variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    endpoints: dict[str, EndpointConfig] = {}
    partners: dict[str, PartnerConfig] = {}
    escrow: EscrowConfig | None = None
    address_lookup: PartnerConfig | None = None
    #: Recipients deliberately not served: nothing is queued for them (a registry's TLDs are refused at
    #: acceptance).  Start-up refuses a recipient that is neither reachable nor listed here.
    disabled: list[str] = []


def load_secret(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    data = path.read_bytes()
    if len(data) < 32:
        raise ConfigError(f"{path}: secret must be at least 32 bytes")
    return data


def load_endpoints(settings: Settings, policies: PolicySet) -> EndpointsFile:
    if settings.endpoints_file is None:
        return EndpointsFile()
    cfg = load_model(settings.endpoints_file, EndpointsFile)
    for rid in [*cfg.endpoints, *cfg.partners, *([cfg.escrow.recipient] if cfg.escrow else []), *cfg.disabled]:
        if rid not in policies.recipients:
            raise ConfigError(f"{settings.endpoints_file}: {rid}: no such recipient policy")
    return cfg


def unrouted_recipients(policies: PolicySet, cfg: EndpointsFile) -> dict[str, str]:
    """Pure: every enabled recipient that registrations are queued for but that this configuration cannot
    reach, with what would reach it.  Such rows would wait forever (the escrow agent's: no deposit job) or
    fail on every attempt; ``disabled`` recipients are left out on purpose.  A protocol with no adapter
    (RRI) is refused at acceptance instead, whatever is configured."""
    out = {}
    for rid, p in sorted(policies.recipients.items()):
        if not p.enabled or p.on_registration == "never" or rid in cfg.disabled:
            continue
        if p.protocol == "epp" and cfg.endpoints and rid not in cfg.endpoints:
            out[rid] = f"an EPP endpoint (endpoints.{rid})"
        elif p.protocol == "https" and rid not in cfg.partners:
            out[rid] = f"a partner endpoint (partners.{rid})"
        elif p.protocol == "escrow" and (cfg.escrow is None or cfg.escrow.recipient != rid):
            out[rid] = f"an escrow agent (escrow: with recipient: {rid})"
    return out


def without(policies: PolicySet, recipients: Collection[str]) -> PolicySet:
    """``policies`` with ``recipients`` switched off: nothing is queued for them, and a registry's TLDs
    have no recipient policy (refused at acceptance, nothing stored)."""
    if not recipients:
        return policies
    return dataclasses.replace(
        policies,
        recipients={rid: p.model_copy(update={"enabled": False}) if rid in recipients else p
                    for rid, p in policies.recipients.items()},
        by_tld={tld: p for tld, p in policies.by_tld.items() if p.recipient not in recipients},
    )


def check_routes(
    settings: Settings, policies: PolicySet, cfg: EndpointsFile, *, development: bool,
    delivering: bool | None = None,
) -> PolicySet:
    """Start-up: what to do with recipients nothing reaches (``unrouted_recipients``).

    With registry endpoints configured (production) and delivery from this process or its workers
    (``delivering``; default: unless ``GATEWAY_DELIVERY=off``), start-up stops and names each one and what
    to configure.  With every registry on the local sandbox: ``gateway run`` (``development``) leaves them
    out of this run; other processes keep queuing for them, with a warning (tests and tools that deliver
    nothing to them)."""
    unrouted = unrouted_recipients(policies, cfg)
    if not unrouted:
        return without(policies, cfg.disabled)
    if delivering is None:
        delivering = settings.delivery_mode() != "off"
    if cfg.endpoints and delivering:
        listed = "; ".join(f"{rid}: configure {what}" for rid, what in unrouted.items())
        raise RecipientUnrouted(f"{settings.endpoints_file}: nowhere to deliver to {listed}; or list the "
                                "recipient under 'disabled:' to queue nothing for it")
    for rid, what in unrouted.items():
        log.warning("config.recipient_unrouted", recipient=rid, configure=what, queued=not development)
    return without(policies, [*cfg.disabled, *unrouted] if development else cfg.disabled)


def endpoint_resolver(settings: Settings, policies: PolicySet, cfg: EndpointsFile) -> dict[str, Endpoint]:
    """Every registry's EPP endpoint: from the endpoints file if given, else the local sandbox."""
    if cfg.endpoints:
        out = {}
        for rid, e in cfg.endpoints.items():
            password = os.environ.get(e.password_env)
            if password is None:
                raise ConfigError(f"{settings.endpoints_file}: endpoints.{rid}: ${e.password_env} is not set")
            out[rid] = Endpoint(e.host, e.port, e.client_id, password, e.ca_file, e.cert_file, e.key_file,
                                e.server_name, settings.epp_timeout_s)
        return out
    pki = ensure_dev_pki(settings.resolved_pki())
    sandbox = Endpoint(
        host=settings.sandbox_host, port=settings.sandbox_port, client_id=settings.registrar_client_id,
        password=settings.registrar_password, ca_file=str(pki.ca_cert), cert_file=str(pki.client_cert),
        key_file=str(pki.client_key), server_name="localhost", timeout_s=settings.epp_timeout_s,
    )
    return dict.fromkeys(policies.recipients, sandbox)


def load_key_ring(settings: Settings) -> KeyRing:
    if settings.kek is not None:
        return KeyRing.from_env(settings.kek, name="GATEWAY_KEK")
    path = settings.resolved_kek()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process created it first: load theirs
            return KeyRing.generate(path)
    return KeyRing.from_file(path)


def load_indexer(settings: Settings) -> BlindIndexer:
    path = settings.resolved_blind_index_key()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            return BlindIndexer.generate(path)
    return BlindIndexer.from_file(path)


async def open_store(settings: Settings) -> Store:
    if settings.database_url:
        from gateway.store.postgres import PostgresStore

        return await PostgresStore.open(settings.database_url)
    return SqliteStore(settings.resolved_db(), synchronous=settings.db_synchronous)


def open_ledger(settings: Settings, store: Store) -> Ledger:
    signer = load_or_create_signing_key(settings.resolved_signing_key())
    ring_file = settings.resolved_kek() if settings.kek is None else None  # a file can rotate under us
    return Ledger(store, load_key_ring(settings), load_indexer(settings), signer, ring_file=ring_file)


def key_ring_reloader(ledger: Ledger, interval_s: float) -> CleanupContext:
    """Follow ``gateway keys rotate`` without a restart: check the ring file every ``interval_s`` (a stat
    while unchanged) and read it at once on SIGHUP.  New wraps re-read the file anyway (fail closed); this
    keeps reads and the log current.  A file that cannot be read is logged and the last good ring kept."""

    def check(force: bool) -> None:
        try:
            if ledger.reload_ring(force=force):
                log.info("ledger.key_ring_reloaded", active_kid=ledger.ring.active, kids=len(ledger.ring.keys))
        except ConfigError:
            log.error("ledger.key_ring_unreadable")

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        try:
            loop.add_signal_handler(signal.SIGHUP, check, True)
            on_hup = True
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests), or no SIGHUP
            on_hup = False

        async def watch() -> None:
            while True:
                await asyncio.sleep(interval_s)
                check(False)

        task = asyncio.create_task(watch()) if interval_s > 0 else None
        yield
        if on_hup:
            loop.remove_signal_handler(signal.SIGHUP)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return ctx


def open_rights(
    settings: Settings, store: Store, ledger: Ledger, policies: PolicySet, *,
    changes: ChangeService | None = None, partners: PartnerEndpoints | None = None,
    wake: Callable[[], None] | None = None,
) -> RightsService:
    """The gateway's RightsService, for the server and the staff CLI alike: retention periods and the
    controller's identity from the settings' config directory, loaded now so a mistake in either file
    stops start-up like a bad policy file."""
    return RightsService(store, ledger, policies, retention_config=load_retention(settings.config_dir),
                         controller=load_controller(settings.config_dir), changes=changes, partners=partners,
                         wake=wake)


def run_loop(run: Callable[[asyncio.Event, float], Coroutine[Any, Any, None]], poll_s: float) -> CleanupContext:
    """A polling loop (the delivery worker's, the webhook sender's) for the app's lifetime; on shutdown it
    finishes what it holds, then stops."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(run(stop, poll_s))
        yield
        stop.set()
        await task

    return ctx


def webhook_sender(settings: Settings, store: Store) -> WebhookSender:
    return WebhookSender(
        store, max_attempts=settings.webhook_max_attempts, max_age_s=settings.webhook_max_age_s,
        backoff_base_s=settings.webhook_backoff_base_s, backoff_max_s=settings.webhook_backoff_max_s,
        timeout_s=settings.webhook_timeout_s,
    )


def delivery_scheduler(settings: Settings, worker: DeliveryWorker) -> Scheduler:
    """The worker's rows claimed per recipient (bulkheads, circuit breakers, leases with a heartbeat, a
    bounded stop: ``gateway.delivery.scheduler``).  It shares the worker's wake-up event, which
    ``Services.wake`` sets when a registration is accepted (in this process, or through the wake pipe
    from an API process: ``gateway.delivery.wake``).  A claim is renewed while its row is in flight, so
    its lease need not cover a whole delivery: ``worker_lease_s`` (how long a dead worker's row may wait)
    only ever shortens it."""
    lease_s = min(settings.worker_claim_lease_s, settings.worker_lease_s)
    return Scheduler(
        worker.store, worker, per_recipient=settings.worker_per_recipient,
        max_in_flight=settings.worker_max_in_flight, lease_s=lease_s,
        recover_every_s=min(settings.worker_recover_s, lease_s), breaker_threshold=settings.breaker_failures,
        breaker_cooldown_s=settings.breaker_cooldown_s, shutdown_grace_s=settings.worker_shutdown_grace_s,
        clock=worker.clock, metrics=worker.metrics, wakeup=worker.wakeup,
    )


def background_jobs(settings: Settings, ledger: Ledger, rights: RightsService) -> list[CleanupContext]:
    """What an API process runs beside the app whatever delivers: the timers whose interval is set."""

    async def purge() -> None:
        report = await rights.retention(dry_run=False)
        log.info("retention.purged", purged=report.get("purged", 0))

    return [periodic(interval, job, name) for interval, job, name in (
        (settings.checkpoint_interval_s, ledger.checkpoint, "ledger.checkpoint"),
        (settings.retention_interval_s, purge, "retention.purge"),
    ) if interval > 0]


def poll_jobs(
    settings: Settings, store: Store, policies: PolicySet, endpoints: dict[str, Endpoint], pools: EppPools,
    worker: DeliveryWorker,
) -> list[CleanupContext]:
    """The registry poll workers (``gateway.delivery.poll``), one per EPP endpoint, on pooled sessions: in a
    process that delivers (the notices wake its rows), unless ``poll_interval_s`` is 0."""
    if settings.poll_interval_s <= 0:
        return []
    workers = poll_workers(store, policies, endpoints, pools.session, wake=worker.wakeup.set,
                           max_per_round=settings.poll_max_per_round)
    return [run_loop(w.run, settings.poll_interval_s) for w in workers]


@dataclasses.dataclass(frozen=True)
class Routing:
    """Where each recipient is reached: the endpoints file checked against the policies (``check_routes``),
    each registry's EPP endpoint and each partner's.  The API and ``gateway worker`` build the same one."""

    policies: PolicySet
    cfg: EndpointsFile
    endpoints: dict[str, Endpoint]
    partners: dict[str, PartnerEndpoint]

    def endpoint_for(self, recipient: str) -> Endpoint:
        try:
            return self.endpoints[recipient]
        except KeyError:
            raise PermanentDeliveryError("no endpoint configured for this recipient") from None

    def partner_for(self, recipient: str) -> PartnerEndpoint:
        try:
            return self.partners[recipient]
        except KeyError:
            raise PermanentDeliveryError("no partner endpoint configured for this recipient") from None


def routing(settings: Settings, *, development: bool, delivering: bool) -> Routing:
    policies = load_policies(settings.config_dir)
    cfg = load_endpoints(settings, policies)
    policies = check_routes(settings, policies, cfg, development=development, delivering=delivering)
    where = settings.endpoints_file or Path("endpoints")
    return Routing(policies, cfg, endpoint_resolver(settings, policies, cfg),
                   {rid: p.endpoint(rid, where) for rid, p in cfg.partners.items()})


@dataclasses.dataclass(frozen=True)
class Delivery:
    """Everything that sends: the worker (one row at a time, fenced by its claim), the EPP session pools, the
    escrow deposit job, and what runs them for a process's lifetime (``jobs``): the scheduler, the escrow
    timer, the registry poll workers and the webhook sender."""

    worker: DeliveryWorker
    pools: EppPools
    escrow: EscrowJob | None
    jobs: list[CleanupContext]


def open_delivery(settings: Settings, store: Store, ledger: Ledger, route: Routing) -> Delivery:
    # EPP latency per registry: labelled by recipient id where one recipient has the endpoint, else by
    # host (a pool, and so its series, is per endpoint; e.g. every recipient shares the dev sandbox)
    holders: dict[tuple[str, int, str], list[str]] = {}
    for rid, ep in route.endpoints.items():
        holders.setdefault((ep.host, ep.port, ep.client_id), []).append(rid)

    def registry_label(ep: Endpoint) -> str:
        rids = holders.get((ep.host, ep.port, ep.client_id), [])
        return rids[0] if len(rids) == 1 else ep.host

    pools = EppPools(max_sessions=settings.epp_max_sessions, idle_keepalive_s=settings.epp_keepalive_s,
                     rate_limit_per_s=settings.epp_rate_limit_per_s, attempts=settings.epp_attempts,
                     metrics=delivery_metrics(), registry_label=registry_label)
    worker = DeliveryWorker(
        store, ledger, route.policies, route.endpoint_for, max_attempts=settings.max_attempts,
        backoff_base_s=settings.backoff_base_s, backoff_max_s=settings.backoff_max_s,
        batch=settings.worker_batch, partner_endpoints=route.partner_for,
        # the scheduler's bulkheads bound what is in flight; the worker's own limit must not be tighter
        concurrency=max(settings.worker_concurrency, settings.worker_max_in_flight),
        send_epp=pools.register, delete_epp=pools.delete_contacts, update_epp=pools.update_contact,
        epp_session=pools.session,
        deadline_s=settings.delivery_deadline_s,
        # the claim lease the scheduler renews; a row that waited for a slot starts it afresh (``deliver``)
        lease_s=min(settings.worker_claim_lease_s, settings.worker_lease_s),
    )
    escrow, cfg, where = None, route.cfg, settings.endpoints_file or Path("endpoints")
    jobs = [run_loop(delivery_scheduler(settings, worker).run, settings.worker_poll_s)]
    if cfg.escrow is not None:
        key = serialization.load_pem_public_key(cfg.escrow.agent_public_key_file.read_bytes())
        if not isinstance(key, X25519PublicKey):
            raise ConfigError(f"{where}: escrow.agent_public_key_file: not an X25519 public key")
        escrow = EscrowJob(worker, cfg.escrow.recipient, cfg.escrow.endpoint("escrow", where), key,
                           cfg.escrow.registrar_id)
        jobs.append(periodic(cfg.escrow.interval_s, escrow.run_once, "escrow.deposit"))
    jobs += poll_jobs(settings, store, route.policies, route.endpoints, pools, worker)
    if settings.webhooks_send:  # a process that delivers sends the notifications too
        jobs.append(run_loop(webhook_sender(settings, store).run, settings.webhook_poll_s))
    return Delivery(worker, pools, escrow, jobs)


def wake_listener(settings: Settings, worker: DeliveryWorker) -> CleanupContext:
    """``gateway worker``: wake the scheduler when an API process of this host queued rows."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        listener = WakeListener(settings.wake_pipe(), worker.wakeup)
        listener.start()
        yield
        listener.close()

    return ctx


async def build(settings: Settings, *, dev_tokens: bool = False) -> tuple[web.Application, Store]:
    """The API process.  ``GATEWAY_DELIVERY`` (``Settings.delivery_mode``) says whether it delivers too
    (``inprocess``), wakes ``gateway worker`` processes (``external``) or neither (``off``)."""
    mode = settings.delivery_mode()
    route = routing(settings, development=dev_tokens, delivering=mode != "off")  # a bad policy file first
    tokens_path = settings.resolved_tokens()
    if not tokens_path.exists():
        if not dev_tokens:
            raise ConfigError(f"{tokens_path}: no tokens file (run 'gateway run' once for development tokens)")
        write_dev_tokens(tokens_path, settings.var_dir / "dev-tokens")
    tokens = TokenStore.load(tokens_path)
    secret = load_secret(settings.resolved_secret())
    policies, cfg, where = route.policies, route.cfg, settings.endpoints_file or Path("endpoints")
    store = await open_store(settings)
    ledger = open_ledger(settings, store)
    delivery = open_delivery(settings, store, ledger, route) if mode == "inprocess" else None
    wake: Callable[[], None] | None = None
    if delivery is not None:
        wake = delivery.worker.wakeup.set
    elif mode == "external":
        wake = wake_sender(settings.wake_pipe())
    changes = ChangeService(store, ledger, policies)
    # A process that delivers nothing and wakes nobody contacts no partner either (Art. 19 notices are all
    # left to staff); RightsService's wake-up is then a no-op, which the API shares.
    rights = open_rights(settings, store, ledger, policies, changes=changes,
                         partners=route.partner_for if mode != "off" else None, wake=wake)
    services = Services(
        store=store, ledger=ledger, tokens=tokens,
        registrations=RegistrationService(store, ledger, policies, RegistrarContact(), secret),
        changes=changes, lifecycle=LifecycleService(store, policies), rights=rights, wake=rights.wake,
        escrow=delivery.escrow if delivery is not None else None,
        address_lookup=cfg.address_lookup.endpoint("address_lookup", where) if cfg.address_lookup else None,
        max_body_bytes=settings.max_body_bytes, metrics=Metrics.create(),
        metrics_token_sha256=settings.metrics_token_sha256,
    )
    app = build_app(services, background=[
        *(delivery.jobs if delivery is not None else []), *background_jobs(settings, ledger, rights),
    ])
    app[WEBHOOK_SETTINGS] = WebhookSettings(allow_loopback_http=settings.webhooks_allow_loopback_http)
    app[DELIVERY_MODE] = mode  # /readyz: whether this process's own worker is part of being ready
    # staff accounts, sessions and log-in throttling, in the store every instance shares
    app[ACCOUNTS] = AccountService(cast(AccountStore, store))
    oidc.setup(app, oidc.OidcProvider.from_settings(oidc.OidcSettings()))  # GATEWAY_OIDC_*: optional
    app[TRUSTED_PROXIES] = ProxySettings().networks()  # GATEWAY_TRUSTED_PROXIES: whose X-Forwarded-For counts
    if ledger.ring_file is not None:
        app.cleanup_ctx.append(key_ring_reloader(ledger, settings.key_ring_watch_s))

    async def close_store(app: web.Application) -> None:
        if delivery is not None:
            await delivery.pools.close()
        await store.close()

    app.on_cleanup.append(close_store)
    return app, store


async def build_worker(settings: Settings, *, development: bool = False) -> tuple[web.Application, Store]:
    """``gateway worker``: delivery only, on the configured store, as an app (with no routes of its own)
    whose lifetime runs the scheduler, escrow deposits, registry poll workers and webhook sender
    (``Delivery.jobs``), follows the key ring and listens on the wake pipe.  ``development``: recipients
    nothing reaches are left out, as ``gateway run``'s API leaves them out."""
    route = routing(settings, development=development, delivering=True)
    store = await open_store(settings)
    ledger = open_ledger(settings, store)
    delivery = open_delivery(settings, store, ledger, route)
    app = web.Application()
    app.cleanup_ctx.extend(delivery.jobs)
    app.cleanup_ctx.append(wake_listener(settings, delivery.worker))
    if ledger.ring_file is not None:
        app.cleanup_ctx.append(key_ring_reloader(ledger, settings.key_ring_watch_s))

    async def close_store(app: web.Application) -> None:
        await delivery.pools.close()
        await store.close()

    app.on_cleanup.append(close_store)
    return app, store
