"""The running gateway with the rights routes added (until build_app adds them itself), and helpers."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.compose import build
from gateway.http.api import rights as rights_routes
from tests.conftest import ROOT, VALID_BODY, Gateway, Tokens, body, gateway_settings

BERTIL: dict[str, Any] = dict(
    VALID_BODY["registrant"], name="Bertil Berg", email="bertil@example.se",
    national_id={"scheme": "se_personnummer", "value": "19880320-0016"},
)


def anna(**overrides: Any) -> dict[str, Any]:
    return body(**overrides)


def bertil(**overrides: Any) -> dict[str, Any]:
    b = body(**overrides)
    b["registrant"] = copy.deepcopy(BERTIL)
    return b


@pytest.fixture
async def gateway(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> AsyncIterator[Gateway]:
    """As tests/conftest.py's ``gateway``, plus the rights routes if build_app does not add them yet."""
    settings = gateway_settings(tmp_path, pki, sandbox.port, tokens)
    app, store = await build(settings)
    if not any(getattr(r, "canonical", None) == "/v1/requests" for r in app.router.resources()):
        rights_routes.add_routes(app, config_dir=ROOT / "config")
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Gateway(client, store, tokens, sandbox)
    finally:
        await client.close()


async def register(gw: Gateway, data: dict[str, Any], want: str = "delivered") -> str:
    r = await gw.post(data)
    answer = await r.json()
    if want == "blocked":
        assert r.status == 422, answer
        return str(answer["registration_id"])
    assert r.status == 202, answer
    reg = await gw.wait_status(answer["id"], {"delivered", "failed"})
    assert reg["status"] == want, reg
    return str(answer["id"])


async def entries(gw: Gateway, **params: str) -> list[dict[str, Any]]:
    r = await gw.client.get("/v1/disclosures", params=params, headers=gw.tokens.h("privacy"))
    return list((await r.json())["items"])


async def open_request(gw: Gateway, kind: str = "access", status: int = 201, **identifiers: str) -> dict[str, Any]:
    r = await gw.client.post("/v1/requests", headers=gw.tokens.h("privacy"), json={
        "kind": kind, "channel": "email", "identity_check": "BankID signature", "verified_by": "staff-1",
        "identifiers": identifiers,
    })
    data: dict[str, Any] = await r.json()
    assert r.status == status, data
    return data


async def public_key_pem(gw: Gateway) -> bytes:
    r = await gw.client.get("/v1/ledger/public-key")
    return str((await r.json())["public_key_pem"]).encode()
