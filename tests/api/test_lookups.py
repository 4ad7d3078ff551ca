"""Address lookups against a loopback SPAR-style service: the answer, and the lookup logged as
processing (kind, blind index, purpose, result category), never the number itself."""

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
from tests.conftest import VALID_BODY, Gateway, Tokens, gateway_settings

pytestmark = pytest.mark.integration

PEOPLE = {
    "198112189876": {"result": "found", "marketing_opt_out": False,
                     "person": {"given_name": "Anna", "surname": "Andersson",
                                "address": {"street": "Storgatan 1", "postal_code": "11122", "city": "Stockholm"}}},
    "198803200016": {"result": "protected_identity", "marketing_opt_out": True},
}


@pytest.fixture
async def gw(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens,
             monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Gateway, list[dict[str, Any]]]]:
    asked: list[dict[str, Any]] = []

    async def spar(request: web.Request) -> web.Response:
        body = await request.json()
        asked.append(body)
        person = PEOPLE.get(body["personnummer"])
        return web.json_response(person) if person else web.json_response({"result": "not_found"}, status=404)

    app = web.Application()
    app.router.add_post("/v1/lookups", spar)
    fake = TestServer(app, host="127.0.0.1")
    await fake.start_server()
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(yaml.safe_dump({"address_lookup": {
        "base_url": f"http://127.0.0.1:{fake.port}", "token_env": "SPAR_TOKEN"}}))
    monkeypatch.setenv("SPAR_TOKEN", "spar-token")
    gapp, store = await build(gateway_settings(tmp_path, pki, sandbox.port, tokens, endpoints_file=endpoints))
    client: TestClient[Any, Any] = TestClient(TestServer(gapp))
    await client.start_server()
    yield Gateway(client, store, tokens, sandbox), asked
    await client.close()
    await fake.close()


async def test_lookup_answers_and_is_logged_as_processing(gw: tuple[Gateway, list[dict[str, Any]]]) -> None:
    gateway, asked = gw
    r = await gateway.post(VALID_BODY)
    reg = await gateway.wait_status((await r.json())["id"], {"delivered"})
    h = gateway.tokens.h("ordering")
    r = await gateway.client.post("/v1/lookups", json={"personnummer": "811218-9876", "purpose": "verify_holder"},
                                  headers=h)
    assert r.status == 200, await r.text()
    found = await r.json()
    assert found["category"] == "found" and found["name"]["surname"] == "Andersson"
    assert asked[-1] == {"personnummer": "198112189876", "purpose": "verify_holder"}
    r = await gateway.client.post("/v1/lookups", json={"personnummer": "19880320-0016", "purpose": "verify_holder"},
                                  headers=h)
    protected = await r.json()
    assert protected["category"] == "protected_identity" and "name" not in protected and "address" not in protected
    r = await gateway.client.post("/v1/lookups", json={"personnummer": "19880320-0017", "purpose": "verify_holder"},
                                  headers=h)
    assert r.status == 422  # bad check digit: never sent to the register
    assert len(asked) == 2

    log = await gateway.store.access_log(reg["subject_id"])
    assert [e["action"] for e in log] == ["address_lookup:personnummer:verify_holder:found"]
    assert log[0]["object_id"].startswith("blind:")
    everything = await gateway.store.access_log()
    assert len(everything) == 2
    assert all("198112189876" not in str(e) and "811218" not in str(e) for e in everything)


async def test_lookup_needs_a_configured_service(gateway: Gateway) -> None:
    r = await gateway.client.post("/v1/lookups", json={"personnummer": "811218-9876", "purpose": "verify_holder"},
                                  headers=gateway.tokens.h("ordering"))
    assert r.status == 502 and (await r.json())["code"] == "delivery_permanent"
    r = await gateway.client.post("/v1/lookups", json={"personnummer": "811218-9876", "purpose": "x"},
                                  headers=gateway.tokens.h("auditor"))
    assert r.status == 403
