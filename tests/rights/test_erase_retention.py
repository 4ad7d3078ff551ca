"""Erasure (crypto-shredding + who to ask) and the retention purge, through the running gateway."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.http.context import SERVICES
from gateway.rights.deadlines import add_months
from gateway.rights.extract import verify_extract
from gateway.rights.service import RightsService
from gateway.services.ledger import verify_store
from tests.api.test_lifecycle import wait_for
from tests.conftest import ROOT, Gateway
from tests.rights.conftest import anna, bertil, entries, open_confirmed, public_key_pem, register

pytestmark = pytest.mark.integration


async def test_erase_shreds_values_and_lists_recipients(gateway: Gateway) -> None:
    svc = gateway.client.app[SERVICES]
    h = gateway.tokens.h("privacy")
    await register(gateway, anna(domain="exempel.se"))
    await register(gateway, anna(domain="exempel.com"))
    await register(gateway, bertil(domain="bertils.se"))
    req = await open_confirmed(gateway, kind="erasure", email="anna.andersson@example.se", national_id="811218-9876")
    anna_entries = [e for e in await entries(gateway) if e["subject_id"] == req["subject_id"]]
    bertil_entries = [e for e in await entries(gateway) if e["subject_id"] != req["subject_id"]]
    # one entry per command: Anna's .se contact:create and domain:create, her .com domain:create (thin);
    # Bertil's .se contact:create and domain:create
    assert len(anna_entries) == 3 and len(bertil_entries) == 2
    assert {e["registration_id"] for e in anna_entries}.isdisjoint(e["registration_id"] for e in bertil_entries)

    r = await gateway.client.post(f"/v1/requests/{req['id']}/erase", headers=h)
    out = await r.json()
    assert r.status == 200, out
    assert out["keys_destroyed"] == 1 and out["already_erased"] is False
    plan = {p["recipient"]: p for p in out["recipients"]}
    assert set(plan) == {"iis-se", "verisign-com"}
    assert plan["iis-se"]["deletion_request"] == "not_possible"
    assert plan["iis-se"]["reason"].startswith("active registration")
    assert plan["iis-se"]["fields"] and plan["iis-se"]["active_registrations"]
    assert plan["verisign-com"]["deletion_request"] == "not_needed"

    for e in anna_entries:
        detail = await (await gateway.client.get(f"/v1/disclosures/{e['id']}", headers=h)).json()
        assert detail["values"] is None
        assert detail["values_erased"] is bool(e["fields"])  # a domain:create sent no values to erase
        assert detail["recipient"] == e["recipient"]  # metadata stays
    [bertils_contact] = [e for e in bertil_entries if e["command"] == "contact:create"]
    other = await (await gateway.client.get(f"/v1/disclosures/{bertils_contact['id']}", headers=h)).json()
    assert other["values"]["name"] == "Bertil Berg"

    x = await (await gateway.client.post(f"/v1/requests/{req['id']}/extract", json={"lang": "en"},
                                         headers=h)).json()
    assert {d["id"] for d in x["disclosures"]} == {e["id"] for e in anna_entries}
    for d in x["disclosures"]:
        assert d["values"] is None
        # only the contact:create carried values; a domain:create (thick or thin registry) sent none
        assert d["values_note"] == ("erased" if d["leaf"]["command"] == "contact:create" else "none_sent")
        assert bool(d["fields"]) is (d["leaf"]["command"] == "contact:create")
        assert d["fields"] is not None and d["recipient"]["name"]
    assert verify_extract(x, await public_key_pem(gateway)) == []
    report = await verify_store(svc.store, svc.ledger.signer.public_key)
    assert report.ok, report

    again = await (await gateway.client.post(f"/v1/requests/{req['id']}/erase", headers=h)).json()
    assert again["already_erased"] is True
    events = (await (await gateway.client.get(f"/v1/requests/{req['id']}", headers=h)).json())["events"]
    assert [e["action"] for e in events].count("erased") == 2
    assert events[3]["action"] == "erased" and events[3]["detail"]["recipients"] == ["iis-se", "verisign-com"]


async def test_retention_dry_run_then_purge(gateway: Gateway) -> None:
    svc = gateway.client.app[SERVICES]
    h = gateway.tokens.h("privacy")
    anna_se = await register(gateway, anna(domain="exempel.se"))
    bertil_se = await register(gateway, bertil(domain="bertils.se"))
    await register(gateway, anna(domain="exempel.com"))  # sends no values: nothing to purge
    rows = await entries(gateway)
    with_values = {e["id"] for e in rows if e["fields"]}
    assert len(with_values) == 2  # Anna's and Bertil's contact:create; no domain:create carries values
    assert {e["command"] for e in rows if e["id"] in with_values} == {"contact:create"}

    # today nothing is due
    r = await gateway.client.post("/v1/retention/purge", params={"dry_run": "true"}, headers=h)
    now_report = await r.json()
    assert r.status == 200 and now_report["expired"] == 0 and now_report["dry_run"] is True

    now = dt.datetime.now(dt.UTC)

    def at(months: int) -> RightsService:
        later = dt.datetime.combine(add_months(now.date(), months), now.timetz())
        return RightsService(svc.store, svc.ledger, svc.registrations.policies, clock=lambda: later,
                             config_dir=ROOT / "config")

    # while the registrations are ours nothing is due, however old: the period runs from their end
    assert (await at(16).retention(dry_run=True))["expired"] == 0
    for reg_id in (anna_se, bertil_se):
        r = await gateway.client.post(f"/v1/registrations/{reg_id}/delete", headers=gateway.tokens.h("ordering"))
        assert r.status == 202
        await wait_for(gateway, reg_id, lambda g: any(e["command"] == "contact:delete" for e in g["disclosures"]))

    assert (await at(14).retention(dry_run=True))["expired"] == 0
    dry = await at(16).retention(dry_run=True)
    assert dry["purposes"]["domain_registration"]["period_months"] == 15
    assert set(dry["purposes"]["domain_registration"]["ids"]) == with_values
    assert dry["purged"] == 0
    for eid in with_values:  # a dry run changes nothing
        assert (await svc.store.disclosure(eid)).values_ct is not None  # type: ignore[union-attr]

    real = await at(16).retention(dry_run=False)
    assert real["purged"] == 2 and real["expired"] == 2
    for eid in with_values:
        detail = await (await gateway.client.get(f"/v1/disclosures/{eid}", headers=h)).json()
        assert detail["values_purged"] is True and detail["values"] is None and detail["values_erased"] is False
    report = await verify_store(svc.store, svc.ledger.signer.public_key)
    assert report.ok, report
    assert (await at(16).retention(dry_run=False))["expired"] == 0

    # the extract still lists the entries, with a note instead of values, and still verifies
    req = await open_confirmed(gateway, email="anna.andersson@example.se")
    x = await (await gateway.client.post(f"/v1/requests/{req['id']}/extract", headers=h)).json()
    notes = {(d["recipient"]["id"], d["leaf"]["command"]): d["values_note"] for d in x["disclosures"]}
    # ... and the deletion of her domain and contact at the registry (no values: nothing was sent)
    assert notes == {("iis-se", "contact:create"): "purged", ("iis-se", "domain:create"): "none_sent",
                     ("verisign-com", "domain:create"): "none_sent", ("iis-se", "domain:delete"): "none_sent",
                     ("iis-se", "contact:delete"): "none_sent"}
    assert len(x["disclosures"]) == 5  # Anna's five entries, none of Bertil's
    assert verify_extract(x, await public_key_pem(gateway)) == []
