""".fi (Traficom): the contact members inside <contact:create>, the sandbox's hand check of them, and
how the gateway fills them from released values only."""

from __future__ import annotations

import dataclasses

import pytest
from lxml import etree

from adapters.epp import extensions
from adapters.epp.extensions import FiContactExt
from adapters.epp.sandbox import FrameValidator
from adapters.epp.types import ContactCreate, DiscloseSpec, PostalInfo, RegistrationCommands
from adapters.epp.xml import NS_CONTACT, NSMAP, build_contact_create, parse_document
from gateway.outbox.epp import carried_fields, commands_from_json, commands_to_json, ficora_contact
from tests.adapters.epp.test_xml import sample_domain

HETU = "131052-308T"  # the example in python-stdnum's stdnum.fi.hetu documentation
YTUNNUS = "2077474-0"


@pytest.fixture(scope="module")
def validator() -> FrameValidator:
    return FrameValidator()


def fi_contact(ext: FiContactExt, *, org: str | None = None) -> ContactCreate:
    return ContactCreate(
        id="RGFI1",
        postal_info=PostalInfo(name="Matti Meikäläinen", org=org, street=("Mannerheimintie 1",), city="Helsinki",
                               pc="00100", cc="FI"),
        email="matti@example.fi",
        auth_pw="c0ntact-Pw",
        voice="+358.91234567",
        disclose=DiscloseSpec(flag=0, elements=("addr", "email")),  # Traficom: voice, email, addr only
        extensions=(ext,),
    )


PERSON = FiContactExt(role=5, type=0, is_finnish=True, firstname="Matti", lastname="Meikäläinen", identity=HETU,
                      legalemail="matti@example.fi")
COMPANY = FiContactExt(role=5, type=1, is_finnish=True, registernumber=YTUNNUS, legalemail="info@example.fi")


def _children(el: etree._Element) -> list[str]:
    return [etree.QName(c).localname for c in el if isinstance(c.tag, str)]


def test_person_frame_shape_follows_traficom(validator: FrameValidator) -> None:
    frame = build_contact_create(fi_contact(PERSON), "t-fi-1")
    create = parse_document(frame).find(".//contact:create", NSMAP)
    assert create is not None
    assert _children(create) == ["id", "role", "type", "postalInfo", "voice", "email", "legalemail", "authInfo",
                                 "disclose"]
    postal = create.find("contact:postalInfo", NSMAP)
    assert postal is not None
    assert _children(postal) == ["isfinnish", "firstname", "lastname", "name", "identity", "addr"]
    assert [create.findtext(f"contact:{n}", namespaces=NSMAP) for n in ("role", "type", "legalemail")] == [
        "5", "0", "matti@example.fi"]
    assert postal.findtext("contact:isfinnish", namespaces=NSMAP) == "1"
    assert postal.findtext("contact:identity", namespaces=NSMAP) == HETU
    # every Traficom element is in the contact namespace and uses its prefix; nothing under <extension>
    assert all(etree.QName(e).namespace == NS_CONTACT for e in create.iter() if isinstance(e.tag, str))
    assert b"<epp:extension" not in frame and b"<extension" not in frame and b"ns0" not in frame
    assert validator.errors(frame) == []


def test_company_frame_and_no_ext_uri_needed(validator: FrameValidator) -> None:
    frame = build_contact_create(fi_contact(COMPANY, org="Esimerkki Oy"), "t-fi-2")
    postal = parse_document(frame).find(".//contact:postalInfo", NSMAP)
    assert postal is not None
    assert _children(postal) == ["isfinnish", "name", "org", "registernumber", "addr"]
    assert validator.errors(frame) == []
    assert extensions.namespace(COMPANY) is None  # contact namespace: nothing to negotiate at login


@pytest.mark.parametrize(
    ("ext", "message"),
    [
        (dataclasses.replace(PERSON, legalemail=None), "a holder needs legalemail"),
        (dataclasses.replace(PERSON, identity=None), "a Finnish person needs identity"),
        (dataclasses.replace(PERSON, identity="131052-308A"), "identity: invalid value"),
        (dataclasses.replace(PERSON, is_finnish=False, identity=None), "a foreign person needs birthDate"),
        (dataclasses.replace(COMPANY, registernumber=None), "an organisation needs registernumber"),
        (dataclasses.replace(COMPANY, registernumber="2077474-1"), "a Finnish one is a Y-tunnus"),
    ],
)
def test_missing_or_malformed_traficom_member_is_a_schema_error(
    validator: FrameValidator, ext: FiContactExt, message: str
) -> None:
    errors = validator.errors(build_contact_create(fi_contact(ext), "t-fi-3"))
    assert any(message in e for e in errors), errors


def test_hand_check_values_order_and_the_rest_still_meets_the_xsd(validator: FrameValidator) -> None:
    frame = build_contact_create(fi_contact(PERSON), "t-fi-4")
    assert any("role" in e for e in validator.errors(frame.replace(b"<contact:role>5</contact:role>", b"")))
    assert any("isfinnish: invalid" in e for e in validator.errors(frame.replace(b"isfinnish>1<", b"isfinnish>2<")))
    moved = frame.replace(b"<contact:legalemail>matti@example.fi</contact:legalemail>", b"").replace(
        b"<contact:role>", b"<contact:legalemail>matti@example.fi</contact:legalemail><contact:role>")
    assert any("out of order" in e for e in validator.errors(moved))
    # the Traficom members are removed before the XSD, which still checks everything else
    no_email = frame.replace(b"<contact:email>matti@example.fi</contact:email>", b"")
    assert any("line" in e for e in validator.errors(no_email))


def test_builder_uses_released_values_only() -> None:
    person = {"name": "Anna Maria Virtanen", "email": "anna@example.fi", "country": "FI", "city": "Espoo",
              "national_id": HETU, "national_id_scheme": "fi_hetu", "kind": "person"}
    ext = ficora_contact(person, "person")
    assert (ext.role, ext.type, ext.is_finnish, ext.identity, ext.registernumber) == (5, 0, True, HETU, None)
    assert (ext.firstname, ext.lastname, ext.legalemail) == ("Anna Maria", "Virtanen", "anna@example.fi")
    # a Swedish personnummer is released by the policy but has no .fi element: not sent, logged as withheld
    swede = {**person, "national_id": "198112189876", "national_id_scheme": "se_personnummer", "country": "SE"}
    ext = ficora_contact(swede, "person")
    assert ext.identity is None and ext.is_finnish is False
    contact = fi_contact(ext)
    assert carried_fields(contact, set(swede)) == {"name", "email", "country", "city", "kind"}
    # not released: no number, no e-mail in legalemail
    bare = ficora_contact({"name": "Esimerkki", "country": "FI"}, "organisation")
    assert (bare.type, bare.registernumber, bare.legalemail, bare.firstname) == (1, None, None, None)
    org = ficora_contact({"name": "Matti M", "national_id": "20774740", "national_id_scheme": "fi_ytunnus"},
                         "organisation")
    assert org.registernumber == YTUNNUS and org.is_finnish


def test_outbox_codec_round_trips_fi() -> None:
    cmds = RegistrationCommands(contacts=(fi_contact(PERSON),), domain=sample_domain("exempel.fi", "RGFI1"))
    assert commands_from_json(commands_to_json(cmds)) == cmds
