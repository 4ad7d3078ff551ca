"""Two gateway instances on one store, a registry that answers slowly, a lease that runs out: every command
is logged once.  Each claim carries a fencing token; once another instance has taken the row over, the
first one's outcome is written nowhere (``finish`` and ``record_step`` own nothing any more).

Run on SQLite (one file, two connections) and PostgreSQL; the count is checked against the frames the
registry received, not only the gateway's log."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.compose import build
from gateway.delivery.worker import DeliveryWorker
from gateway.http.context import SERVICES
from gateway.policy.loader import load_policies
from gateway.services.ledger import verify_store
from gateway.store.base import DisclosureFilter
from tests.conftest import ROOT, Gateway, Tokens, body, gateway_settings

pytestmark = pytest.mark.integration

N = 3


@contextlib.asynccontextmanager
async def _instances(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens,
                     database_url: str | None) -> AsyncIterator[list[Gateway]]:
    gateways: list[Gateway] = []
    shared = tmp_path / "shared-var"
    try:
        for i in range(2):
            (tmp_path / f"gw{i}").mkdir()
            kw: dict[str, Any] = {"database_url": database_url} if database_url else {}
            settings = gateway_settings(tmp_path / f"gw{i}", pki, sandbox.port, tokens, var_dir=shared,
                                        worker_enabled=False, **kw)
            app, store = await build(settings)
            client: TestClient[Any, Any] = TestClient(TestServer(app))
            await client.start_server()
            gateways.append(Gateway(client, store, tokens, sandbox))
        yield gateways
    finally:
        for gw in gateways:
            await gw.client.close()


def _worker(gw: Gateway, lease_s: float) -> DeliveryWorker:
    services = gw.client.app[SERVICES]
    endpoint = gw.sandbox.sandbox.endpoint(timeout_s=10.0)
    return DeliveryWorker(services.store, services.ledger, load_policies(ROOT / "config"), lambda r: endpoint,
                          lease_s=lease_s, batch=N, concurrency=1)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_lapsed_claim_taken_over_is_logged_once(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens, backend: str,
    request: pytest.FixtureRequest,
) -> None:
    database_url = request.getfixturevalue("pg_dsn") if backend == "postgres" else None
    # every domain:create waits 1.5 s at the registry: far longer than the 0.3 s lease, and nobody renews it
    sandbox.faults.stall_seconds("domain:create", 1.5, times=None)
    async with _instances(tmp_path, pki, sandbox, tokens, database_url) as (a, b):
        ids = []
        for i in range(N):
            r = await a.post(body(domain=f"fence-{i}.se", order_ref=f"F-{i}"))
            assert r.status == 202, await r.text()
            ids.append((await r.json())["id"])
        slow, other = _worker(a, lease_s=0.3), _worker(b, lease_s=30.0)
        lost = slow.metrics.deliveries.labels("iis-se", "lost_claim")
        lost_before = lost._value.get()
        first = asyncio.create_task(slow.run_once())  # claims all N, works through them one at a time
        await asyncio.sleep(0.8)  # its lease has lapsed while rows wait in its batch
        assert await other.recover() >= 1
        taken = await other.run_once()
        assert taken >= 1
        await first
        for _ in range(10):  # whatever the first instance gave back is delivered by the second
            await other.recover()
            if not await other.run_once():
                break
        for reg_id in ids:
            reg = await b.store.registration(reg_id)
            assert reg is not None and reg["status"] == "delivered", reg

        entries = await b.store.disclosures(DisclosureFilter(limit=1000))
        delivered: dict[tuple[str, str | None], int] = {}
        for e in entries:
            if e.outcome == "delivered":
                delivered[(e.registration_id, e.command)] = delivered.get((e.registration_id, e.command), 0) + 1
        # each domain:create once; the person's contact is created once and reused by the later domains
        assert {k: n for k, n in delivered.items() if k[1] == "domain:create"} == {(r, "domain:create"): 1 for r in ids}
        assert all(n == 1 for n in delivered.values())
        # the registry holds each domain once, and the ledger still verifies
        assert sorted(sandbox.sandbox.domains) == sorted(f"fence-{i}.se" for i in range(N))
        ledger = a.client.app[SERVICES].ledger
        await ledger.checkpoint()
        report = await verify_store(b.store, ledger.signer.public_key)
        assert report.ok, report
        # the slow instance really lost claims (or the test proves nothing)
        assert lost._value.get() - lost_before == N
        # and sent nothing for the rows it no longer owned: one subject contact:create per registration
        creates = [f for f in sandbox.sandbox.frames if b"<contact:create" in f and b"Andersson" in f]
        assert len(creates) == sum(1 for k in delivered if k[1] == "contact:create") >= 1
