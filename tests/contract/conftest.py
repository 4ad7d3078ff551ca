"""A gateway for contract tests: the real app on loopback (SQLite, the TLS EPP sandbox), with a loopback
SPAR-style address lookup service so ``POST /v1/lookups`` answers instead of reporting it unconfigured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.compose import build
from tests.conftest import Gateway, Tokens, gateway_settings


@pytest.fixture
async def contract_gateway(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens,
                           monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    async def spar(request: web.Request) -> web.Response:
        body = await request.json()
        if str(body.get("personnummer", "")).endswith("6"):
            return web.json_response({"result": "found", "marketing_opt_out": False, "person": {
                "given_name": "Test", "surname": "Person",
                "address": {"street": "Gatan 1", "postal_code": "11122", "city": "Stockholm"}}})
        return web.json_response({"result": "not_found"}, status=404)

    lookup_app = web.Application()
    lookup_app.router.add_post("/v1/lookups", spar)
    fake = TestServer(lookup_app, host="127.0.0.1")
    await fake.start_server()
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(yaml.safe_dump({"address_lookup": {
        "base_url": f"http://127.0.0.1:{fake.port}", "token_env": "SPAR_TOKEN"}}))
    monkeypatch.setenv("SPAR_TOKEN", "spar-token")
    app, store = await build(gateway_settings(
        tmp_path, pki, sandbox.port, tokens, endpoints_file=endpoints,
        webhooks_send=False,  # fuzzed subscriptions may name any URL: only loopback traffic in tests
    ))
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield Gateway(client, store, tokens, sandbox)
    finally:
        await client.close()
        await fake.close()
