"""Shared fixtures: dev PKI, a real TLS EPP sandbox on loopback, and a gateway app wired to it."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki, ensure_dev_pki
from gateway.auth import hash_token
from gateway.compose import build
from gateway.settings import Settings
from gateway.store.base import Store

ROOT = Path(__file__).resolve().parents[1]

VALID_BODY: dict[str, Any] = {
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

ORG_BODY: dict[str, Any] = {
    **VALID_BODY,
    "order_ref": "ORD-2001",
    "registrant": {
        "kind": "organisation",
        "name": "Bertil Berg",
        "organisation": "Exempel AB",
        "national_id": {"scheme": "se_organisationsnummer", "value": "802405-0190"},
        "vat_number": "SE802405019001",
        "address": {"street": ["Industrivägen 2"], "city": "Göteborg", "postal_code": "411 01", "country": "SE"},
        "email": "info@exempel-ab.se",
        "phone": "+46 31 123 45 67",
        "language": "sv",
    },
}


#: .fi: a Finnish company with its Y-tunnus (Traficom needs a registernumber from every organisation)
FI_ORG: dict[str, Any] = {
    "kind": "organisation", "name": "Matti Meikäläinen", "organisation": "Esimerkki Oy",
    "national_id": {"scheme": "fi_ytunnus", "value": "2077474-0"},
    "address": {"street": ["Mannerheimintie 1"], "city": "Helsinki", "postal_code": "00100", "country": "FI"},
    "email": "info@esimerkki.fi", "phone": "+358 9 123 4567", "language": "fi"}


def body_for_tld(tld: str, label: str = "exempel", **registrant: Any) -> dict[str, Any]:
    """A registration each registry accepts: the identifiers and declarations its rules ask for."""
    b = copy.deepcopy(ORG_BODY if tld in {"dk", "no", "nl"} else VALID_BODY)
    b["domain"] = f"{label}-{tld}.{tld}"
    if tld == "eu":
        b["registrant"]["citizenship"] = "SE"
    if tld == "us":
        b["us_nexus"] = {"app_purpose": "P3", "nexus_category": "C11"}
    if tld == "no":
        b["registrant"]["national_id"] = {"scheme": "no_organisasjonsnummer", "value": "988077917"}
    if tld == "fi":
        b["registrant"] = copy.deepcopy(FI_ORG)
    b["registrant"].update(registrant)
    return b


def body(**overrides: Any) -> dict[str, Any]:
    b = copy.deepcopy(VALID_BODY)
    b.update(overrides)
    return b


@dataclass
class Tokens:
    ordering: str
    privacy: str
    auditor: str
    other_ordering: str

    def h(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, role)}"}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return ensure_dev_pki(tmp_path_factory.mktemp("pki"))


@contextlib.contextmanager
def running_sandbox(pki: DevPki, **accounts: str) -> Iterator[SandboxThread]:
    """The TLS sandbox registry as the gateway's default endpoint (``registrar1``), with further registrar
    accounts (client id -> password, e.g. the other side of a transfer); stopped afterwards, and every frame
    the gateway sent must have been valid against the official schemas."""
    sb = SandboxThread(pki=pki, client_id="registrar1", password="sandbox-pass-1", validate_schemas=True,
                       **({"accounts": accounts} if accounts else {}))
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()
    assert sb.sandbox.schema_errors == []


@pytest.fixture
def sandbox(pki: DevPki) -> Iterator[SandboxThread]:
    with running_sandbox(pki) as sb:
        yield sb


@pytest.fixture
def tokens() -> Tokens:
    return Tokens(*(secrets.token_urlsafe(24) for _ in range(4)))


def write_tokens(path: Path, tokens: Tokens) -> Path:
    entries = [
        {"name": "shop", "role": "ordering", "sha256": hash_token(tokens.ordering)},
        {"name": "staff", "role": "privacy", "sha256": hash_token(tokens.privacy)},
        {"name": "audit", "role": "auditor", "sha256": hash_token(tokens.auditor)},
        {"name": "othershop", "role": "ordering", "sha256": hash_token(tokens.other_ordering)},
    ]
    path.write_text(yaml.safe_dump({"tokens": entries}))
    return path


def gateway_settings(tmp_path: Path, pki: DevPki, sandbox_port: int, tokens: Tokens, **kw: Any) -> Settings:
    var = tmp_path / "var"
    var.mkdir(exist_ok=True)
    defaults: dict[str, Any] = dict(
        config_dir=ROOT / "config", var_dir=var, pki_dir=pki.directory, sandbox_port=sandbox_port,
        tokens_file=write_tokens(var / "tokens.yaml", tokens), worker_poll_s=0.05, backoff_base_s=0.05,
        backoff_max_s=0.2, epp_timeout_s=5.0,
    )
    defaults.update(kw)
    return Settings(**defaults)


@dataclass
class Gateway:
    client: TestClient[Any, Any]
    store: Store
    tokens: Tokens
    sandbox: SandboxThread

    async def post(self, data: Any, key: str | None = None, role: str = "ordering") -> Any:
        headers = self.tokens.h(role) | {"Idempotency-Key": key or secrets.token_hex(8)}
        return await self.client.post("/v1/registrations", json=data, headers=headers)

    async def wait_status(self, reg_id: str, want: set[str], limit_s: float = 10.0) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        while True:
            r = await self.client.get(f"/v1/registrations/{reg_id}", headers=self.tokens.h("privacy"))
            data: dict[str, Any] = await r.json()
            if data["status"] in want or loop.time() > deadline:
                return data
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_gateway(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens, **settings: Any
) -> AsyncIterator[Gateway]:
    """A real gateway app on loopback over the sandbox, built like ``gateway run`` builds it; ``settings``
    override the test defaults (``gateway_settings``).  Every gateway fixture is one of these."""
    app, store = await build(gateway_settings(tmp_path, pki, sandbox.port, tokens, **settings))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Gateway(client, store, tokens, sandbox)
    finally:
        await client.close()


@pytest.fixture
async def gateway(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, pki, sandbox, tokens) as gw:
        yield gw
