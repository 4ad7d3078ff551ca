"""Per-recipient minimisation (gateway/policy/minimise.py), with inline policies only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.models import IdScheme, NationalId, Registrant
from gateway.policy.minimise import Minimised, minimise, registrant_fields
from gateway.policy.schema import RecipientPolicy

# --------------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------------

ALL_FIELDS = (
    "kind", "name", "organisation", "national_id", "national_id_scheme", "vat_number", "street", "city",
    "state", "postal_code", "country", "email", "phone", "fax", "language", "citizenship", "birth_date",
)


def registrant(**overrides: Any) -> Registrant:
    data: dict[str, Any] = {
        "kind": "person",
        "name": "Anna Andersson",
        "organisation": "Andersson Konsult",
        "national_id": {"scheme": "se_personnummer", "value": "19880320-0016"},
        "vat_number": "SE880320001601",
        "address": {
            "street": ["Storgatan 1", "lgh 1101"],
            "city": "Stockholm",
            "state": "Stockholms län",
            "postal_code": "111 22",
            "country": "SE",
        },
        "email": "anna@example.se",
        "phone": "+46 8 123 456 78",
        "fax": "+46 8 123 456 79",
        "language": "sv",
        "citizenship": "SE",
        "birth_date": "1988-03-20",
    }
    data.update(overrides)
    return Registrant.model_validate_json(json.dumps(data))


def organisation(**overrides: Any) -> Registrant:
    base: dict[str, Any] = {
        "kind": "organisation",
        "name": "Bo Berg",
        "organisation": "Internetstiftelsen",
        "national_id": {"scheme": "se_organisationsnummer", "value": "802405-0190"},
        "fax": None,
        "citizenship": None,
    }
    base.update(overrides)
    return registrant(**base)


def minimal_person() -> Registrant:
    """Only the required fields: every optional one is None."""
    return Registrant.model_validate_json(
        json.dumps(
            {
                "kind": "person",
                "name": "Anna Andersson",
                "address": {"street": ["Storgatan 1"], "city": "Stockholm", "country": "SE"},
                "email": "anna@example.se",
                "phone": "+46812345678",
            }
        )
    )


def with_national_id(reg: Registrant, scheme: IdScheme, value: str) -> Registrant:
    """Bypass the checksum (tested in test_models) so minimisation is tested on its own."""
    return reg.model_copy(update={"national_id": NationalId.model_construct(scheme=scheme, value=value)})


def policy(fields: dict[str, dict[str, Any]], *, epp: dict[str, Any] | None = None) -> RecipientPolicy:
    data: dict[str, Any] = {
        "recipient": "test-registry",
        "name": "Test Registry",
        "kind": "registry",
        "role": "controller",
        "tlds": ["test"],
        "country": "SE",
        "protocol": "epp" if epp is not None else "rri",
        "purposes": ["domain_registration"],
        "fields": fields,
        "source": "https://registry.example/",
        "confirmed": True,
    }
    if epp is not None:
        data["epp"] = epp
    return RecipientPolicy.model_validate(data)


# --------------------------------------------------------------------------------------------
# default deny
# --------------------------------------------------------------------------------------------


def test_registrant_fields_names_every_field() -> None:
    fields = registrant_fields(registrant())
    assert tuple(fields) == ALL_FIELDS
    assert all(v is not None for v in fields.values())  # the fixture sets every field
    assert fields["street"] == ("Storgatan 1", "lgh 1101")
    assert fields["national_id"] == "198803200016"
    assert fields["national_id_scheme"] == "se_personnummer"


@pytest.mark.parametrize("make", [registrant, organisation])
def test_field_not_named_by_policy_never_goes(make: Any) -> None:
    reg = make()
    fields = registrant_fields(reg)
    for name in fields:
        others = {other: {"send": "if_present"} for other in fields if other != name}
        result = minimise(reg, policy(others))
        assert name not in result.values, name
        if fields[name] is not None:
            assert result.withheld[name] == "not named by policy", name
        else:
            assert name not in result.withheld, name
        # every other field that has a value does go, so the loop is not vacuous
        assert set(result.values) == {o for o in others if fields[o] is not None}, name
        assert result.missing_required == ()


def test_empty_policy_sends_nothing() -> None:
    result = minimise(registrant(), policy({}))
    assert result.values == {}
    assert set(result.withheld) == set(ALL_FIELDS)
    assert set(result.withheld.values()) == {"not named by policy"}


def test_unset_fields_are_not_listed_as_withheld() -> None:
    result = minimise(minimal_person(), policy({}))
    assert set(result.withheld) == {"kind", "name", "street", "city", "country", "email", "phone", "language"}


def test_policy_naming_unknown_field_sends_nothing_extra() -> None:
    result = minimise(registrant(), policy({"shoe_size": {"send": "always"}, "name": {"send": "always"}}))
    assert result.values == {"name": "Anna Andersson"}
    assert "shoe_size" not in result.withheld


# --------------------------------------------------------------------------------------------
# send modes
# --------------------------------------------------------------------------------------------


def test_never_is_withheld_with_reason() -> None:
    result = minimise(
        registrant(),
        policy(
            {
                "name": {"send": "always"},
                "national_id": {"send": "never", "reason": "registry does not need it"},
                "email": {"send": "never"},
            }
        ),
    )
    assert result.values == {"name": "Anna Andersson"}
    assert result.withheld["national_id"] == "registry does not need it"
    assert result.withheld["email"] == "policy: never sent"


def test_never_with_no_value_is_not_withheld() -> None:
    result = minimise(minimal_person(), policy({"fax": {"send": "never"}}))
    assert "fax" not in result.withheld
    assert "fax" not in result.values


def test_if_present_skips_none() -> None:
    p = policy({"fax": {"send": "if_present"}, "name": {"send": "if_present"}})
    result = minimise(minimal_person(), p)
    assert result.values == {"name": "Anna Andersson"}
    assert "fax" not in result.withheld
    assert result.missing_required == ()


def test_if_present_sends_value() -> None:
    result = minimise(registrant(), policy({"fax": {"send": "if_present"}}))
    assert result.values == {"fax": "+46812345679"}


def test_always_but_missing_is_missing_required() -> None:
    result = minimise(
        minimal_person(),
        policy({"fax": {"send": "always"}, "citizenship": {"send": "always"}, "name": {"send": "always"}}),
    )
    assert result.missing_required == ("citizenship", "fax")  # sorted
    assert result.values == {"name": "Anna Andersson"}


def test_if_present_required_but_missing_is_missing_required() -> None:
    result = minimise(minimal_person(), policy({"postal_code": {"send": "if_present", "required": True}}))
    assert result.missing_required == ("postal_code",)


def test_tuple_values_pass_through() -> None:
    result = minimise(registrant(), policy({"street": {"send": "always"}}))
    assert result.values == {"street": ("Storgatan 1", "lgh 1101")}


# --------------------------------------------------------------------------------------------
# only_for
# --------------------------------------------------------------------------------------------

ONLY_FOR = {
    "national_id": {"send": "always", "only_for": "organisation"},
    "citizenship": {"send": "if_present", "only_for": "person"},
    "organisation": {"send": "always", "only_for": "organisation"},
}


def test_only_for_organisation_withheld_from_person() -> None:
    result = minimise(registrant(), policy(ONLY_FOR))
    assert "national_id" not in result.values
    assert result.withheld["national_id"] == "policy: only for organisation"
    assert result.withheld["organisation"] == "policy: only for organisation"
    assert result.values["citizenship"] == "SE"
    assert result.missing_required == ()  # a required field for the other kind is not missing


def test_only_for_person_withheld_from_organisation() -> None:
    reg = organisation(citizenship="SE")
    result = minimise(reg, policy(ONLY_FOR))
    assert result.withheld["citizenship"] == "policy: only for person"
    assert "citizenship" not in result.values
    assert result.values["national_id"] == "802405-0190"
    assert result.values["organisation"] == "Internetstiftelsen"


def test_only_for_other_kind_with_no_value_not_listed() -> None:
    p = policy({"organisation": {"send": "always", "only_for": "organisation"}})
    result = minimise(minimal_person(), p)
    assert "organisation" not in result.withheld
    assert result.missing_required == ()


# --------------------------------------------------------------------------------------------
# transforms
# --------------------------------------------------------------------------------------------

IIS = {"national_id": {"send": "always", "transform": "iis_orgno"}}


def test_iis_orgno_personnummer() -> None:
    result = minimise(registrant(), policy(IIS))
    assert result.values["national_id"] == "[SE]880320-0016"


def test_iis_orgno_personnummer_given_in_10_digit_form() -> None:
    reg = registrant(national_id={"scheme": "se_personnummer", "value": "880320-0016"})
    assert minimise(reg, policy(IIS)).values["national_id"] == "[SE]880320-0016"


def test_iis_orgno_samordningsnummer() -> None:
    reg = with_national_id(registrant(), IdScheme.SE_SAMORDNINGSNUMMER, "198803800013")
    assert minimise(reg, policy(IIS)).values["national_id"] == "[SE]880380-0013"


def test_iis_orgno_organisationsnummer() -> None:
    assert minimise(organisation(), policy(IIS)).values["national_id"] == "[SE]802405-0190"


@pytest.mark.parametrize(
    ("make", "scheme", "value", "expected"),
    [
        (organisation, "dk_cvr", "13585628", "[DK]13585628"),
        (organisation, "no_organisasjonsnummer", "988077917", "[NO]988077917"),
        (organisation, "fi_ytunnus", "2077474-0", "[FI]20774740"),
        (registrant, "fi_hetu", "131052-308T", "[FI]131052-308T"),
        (registrant, "passport", "ab1234567", "[SE]AB1234567"),  # no scheme country: address country
    ],
)
def test_iis_orgno_other_schemes(make: Any, scheme: str, value: str, expected: str) -> None:
    reg = make(national_id={"scheme": scheme, "value": value})
    assert minimise(reg, policy(IIS)).values["national_id"] == expected


def test_iis_orgno_not_applicable_to_other_fields() -> None:
    result = minimise(registrant(), policy({"name": {"send": "always", "transform": "iis_orgno"}}))
    assert "name" not in result.values
    assert result.withheld["name"] == "transform not applicable"
    assert result.missing_required == ("name",)


def test_iis_orgno_if_present_without_national_id() -> None:
    p = policy({"national_id": {"send": "if_present", "transform": "iis_orgno"}})
    result = minimise(minimal_person(), p)
    assert result.values == {}
    assert result.missing_required == ()


def test_email_domain_only() -> None:
    result = minimise(registrant(), policy({"email": {"send": "always", "transform": "email_domain_only"}}))
    assert result.values == {"email": "example.se"}
    assert "anna" not in json.dumps(result.values)


def test_email_domain_only_on_value_without_at_is_not_applicable() -> None:
    p = policy({"name": {"send": "if_present", "transform": "email_domain_only"}})
    result = minimise(registrant(), p)
    assert result.values == {}
    assert result.withheld["name"] == "transform not applicable"
    assert result.missing_required == ()


def test_uppercase() -> None:
    result = minimise(
        registrant(),
        policy({"city": {"send": "always", "transform": "uppercase"},
                "street": {"send": "always", "transform": "uppercase"}}),
    )
    assert result.values == {"city": "STOCKHOLM", "street": ("STORGATAN 1", "LGH 1101")}


# --------------------------------------------------------------------------------------------
# disclose, thin policy, result shape
# --------------------------------------------------------------------------------------------

EPP = {
    "disclose_person": {"flag": 0, "elements": ["name", "addr", "voice", "email"]},
    "disclose_organisation": {"flag": 1, "elements": ["org", "addr"]},
}


def test_disclose_chosen_by_kind() -> None:
    p = policy({"name": {"send": "always"}}, epp=EPP)
    person_result = minimise(registrant(), p)
    org_result = minimise(organisation(), p)
    assert person_result.disclose is not None
    assert person_result.disclose.flag == 0
    assert person_result.disclose.elements == ["name", "addr", "voice", "email"]
    assert org_result.disclose is not None
    assert org_result.disclose.flag == 1
    assert org_result.disclose.elements == ["org", "addr"]


def test_disclose_none_when_not_honoured() -> None:
    p = policy({"name": {"send": "always"}}, epp={**EPP, "honours_disclose": False})
    assert minimise(registrant(), p).disclose is None
    assert minimise(organisation(), p).disclose is None


def test_disclose_none_without_epp() -> None:
    assert minimise(registrant(), policy({"name": {"send": "always"}})).disclose is None


def test_disclose_none_when_kind_not_configured() -> None:
    p = policy({"name": {"send": "always"}}, epp={"disclose_organisation": EPP["disclose_organisation"]})
    assert minimise(registrant(), p).disclose is None
    assert minimise(organisation(), p).disclose is not None


def test_thin_policy_sends_nothing() -> None:
    thin = policy({name: {"send": "never"} for name in ALL_FIELDS})
    assert not thin.sends_personal_data
    result = minimise(registrant(), thin)
    assert result.values == {}
    assert result.fields_sent == ()
    assert set(result.withheld) == set(ALL_FIELDS)
    assert set(result.withheld.values()) == {"policy: never sent"}
    assert result.missing_required == ()


def test_result_shape() -> None:
    result = minimise(registrant(), policy({"phone": {"send": "always"}, "email": {"send": "always"}}))
    assert isinstance(result, Minimised)
    assert result.recipient == "test-registry"
    assert result.fields_sent == ("email", "phone")
    assert set(result.values) | set(result.withheld) == set(ALL_FIELDS)
    assert not set(result.values) & set(result.withheld)


def test_minimise_does_not_change_the_registrant() -> None:
    reg = registrant()
    before = reg.model_dump()
    minimise(reg, policy({"email": {"send": "always", "transform": "email_domain_only"},
                          "city": {"send": "always", "transform": "uppercase"}}))
    assert reg.model_dump() == before
