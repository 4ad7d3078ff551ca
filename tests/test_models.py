"""Edge validation of the ordering system's request (gateway/models.py).

Requests arrive as JSON, so models are validated with ``model_validate_json`` exactly as the API
does; strict mode makes that the only path on which enum strings are accepted.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import ValidationError
from stdnum import luhn

from gateway.models import (
    IdScheme,
    NationalId,
    Registrant,
    RegistrationRequest,
    epp_phone,
    normalise_national_id,
    to_a_label,
)

# --------------------------------------------------------------------------------------------
# builders
# --------------------------------------------------------------------------------------------


def person() -> dict[str, Any]:
    return {
        "kind": "person",
        "name": "Anna Andersson",
        "national_id": {"scheme": "se_personnummer", "value": "19880320-0016"},
        "address": {
            "street": ["Storgatan 1"],
            "city": "Stockholm",
            "postal_code": "111 22",
            "country": "SE",
        },
        "email": "anna@example.se",
        "phone": "+46 8 123 456 78",
    }


def organisation() -> dict[str, Any]:
    return {
        "kind": "organisation",
        "name": "Bo Berg",
        "organisation": "Internetstiftelsen",
        "national_id": {"scheme": "se_organisationsnummer", "value": "802405-0190"},
        "vat_number": "SE802405019001",
        "address": {
            "street": ["Hammarby Kaj 10D", "Box 92073"],
            "city": "Stockholm",
            "state": "Stockholms län",
            "postal_code": "120 07",
            "country": "SE",
        },
        "email": "Kontakt@Example.SE",
        "phone": "+46 8 452 35 00",
        "fax": "+46 8 452 35 02",
        "language": "en",
        "citizenship": "SE",
    }


def request(registrant: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order_ref": "ord-2024:0001",
        "domain": "exempel-ö.se",
        "period_years": 2,
        "nameservers": ["ns1.example.se", "NS2.Example.SE"],
        "registrant": registrant if registrant is not None else person(),
    }
    body.update(overrides)
    return body


def reg(data: dict[str, Any]) -> Registrant:
    return Registrant.model_validate_json(json.dumps(data))


def req(data: dict[str, Any]) -> RegistrationRequest:
    return RegistrationRequest.model_validate_json(json.dumps(data))


def nid(scheme: str, value: str) -> NationalId:
    return NationalId.model_validate_json(json.dumps({"scheme": scheme, "value": value}))


def with_nid(base: dict[str, Any], scheme: str, value: str) -> dict[str, Any]:
    data = copy.deepcopy(base)
    data["national_id"] = {"scheme": scheme, "value": value}
    return data


def coordination_number(yymmdd: str, serial: str) -> str:
    """A samordningsnummer: the birth day + 60, with the Luhn digit computed on those digits."""
    body = yymmdd + serial
    return body + luhn.calc_check_digit(body)


# --------------------------------------------------------------------------------------------
# whole requests
# --------------------------------------------------------------------------------------------


def test_valid_person_request_normalises_everything() -> None:
    r = req(request())
    assert r.domain == "xn--exempel--u4a.se"
    assert r.tld == "se"
    assert r.period_years == 2
    assert r.nameservers == ["ns1.example.se", "ns2.example.se"]
    assert r.purpose == "domain_registration"
    p = r.registrant
    assert p.kind == "person"
    assert p.organisation is None
    assert p.national_id is not None
    assert p.national_id.scheme is IdScheme.SE_PERSONNUMMER
    assert p.national_id.value == "198803200016"
    assert p.phone == "+46812345678"
    assert p.language == "sv"
    assert p.fax is None
    assert p.citizenship is None
    assert p.address.street == ["Storgatan 1"]


def test_valid_organisation_registrant() -> None:
    o = reg(organisation())
    assert o.kind == "organisation"
    assert o.organisation == "Internetstiftelsen"
    assert o.national_id is not None
    assert o.national_id.value == "802405-0190"
    assert o.email == "Kontakt@example.se"  # domain part lower-cased, local part kept
    assert o.phone == "+4684523500"
    assert o.fax == "+4684523502"
    assert o.language == "en"
    assert o.citizenship == "SE"
    assert o.address.state == "Stockholms län"


def test_defaults_apply() -> None:
    body = request()
    del body["period_years"], body["nameservers"]
    r = req(body)
    assert r.period_years == 1
    assert r.nameservers == []


def test_strings_are_stripped() -> None:
    data = person()
    data["name"] = "  Anna Andersson  "
    data["email"] = " anna@example.se "
    r = reg(data)
    assert r.name == "Anna Andersson"
    assert r.email == "anna@example.se"


def test_organisation_without_organisation_name_rejected() -> None:
    data = organisation()
    del data["organisation"]
    with pytest.raises(ValidationError, match="needs 'organisation'"):
        reg(data)


def test_person_without_national_id_is_valid() -> None:
    data = person()
    del data["national_id"]
    assert reg(data).national_id is None


def test_models_are_frozen() -> None:
    r = reg(person())
    with pytest.raises(ValidationError):
        r.name = "Someone Else"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Swedish numbers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["19880320-0016", "198803200016", " 19880320 0016 "])
def test_personnummer_12_digit_forms_normalise(value: str) -> None:
    assert nid("se_personnummer", value).value == "198803200016"


@pytest.mark.parametrize("value", ["880320-0016", "8803200016"])
def test_personnummer_10_digit_forms_normalise_to_12(value: str) -> None:
    assert nid("se_personnummer", value).value == "198803200016"


def test_personnummer_plus_marker_means_a_century_earlier() -> None:
    assert nid("se_personnummer", "880320+0016").value == "188803200016"


@pytest.mark.parametrize(
    "value",
    [
        "19880320-0018",  # wrong Luhn digit
        "880320-0018",  # wrong Luhn digit, short form
        "19880230-0016",  # 30 February
        "19881320-0016",  # month 13
        "1988032-0016",  # 11 digits
        "19880320-001X",  # not digits
        "",
    ],
)
def test_personnummer_invalid_rejected(value: str) -> None:
    with pytest.raises(ValidationError):
        nid("se_personnummer", value)


def test_personnummer_impossible_date_with_valid_luhn_rejected() -> None:
    body = "880230001"  # 30 February 1988
    value = body + luhn.calc_check_digit(body)
    assert luhn.is_valid(value)  # only the date is wrong
    with pytest.raises(ValueError, match="invalid date"):
        normalise_national_id(IdScheme.SE_PERSONNUMMER, value)


def test_samordningsnummer_given_as_personnummer_rejected() -> None:
    with pytest.raises(ValueError, match="personnummer day must be 01-31"):
        normalise_national_id(IdScheme.SE_PERSONNUMMER, coordination_number("880380", "001"))


def test_personnummer_given_as_samordningsnummer_rejected() -> None:
    with pytest.raises(ValueError, match="day\\+60"):
        normalise_national_id(IdScheme.SE_SAMORDNINGSNUMMER, "19880320-0016")


@pytest.mark.parametrize("prefix", ["", "19"])
def test_samordningsnummer_valid(prefix: str) -> None:
    value = prefix + coordination_number("880380", "001")  # 20 March 1988 + 60
    assert nid("se_samordningsnummer", value).value == "19" + coordination_number("880380", "001")


def test_samordningsnummer_wrong_check_digit_rejected() -> None:
    good = coordination_number("880380", "001")
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    with pytest.raises(ValueError):
        normalise_national_id(IdScheme.SE_SAMORDNINGSNUMMER, bad)


def test_samordningsnummer_impossible_date_rejected() -> None:
    value = coordination_number("880290", "001")  # 30 February + 60
    with pytest.raises(ValueError):
        normalise_national_id(IdScheme.SE_SAMORDNINGSNUMMER, value)


@pytest.mark.parametrize("value", ["802405-0190", "8024050190", " 802405 0190 "])
def test_organisationsnummer_valid(value: str) -> None:
    assert nid("se_organisationsnummer", value).value == "802405-0190"


@pytest.mark.parametrize("value", ["802405-0191", "802405-019", "ABCDEF-0190"])
def test_organisationsnummer_invalid_rejected(value: str) -> None:
    with pytest.raises(ValidationError):
        nid("se_organisationsnummer", value)


# --------------------------------------------------------------------------------------------
# other Nordic schemes and passports (examples from the python-stdnum documentation)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scheme", "value", "canonical"),
    [
        ("dk_cpr", "211062-5629", "2110625629"),
        ("dk_cvr", "13585628", "13585628"),
        ("no_fodselsnummer", "151086 95088", "15108695088"),
        ("no_organisasjonsnummer", "988 077 917", "988077917"),
        ("fi_hetu", "131052-308T", "131052-308T"),
        ("fi_ytunnus", "2077474-0", "20774740"),
        ("passport", "ab1234567", "AB1234567"),
    ],
)
def test_other_schemes_valid(scheme: str, value: str, canonical: str) -> None:
    assert nid(scheme, value).value == canonical


@pytest.mark.parametrize(
    ("scheme", "value"),
    [
        ("dk_cpr", "511062-5629"),  # day 51
        ("dk_cvr", "13585627"),
        ("no_fodselsnummer", "15108695077"),
        ("no_organisasjonsnummer", "988 077 918"),
        ("fi_hetu", "131052-308U"),
        ("fi_ytunnus", "2077474-1"),
        ("passport", "AB1"),
        ("passport", "AB-12345"),
    ],
)
def test_other_schemes_invalid(scheme: str, value: str) -> None:
    with pytest.raises(ValidationError):
        nid(scheme, value)


def test_unknown_scheme_rejected() -> None:
    with pytest.raises(ValidationError):
        nid("de_steuer_id", "12345678901")


@pytest.mark.parametrize(
    ("base", "scheme", "value"),
    [
        (person, "se_organisationsnummer", "802405-0190"),
        (person, "dk_cvr", "13585628"),
        (person, "fi_ytunnus", "2077474-0"),
        (organisation, "se_personnummer", "19880320-0016"),
        (organisation, "no_fodselsnummer", "15108695088"),
        (organisation, "passport", "AB1234567"),
    ],
)
def test_scheme_kind_mismatch_rejected(base: Any, scheme: str, value: str) -> None:
    with pytest.raises(ValidationError, match="does not match registrant kind"):
        reg(with_nid(base(), scheme, value))


@pytest.mark.parametrize(
    ("base", "scheme", "value"),
    [
        (person, "dk_cpr", "211062-5629"),
        (person, "passport", "AB1234567"),
        (organisation, "no_organisasjonsnummer", "988077917"),
        (organisation, "fi_ytunnus", "2077474-0"),
    ],
)
def test_scheme_kind_match_accepted(base: Any, scheme: str, value: str) -> None:
    assert reg(with_nid(base(), scheme, value)).national_id is not None


# --------------------------------------------------------------------------------------------
# domain names
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "a_label"),
    [
        ("exempel-ö.se", "xn--exempel--u4a.se"),
        ("EXEMPEL-Ö.SE", "xn--exempel--u4a.se"),
        ("xn--exempel--u4a.se", "xn--exempel--u4a.se"),
        ("Example.SE", "example.se"),
        ("example.se.", "example.se"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("a.b.c.example.se", "a.b.c.example.se"),
        ("a" * 63 + ".se", "a" * 63 + ".se"),
    ],
)
def test_domain_normalised_to_a_label(given: str, a_label: str) -> None:
    assert to_a_label(given) == a_label
    assert req(request(domain=given)).domain == a_label


@pytest.mark.parametrize(
    "bad",
    [
        "-exempel.se",  # leading hyphen
        "exempel-.se",  # trailing hyphen
        "a" * 64 + ".se",  # label > 63
        "exempel..se",  # empty label
        ".se",  # empty first label
        "se",  # single label
        "a_b.se",  # underscore is not LDH
        "a b.se",  # space
        "😀.se",  # emoji: DISALLOWED in IDNA 2008
        "ab--cd.se",  # hyphens in positions 3-4 without being an A-label
        "xn--zz.se",  # broken A-label
        "",
        ".",
        ("a" * 60 + ".") * 5 + "se",  # > 253 characters
    ],
)
def test_invalid_domain_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        to_a_label(bad)
    with pytest.raises(ValidationError):
        req(request(domain=bad))


def test_nameservers_normalised() -> None:
    r = req(request(nameservers=["NS1.exempel-ö.se", "ns2.example.net."]))
    assert r.nameservers == ["ns1.xn--exempel--u4a.se", "ns2.example.net"]


@pytest.mark.parametrize(
    "servers",
    [
        ["ns1.example.se", "ns1.example.se"],
        ["ns1.example.se", "NS1.EXAMPLE.SE"],  # duplicate after normalisation
        ["ns1.example.se", "ns1.example.se."],
    ],
)
def test_duplicate_nameservers_rejected(servers: list[str]) -> None:
    with pytest.raises(ValidationError, match="distinct"):
        req(request(nameservers=servers))


def test_invalid_nameserver_rejected() -> None:
    with pytest.raises(ValidationError):
        req(request(nameservers=["ns1.example.se", "ns_2.example.se"]))


def test_too_many_nameservers_rejected() -> None:
    with pytest.raises(ValidationError):
        req(request(nameservers=[f"ns{i}.example.se" for i in range(14)]))


# --------------------------------------------------------------------------------------------
# phones
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "e164", "epp"),
    [
        ("+46 8 123 456 78", "+46812345678", "+46.812345678"),
        ("+46 (0)8-123 456 78", "+46812345678", "+46.812345678"),
        ("+46 70 123 45 67", "+46701234567", "+46.701234567"),
        ("+1 202 555 0100", "+12025550100", "+1.2025550100"),
        ("+44 20 7946 0958", "+442079460958", "+44.2079460958"),
    ],
)
def test_phone_normalised_to_e164_and_epp(given: str, e164: str, epp: str) -> None:
    data = person()
    data["phone"] = given
    data["fax"] = given
    r = reg(data)
    assert r.phone == e164
    assert r.fax == e164
    assert epp_phone(r.phone) == epp


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("08-123 456 78", "international number"),  # national format, no +
        ("0046 8 123 456 78", "international number"),
        ("+46 8 1", "not a valid phone number"),  # too short for Sweden
        ("+46 70 000 00", "not a valid phone number"),
        ("+999 123456", "international number"),  # unassigned country code
        ("phone", "international number"),
    ],
)
def test_invalid_phone_rejected(bad: str, why: str) -> None:
    data = person()
    data["phone"] = bad
    with pytest.raises(ValidationError, match=why):
        reg(data)


def test_invalid_fax_rejected() -> None:
    data = person()
    data["fax"] = "08-123 456 78"
    with pytest.raises(ValidationError):
        reg(data)


# --------------------------------------------------------------------------------------------
# e-mail, country, language
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("anna@example.se", "anna@example.se"),
        ("Anna.Andersson+reg@EXAMPLE.se", "Anna.Andersson+reg@example.se"),
        ("anna@exempel-ö.se", "anna@exempel-ö.se"),
    ],
)
def test_email_valid(given: str, normalised: str) -> None:
    data = person()
    data["email"] = given
    assert reg(data).email == normalised


@pytest.mark.parametrize(
    "bad", ["anna", "anna@", "@example.se", "anna@example", "a@@example.se", "anna..x@example.se", "a b@x.se"]
)
def test_email_invalid(bad: str) -> None:
    data = person()
    data["email"] = bad
    with pytest.raises(ValidationError, match="not a valid e-mail address"):
        reg(data)


@pytest.mark.parametrize("code", ["SE", "GR", "GB", "JP", "CN"])
def test_country_valid(code: str) -> None:
    data = person()
    data["address"]["country"] = code
    data["citizenship"] = code
    r = reg(data)
    assert r.address.country == code
    assert r.citizenship == code


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("se", "upper case"),
        ("Se", "upper case"),
        ("SWE", "upper case"),
        ("S1", "upper case"),
        ("XX", "not an assigned"),
        ("EL", "not an assigned"),  # the EU's code for Greece is not ISO 3166
        ("UK", "not an assigned"),
    ],
)
def test_country_invalid(bad: str, why: str) -> None:
    data = person()
    data["address"]["country"] = bad
    with pytest.raises(ValidationError, match=why):
        reg(data)
    data = person()
    data["citizenship"] = bad
    with pytest.raises(ValidationError, match=why):
        reg(data)


@pytest.mark.parametrize("bad", ["SV", "swe", "xx", "s"])
def test_language_invalid(bad: str) -> None:
    data = person()
    data["language"] = bad
    with pytest.raises(ValidationError):
        reg(data)


@pytest.mark.parametrize("bad", ["se802405019001", "S1802405019001", "SE1", "SE 802405019001"])
def test_vat_number_invalid(bad: str) -> None:
    data = organisation()
    data["vat_number"] = bad
    with pytest.raises(ValidationError):
        reg(data)


# --------------------------------------------------------------------------------------------
# structure: unknown fields, strict types, lengths
# --------------------------------------------------------------------------------------------


def _add_unknown(body: dict[str, Any], where: str) -> None:
    target: dict[str, Any] = body
    for part in where.split(".") if where else []:
        target = target[part]
    target["shoe_size"] = 42


@pytest.mark.parametrize("where", ["", "registrant", "registrant.address", "registrant.national_id"])
def test_unknown_fields_rejected_at_every_level(where: str) -> None:
    body = request()
    _add_unknown(body, where)
    with pytest.raises(ValidationError) as info:
        req(body)
    errors = info.value.errors()
    assert [e["type"] for e in errors] == ["extra_forbidden"]
    expected = (*where.split("."), "shoe_size") if where else ("shoe_size",)
    assert errors[0]["loc"] == expected


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("period_years", "1"),
        ("period_years", 1.0),
        ("period_years", True),
        ("order_ref", 123),
        ("nameservers", "ns1.example.se"),
        ("registrant.name", 42),
        ("registrant.address.street", "Storgatan 1"),
        ("registrant.phone", 46812345678),
    ],
)
def test_strict_types_in_json(path: str, value: Any) -> None:
    body = request()
    *parents, leaf = path.split(".")
    target = body
    for p in parents:
        target = target[p]
    target[leaf] = value
    with pytest.raises(ValidationError):
        req(body)


@pytest.mark.parametrize("years", [0, 11, -1])
def test_period_years_range(years: int) -> None:
    with pytest.raises(ValidationError):
        req(request(period_years=years))


@pytest.mark.parametrize("ref", ["", "a" * 65, "ord 1", "ord/1", "ordé"])
def test_order_ref_pattern(ref: str) -> None:
    with pytest.raises(ValidationError):
        req(request(order_ref=ref))


def test_purpose_is_fixed() -> None:
    with pytest.raises(ValidationError):
        req(request(purpose="marketing"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "x" * 256),
        ("email", "x@"),
    ],
)
def test_lengths(field: str, value: str) -> None:
    data = person()
    data[field] = value
    with pytest.raises(ValidationError):
        reg(data)


@pytest.mark.parametrize("street", [[], ["a", "b", "c", "d"], [""]])
def test_street_lines(street: list[str]) -> None:
    data = person()
    data["address"]["street"] = street
    with pytest.raises(ValidationError):
        reg(data)


def test_missing_required_fields_rejected() -> None:
    for key in ("kind", "name", "address", "email", "phone"):
        data = person()
        del data[key]
        with pytest.raises(ValidationError) as info:
            reg(data)
        assert info.value.errors()[0]["loc"] == (key,), key


# --------------------------------------------------------------------------------------------
# no personal data in error messages
# --------------------------------------------------------------------------------------------

LONG_NAME = "Zlatanina Pii-Leakström " * 12  # 288 characters

PII_CASES = [
    ("email", "anna.pii.leak@", "anna.pii.leak"),
    ("national_id", {"scheme": "se_personnummer", "value": "19880320-0018"}, "19880320-0018"),
    ("phone", "+46 8 1", "+46 8 1"),
    ("phone", "070-999 88 77", "999 88 77"),
    ("name", LONG_NAME, "Zlatanina"),
]


def _invalid(field: str, value: Any) -> ValidationError:
    data = person()
    data[field] = value
    with pytest.raises(ValidationError) as info:
        req(request(data))
    return info.value


@pytest.mark.parametrize(("field", "value", "needle"), PII_CASES)
def test_error_messages_do_not_quote_value(field: str, value: Any, needle: str) -> None:
    """What the API returns: loc, type, msg (input and ctx dropped) must not hold the value."""
    exc = _invalid(field, value)
    public = exc.errors(include_url=False, include_input=False, include_context=False)
    assert public
    assert public[0]["loc"][:2] == ("registrant", field)
    assert needle not in json.dumps(public, ensure_ascii=False)
    assert needle not in repr(public)


@pytest.mark.parametrize(("field", "value", "needle"), PII_CASES)
def test_str_of_validation_error_does_not_quote_value(field: str, value: Any, needle: str) -> None:
    exc = _invalid(field, value)
    assert needle not in str(exc)


@pytest.mark.parametrize(
    ("scheme", "value"),
    [("se_personnummer", "19880320-0018"), ("dk_cvr", "13585627"), ("fi_hetu", "131052-308U")],
)
def test_normalise_national_id_message_does_not_quote_value(scheme: str, value: str) -> None:
    with pytest.raises(ValueError) as info:
        normalise_national_id(IdScheme(scheme), value)
    assert value not in str(info.value)
    assert value.replace("-", "") not in str(info.value)


# --------------------------------------------------------------------------------------------
# invisible and control characters, NFC, and the field each error names (issue 13)
# --------------------------------------------------------------------------------------------

INVISIBLE = {
    "NUL": "\x00", "ESC": "\x1b", "DEL": "\x7f", "NEL (U+0085)": "\x85", "noncharacter U+FFFE": "\ufffe",
    "RLO bidi override": "\u202e", "LRI bidi isolate": "\u2066", "zero-width space": "\u200b", "BOM": "\ufeff",
    "private use": "\ue000", "unassigned": "\U000e0fff", "line separator": "\u2028", "lone surrogate": "\ud800",
}

TEXT_FIELDS = [
    ("name",), ("organisation",), ("address", "street", 0), ("address", "city"), ("address", "state"),
    ("address", "postal_code"), ("email",), ("phone",), ("national_id", "value"),
]


def _put(data: dict[str, Any], path: tuple[str | int, ...], value: str) -> None:
    node: Any = data
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


def _loc_of(data: dict[str, Any]) -> tuple[str | int, ...]:
    text = json.dumps(data)
    with pytest.raises(ValidationError) as info:
        if "\\ud800" in text:  # pydantic's JSON parser refuses it unnamed (read_json names it first)
            Registrant.model_validate(data, strict=False)
        else:
            Registrant.model_validate_json(text)
    errors = info.value.errors(include_url=False, include_input=False, include_context=False)
    assert len(errors) == 1, errors
    return errors[0]["loc"]


@pytest.mark.parametrize("char", sorted(INVISIBLE))
@pytest.mark.parametrize("path", TEXT_FIELDS, ids=lambda p: ".".join(map(str, p)))
def test_invisible_characters_refused_in_every_text_field(char: str, path: tuple[str | int, ...]) -> None:
    data = organisation()
    original = data
    for p in path:
        original = original[p]
    assert isinstance(original, str)
    # in the middle, where stripping cannot take it away
    _put(data, path, original[:2] + INVISIBLE[char] + original[2:])
    assert _loc_of(data) == path


@pytest.mark.parametrize("blank", ["\u200b", "\u200c", "\u200d\u200d", "\u3164", "\u2800", "\u00a0\u200b", "..."])
def test_names_of_nothing_refused(blank: str) -> None:
    data = person()
    data["name"] = blank
    assert _loc_of(data) == ("name",)


def test_joiners_inside_words_are_kept_and_text_is_nfc() -> None:
    data = person()
    data["name"] = "Ande\u0301rsson \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # e + combining acute; ZWNJ
    data["address"]["city"] = "Malmo\u0308"
    r = reg(data)
    assert r.name == "Andérsson \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert r.address.city == "Malmö"
    data["name"] = "\u200cAnna"  # a joiner that joins nothing
    assert _loc_of(data) == ("name",)


def test_empty_state_still_accepted() -> None:
    data = organisation()
    data["address"]["state"] = ""
    assert reg(data).address.state == ""


@pytest.mark.parametrize("value", ["ßßßßß", "ﬁﬁﬁﬁﬁ", "ÅÄÖ12345", "AB\uff11\uff12\uff13\uff14\uff15"])
def test_passport_numbers_are_not_case_folded(value: str) -> None:
    """"ßßßßß".upper() is "SSSSSSSSSS": a Unicode case fold turned five characters into another number."""
    with pytest.raises(ValueError, match="ASCII"):
        normalise_national_id(IdScheme.PASSPORT, value)
    assert normalise_national_id(IdScheme.PASSPORT, "ab1234567") == "AB1234567"


@pytest.mark.parametrize(
    ("build", "loc", "kind"),
    [
        (lambda: {**organisation(), "organisation": None}, ("registrant", "organisation"), "missing"),
        (lambda: with_nid(person(), "dk_cvr", "13585628"), ("registrant", "national_id", "scheme"),
         "scheme_kind_mismatch"),
        (lambda: with_nid(person(), "se_personnummer", "19880320-0018"), ("registrant", "national_id", "value"),
         "value_error"),
    ],
)
def test_cross_field_errors_name_their_field(build: Any, loc: tuple[str, ...], kind: str) -> None:
    with pytest.raises(ValidationError) as info:
        req(request(build()))
    [error] = info.value.errors()
    assert (error["loc"], error["type"]) == (loc, kind)


def test_us_nexus_errors_name_their_field() -> None:
    nexus = {"app_purpose": "P1", "nexus_category": "C11"}
    with pytest.raises(ValidationError) as info:
        req(request(us_nexus=nexus))  # a .se name
    assert [(e["loc"], e["type"]) for e in info.value.errors()] == [(("us_nexus",), "us_nexus_not_allowed")]
    with pytest.raises(ValidationError) as info:
        req(request(domain="exempel.us", us_nexus={"app_purpose": "P1", "nexus_category": "C31"}))
    assert [e["loc"] for e in info.value.errors()] == [("us_nexus", "nexus_country")]
    with pytest.raises(ValidationError) as info:
        req(request(domain="exempel.us", us_nexus={**nexus, "nexus_country": "XX"}))
    assert [e["loc"] for e in info.value.errors()] == [("us_nexus", "nexus_country")]
    assert req(request(domain="exempel.us", us_nexus=nexus)).us_nexus is not None


@pytest.mark.parametrize("scheme", list(IdScheme))
@pytest.mark.parametrize("value", ["198112\u00b28-9876",
                                   "\uff18\uff11\uff11\uff12\uff11\uff18-\uff19\uff18\uff17\uff16",
                                   "\u0661\u0669\u0668\u0661\u0661\u0662\u0661\u0668-\u0669\u0668\u0667\u0666"])
def test_national_ids_are_ascii_and_errors_never_quote_them(scheme: IdScheme, value: str) -> None:
    """A superscript passed ``isdigit`` and broke ``int`` with a message quoting the number (which
    pydantic put into the 422); full-width digits were read as a personnummer."""
    with pytest.raises(ValueError) as info:
        normalise_national_id(scheme, value)
    assert "ASCII" in str(info.value) and value[:6] not in str(info.value)
    with pytest.raises(ValidationError) as v:
        nid(scheme.value, value)
    assert [e["loc"] for e in v.value.errors()] == [("value",)]
    assert value[:6] not in json.dumps(v.value.errors(include_url=False, include_input=False, include_context=False))
