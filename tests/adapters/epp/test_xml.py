"""Every frame we build must pass the official XSDs; every response shape we rely on must parse."""

from __future__ import annotations

import pytest
from lxml import etree

from adapters.epp.extensions import DkhmContactExt, EuridContactExt, IisContactExt, dkhm, eurid, iis
from adapters.epp.sandbox import FrameValidator
from adapters.epp.types import ContactCreate, DiscloseSpec, DomainCreate, Greeting, PostalInfo
from adapters.epp.xml import (
    NS_CONTACT,
    NS_DOMAIN,
    NS_HOST,
    NS_SECDNS,
    NSMAP,
    EppXmlError,
    ProtocolMismatch,
    build_contact_create,
    build_contact_info,
    build_domain_create,
    build_domain_info,
    build_hello,
    build_login,
    build_logout,
    parse_document,
    parse_greeting,
    parse_response,
)

GREETING = Greeting(
    sv_id="test",
    sv_date=None,
    versions=("1.0",),
    langs=("en",),
    obj_uris=(NS_CONTACT, NS_DOMAIN, NS_HOST),
    ext_uris=(iis.NS, eurid.NS, dkhm.NS, NS_SECDNS),
)


def sample_contact(contact_id: str = "RG1A2B", *extensions: object, full: bool = True) -> ContactCreate:
    """A contact with every optional member set (``full``) or none, plus the given extensions."""
    if full:
        postal = PostalInfo(
            name="Anna <Svensson> & Co",
            org="Exempel AB",
            street=("Storgatan 1", "Box 12"),
            city="Stockholm",
            sp="AB",
            pc="111 22",
            cc="SE",
            type="loc",
        )
        return ContactCreate(
            id=contact_id,
            postal_info=postal,
            email="anna@example.se",
            auth_pw="c0ntact-Pw",
            voice="+46.812345678",
            fax="+46.812345679",
            disclose=DiscloseSpec(flag=0, elements=("email", "voice", "addr", "name", "fax", "org")),
            extensions=tuple(extensions),  # type: ignore[arg-type]
        )
    return ContactCreate(
        id=contact_id,
        postal_info=PostalInfo(name="Bo", city="Malmö", cc="SE"),
        email="bo@example.se",
        auth_pw="c0ntact-Pw",
        extensions=tuple(extensions),  # type: ignore[arg-type]
    )


def sample_domain(name: str = "exempel.se", registrant: str | None = "RG1A2B") -> DomainCreate:
    return DomainCreate(
        name=name,
        period_years=2,
        auth_pw="d0main-Pw",
        nameservers=("ns1.example.net", "ns2.example.net"),
        registrant=registrant,
        contacts=(("admin", registrant), ("tech", registrant)) if registrant else (),
    )


@pytest.fixture(scope="module")
def validator() -> FrameValidator:
    return FrameValidator()


def _assert_valid(validator: FrameValidator, frame: bytes) -> etree._Element:
    assert validator.errors(frame) == []
    return parse_document(frame)


# ---- building ----------------------------------------------------------------------------------


def test_session_frames_validate(validator: FrameValidator) -> None:
    _assert_valid(validator, build_hello())
    _assert_valid(validator, build_logout("trid-logout"))
    login = _assert_valid(validator, build_login("registrar1", "s3cret-pw", GREETING, "trid-login"))
    assert [e.text for e in login.iterfind(".//epp:objURI", NSMAP)] == [NS_CONTACT, NS_DOMAIN, NS_HOST]
    # secDNS is offered by the server but not ours to speak, so it is not requested.
    assert [e.text for e in login.iterfind(".//epp:extURI", NSMAP)] == [iis.NS, eurid.NS, dkhm.NS]


def test_login_asks_only_for_what_the_server_offers(validator: FrameValidator) -> None:
    thin = Greeting("thin", None, ("1.0",), ("en",), (NS_DOMAIN, NS_HOST), ())
    login = _assert_valid(validator, build_login("registrar1", "s3cret-pw", thin, "trid-login"))
    assert [e.text for e in login.iterfind(".//epp:objURI", NSMAP)] == [NS_DOMAIN, NS_HOST]
    assert login.find(".//epp:svcExtension", NSMAP) is None


def test_login_without_domain_service_or_version_is_a_mismatch() -> None:
    with pytest.raises(ProtocolMismatch):
        build_login(
            "registrar1", "s3cret-pw", Greeting("x", None, ("1.0",), ("en",), (NS_CONTACT,), ()), "t-1"
        )
    with pytest.raises(ProtocolMismatch):
        build_login(
            "registrar1", "s3cret-pw", Greeting("x", None, ("2.0",), ("en",), (NS_DOMAIN,), ()), "t-1"
        )


def test_contact_create_full_with_iis(validator: FrameValidator) -> None:
    cmd = sample_contact("RG1A2B", IisContactExt(orgno="[SE]802405-0190", vatno="SE802405019001"))
    root = _assert_valid(validator, build_contact_create(cmd, "trid-c1"))
    create = root.find(".//contact:create", NSMAP)
    assert create is not None
    assert [etree.QName(c).localname for c in create] == [
        "id", "postalInfo", "voice", "fax", "email", "authInfo", "disclose",
    ]  # fmt: skip
    # Special characters are data, not markup.
    assert create.findtext("contact:postalInfo/contact:name", namespaces=NSMAP) == "Anna <Svensson> & Co"
    disclose = create.find("contact:disclose", NSMAP)
    assert disclose is not None and disclose.get("flag") == "0"
    assert [etree.QName(c).localname for c in disclose] == ["name", "org", "addr", "voice", "fax", "email"]
    assert disclose[0].get("type") == "loc"
    iis = root.find(".//epp:extension/iis:create", NSMAP)
    assert iis is not None
    assert [(etree.QName(c).localname, c.text) for c in iis] == [
        ("orgno", "[SE]802405-0190"),
        ("vatno", "SE802405019001"),
    ]


def test_iis_omits_absent_vatno(validator: FrameValidator) -> None:
    root = _assert_valid(
        validator, build_contact_create(sample_contact("RG1", IisContactExt(orgno="[SE]1-2")), "t-2")
    )
    iis = root.find(".//iis:create", NSMAP)
    assert iis is not None and [etree.QName(c).localname for c in iis] == ["orgno"]


def test_contact_create_minimal(validator: FrameValidator) -> None:
    root = _assert_valid(validator, build_contact_create(sample_contact("min1", full=False), "trid-min"))
    assert root.find(".//epp:extension", NSMAP) is None
    assert root.find(".//contact:disclose", NSMAP) is None


def test_contact_create_eurid(validator: FrameValidator) -> None:
    ext = EuridContactExt(
        type="registrant",
        natural_person=True,
        lang="sv",
        vat="BE0123456789",
        whois_email="whois@example.eu",
        country_of_citizenship="SE",
    )
    root = _assert_valid(validator, build_contact_create(sample_contact("eu1", ext), "trid-eu"))
    create = root.find(".//contact-ext:create", NSMAP)
    assert create is not None
    assert [(etree.QName(c).localname, c.text) for c in create] == [
        ("type", "registrant"),
        ("vat", "BE0123456789"),
        ("lang", "sv"),
        ("whoisEmail", "whois@example.eu"),
        ("naturalPerson", "true"),
        ("countryOfCitizenship", "SE"),
    ]
    minimal = build_contact_create(
        sample_contact("eu2", EuridContactExt(type="tech", natural_person=False, lang="en")), "t-3"
    )
    create = _assert_valid(validator, minimal).find(".//contact-ext:create", NSMAP)
    assert create is not None and [c.text for c in create] == ["tech", "en", "false"]
    with pytest.raises(ValueError, match="lang"):  # contact-ext-1.3.xsd: lang is required on create
        build_contact_create(sample_contact("eu2", EuridContactExt(type="tech", natural_person=False)), "t-3")


def test_contact_create_dkhm_elements_sit_directly_in_extension(validator: FrameValidator) -> None:
    ext = DkhmContactExt(user_type="company", cvr="29403473", pnumber="1012345678", ean="5798000000001")
    root = _assert_valid(validator, build_contact_create(sample_contact("dk1", ext), "trid-dk"))
    extension = root.find(".//epp:extension", NSMAP)
    assert extension is not None
    assert [(etree.QName(c).namespace, etree.QName(c).localname) for c in extension] == [
        (dkhm.NS, "userType"),
        (dkhm.NS, "CVR"),
        (dkhm.NS, "pnumber"),
        (dkhm.NS, "EAN"),
    ]
    only_type = build_contact_create(sample_contact("dk2", DkhmContactExt(user_type="individual")), "t-4")
    _assert_valid(validator, only_type)


def test_domain_create_and_info(validator: FrameValidator) -> None:
    root = _assert_valid(validator, build_domain_create(sample_domain(), "trid-d1"))
    create = root.find(".//domain:create", NSMAP)
    assert create is not None
    assert [etree.QName(c).localname for c in create] == [
        "name", "period", "ns", "registrant", "contact", "contact", "authInfo",
    ]  # fmt: skip
    period = create.find("domain:period", NSMAP)
    assert period is not None and (period.text, period.get("unit")) == ("2", "y")
    assert [c.get("type") for c in create.findall("domain:contact", NSMAP)] == ["admin", "tech"]
    thin = _assert_valid(validator, build_domain_create(sample_domain("example.com", None), "trid-d2"))
    assert thin.find(".//domain:registrant", NSMAP) is None
    _assert_valid(validator, build_domain_info("exempel.se", "trid-i1"))
    _assert_valid(validator, build_domain_info("exempel.se", "trid-i2", auth_pw="d0main-Pw"))
    _assert_valid(validator, build_contact_info("RG1A2B", "trid-i3"))
    _assert_valid(validator, build_contact_info("RG1A2B", "trid-i4", auth_pw="c0ntact-Pw"))


@pytest.mark.parametrize("bad", ["ab", "x" * 65, " lead", "two  spaces", "tab\there"])
def test_cl_trid_must_be_a_token_of_3_to_64(bad: str) -> None:
    with pytest.raises(ValueError):
        build_logout(bad)


def test_inexpressible_commands_are_refused() -> None:
    four_streets = PostalInfo(name="A", city="B", cc="SE", street=("1", "2", "3", "4"))
    with pytest.raises(ValueError):
        build_contact_create(ContactCreate("abc", four_streets, "a@b.se", "pw-pw-pw"), "t-5")
    odd = ContactCreate(
        "abc", PostalInfo("A", "B", "SE"), "a@b.se", "pw", disclose=DiscloseSpec(1, ("shoe",))
    )
    with pytest.raises(ValueError):
        build_contact_create(odd, "t-6")
    with pytest.raises(ValueError):
        build_domain_create(DomainCreate("a.se", 100, "pw"), "t-7")


# ---- the validator itself (so a green test above means something) ---------------------------------


def test_validator_rejects_what_registries_reject(validator: FrameValidator) -> None:
    no_brackets = build_contact_create(sample_contact("se1", IisContactExt(orgno="802405-0190")), "t-8")
    assert any("orgno" in e for e in validator.errors(no_brackets))
    vat_only = build_contact_create(sample_contact("se2", IisContactExt(vatno="SE1")), "t-9")
    assert any("orgno" in e for e in validator.errors(vat_only))
    bad_dk = build_contact_create(
        sample_contact("dk3", DkhmContactExt(user_type="company", cvr="1" * 51)), "t-10"
    )
    assert validator.errors(bad_dk)
    # A missing required element (the e-mail) is caught by the official contact schema.
    root = parse_document(build_contact_create(sample_contact("x1"), "t-11"))
    email = root.find(".//contact:email", NSMAP)
    assert email is not None
    email.getparent().remove(email)  # type: ignore[union-attr]
    assert validator.errors(etree.tostring(root))
    # An unknown extension namespace has no schema, so the strict wildcard refuses it.
    unknown = build_contact_create(sample_contact("x2", IisContactExt(orgno="[SE]1")), "t-12").replace(
        iis.NS.encode(), b"urn:example:unknown-1.0"
    )
    assert validator.errors(unknown)


def test_validator_checks_eurid_against_contact_ext_1_3(validator: FrameValidator) -> None:
    """EURid's own schema (shared/epp-ext-schemas), not a hand check, judges contact-ext:create."""
    assert validator.eurid_schema
    frame = build_contact_create(
        sample_contact("eu3", EuridContactExt(type="tech", natural_person=True, lang="sv")), "t-13"
    )
    assert validator.errors(frame) == []
    root = parse_document(frame)
    create = root.find(".//contact-ext:create", NSMAP)
    assert create is not None
    natural = create[2]
    create.remove(natural)
    assert any("naturalPerson" in e for e in validator.errors(root))
    create.insert(0, natural)  # wrong order
    assert validator.errors(root)
    create.remove(natural)
    create.append(natural)
    assert validator.errors(root) == []
    create[1].text = "swe"  # contactLangType: exactly two letters
    assert any("lang" in e for e in validator.errors(root))
    create.remove(create[1])  # lang missing
    assert any("naturalPerson" in e or "lang" in e for e in validator.errors(root))

# ---- parsing -------------------------------------------------------------------------------------

_GREETING = b"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<epp xmlns="urn:ietf:params:xml:ns:epp-1.0">
  <greeting>
    <svID>Example EPP server epp.example.com</svID>
    <svDate>2000-06-08T22:00:00.0Z</svDate>
    <svcMenu>
      <version>1.0</version>
      <lang>en</lang>
      <lang>fr</lang>
      <objURI>urn:ietf:params:xml:ns:obj1</objURI>
      <objURI>urn:ietf:params:xml:ns:domain-1.0</objURI>
      <svcExtension>
        <extURI>http://custom/obj1ext-1.0</extURI>
        <extURI>urn:se:iis:xml:epp:iis-1.2</extURI>
      </svcExtension>
    </svcMenu>
    <dcp>
      <access><all/></access>
      <statement>
        <purpose><admin/><prov/></purpose>
        <recipient><ours/><public/></recipient>
        <retention><stated/></retention>
      </statement>
    </dcp>
  </greeting>
</epp>"""



def _response(code: int, res_data: str = "", cl_trid: str = "ABC-12345") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<epp xmlns="urn:ietf:params:xml:ns:epp-1.0">
  <response>
    <result code="{code}"><msg>Some message</msg></result>
    {res_data}
    <trID><clTRID>{cl_trid}</clTRID><svTRID>54321-XYZ</svTRID></trID>
  </response>
</epp>""".encode()


def test_parse_greeting(validator: FrameValidator) -> None:
    assert validator.errors(_GREETING) == []
    greeting = parse_greeting(_GREETING)
    assert greeting.sv_id == "Example EPP server epp.example.com"
    assert greeting.versions == ("1.0",)
    assert greeting.langs == ("en", "fr")
    assert greeting.obj_uris == ("urn:ietf:params:xml:ns:obj1", NS_DOMAIN)
    assert greeting.ext_uris == ("http://custom/obj1ext-1.0", iis.NS)
    login = build_login("registrar1", "s3cret-pw", greeting, "t-14")
    assert validator.errors(login) == []
    root = parse_document(login)
    assert [e.text for e in root.iterfind(".//epp:objURI", NSMAP)] == [NS_DOMAIN]
    assert [e.text for e in root.iterfind(".//epp:extURI", NSMAP)] == [iis.NS]


def test_parse_domain_cre_data(validator: FrameValidator) -> None:
    frame = _response(
        1000,
        """<resData><domain:creData xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">
             <domain:name>example.com</domain:name>
             <domain:crDate>1999-04-03T22:00:00.0Z</domain:crDate>
             <domain:exDate>2001-04-03T22:00:00.0Z</domain:exDate>
           </domain:creData></resData>""",
    )
    assert validator.errors(frame) == []
    response = parse_response(frame)
    assert (response.result.code, response.result.cl_trid, response.result.sv_trid) == (
        1000,
        "ABC-12345",
        "54321-XYZ",
    )
    assert response.result.message == "Some message"
    assert response.created_name == "example.com"
    assert response.expiry_date == "2001-04-03T22:00:00.0Z"


def test_parse_contact_cre_data() -> None:
    response = parse_response(
        _response(
            1000,
            """<resData><contact:creData xmlns:contact="urn:ietf:params:xml:ns:contact-1.0">
                 <contact:id>sh8013</contact:id><contact:crDate>1999-04-03T22:00:00.0Z</contact:crDate>
               </contact:creData></resData>""",
        )
    )
    assert response.created_id == "sh8013"
    assert response.created_date == "1999-04-03T22:00:00.0Z"


def test_parse_domain_inf_data(validator: FrameValidator) -> None:
    frame = _response(
        1000,
        """<resData><domain:infData xmlns:domain="urn:ietf:params:xml:ns:domain-1.0">
             <domain:name>example.com</domain:name>
             <domain:roid>EXAMPLE1-REP</domain:roid>
             <domain:status s="ok"/>
             <domain:registrant>jd1234</domain:registrant>
             <domain:contact type="admin">sh8013</domain:contact>
             <domain:ns><domain:hostObj>ns1.example.com</domain:hostObj></domain:ns>
             <domain:clID>ClientX</domain:clID>
             <domain:crID>ClientY</domain:crID>
             <domain:crDate>1999-04-03T22:00:00.0Z</domain:crDate>
             <domain:exDate>2005-04-03T22:00:00.0Z</domain:exDate>
           </domain:infData></resData>""",
    )
    assert validator.errors(frame) == []
    info = parse_response(frame).domain_info
    assert info is not None
    assert (info.name, info.roid, info.cl_id, info.registrant) == (
        "example.com",
        "EXAMPLE1-REP",
        "ClientX",
        "jd1234",
    )
    assert info.result.code == 1000


def test_parse_contact_inf_data_keeps_no_personal_data() -> None:
    response = parse_response(
        _response(
            1000,
            """<resData><contact:infData xmlns:contact="urn:ietf:params:xml:ns:contact-1.0">
                 <contact:id>sh8013</contact:id><contact:roid>SH8013-REP</contact:roid>
                 <contact:status s="linked"/>
                 <contact:postalInfo type="int"><contact:name>John Doe</contact:name>
                   <contact:addr><contact:city>Dulles</contact:city><contact:cc>US</contact:cc></contact:addr>
                 </contact:postalInfo>
                 <contact:email>jdoe@example.com</contact:email>
                 <contact:clID>ClientY</contact:clID><contact:crID>ClientX</contact:crID>
                 <contact:crDate>1999-04-03T22:00:00.0Z</contact:crDate>
               </contact:infData></resData>""",
        )
    )
    info = response.contact_info
    assert info is not None
    assert (info.id, info.roid, info.cl_id) == ("sh8013", "SH8013-REP", "ClientY")
    assert "John" not in repr(response) and "jdoe" not in repr(response)


def test_parse_error_response_without_res_data() -> None:
    response = parse_response(_response(2302))
    assert response.result.code == 2302
    assert response.domain_info is None and response.created_name is None


@pytest.mark.parametrize(
    "frame",
    [
        b"not xml",
        b'<?xml version="1.0"?><!DOCTYPE epp [<!ENTITY x "boom">]>'
        b'<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><hello/></epp>',
        b'<foo xmlns="urn:ietf:params:xml:ns:epp-1.0"/>',
        b'<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><hello/></epp>',  # not a response
        b'<epp xmlns="urn:ietf:params:xml:ns:epp-1.0"><response><result code="x"><msg>m</msg></result>'
        b"</response></epp>",
    ],
)
def test_hostile_or_foreign_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(EppXmlError):
        parse_response(frame)
