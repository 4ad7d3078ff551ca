"""Partners in the registration flow, against real aiohttp servers on loopback: e-mail and marketing
get only their released fields, tagged like any transfer; an objection stops marketing only; a
restriction stops everything; gTLD registrations go to the escrow agent in an encrypted deposit."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from adapters.escrow import decrypt_deposit
from gateway.compose import build
from gateway.http.context import SERVICES
from tests.conftest import ROOT, VALID_BODY, Gateway, Tokens, body, gateway_settings

pytestmark = pytest.mark.integration


class Partner:
    """A loopback partner that records what it received (after checking the bearer token)."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.deletes: list[str] = []
        self.deposits: dict[str, bytes] = {}
        self.app = web.Application()
        self.app.router.add_post("/v1/messages", self._post)
        self.app.router.add_post("/v1/subscribers", self._post)
        self.app.router.add_put("/deposits/{deposit_id}", self._deposit)
        self.app.router.add_post("/v1/messages/notices", self._post)
        self.app.router.add_post("/v1/subscribers/notices", self._post)
        self.app.router.add_delete("/v1/messages/{reg}", self._delete)
        self.app.router.add_delete("/v1/subscribers/{reg}", self._delete)
        self.server = TestServer(self.app, host="127.0.0.1")

    async def _delete(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer partner-token"
        self.deletes.append(request.path)
        return web.Response(status=204)

    async def _post(self, request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer partner-token"
        self.posts.append((request.path, {"key": request.headers["Idempotency-Key"], **await request.json()}))
        return web.json_response({"id": uuid.uuid4().hex}, status=201)

    async def _deposit(self, request: web.Request) -> web.Response:
        self.deposits[request.match_info["deposit_id"]] = await request.read()
        return web.json_response({"id": request.match_info["deposit_id"]}, status=201)


@pytest.fixture
async def partner() -> AsyncIterator[Partner]:
    p = Partner()
    await p.server.start_server()
    yield p
    await p.server.close()


@pytest.fixture
async def flow(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens, partner: Partner,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Gateway, Partner, X25519PrivateKey]]:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    for name in ("mail-provider", "marketing-partner"):
        path = config / "recipients" / f"{name}.yaml"
        path.write_text(path.read_text().replace("enabled: false", "enabled: true"))
    agent = X25519PrivateKey.generate()
    agent_pub = tmp_path / "agent.pem"
    agent_pub.write_bytes(agent.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    base = f"http://127.0.0.1:{partner.server.port}"
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(yaml.safe_dump({
        "partners": {r: {"base_url": base, "token_env": "PARTNER_TOKEN"}
                     for r in ("mail-provider", "marketing-partner")},
        "escrow": {"recipient": "escrow-agent", "base_url": base, "token_env": "PARTNER_TOKEN",
                   "agent_public_key_file": str(agent_pub), "registrar_id": "9999"},
    }))
    monkeypatch.setenv("PARTNER_TOKEN", "partner-token")
    settings = gateway_settings(tmp_path, pki, sandbox.port, tokens, config_dir=config, endpoints_file=endpoints)
    app, store = await build(settings)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Gateway(client, store, tokens, sandbox), partner, agent
    finally:
        await client.close()


async def _delivered(gw: Gateway, data: dict[str, Any]) -> dict[str, Any]:
    r = await gw.post(data)
    assert r.status == 202, await r.text()
    reg = await gw.wait_status((await r.json())["id"], {"delivered", "failed"})
    assert reg["status"] == "delivered", reg
    # optional partners are not part of the registration's status: wait for them too
    for _ in range(100):
        reg = await gw.wait_status(reg["id"], {"delivered"})
        if all(d["state"] in ("done", "failed") for d in reg["deliveries"] if d["recipient"] != "escrow-agent"):
            return reg
        await asyncio.sleep(0.05)
    return reg


async def test_partners_get_only_their_fields_and_are_tagged(flow: tuple[Gateway, Partner, Any]) -> None:
    gw, partner, _ = flow
    reg = await _delivered(gw, VALID_BODY)
    paths = sorted(p for p, _ in partner.posts)
    assert paths == ["/v1/messages", "/v1/subscribers"]
    for path, received in partner.posts:
        assert received["key"] == f"{reg['id']}:{'mail-provider' if path == '/v1/messages' else 'marketing-partner'}"
        assert set(received["data"]) <= {"name", "email", "language"}
        assert "national_id" not in json.dumps(received)
    by_recipient = {e["recipient"]: e for e in reg["disclosures"]}
    assert by_recipient["marketing-partner"]["transfer"]["category"] == "safeguard"
    assert by_recipient["marketing-partner"]["recipient_country"] == "US"
    assert by_recipient["mail-provider"]["transfer"]["category"] == "eea"
    assert by_recipient["marketing-partner"]["outcome"] == "delivered"


async def test_objection_stops_marketing_only(flow: tuple[Gateway, Partner, Any]) -> None:
    gw, partner, _ = flow
    first = await _delivered(gw, VALID_BODY)
    await gw.store.add_restriction({"id": uuid.uuid4().hex, "subject_id": first["subject_id"], "kind": "objection",
                                    "scope": "marketing", "since": "2026-11-25T00:00:00Z"})
    partner.posts.clear()
    second = await _delivered(gw, body(domain="andra.se"))
    assert second["subject_id"] == first["subject_id"]
    assert [p for p, _ in partner.posts] == ["/v1/messages"]
    [refused] = [e for e in second["disclosures"] if e["recipient"] == "marketing-partner"]
    assert refused["outcome"] == "blocked" and refused["result_code"] == "subject_restricted"
    assert refused["fields"] == []


async def test_restriction_refuses_a_new_registration_with_nothing_sent(flow: tuple[Gateway, Partner, Any]) -> None:
    gw, partner, _ = flow
    first = await _delivered(gw, VALID_BODY)
    await gw.store.add_restriction({"id": uuid.uuid4().hex, "subject_id": first["subject_id"], "kind": "restriction",
                                    "scope": "all", "since": "2026-11-25T00:00:00Z"})
    frames_before = len(gw.sandbox.sandbox.frames)
    partner.posts.clear()
    r = await gw.post(body(domain="tredje.se"))
    assert r.status == 422
    problem = await r.json()
    assert problem["code"] == "subject_restricted"
    reg = await gw.wait_status(problem["registration_id"], {"blocked"})
    assert reg["deliveries"] == []
    assert {e["outcome"] for e in reg["disclosures"]} == {"blocked"}
    assert len(gw.sandbox.sandbox.frames) == frames_before
    assert partner.posts == []


async def test_gtld_registrations_are_escrowed_encrypted(flow: tuple[Gateway, Partner, X25519PrivateKey]) -> None:
    gw, partner, agent = flow
    com = await _delivered(gw, body(domain="exempel.com"))
    await _delivered(gw, body(domain="exempel.se"))  # a ccTLD: never escrowed
    job = gw.client.app[SERVICES].escrow
    assert job is not None
    report = await job.run_once()
    assert report is not None and report.delivered and report.registrations == 1
    [(deposit_id, blob)] = partner.deposits.items()
    assert b"Andersson" not in blob  # encrypted to the agent
    deposit = json.loads(decrypt_deposit(blob, agent))
    text = json.dumps(deposit, ensure_ascii=False)
    assert "exempel.com" in text and "Anna Andersson" in text and "exempel.se" not in text
    [record] = deposit["domains"]
    assert set(record["contacts"]) == {"registrant", "admin"}
    assert record["nameservers"] == ["ns1.example.net", "ns2.example.net"] and record["expires"]
    reg = await gw.wait_status(com["id"], {"delivered"})
    [entry] = [e for e in reg["disclosures"] if e["recipient"] == "escrow-agent"]
    assert entry["outcome"] == "delivered" and entry["objects"]["deposit_id"] == deposit_id
    assert "name" in entry["fields"] and entry["purpose"] == "escrow"
    assert await job.run_once() is None  # nothing queued any more


async def _request(gw: Gateway, kind: str) -> str:
    """A request for the registrant, her one candidate record confirmed by staff (issue 13: nothing is
    acted on before that)."""
    r = await gw.client.post("/v1/requests", headers=gw.tokens.h("privacy"), json={
        "kind": kind, "channel": "letter", "identity_check": "ID card checked", "verified_by": "staff-1",
        "identifiers": {"email": VALID_BODY["registrant"]["email"]}})
    assert r.status in (200, 201), await r.text()
    req = await r.json()
    [candidate] = req["candidates"]
    r = await gw.client.post(f"/v1/requests/{req['id']}/subjects", headers=gw.tokens.h("privacy"),
                             json={"subject_ids": [candidate["subject_id"]]})
    assert r.status == 200, await r.text()
    return str(req["id"])


async def test_restriction_notices_and_erasure_requests_reach_partners(flow: tuple[Gateway, Partner, Any]) -> None:
    gw, partner, _ = flow
    reg = await _delivered(gw, VALID_BODY)
    partner.posts.clear()
    h = gw.tokens.h("privacy")
    r = await gw.client.post(f"/v1/requests/{await _request(gw, 'restriction')}/restrict", headers=h,
                             json={"scope": "all"})
    assert r.status == 201, await r.text()
    notices = {n["recipient"]: n for n in (await r.json())["notices"]}
    assert notices["mail-provider"]["status"] == notices["marketing-partner"]["status"] == "sent"
    assert notices["iis-se"]["status"] == "manual"  # no such message in EPP: staff tell the registry
    assert sorted(p for p, _ in partner.posts) == ["/v1/messages/notices", "/v1/subscribers/notices"]
    for _, sent in partner.posts:
        assert set(sent) == {"key", "registration_id", "notice", "article"}  # ids only, no personal data
        assert sent["registration_id"] == reg["id"] and sent["notice"] == "restriction"

    r = await gw.client.post(f"/v1/requests/{await _request(gw, 'erasure')}/erase", headers=h, json={})
    assert r.status == 200, await r.text()
    plan = {x["recipient"]: x for x in (await r.json())["recipients"]}
    assert plan["marketing-partner"]["status"] == plan["mail-provider"]["status"] == "requested"
    assert plan["iis-se"]["deletion_request"] == "not_possible"  # the active domain needs its holder
    assert sorted(partner.deletes) == [f"/v1/messages/{reg['id']}", f"/v1/subscribers/{reg['id']}"]
