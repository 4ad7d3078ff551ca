"""The Art. 30(1) record from the policy files (and the log, empty here)."""

from __future__ import annotations

import json
from typing import Any, cast

from gateway.policy.loader import load_policies
from gateway.rights.service import RightsService
from gateway.store.sqlite import SqliteStore
from tests.conftest import ROOT


async def _record() -> dict[str, Any]:
    store = SqliteStore(":memory:")
    try:
        return await RightsService(store, cast(Any, None), load_policies(ROOT / "config"),
                                   config_dir=ROOT / "config").art30()
    finally:
        await store.close()


async def test_every_configured_recipient_appears_by_category() -> None:
    rec = await _record()
    policies = load_policies(ROOT / "config")
    listed = {r["recipient"]: kind for kind, rs in rec["recipients_by_category"].items() for r in rs}
    assert set(listed) == set(policies.recipients)
    for rid, pol in policies.recipients.items():
        assert listed[rid] == pol.kind
    assert {"registry", "escrow", "email", "marketing"} <= set(rec["recipients_by_category"])


async def test_third_country_transfers_name_their_instruments() -> None:
    rec = await _record()
    transfers = {t["recipient"]: t for t in rec["third_country_transfers"]}
    # EEA recipients are not third-country transfers
    assert "iis-se" not in transfers and "denic-de" not in transfers and "escrow-agent" not in transfers
    us = transfers["godaddy-us"]
    assert us["country"] == "US" and us["category"] == "safeguard" and us["article"] == "46(2)(c)"
    assert "2021/914" in us["instrument"]
    assert "2021/914" in transfers["marketing-partner"]["instrument"]
    assert transfers["jprs-jp"]["category"] == "adequacy" and "2019/419" in transfers["jprs-jp"]["instrument"]
    assert transfers["cnnic-cn"]["category"] == "blocked" and transfers["cnnic-cn"]["transfers_personal_data"] is False
    assert transfers["verisign-com"]["category"] == "no_personal_data"
    for t in transfers.values():
        if t["category"] in ("adequacy", "safeguard"):
            assert t["instrument"] and t["article"], t


async def test_record_contents() -> None:
    rec = await _record()
    assert rec["controller"]["name"] and rec["supervisory_authority"]["name"] == "Integritetsskyddsmyndigheten"
    fields = {f["field"]: f["category"] for f in rec["categories_of_personal_data"]}
    assert fields["email"] == "user.contact.email"
    assert fields["national_id"] == "user.government_id.national_identification_number"
    assert rec["categories_of_data_subjects"]
    purposes = {p["purpose"]: p for p in rec["purposes"]}
    assert purposes["domain_registration"]["period_months"] == 15
    assert purposes["marketing"]["period_months"] < 15
    assert "marketing-partner" in purposes["marketing"]["recipients"]
    assert rec["retention"]["measured_from"] == "registration_end"
    assert rec["retention"]["purposes"]["domain_registration"]["confirmed"] is False
    text = json.dumps(rec["security_measures"])
    for needle in ("AES-256-GCM", "per-subject", "Merkle", "TLS", "SHA-256 hashes"):
        assert needle in text, needle
