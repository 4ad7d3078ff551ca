"""What a registry would refuse is refused at acceptance: 422 with the code and the request's field path,
nothing stored (no registration, no idempotency record, no outbox row, no ledger entry), nothing sent;
and ``/v1/explain`` shows each recipient's eligibility rules and whether the sample meets them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.conftest import VALID_BODY, Gateway, body_for_tld

pytestmark = pytest.mark.integration

ABROAD = {"street": ["1 Main St"], "city": "Boston", "postal_code": "02101", "country": "US"}


def without_nexus() -> dict[str, Any]:
    b = body_for_tld("us")
    del b["us_nexus"]
    return b


def eu_stranger() -> dict[str, Any]:
    return body_for_tld("eu", address=ABROAD, citizenship="US")


def fi_person_without_identity() -> dict[str, Any]:
    b = copy.deepcopy(VALID_BODY)  # a Swedish personnummer is no HETU, and no birth date is given
    b["domain"] = "henkilo.fi"
    return b


CASES = [
    ("de", lambda: body_for_tld("de"), "protocol_not_supported", ["domain"]),
    ("us", without_nexus, "registry_ineligible", ["us_nexus"]),
    ("eu", eu_stranger, "registry_ineligible", ["registrant", "citizenship"]),
    ("fi", fi_person_without_identity, "registry_ineligible", ["registrant", "national_id"]),
]


@pytest.mark.parametrize(("tld", "make", "code", "loc"), CASES, ids=[c[0] for c in CASES])
async def test_refused_at_acceptance_with_nothing_stored(gateway: Gateway, tld: str, make: Any, code: str,
                                                         loc: list[str]) -> None:
    data = make()
    r = await gateway.post(data, key=f"elig-{tld}-0001")
    problem = await r.json()
    assert r.status == 422, problem
    assert r.content_type == "application/problem+json"
    assert problem["code"] == code and problem["type"].endswith(f"/{code}")
    [error] = problem["errors"]
    assert error["loc"] == loc and error["type"] == code and error["msg"]
    assert "registration_id" not in problem and "transfers" not in problem
    # the answer quotes no value of the registrant
    text = await r.text()
    for value in ("Anna", "Andersson", "9876", "Storgatan", "Main St", "anna.andersson"):
        assert value not in text
    # nothing stored: no idempotency record, no outbox row, no ledger entry, no frame to any registry
    assert await gateway.store.idempotent_response("shop", f"elig-{tld}-0001") is None
    assert await gateway.store.pending_count() == 0
    assert (await gateway.store.head()).size == 0
    assert gateway.sandbox.sandbox.frames == []
    r = await gateway.client.get("/v1/disclosures", headers=gateway.tokens.h("privacy"))
    assert (await r.json())["items"] == []


async def test_the_same_key_then_serves_the_corrected_order(gateway: Gateway) -> None:
    """The refusal kept nothing under the Idempotency-Key, so the fixed order goes through with it."""
    r = await gateway.post(without_nexus(), key="elig-us-fixed-01")
    assert r.status == 422
    r = await gateway.post(body_for_tld("us"), key="elig-us-fixed-01")
    data = await r.json()
    assert r.status == 202, data
    r = await gateway.client.get(f"/v1/registrations/{data['id']}", headers=gateway.tokens.h("ordering"))
    assert r.status == 200


async def explain(gateway: Gateway, tld: str, registrant: dict[str, Any], **extra: Any) -> dict[str, Any]:
    r = await gateway.client.post("/v1/explain", json={"tld": tld, "registrant": registrant, **extra},
                                  headers=gateway.tokens.h("privacy"))
    data: dict[str, Any] = await r.json()
    assert r.status == 200, data
    return data


async def test_explain_lists_the_rules_and_whether_they_are_met(gateway: Gateway) -> None:
    stranger = dict(copy.deepcopy(VALID_BODY["registrant"]), address=ABROAD, citizenship="US")
    out = await explain(gateway, "eu", stranger)
    assert out["registration_possible"] is False and out["blocked_by"] == ["eurid"]
    assert out["refused_at_acceptance"]["code"] == "registry_ineligible"
    assert out["refused_at_acceptance"]["errors"][0]["loc"] == ["registrant", "citizenship"]
    [eurid] = [x for x in out["recipients"] if x["recipient"] == "eurid"]
    rules = {x["rule"]: x for x in eurid["eligibility"]}
    person = rules["eu-person-residence-or-citizenship"]
    assert (person["applies"], person["met"]) == (True, False)
    assert person["field"] == "registrant.citizenship" and person["reason"] and person["source"]
    assert person["require"] == ["registrant.citizenship in EU", "registrant.address.country in EEA"]
    organisation = rules["eu-organisation-established"]
    assert (organisation["applies"], organisation["met"]) == (False, None)
    assert eurid["refused"]["code"] == "registry_ineligible" and eurid["would_send"] is False

    resident = copy.deepcopy(VALID_BODY["registrant"])
    out = await explain(gateway, "eu", resident)
    assert out["registration_possible"] is True and out["refused_at_acceptance"] is None
    [eurid] = [x for x in out["recipients"] if x["recipient"] == "eurid"]
    assert [(x["rule"], x["met"]) for x in eurid["eligibility"]] == [
        ("eu-person-residence-or-citizenship", True), ("eu-organisation-established", None)]


async def test_explain_takes_the_us_nexus_declaration(gateway: Gateway) -> None:
    registrant = copy.deepcopy(VALID_BODY["registrant"])
    out = await explain(gateway, "us", registrant)
    assert out["registration_possible"] is False
    assert out["recipients"][0]["eligibility"][0]["met"] is False
    out = await explain(gateway, "us", registrant, us_nexus={"app_purpose": "P3", "nexus_category": "C11"})
    assert out["registration_possible"] is True
    assert out["recipients"][0]["eligibility"][0] | {"met": True} == out["recipients"][0]["eligibility"][0]


async def test_explain_shows_a_protocol_without_an_adapter(gateway: Gateway) -> None:
    out = await explain(gateway, "de", copy.deepcopy(VALID_BODY["registrant"]))
    [denic] = [x for x in out["recipients"] if x["recipient"] == "denic-de"]
    assert denic["protocol"] == "rri" and denic["protocol_supported"] is False
    assert denic["would_send"] is False and denic["sent"] == {}
    assert out["refused_at_acceptance"]["code"] == "protocol_not_supported"
