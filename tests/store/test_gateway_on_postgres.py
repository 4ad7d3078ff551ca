"""The whole gateway on PostgreSQL: a registration delivered over EPP, its entry verifiable, an
extract-ready subject found by blind index; and two gateway instances sharing one database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.compose import build
from gateway.http.context import SERVICES
from gateway.services.ledger import verify_store
from gateway.store.base import DisclosureFilter
from tests.conftest import VALID_BODY, Gateway, Tokens, body, gateway_settings

pytestmark = pytest.mark.integration


async def test_two_gateway_instances_on_one_postgres(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens, pg_dsn: str
) -> None:
    gateways: list[Gateway] = []
    shared_keys = tmp_path / "shared-var"
    for i in range(2):
        (tmp_path / f"gw{i}").mkdir()
        settings = gateway_settings(tmp_path / f"gw{i}", pki, sandbox.port, tokens, database_url=pg_dsn,
                                    var_dir=shared_keys)
        app, store = await build(settings)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        gateways.append(Gateway(client, store, tokens, sandbox))
    try:
        answers = await asyncio.gather(*(
            gateways[i % 2].post(body(domain=f"pg-{i}.se", order_ref=f"PG-{i}")) for i in range(12)
        ))
        ids = [(await a.json())["id"] for a in answers]
        assert all(a.status == 202 for a in answers)
        for i, reg_id in enumerate(ids):
            reg = await gateways[(i + 1) % 2].wait_status(reg_id, {"delivered", "failed"})  # read via the other one
            assert reg["status"] == "delivered", reg
        assert sorted(sandbox.sandbox.domains) == sorted(f"pg-{i}.se" for i in range(12))
        ledger = gateways[0].client.app[SERVICES].ledger
        await ledger.checkpoint()
        # one entry per command: a domain:create for each registration, and a contact:create for each that
        # found no contact of this person at the registry yet (rows delivered at the same moment by the two
        # instances may each create one; later ones reuse an existing one)
        entries = await gateways[1].store.disclosures(DisclosureFilter(limit=1000))
        domains = [e for e in entries if e.command == "domain:create"]
        contacts = {e.objects["contact"]: e for e in entries if e.command == "contact:create"}
        assert sorted(e.objects["domain"] for e in domains) == sorted(f"pg-{i}.se" for i in range(12))
        assert {e.outcome for e in entries} == {"delivered"} and len(entries) == len(domains) + len(contacts)
        assert 1 <= len(contacts) <= 12
        assert {sandbox.sandbox.domains[f"pg-{i}.se"]["registrant"] for i in range(12)} <= set(contacts)
        report = await verify_store(gateways[1].store, ledger.signer.public_key)
        assert report.ok and report.entries == len(entries), report
        # one subject across both instances (same blind-index key), found by either
        subjects = {(await gateways[i % 2].wait_status(r, {"delivered"}))["subject_id"] for i, r in enumerate(ids)}
        assert len(subjects) == 1
        r = await gateways[1].post(VALID_BODY)
        assert r.status == 202
    finally:
        for gw in gateways:
            await gw.client.close()


