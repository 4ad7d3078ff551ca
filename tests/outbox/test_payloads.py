"""Outbox payloads are typed, and their JSON form is a stored format that must not move.

``payloads_before_typing.json`` holds payloads (and their digests) written by the untyped code this
replaced (``RegistrationService._payload`` and the dict literals of ``ChangeService.push``) for the
inputs below.  Rows queued before the typing must decode, and the digest a disclosure entry quotes
must stay what it was.  Never regenerate it: it is what old rows look like.

``registrations_built.json`` is what registrations are built as today, for the same inputs.  It
differs from the old rows only by intended changes (checked by ``test_built_differs_from_old_rows_only
_as_intended``): an auth code per object, the registrar contact's registry extension and its id in
``registrar_contacts``, and the .us nexus on the registrant contact instead of the domain.
Regenerate it only for an intended change to a policy in ``config/`` or to those commands.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.epp.types import ContactUpdate, DiscloseSpec
from gateway.models import RegistrationRequest
from gateway.outbox.epp import RegistrarContact, contact_update, contact_update_from_json, contact_update_to_json
from gateway.outbox.payloads import (
    DomainRecord,
    EppContactUpdate,
    EppRegistration,
    HttpsPost,
    OutboxContent,
    OutboxPayload,
    decode,
    json_digest,
    outbox_aad,
    plain,
)
from gateway.policy.classify import classify_transfer
from gateway.policy.loader import load_policies
from gateway.policy.minimise import minimise
from gateway.services.registrations import RecipientPlan, plan_registration, registration_payload
from tests.conftest import ROOT, body_for_tld

GOLDEN: dict[str, dict[str, Any]] = json.loads((Path(__file__).parent / "payloads_before_typing.json").read_text())
BUILT: dict[str, dict[str, Any]] = json.loads((Path(__file__).parent / "registrations_built.json").read_text())
#: the inputs the golden payloads were built from
NOW = dt.datetime(2025, 3, 14, 12, 0, tzinfo=dt.UTC)
SECRET = b"k" * 32
REG_ID = "0f" * 16
CHANGE_ID = "a1b2c3d4e5f60718"
NEW = {"name": "Anna Andersson", "street": ["Nygatan 9"], "city": "Stockholm", "postal_code": "111 22",
       "country": "SE", "email": "anna.ny@example.se", "phone": "+46876543210", "language": "sv",
       "vat_number": "SE556677889901", "citizenship": "FI"}
TYPES = {"epp": EppRegistration, "epp-update": EppContactUpdate, "https": HttpsPost, "escrow": DomainRecord,
         "rri": DomainRecord}


def as_stored(payload: OutboxPayload) -> Any:
    """The JSON form as it comes back from storage (tuples are lists there)."""
    return json.loads(json.dumps(payload.to_json()))


@pytest.fixture(scope="module")
def policies() -> Any:
    return load_policies(ROOT / "config")


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_a_stored_payload_round_trips_through_its_type(name: str) -> None:
    stored = GOLDEN[name]["json"]
    payload = decode(stored)
    assert type(payload) is TYPES[stored["protocol"]]
    assert payload.protocol == stored["protocol"]
    assert as_stored(payload) == stored
    assert decode(payload.to_json()) == payload


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_the_digest_is_the_one_the_untyped_code_computed(name: str) -> None:
    stored = GOLDEN[name]
    assert decode(stored["json"]).digest() == stored["digest"] == json_digest(stored["json"])


@pytest.mark.parametrize("tld", ["se", "eu", "dk", "no", "fi", "us", "com", "de", "org"])
def test_registration_payloads_are_built_as_before(policies: Any, tld: str) -> None:
    req = RegistrationRequest.model_validate_json(json.dumps(body_for_tld(tld)))
    plans = [p for p in plan_registration(req, policies, NOW) if p.refusal is None]
    assert plans
    for plan in plans:
        payload, _ = registration_payload(req, REG_ID, plan, RegistrarContact(), SECRET, NOW.date())
        stored = BUILT[f"registration/{tld}/{plan.policy.recipient}"]
        assert as_stored(payload) == stored["json"]
        assert payload.digest() == stored["digest"]


def _without_intended_changes(commands: dict[str, Any]) -> dict[str, Any]:
    """A registration's JSON with what this version changed on purpose taken out."""
    c = json.loads(json.dumps(commands))
    registrar = set(c.pop("registrar_contacts", []))
    c["domain"].pop("auth_pw")
    nexus = [e for e in c["domain"].pop("extensions") if e["kind"] == "neulevel"]
    for contact in c["contacts"]:
        contact.pop("auth_pw")
        contact["extensions"] = [e for e in contact["extensions"] if e["kind"] != "neulevel"]
        if contact["id"] in registrar:
            contact["extensions"] = [e for e in contact["extensions"] if e["kind"] == "ficora"]
    return {**c, "nexus": [{k: v for k, v in sorted(e.items())} for e in nexus]}


@pytest.mark.parametrize("name", sorted(k for k, v in BUILT.items() if v["json"]["protocol"] == "epp"))
def test_built_differs_from_old_rows_only_as_intended(name: str) -> None:
    old, new = GOLDEN[name]["json"]["commands"], BUILT[name]["json"]["commands"]
    assert "registrar_contacts" not in old
    assert set(new.get("registrar_contacts", [])) == {c["id"] for c in new["contacts"] if c["id"] == "RGREGISTRAR"}
    new_nexus = [e for c in new["contacts"] for e in c["extensions"] if e["kind"] == "neulevel"]
    expected = _without_intended_changes(old)
    assert {**_without_intended_changes(new), "nexus": expected["nexus"]} == expected
    assert [{k: v for k, v in sorted(e.items())} for e in new_nexus] == expected["nexus"]
    # every object has its own auth code now
    codes = [new["domain"]["auth_pw"], *(c["auth_pw"] for c in new["contacts"])]
    assert len(set(codes)) == len(codes)


def test_a_registry_without_an_adapter_gets_a_record_under_its_own_protocol(policies: Any) -> None:
    req = RegistrationRequest.model_validate_json(json.dumps(body_for_tld("de")))
    [plan] = [p for p in plan_registration(req, policies, NOW) if p.policy.recipient == "denic-de"]
    payload, _ = registration_payload(req, REG_ID, plan, RegistrarContact(), SECRET, NOW.date())
    assert isinstance(payload, DomainRecord) and payload.protocol == "rri"
    assert payload.expires == "2026-03-14" and payload.nameservers == ("ns1.example.net", "ns2.example.net")


@pytest.mark.parametrize("name", ["registration/se/mail-provider", "registration/se/marketing-partner"])
def test_a_partner_registration_post_is_built_as_before(policies: Any, name: str) -> None:
    policy = policies.recipients[name.rsplit("/", 1)[1]]  # disabled in config: planned by hand
    req = RegistrationRequest.model_validate_json(json.dumps(body_for_tld("se")))
    m = minimise(req.registrant, policy)
    decision = classify_transfer(policy, policies.jurisdictions, NOW, policy.purposes[0], carries_personal_data=True)
    payload, _ = registration_payload(req, REG_ID, RecipientPlan(policy, decision, m, None), RegistrarContact(),
                                      SECRET, NOW.date())
    assert isinstance(payload, HttpsPost) and payload.idempotency_key is None
    assert payload.digest() == GOLDEN[name]["digest"]


@pytest.mark.parametrize(("recipient", "changed"), [
    ("iis-se", {"email", "phone", "street", "vat_number"}),
    ("eurid", {"email", "language", "citizenship", "name"}),
])
def test_a_contact_update_is_built_as_before(policies: Any, recipient: str, changed: set[str]) -> None:
    cmd, missing = contact_update("RGCONTACT1", policies.recipients[recipient], NEW, changed)
    assert cmd is not None and missing == set()
    assert EppContactUpdate(cmd).digest() == GOLDEN[f"change/{recipient}"]["digest"]


def test_change_posts_and_records_are_built_as_before() -> None:
    post = HttpsPost("/v1/messages", {"registration_id": REG_ID, "change": CHANGE_ID,
                                      "data": {k: NEW[k] for k in ("email", "phone")}},
                     idempotency_key=f"{REG_ID}:mail-provider:{CHANGE_ID}")
    assert post.digest() == GOLDEN["change/mail-provider"]["digest"]
    record = DomainRecord(domain="exempel.com", tld="com", data=NEW)
    assert record.digest() == GOLDEN["change/escrow-agent"]["digest"]


def test_members_a_payload_lacks_are_left_out_not_null() -> None:
    assert "idempotency_key" not in HttpsPost("/p", {}).to_json()
    change = DomainRecord(domain="a.com", tld="com", data={}).to_json()
    assert "nameservers" not in change and "expires" not in change
    # a registration without name servers says so: an empty list, not an absent member
    assert DomainRecord(domain="a.com", tld="com", data={}, nameservers=()).to_json()["nameservers"] == []


def test_the_sealed_form_is_payload_and_values() -> None:
    content = OutboxContent(HttpsPost("/p", {"a": 1}), {"email": "x@example.se"})
    stored = content.to_json()
    assert stored == {"payload": {"protocol": "https", "path": "/p", "body": {"a": 1}},
                      "values": {"email": "x@example.se"}}
    assert OutboxContent.from_json(stored) == content


def test_the_associated_data_binds_the_row() -> None:
    assert outbox_aad("r1", "iis-se") == "outbox:r1:iis-se"
    assert outbox_aad("r1", "iis-se", "c1") == "outbox:r1:iis-se:c1"


def test_plain_values_are_json_shaped() -> None:
    assert plain({"street": ("a", "b"), "city": "x"}) == {"street": ["a", "b"], "city": "x"}


def test_every_member_of_a_contact_update_survives_the_codec() -> None:
    cmd = ContactUpdate(id="C1", add_status=("clientDeleteProhibited",), rem_status=("clientUpdateProhibited",),
                        email="a@example.se", auth_pw="pw", disclose=DiscloseSpec(flag=0, elements=("email",)))
    assert contact_update_from_json(json.loads(json.dumps(contact_update_to_json(cmd)))) == cmd
