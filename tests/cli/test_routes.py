"""Start-up refuses a recipient that policies queue for but nothing reaches (the escrow agent without an
agent configured), unless it is listed under ``disabled:``; ``gateway run`` leaves it out instead."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adapters.epp.tls import DevPki
from gateway.compose import EndpointsFile, build, check_routes, unrouted_recipients
from gateway.errors import RecipientUnrouted
from gateway.policy.loader import load_policies
from gateway.services.registrations import recipients_for
from tests.conftest import ROOT, Tokens, gateway_settings

EPP = {"host": "127.0.0.1", "port": 7700, "client_id": "registrar1", "password_env": "EPP_PW"}


def test_unrouted_recipients_pure() -> None:
    policies = load_policies(ROOT / "config")
    sandbox_only = EndpointsFile()
    assert unrouted_recipients(policies, sandbox_only) == {
        "escrow-agent": "an escrow agent (escrow: with recipient: escrow-agent)"}
    one_registry = EndpointsFile.model_validate({"endpoints": {"iis-se": EPP}})
    missing = unrouted_recipients(policies, one_registry)
    assert "verisign-com" in missing and "iis-se" not in missing and "escrow-agent" in missing
    assert "escrow-agent" not in unrouted_recipients(policies, EndpointsFile(disabled=["escrow-agent"]))


async def test_production_start_up_names_the_unrouted_recipient(tmp_path: Path, pki: DevPki, tokens: Tokens,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPP_PW", "sandbox-pass-1")
    policies = load_policies(ROOT / "config")
    every_registry = {p.recipient: EPP for p in policies.recipients.values() if p.protocol == "epp"}
    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text(yaml.safe_dump({"endpoints": every_registry}))
    settings = gateway_settings(tmp_path, pki, 7700, tokens, endpoints_file=endpoints)
    with pytest.raises(RecipientUnrouted, match=r"escrow-agent: configure an escrow agent.*disabled:"):
        await build(settings)

    endpoints.write_text(yaml.safe_dump({"endpoints": every_registry, "disabled": ["escrow-agent", "denic-de"]}))
    cfg = EndpointsFile.model_validate(yaml.safe_load(endpoints.read_text()))
    kept = check_routes(settings, policies, cfg, development=False)
    assert [p.recipient for p in recipients_for("com", kept)] == ["verisign-com"]  # no escrow row queued
    assert kept.registry_for("de") is None  # a disabled registry's TLD is refused at acceptance
    _, store = await build(settings)  # starts: every queued recipient is reachable or disabled
    await store.close()


def test_gateway_run_leaves_the_unrouted_recipient_out(tmp_path: Path, pki: DevPki, tokens: Tokens) -> None:
    policies = load_policies(ROOT / "config")
    settings = gateway_settings(tmp_path, pki, 7700, tokens)
    dev = check_routes(settings, policies, EndpointsFile(), development=True)
    assert [p.recipient for p in recipients_for("com", dev)] == ["verisign-com"]
    other = check_routes(settings, policies, EndpointsFile(), development=False)  # tests, tools: kept
    assert [p.recipient for p in recipients_for("com", other)] == ["verisign-com", "escrow-agent"]
