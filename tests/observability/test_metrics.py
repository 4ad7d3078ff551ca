"""/metrics after a registration, /readyz, and the deploy/ files naming only metrics a gateway exposes."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.logs import delivery_metrics
from tests.conftest import ROOT, VALID_BODY, Gateway, Tokens, running_gateway
from tests.observability.test_logs import PERSONAL


async def scrape(gateway: Gateway) -> dict[str, list[tuple[dict[str, str], float]]]:
    r = await gateway.client.get("/metrics", headers=gateway.tokens.h("auditor"))
    assert r.status == 200
    text = await r.text()
    for value in PERSONAL:
        assert value not in text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(m: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for lab, v in m.get(name, []) if all(lab.get(k) == w for k, w in labels.items()))


async def test_every_metric_after_a_registration(gateway: Gateway) -> None:
    before = value(await scrape(gateway), "gateway_deliveries_total", recipient="iis-se", outcome="delivered")
    r = await gateway.post(VALID_BODY, key="metrics-0001")
    reg = (await r.json())["id"]
    assert (await gateway.wait_status(reg, {"delivered"}))["status"] == "delivered"
    m = await scrape(gateway)
    assert value(m, "gateway_http_requests_total", route="/v1/registrations", status="202") == 1
    assert value(m, "gateway_http_request_duration_seconds_count", route="/v1/registrations", method="POST") == 1
    assert value(m, "gateway_http_request_duration_seconds_sum", route="/v1/registrations", method="POST") > 0
    assert value(m, "gateway_registrations_total", outcome="accepted") == 1
    assert value(m, "gateway_deliveries_total", recipient="iis-se", outcome="delivered") == before + 1
    # per EPP command, not per registration: the contact and the domain were each created (and timed)
    for command in ("contact:create", "domain:create"):
        assert value(m, "gateway_epp_command_duration_seconds_count", command=command, code="1000") >= 1
        assert value(m, "gateway_epp_command_duration_seconds_sum", command=command) > 0
    assert value(m, "gateway_epp_command_duration_seconds_count", command="registration") == 0
    assert value(m, "gateway_ledger_entries") >= 1
    assert value(m, "gateway_ledger_entries_since_checkpoint") == value(m, "gateway_ledger_entries")
    assert value(m, "gateway_ledger_checkpoint_age_seconds") == -1  # none signed yet
    assert value(m, "gateway_store_schema_version") >= 3
    assert "process_cpu_seconds_total" in m and "python_info" in m
    # nothing undelivered: no outbox gauge series for the registry
    assert value(m, "gateway_outbox_rows", recipient="iis-se") == 0

    ck = await gateway.client.post("/v1/ledger/checkpoints", headers=gateway.tokens.h("auditor"))
    assert ck.status in (200, 201)
    m = await scrape(gateway)
    assert 0 <= value(m, "gateway_ledger_checkpoint_age_seconds") < 60
    assert value(m, "gateway_ledger_entries_since_checkpoint") == 0


@pytest.fixture
async def idle(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens) -> AsyncIterator[Gateway]:
    """A gateway that accepts but does not deliver (no worker in this process)."""
    async with running_gateway(tmp_path, pki, sandbox, tokens, worker_enabled=False) as gw:
        yield gw


async def test_the_outbox_gauges_count_undelivered_rows(idle: Gateway) -> None:
    r = await idle.post(VALID_BODY, key="metrics-0002")
    assert r.status == 202
    m = await scrape(idle)
    assert value(m, "gateway_outbox_rows", recipient="iis-se", state="pending") == 1
    assert 0 <= value(m, "gateway_outbox_oldest_pending_age_seconds", recipient="iis-se") < 60
    assert value(m, "gateway_outbox_rows", state="failed") == 0
    assert (await idle.client.get("/readyz")).status == 200  # no worker here: none to be alive


async def test_readyz_apart_from_healthz(gateway: Gateway) -> None:
    r = await gateway.client.get("/readyz")
    assert r.status == 200 and (await r.json())["status"] == "ready"
    # a stalled delivery loop: not ready, still alive
    beats = list(delivery_metrics().workers.values())
    assert beats
    saved = [b.at for b in beats]
    for b in beats:
        b.at = time.monotonic() - 10 * b.lease_s
    try:
        r = await gateway.client.get("/readyz")
        assert r.status == 503 and r.content_type == "application/problem+json"
        assert (await r.json())["code"] == "not_ready"
        assert (await gateway.client.get("/healthz")).status == 200
    finally:
        for b, at in zip(beats, saved, strict=True):
            b.at = at
    assert (await gateway.client.get("/readyz")).status == 200


async def test_readyz_503_when_the_schema_is_not_current(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.http import scrape as scrape_mod

    monkeypatch.setattr(scrape_mod, "latest_schema", lambda store: 999)
    r = await gateway.client.get("/readyz")
    assert r.status == 503 and "999" in (await r.json())["detail"]

    async def down(store: object) -> int:
        raise OSError("connection refused to postgresql://user:secret@db")

    monkeypatch.setattr(scrape_mod, "schema_in_database", down)
    r = await gateway.client.get("/readyz")
    assert r.status == 503 and "secret" not in await r.text()


_NAME = re.compile(r"\b((?:gateway|process|python)_[a-z0-9_]+)")


def names_in_deploy() -> set[str]:
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus-alerts.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert exprs
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    targets = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert targets
    return {n for e in [*exprs, *targets] for n in _NAME.findall(e)}


async def test_deploy_files_use_only_metrics_a_gateway_exposes(gateway: Gateway) -> None:
    r = await gateway.post(VALID_BODY, key="metrics-0003")
    reg = (await r.json())["id"]
    await gateway.wait_status(reg, {"delivered"})
    await gateway.client.get("/nowhere")
    exposed = set(await scrape(gateway))
    # a family with no sample yet (no row parked) is still described: HELP lines name it
    text = await (await gateway.client.get("/metrics", headers=gateway.tokens.h("auditor"))).text()
    described = set(re.findall(r"^# HELP (\S+)", text, re.M))
    suffixes = ("", "_total", "_bucket", "_count", "_sum")
    missing = {n for n in names_in_deploy()
               if not any(n + s in exposed or (n + s) in described or n.removesuffix(s) in described
                          for s in suffixes)}
    assert missing == set(), missing
