"""Registrant changes and rectification reach exactly the past recipients with exactly the released,
changed fields: contact:update over real TLS to the sandbox, each push a disclosure entry."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from lxml import etree

from tests.api.test_registrations import commands
from tests.conftest import VALID_BODY, Gateway, body

pytestmark = pytest.mark.integration

EPP = "urn:ietf:params:xml:ns:epp-1.0"
CONTACT = "urn:ietf:params:xml:ns:contact-1.0"


async def _registered(gw: Gateway, data: dict[str, Any]) -> dict[str, Any]:
    r = await gw.post(data)
    assert r.status == 202, await r.text()
    reg = await gw.wait_status((await r.json())["id"], {"delivered", "failed"})
    assert reg["status"] == "delivered"
    return reg


def _updates(frames: list[bytes]) -> list[etree._Element]:
    """The <contact:update> elements among the frames the sandbox captured."""
    return [u for c in commands(frames) if (u := c.find(f"{{{EPP}}}update/{{{CONTACT}}}update")) is not None]


def _changed_registrant() -> dict[str, Any]:
    reg = copy.deepcopy(VALID_BODY["registrant"])
    reg["email"] = "anna.ny@example.se"
    reg["phone"] = "+46 8 765 432 10"
    reg["address"]["street"] = ["Nygatan 9"]
    reg["fax"] = "+46 8 111 222 33"  # .se never receives fax: a change the policy does not release
    return reg


async def _wait_entries(gw: Gateway, reg_id: str, purpose: str, n: int) -> list[dict[str, Any]]:
    for _ in range(200):
        reg = await gw.wait_status(reg_id, {"delivered"})
        got = [e for e in reg["disclosures"] if e["purpose"] == purpose and e["outcome"] == "delivered"]
        if len(got) >= n:
            return got
        await asyncio.sleep(0.05)
    seen = [(e["recipient"], e["outcome"], e["result_code"]) for e in reg["disclosures"]]
    raise AssertionError(f"update not delivered: {seen}")


async def test_registrant_change_goes_only_to_past_recipients_with_changed_fields(gateway: Gateway) -> None:
    se = await _registered(gateway, VALID_BODY)
    eu_body = body(domain="exempel.eu")
    eu_body["registrant"] = dict(eu_body["registrant"], citizenship="SE")
    eu = await _registered(gateway, eu_body)
    com = await _registered(gateway, body(domain="exempel.com"))
    assert (await gateway.post(body(domain="exempel.cn"))).status == 422  # never received anything
    assert se["subject_id"] == eu["subject_id"] == com["subject_id"]
    sb = gateway.sandbox.sandbox
    before = len(_updates(sb.frames))

    r = await gateway.client.post(f"/v1/registrations/{se['id']}/registrant", json=_changed_registrant(),
                                  headers=gateway.tokens.h("ordering"))
    assert r.status == 202, await r.text()
    report = {(c["registration_id"], c["recipient"]): c for c in (await r.json())["recipients"]}
    assert report[(se["id"], "iis-se")]["action"] == "queued"
    assert report[(se["id"], "iis-se")]["changed"] == ["email", "phone", "street"]
    assert report[(eu["id"], "eurid")]["action"] == "queued"
    assert "citizenship" in report[(eu["id"], "eurid")]["reason"]  # removed here, not removable there
    assert (com["id"], "verisign-com") not in report  # thin: it never received personal data
    assert (com["id"], "escrow-agent") not in report  # queued for escrow, not yet deposited: nothing held
    assert not any(rid == "cnnic-cn" for _, rid in report)

    [entry] = await _wait_entries(gateway, se["id"], "registrant_change", 1)
    assert entry["recipient"] == "iis-se" and entry["fields"] == ["email", "phone", "street"]
    assert entry["sv_trid"] and entry["objects"]["contact"] == se["disclosures"][0]["objects"]["contact:registrant"]
    await _wait_entries(gateway, eu["id"], "registrant_change", 1)

    updates = _updates(sb.frames)[before:]
    assert len(updates) == 2
    for upd in updates:
        chg = upd.find(f"{{{CONTACT}}}chg")
        assert chg is not None
        assert chg.find(f"{{{CONTACT}}}email").text == "anna.ny@example.se"
        assert chg.find(f"{{{CONTACT}}}voice").text == "+46.876543210"
        assert chg.find(f".//{{{CONTACT}}}name") is None  # unchanged: not sent
        assert chg.find(f"{{{CONTACT}}}fax") is None  # not released to these registries
    contact = sb.contacts[entry["objects"]["contact"]]
    assert contact["email"] == "anna.ny@example.se"

    # the privacy role reads exactly the changed values back from the entry
    detail = await (await gateway.client.get(f"/v1/disclosures/{entry['id']}", headers=gateway.tokens.h("privacy"))
                    ).json()
    assert detail["values"] == {"email": "anna.ny@example.se", "phone": "+46876543210", "street": ["Nygatan 9"]}

    # the same data again changes nothing anywhere
    r = await gateway.client.post(f"/v1/registrations/{se['id']}/registrant", json=_changed_registrant(),
                                  headers=gateway.tokens.h("ordering"))
    again = {c["recipient"]: c for c in (await r.json())["recipients"]}
    assert again["iis-se"]["action"] == "unchanged"
    # EURid cannot remove a citizenship once set (EPP can change, not clear it): listed for staff, not sent
    assert again["eurid"]["action"] == "cannot_update" and again["eurid"]["changed"] == ["citizenship"]


async def test_rectification_request_lists_what_cannot_be_updated(gateway: Gateway) -> None:
    se = await _registered(gateway, VALID_BODY)
    h = gateway.tokens.h("privacy")
    r = await gateway.client.post("/v1/requests", headers=h, json={
        "kind": "rectification", "channel": "letter", "identity_check": "ID card checked at the counter",
        "verified_by": "staff-1", "identifiers": {"email": "anna.andersson@example.se"}})
    assert r.status in (200, 201), await r.text()
    req = await r.json()
    # staff confirm which candidate record is the person's before anything is acted on (issue 13)
    r = await gateway.client.post(f"/v1/requests/{req['id']}/subjects", headers=h,
                                  json={"subject_ids": [se["subject_id"]]})
    assert r.status == 200, await r.text()
    new = copy.deepcopy(VALID_BODY["registrant"])
    new["national_id"] = {"scheme": "se_personnummer", "value": "19880320-0016"}  # the orgno is fixed at IIS
    new["name"] = "Anna Berg"
    r = await gateway.client.post(f"/v1/requests/{req['id']}/rectify", headers=h, json={"registrant": new})
    assert r.status == 202, await r.text()
    [c] = [c for c in (await r.json())["recipients"] if c["recipient"] == "iis-se"]
    assert c["action"] == "queued" and c["changed"] == ["name"]
    assert "national_id" in c["reason"]
    entries = await _wait_entries(gateway, se["id"], "rectification", 1)
    assert entries[0]["fields"] == ["name"]
    events = (await (await gateway.client.get(f"/v1/requests/{req['id']}", headers=h)).json())["events"]
    assert "rectification_pushed" in [e["action"] for e in events]


async def test_ordering_client_cannot_change_anothers_registration(gateway: Gateway) -> None:
    se = await _registered(gateway, VALID_BODY)
    r = await gateway.client.post(f"/v1/registrations/{se['id']}/registrant", json=_changed_registrant(),
                                  headers=gateway.tokens.h("other_ordering"))
    assert r.status == 404
    r = await gateway.client.post(f"/v1/registrations/{se['id']}/registrant", json={"name": "x"},
                                  headers=gateway.tokens.h("ordering"))
    assert r.status == 422
