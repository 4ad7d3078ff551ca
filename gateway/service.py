"""Composition root: settings → store, policies, tokens, worker, app.  All I/O set-up lives here."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from adapters.epp.tls import ensure_dev_pki
from adapters.epp.types import Endpoint
from gateway.api.app import Metrics, Services, build_app
from gateway.auth import TokenStore, write_dev_tokens
from gateway.delivery.epp_commands import RegistrarContact
from gateway.delivery.worker import DeliveryWorker
from gateway.errors import ConfigError, PermanentDeliveryError
from gateway.ledger.checkpoint import load_or_create_signing_key
from gateway.ledger.keys import BlindIndexer, KeyRing
from gateway.ledger.service import Ledger
from gateway.policy.loader import PolicySet, load_model, load_policies
from gateway.registrations import RegistrationService
from gateway.settings import Settings
from gateway.store.base import Store
from gateway.store.sqlite import SqliteStore


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


class EndpointsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    endpoints: dict[str, EndpointConfig]


def load_secret(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    data = path.read_bytes()
    if len(data) < 32:
        raise ConfigError(f"{path}: secret must be at least 32 bytes")
    return data


def endpoint_resolver(settings: Settings, policies: PolicySet) -> dict[str, Endpoint]:
    """Every recipient's endpoint: from the endpoints file if given, else the local sandbox."""
    if settings.endpoints_file is not None:
        cfg = load_model(settings.endpoints_file, EndpointsFile)
        out = {}
        for rid, e in cfg.endpoints.items():
            if rid not in policies.recipients:
                raise ConfigError(f"{settings.endpoints_file}: endpoints.{rid}: no such recipient policy")
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
    return Ledger(store, load_key_ring(settings), load_indexer(settings), signer)


async def build(settings: Settings, *, dev_tokens: bool = False) -> tuple[web.Application, Store]:
    policies = load_policies(settings.config_dir)
    tokens_path = settings.resolved_tokens()
    if not tokens_path.exists():
        if not dev_tokens:
            raise ConfigError(f"{tokens_path}: no tokens file (run 'gateway run' once for development tokens)")
        write_dev_tokens(tokens_path, settings.var_dir / "dev-tokens")
    tokens = TokenStore.load(tokens_path)
    secret = load_secret(settings.resolved_secret())
    endpoints = endpoint_resolver(settings, policies)
    store = await open_store(settings)
    ledger = open_ledger(settings, store)

    def endpoint_for(recipient: str) -> Endpoint:
        try:
            return endpoints[recipient]
        except KeyError:
            raise PermanentDeliveryError("no endpoint configured for this recipient") from None

    worker = None
    if settings.worker_enabled:
        worker = DeliveryWorker(
            store, ledger, policies, endpoint_for, max_attempts=settings.max_attempts,
            backoff_base_s=settings.backoff_base_s, backoff_max_s=settings.backoff_max_s,
            batch=settings.worker_batch, concurrency=settings.worker_concurrency,
        )
    services = Services(
        store=store, ledger=ledger, tokens=tokens,
        registrations=RegistrationService(store, ledger, policies, RegistrarContact(), secret),
        worker=worker, max_body_bytes=settings.max_body_bytes, poll_s=settings.worker_poll_s,
        metrics=Metrics.create(), checkpoint_interval_s=settings.checkpoint_interval_s,
    )
    app = build_app(services)

    async def close_store(app: web.Application) -> None:
        await store.close()

    app.on_cleanup.append(close_store)
    return app, store
