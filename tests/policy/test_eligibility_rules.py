"""Eligibility at acceptance (gateway/policy/eligibility.py), and its rule and extension shapes in the
loader: pure, with inline rules and with the shipped config's own rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from adapters.epp import extensions as epp_extensions
from gateway.errors import ConfigError, NotEligible, ProtocolNotSupported
from gateway.models import RegistrationRequest
from gateway.policy.eligibility import SUPPORTED_PROTOCOLS, acceptance_refusal, evaluate, refusal
from gateway.policy.loader import PolicySet, load_model, load_policies
from gateway.policy.schema import IMPLEMENTED_EXTENSIONS, Jurisdictions, RecipientPolicy
from gateway.services.registrations import recipients_for
from tests.conftest import FI_ORG, ORG_BODY, ROOT, VALID_BODY, body_for_tld
from tests.policy.test_loader import SE, line_of, recipient_error

JUR = Jurisdictions.model_validate({
    "eea": ["AT", "BE", "DE", "FI", "SE", "IS", "LI", "NO"], "eu": ["AT", "BE", "DE", "FI", "SE"],
    "eea_source": "test", "adequacy": [],
})


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies(ROOT / "config")


def request(tld: str, base: dict[str, Any] | None = None, **registrant: Any) -> RegistrationRequest:
    b = copy.deepcopy(base) if base is not None else body_for_tld(tld)
    b["domain"] = f"exempel.{tld}"
    b["registrant"].update(registrant)
    b["registrant"] = {k: v for k, v in b["registrant"].items() if v is not None}
    return RegistrationRequest.model_validate_json(json.dumps(b))


def policy_with(rules: list[dict[str, Any]], protocol: str = "epp") -> RecipientPolicy:
    return RecipientPolicy.model_validate({
        "recipient": "test-registry", "name": "Test registry", "kind": "registry", "role": "controller",
        "tlds": ["se"], "country": "SE", "protocol": protocol, "purposes": ["domain_registration"],
        "source": "test", "confirmed": True, "fields": {"name": {"send": "always"}},
        "epp": {"contacts": {"registrant": "subject"}} if protocol == "epp" else None,
        "eligibility": rules,
    })


def rule(**kw: Any) -> dict[str, Any]:
    return {"id": "test-rule", "reason": "the registry says so, for a reason", "source": "test",
            "confirmed": True, **kw}


# -- the evaluator, rule by rule ------------------------------------------------------------------------


def test_a_present_field_meets_a_bare_requirement() -> None:
    pol = policy_with([rule(require=[{"field": "registrant.national_id"}])])
    [ok] = evaluate(pol, request("se"), JUR)
    assert ok.applies and ok.met and not ok.refused
    [missing] = evaluate(pol, request("se", national_id=None), JUR)
    assert missing.applies and not missing.met and missing.refused
    assert missing.field == ("registrant", "national_id")


def test_a_scheme_requirement_wants_that_scheme() -> None:
    pol = policy_with([rule(require=[{"field": "registrant.national_id", "schemes": ["fi_hetu"]}])])
    [swedish] = evaluate(pol, request("se"), JUR)  # a personnummer is not a HETU
    assert swedish.refused
    hetu = {"scheme": "fi_hetu", "value": "131052-308T"}
    [finnish] = evaluate(pol, request("se", national_id=hetu), JUR)
    assert finnish.met


def test_alternatives_any_one_is_enough_and_the_first_is_named() -> None:
    pol = policy_with([rule(require=[{"field": "registrant.citizenship", "countries": ["EU"]},
                                     {"field": "registrant.address.country", "countries": ["EEA"]}])])
    resident = request("se")  # lives in SE, no citizenship given
    assert evaluate(pol, resident, JUR)[0].met
    abroad = {"street": ["1 Main St"], "city": "Boston", "postal_code": "02101", "country": "US"}
    [citizen] = evaluate(pol, request("se", address=abroad, citizenship="DE"), JUR)
    assert citizen.met
    [stranger] = evaluate(pol, request("se", address=abroad, citizenship="US"), JUR)
    assert stranger.refused and stranger.field == ("registrant", "citizenship")
    # an EEA-EFTA citizen is no citizen of an EU member state
    [norwegian] = evaluate(pol, request("se", address=abroad, citizenship="NO"), JUR)
    assert norwegian.refused


@pytest.mark.parametrize(("when", "kind", "country", "applies"), [
    ({"kind": "person"}, "person", "SE", True),
    ({"kind": "person"}, "organisation", "SE", False),
    ({"kind": "organisation", "country_in": ["DE"]}, "organisation", "DE", True),
    ({"kind": "organisation", "country_in": ["DE"]}, "organisation", "SE", False),
    ({"country_in": ["EEA"]}, "person", "NO", True),
    ({"country_not_in": ["EEA"]}, "person", "NO", False),
    ({"country_not_in": ["EEA"]}, "person", "US", True),
    ({}, "organisation", "US", True),
])
def test_when_selects_the_registrants_a_rule_is_for(when: dict[str, Any], kind: str, country: str,
                                                     applies: bool) -> None:
    pol = policy_with([rule(when=when, require=[{"field": "registrant.vat_number"}])])
    base = ORG_BODY if kind == "organisation" else VALID_BODY
    addr = {"street": ["Gatan 1"], "city": "Stad", "postal_code": "12345", "country": country}
    [o] = evaluate(pol, request("se", base, address=addr, vat_number=None, national_id=None), JUR)
    assert o.applies is applies
    assert o.refused is applies  # no VAT number given: refused exactly where the rule applies
    assert o.as_dict()["met"] is (False if applies else None)


def test_the_problem_names_the_field_and_reason_never_a_value() -> None:
    pol = policy_with([rule(require=[{"field": "registrant.birth_date"}])])
    err = refusal(pol, request("se"), JUR)
    assert isinstance(err, NotEligible)
    problem = err.problem()
    assert problem["status"] == 422 and problem["code"] == "registry_ineligible"
    assert problem["errors"] == [{"loc": ["registrant", "birth_date"], "type": "registry_ineligible",
                                  "msg": "the registry says so, for a reason", "rule": "test-rule"}]
    text = json.dumps(problem)
    for value in ("Anna", "Andersson", "9876", "Storgatan", "anna.andersson"):
        assert value not in text


def test_a_protocol_without_an_adapter_is_refused() -> None:
    assert "rri" not in SUPPORTED_PROTOCOLS
    err = refusal(policy_with([], protocol="rri"), request("se"), JUR)
    assert isinstance(err, ProtocolNotSupported)
    assert err.problem()["code"] == "protocol_not_supported" and err.status == 422
    assert refusal(policy_with([]), request("se"), JUR) is None


# -- the shipped rules ----------------------------------------------------------------------------------


def refused_code(policies: PolicySet, req: RegistrationRequest) -> str | None:
    err = acceptance_refusal(req, recipients_for(req.tld, policies), policies.jurisdictions)
    return None if err is None else err.code


@pytest.mark.parametrize("tld", ["se", "eu", "dk", "no", "fi", "us", "com", "org", "uk", "jp", "cn", "io", "ch"])
def test_every_test_order_of_a_configured_tld_is_eligible(policies: PolicySet, tld: str) -> None:
    assert refused_code(policies, request(tld)) is None


def test_de_is_refused_for_its_protocol(policies: PolicySet) -> None:
    assert refused_code(policies, request("de")) == "protocol_not_supported"


def test_us_needs_the_nexus_declaration(policies: PolicySet) -> None:
    b = body_for_tld("us")
    del b["us_nexus"]
    req = RegistrationRequest.model_validate_json(json.dumps(b))
    err = acceptance_refusal(req, recipients_for("us", policies), policies.jurisdictions)
    assert err is not None and err.code == "registry_ineligible"
    assert [e["loc"] for e in err.extra["errors"]] == [["us_nexus"]]


def test_eu_person_outside_the_eu_without_eu_citizenship(policies: PolicySet) -> None:
    abroad = {"street": ["1 Main St"], "city": "Boston", "postal_code": "02101", "country": "US"}
    assert refused_code(policies, request("eu", address=abroad, citizenship="US")) == "registry_ineligible"
    assert refused_code(policies, request("eu", address=abroad, citizenship=None)) == "registry_ineligible"
    assert refused_code(policies, request("eu", address=abroad, citizenship="FI")) is None
    assert refused_code(policies, request("eu", citizenship="US")) is None  # resident in SE


def test_fi_person_needs_a_hetu_or_a_birth_date(policies: PolicySet) -> None:
    assert refused_code(policies, request("fi", VALID_BODY)) == "registry_ineligible"  # Swedish personnummer only
    assert refused_code(policies, request("fi", VALID_BODY, birth_date="1981-12-18")) is None
    hetu = {"scheme": "fi_hetu", "value": "131052-308T"}
    assert refused_code(policies, request("fi", VALID_BODY, national_id=hetu)) is None


def test_fi_organisation_needs_a_register_number(policies: PolicySet) -> None:
    assert refused_code(policies, request("fi", {**VALID_BODY, "registrant": FI_ORG})) is None
    assert refused_code(policies, request("fi", ORG_BODY)) is None  # a foreign organisation's own number
    assert refused_code(policies, request("fi", ORG_BODY, national_id=None)) == "registry_ineligible"


def test_dk_organisation_needs_its_cvr(policies: PolicySet) -> None:
    dk = {"street": ["Vesterbrogade 1"], "city": "København", "postal_code": "1620", "country": "DK"}
    assert refused_code(policies, request("dk", ORG_BODY, address=dk)) == "registry_ineligible"
    cvr = {"scheme": "dk_cvr", "value": "13585628"}
    assert refused_code(policies, request("dk", ORG_BODY, address=dk, national_id=cvr)) is None


def test_every_rule_of_the_config_cites_a_source(policies: PolicySet) -> None:
    rules = [r for p in policies.recipients.values() for r in p.eligibility]
    assert {r.id for r in rules} >= {"us-nexus", "eu-person-residence-or-citizenship", "fi-person-identity"}
    assert all(len(r.source) > 10 for r in rules)


# -- the loader: rule shapes and extension names, with file and line ----------------------------------


def test_an_unimplemented_extension_stops_loading_with_file_and_line(tmp_path: Path) -> None:
    text = SE.replace("extensions: [iis]", "extensions:\n    - iis\n    - nominet")
    path, detail = recipient_error(tmp_path, text)
    assert detail.startswith(f"{path}:{line_of(text, '- nominet')}: epp.extensions.1: ")
    assert "extension 'nominet' has no implementation" in detail


@pytest.mark.parametrize("name", ["jprs", "cnnic"])
def test_other_unimplemented_extensions_are_refused_too(tmp_path: Path, name: str) -> None:
    text = SE.replace("extensions: [iis]", f"extensions: [{name}]")
    path, detail = recipient_error(tmp_path, text)
    assert detail.startswith(f"{path}:{line_of(text, f'extensions: [{name}]')}: epp.extensions.0: ")
    assert f"extension '{name}' has no implementation" in detail


def test_every_implemented_extension_has_an_adapter_module() -> None:
    modules = {"iis", "eurid", "dkhm", "norid", "neulevel", "fi"}
    assert {"fi" if n == "ficora" else n for n in IMPLEMENTED_EXTENSIONS} == modules
    assert all(hasattr(epp_extensions, m) for m in modules)


def test_a_rule_with_countries_on_an_id_field_names_its_line(tmp_path: Path) -> None:
    text = SE + """eligibility:
  - id: bad-rule
    require:
      - field: registrant.national_id
        countries: [EEA]
    reason: a reason long enough
    source: test
    confirmed: true
"""
    path, detail = recipient_error(tmp_path, text)
    assert detail.startswith(f"{path}:{line_of(text, 'field: registrant.national_id')}: eligibility.0.require.0: ")


def test_a_rule_on_an_unknown_field_names_its_line(tmp_path: Path) -> None:
    text = SE + """eligibility:
  - id: bad-field
    require:
      - field: registrant.shoe_size
    reason: a reason long enough
    source: test
    confirmed: true
"""
    path, detail = recipient_error(tmp_path, text)
    assert detail.startswith(f"{path}:{line_of(text, 'shoe_size')}: eligibility.0.require.0.field: ")


def test_eu_members_must_be_in_the_eea(tmp_path: Path) -> None:
    path = tmp_path / "jurisdictions.yaml"
    path.write_text('eea: ["SE"]\neu: ["SE", "CH"]\neea_source: test\nadequacy: []\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="EU members missing from the EEA list: CH"):
        load_model(path, Jurisdictions)


def test_the_shipped_eu_list_is_the_eea_without_efta(policies: PolicySet) -> None:
    jur = policies.jurisdictions
    assert set(jur.eea) - set(jur.eu) == {"IS", "LI", "NO"} and len(jur.eu) == 27
