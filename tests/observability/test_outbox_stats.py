"""The per-recipient outbox families of /metrics (one store query), /healthz's worker-only count, and
/readyz naming the check that failed."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from tests.conftest import Gateway, Tokens, body_for_tld, running_gateway
from tests.observability.test_metrics import scrape, value


@pytest.fixture
async def idle(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, pki, sandbox, tokens, worker_enabled=False) as gw:
        yield gw


async def test_depth_oldest_and_parked_per_recipient(idle: Gateway) -> None:
    m = await scrape(idle)
    assert "gateway_outbox_depth" not in m  # nothing queued: no series (the family is still described)
    assert (await idle.post(body_for_tld("com"), key="stats-0001")).status == 202
    m = await scrape(idle)
    assert value(m, "gateway_outbox_depth", recipient="verisign-com") == 1
    assert value(m, "gateway_outbox_depth", recipient="escrow-agent") == 1
    assert 0 <= value(m, "gateway_outbox_oldest_pending_seconds", recipient="verisign-com") < 60
    assert value(m, "gateway_outbox_parked", recipient="verisign-com") == 0
    stats = {s.recipient: s for s in await idle.store.outbox_stats(dt.datetime.now(dt.UTC))}
    assert stats["verisign-com"].depth == 1 and stats["verisign-com"].oldest_pending_s is not None

    health = await (await idle.client.get("/healthz")).json()
    # the escrow row waits for the periodic deposit: not what a caller waiting for the worker waits on
    assert (health["outbox_pending"], health["outbox_awaiting_deposit"], health["outbox_parked"]) == (1, 1, 0)


async def test_readyz_names_each_check(idle: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    r = await idle.client.get("/readyz")
    assert r.status == 200
    # this gateway runs no delivery (worker off): readiness says so instead of vouching for a worker
    assert (await r.json())["checks"] == {"store": "ok", "keys": "ok", "config": "ok", "worker": "off"}

    def broken(ledger: object) -> bool:
        raise OSError("cannot read /secret/path/kek.json")

    monkeypatch.setattr("gateway.http.api.system._keys_usable", broken)
    r = await idle.client.get("/readyz")
    problem = await r.json()
    assert r.status == 503 and problem["check"] == "keys"
    assert problem["checks"] == {"store": "ok", "keys": "failed"}
    assert "secret" not in await r.text()
