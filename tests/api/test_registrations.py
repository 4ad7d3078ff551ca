"""The registration spine end to end: HTTP in, EPP over real TLS out, disclosure entries logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.policy.loader import load_policies
from tests.conftest import ROOT, VALID_BODY, Gateway, body, body_for_tld

pytestmark = pytest.mark.integration

EPP_NS = "urn:ietf:params:xml:ns:epp-1.0"
CONTACT_NS = "urn:ietf:params:xml:ns:contact-1.0"
DOMAIN_NS = "urn:ietf:params:xml:ns:domain-1.0"


def commands(frames: list[bytes]) -> list[etree._Element]:
    out = []
    for f in frames:
        cmd = etree.fromstring(f).find(f"{{{EPP_NS}}}command")
        if cmd is not None:
            out.append(cmd)
    return out


def contact_creates(frames: list[bytes]) -> list[etree._Element]:
    return [c for c in commands(frames) if c.find(f"{{{EPP_NS}}}create/{{{CONTACT_NS}}}create") is not None]


async def test_register_exempel_se_delivers_and_logs(gateway: Gateway) -> None:
    r = await gateway.post(VALID_BODY)
    assert r.status == 202, await r.text()
    plan = await r.json()
    assert plan["domain"] == "exempel.se"
    [t] = plan["transfers"]
    assert t["recipient"] == "iis-se"
    assert t["transfer"]["category"] == "eea"
    assert "national_id" in t["fields_sent"] and "email" in t["fields_sent"]
    assert "fax" not in t["fields_sent"]
    reg = await gateway.wait_status(plan["id"], {"delivered", "failed"})
    assert reg["status"] == "delivered", reg
    assert "exempel.se" in gateway.sandbox.sandbox.domains

    r = await gateway.client.get("/v1/disclosures", params={"registration_id": plan["id"]},
                                 headers=gateway.tokens.h("privacy"))
    assert r.status == 200
    # one entry per command that reached the registry: the subject's contact (with the data), then the
    # domain (which only points at it); the registrar's own contact is no disclosure
    entries = {e["command"]: e for e in (await r.json())["items"]}
    assert sorted(entries) == ["contact:create", "domain:create"]
    contact, domain = entries["contact:create"], entries["domain:create"]
    for entry in (contact, domain):
        assert entry["outcome"] == "delivered"
        assert entry["recipient"] == "iis-se" and entry["recipient_country"] == "SE"
        assert entry["transfer"]["category"] == "eea"
        assert entry["purpose"] == "domain_registration"
        assert entry["sv_trid"] and entry["result_code"] == "1000"
        assert entry["payload_digest"].startswith("sha256:")
    assert sorted(contact["fields"]) == sorted(t["fields_sent"])
    assert contact["objects"]["contact:registrant"] == contact["objects"]["contact"]
    # the domain points at the holder's contact (the link holdings follow), never at values
    held = contact["objects"]["contact"]
    assert domain["objects"]["domain"] == "exempel.se" and domain["objects"]["contact:registrant"] == held
    assert domain["fields"] == []

    # the .se extension carried the personnummer in Internetstiftelsen's [SE]YYMMDD-NNNN form
    creates = contact_creates(gateway.sandbox.sandbox.frames)
    # the subject's contact plus the registrar's own tech contact (which carries no subject data)
    assert len(creates) == 2
    # (the registrar's own contact carries the registrar's organisation number: created where missing)
    [cc] = [c for c in creates if "811218" in (c.findtext(".//{urn:se:iis:xml:epp:iis-1.2}orgno") or "")]
    orgno = cc.find(".//{urn:se:iis:xml:epp:iis-1.2}orgno")
    assert orgno is not None and orgno.text == "[SE]811218-9876"
    # a natural person: the disclose element withholds publication
    disclose = cc.find(f".//{{{CONTACT_NS}}}disclose")
    assert disclose is not None and disclose.get("flag") == "0"


async def test_idempotent_replay_and_conflict(gateway: Gateway) -> None:
    r1 = await gateway.post(VALID_BODY, key="key-000000001")
    r2 = await gateway.post(VALID_BODY, key="key-000000001")
    assert r1.status == r2.status == 202
    assert await r1.json() == await r2.json()
    r3 = await gateway.post(body(order_ref="ORD-OTHER"), key="key-000000001")
    assert r3.status == 409
    assert (await r3.json())["code"] == "idempotency_conflict"
    reg = await gateway.wait_status((await r1.json())["id"], {"delivered", "failed"})
    assert reg["status"] == "delivered"
    domain_creates = [c for c in commands(gateway.sandbox.sandbox.frames)
                      if c.find(f"{{{EPP_NS}}}create/{{{DOMAIN_NS}}}create") is not None]
    assert len(domain_creates) == 1


async def test_com_is_thin_no_contact_data(gateway: Gateway) -> None:
    r = await gateway.post(body(domain="exempel.com"))
    assert r.status == 202, await r.text()
    plan = await r.json()
    assert plan["transfers"][0]["fields_sent"] == []
    assert plan["transfers"][0]["transfer"]["category"] == "no_personal_data"
    reg = await gateway.wait_status(plan["id"], {"delivered", "failed"})
    assert reg["status"] == "delivered"
    frames = gateway.sandbox.sandbox.frames
    assert contact_creates(frames) == []
    [dc] = [c for c in commands(frames) if c.find(f"{{{EPP_NS}}}create/{{{DOMAIN_NS}}}create") is not None]
    assert dc.find(f".//{{{DOMAIN_NS}}}registrant") is None
    assert dc.find(f".//{{{DOMAIN_NS}}}contact") is None
    raw = b"".join(frames)
    for value in (b"Andersson", b"anna.andersson", b"Storgatan", b"811218"):
        assert value not in raw


async def test_cn_without_safeguard_is_blocked_and_nothing_sent(gateway: Gateway) -> None:
    r = await gateway.post(body(domain="exempel.cn"))
    assert r.status == 422
    problem = await r.json()
    assert r.content_type == "application/problem+json"
    assert problem["code"] == "transfer_blocked"
    assert "Andersson" not in await r.text()
    reg_id = problem["registration_id"]
    reg = await gateway.wait_status(reg_id, {"blocked"})
    assert reg["status"] == "blocked"
    assert reg["deliveries"] == []
    [entry] = reg["disclosures"]
    assert entry["outcome"] == "blocked" and entry["recipient_country"] == "CN"
    assert entry["fields"] == []
    assert gateway.sandbox.sandbox.frames == []


async def test_ordering_role_cannot_list_disclosures(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/disclosures", headers=gateway.tokens.h("ordering"))
    assert r.status == 403
    assert (await r.json())["code"] == "forbidden"
    r = await gateway.client.get("/v1/disclosures", headers=gateway.tokens.h("auditor"))
    assert r.status == 200


async def test_ordering_client_sees_only_its_own_registrations(gateway: Gateway) -> None:
    r = await gateway.post(VALID_BODY)
    reg_id = (await r.json())["id"]
    mine = await gateway.client.get(f"/v1/registrations/{reg_id}", headers=gateway.tokens.h("ordering"))
    assert mine.status == 200
    other = await gateway.client.get(f"/v1/registrations/{reg_id}", headers=gateway.tokens.h("other_ordering"))
    assert other.status == 404


async def test_privacy_role_cannot_register(gateway: Gateway) -> None:
    r = await gateway.post(VALID_BODY, role="privacy")
    assert r.status == 403


async def test_disclosure_filters(gateway: Gateway) -> None:
    statuses = [(await gateway.post(data)).status
                for data in (VALID_BODY, body(domain="exempel.com"), body(domain="exempel.cn"))]
    assert statuses == [202, 202, 422]
    h = gateway.tokens.h("privacy")

    async def q(**params: str) -> list[dict[str, Any]]:
        r = await gateway.client.get("/v1/disclosures", params=params, headers=h)
        assert r.status == 200, await r.text()
        return list((await r.json())["items"])

    blocked = await q(category="blocked")
    assert [e["recipient_country"] for e in blocked] == ["CN"]
    assert all(e["recipient_country"] == "CN" for e in await q(country="CN"))
    assert await q(recipient="cnnic-cn", outcome="delivered") == []
    assert await q(since="2999-01-01T00:00:00Z") == []
    assert len(await q(until="2999-01-01T00:00:00Z")) >= 1
    r = await gateway.client.get("/v1/disclosures", params={"country": "sweden"}, headers=h)
    assert r.status == 422
    r = await gateway.client.get("/v1/disclosures", params={"bogus": "1"}, headers=h)
    assert r.status == 422


def _tlds() -> list[str]:
    return sorted(load_policies(ROOT / "config").by_tld)


@pytest.mark.parametrize("tld", _tlds())
async def test_every_configured_tld_sends_schema_valid_epp(gateway: Gateway, tld: str) -> None:
    """The sandbox fixture asserts afterwards that every frame validated against the official XSDs."""
    policy = load_policies(ROOT / "config").by_tld[tld]
    r = await gateway.post(body_for_tld(tld))
    data = await r.json()
    if r.status == 422:
        if policy.protocol != "epp":  # .de (RRI): no adapter, refused at acceptance
            assert data["code"] == "protocol_not_supported"
        else:
            assert data["code"] == "transfer_blocked"
            assert policy.country not in load_policies(ROOT / "config").jurisdictions.eea
        assert gateway.sandbox.sandbox.frames == []
        return
    assert r.status == 202, data
    reg = await gateway.wait_status(data["id"], {"delivered", "failed"})
    assert reg["status"] == "delivered", reg
    domain = gateway.sandbox.sandbox.domains[f"exempel-{tld}.{tld}"]
    # the registry's extensions carried what the policy released, and nothing for other registries
    contact_exts: dict[str, dict[str, str]] = {}
    for c in gateway.sandbox.sandbox.contacts.values():
        for ns, values in c["extensions"].items():
            contact_exts.setdefault(ns, {}).update(values)
    expected = {"se": "urn:se:iis:xml:epp:iis-1.2", "nu": "urn:se:iis:xml:epp:iis-1.2",
                "eu": "http://www.eurid.eu/xml/epp/contact-ext-1.3", "dk": "urn:dkhm:params:xml:ns:dkhm-4.5",
                "no": "http://www.norid.no/xsd/no-ext-contact-1.0",
                # the nexus goes on the registrant's contact, as Net::DRI's NeuLevel extension sends it
                "us": "urn:ietf:params:xml:ns:neulevel-1.0"}
    assert set(contact_exts) == ({expected[tld]} if tld in expected else set()), contact_exts
    if tld == "us":
        assert "urn:ietf:params:xml:ns:neulevel-1.0" not in domain["extensions"]


def test_readme_starts_with_the_two_commands() -> None:
    lines = [ln for ln in Path(ROOT / "README.md").read_text().splitlines() if ln.startswith("./scripts/")]
    assert lines[:2] == ["./scripts/run", "./scripts/test"]
