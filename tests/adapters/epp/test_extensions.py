"""Registry extensions: what each builds, and that the sandbox's hand checks refuse what a registry would."""

from __future__ import annotations

import pytest
from lxml import etree

from adapters.epp import extensions
from adapters.epp.extensions import (
    EuridContactUpdate,
    IisContactExt,
    IisContactUpdate,
    IisDomainUpdate,
    NeulevelContactExt,
    NeulevelDomainExt,
    NoridContactExt,
    fi,
    neulevel,
    norid,
)
from adapters.epp.sandbox import FrameValidator
from adapters.epp.sandbox.checks import parse_unspec
from adapters.epp.types import ContactUpdate, DomainUpdate
from adapters.epp.xml import (
    NSMAP,
    SUPPORTED_EXT_URIS,
    build_contact_create,
    build_contact_update,
    build_domain_create,
    build_domain_update,
    parse_document,
)
from tests.adapters.epp.test_xml import sample_contact, sample_domain


@pytest.fixture(scope="module")
def validator() -> FrameValidator:
    return FrameValidator()


def _ext(frame: bytes) -> list[tuple[str, str | None, dict[str, str]]]:
    """(tag, text, attributes) of every element under <extension>, depth first."""
    extension = parse_document(frame).find(".//epp:extension", NSMAP)
    assert extension is not None
    return [
        (etree.QName(e).localname, e.text, {str(k): str(v) for k, v in e.attrib.items()})
        for e in extension.iter()
        if e is not extension
    ]


def test_every_extension_has_one_namespace_and_is_announced() -> None:
    exts: list[extensions.AnyExtension] = [
        IisContactExt(orgno="[SE]1"), IisContactUpdate("SE1"), IisDomainUpdate(True), EuridContactUpdate(lang="sv"),
        NoridContactExt("organizationNumber", "985821585"), NeulevelDomainExt("P1", "C11"),
    ]  # fmt: skip
    for ext in exts:
        assert extensions.namespace(ext) in SUPPORTED_EXT_URIS
    assert fi.SUPPORTED == () and fi.NS_DOMAIN_EXT not in SUPPORTED_EXT_URIS  # .fi: no extURI


def test_iis_update_shapes(validator: FrameValidator) -> None:
    contact = build_contact_update(ContactUpdate(id="SE1", extensions=(IisContactUpdate("SE802405019101"),)), "t-1")
    assert validator.errors(contact) == []
    assert _ext(contact) == [("update", None, {}), ("vatno", "SE802405019101", {})]
    domain = build_domain_update(DomainUpdate(name="a.se", extensions=(IisDomainUpdate(client_delete=False),)), "t-2")
    assert validator.errors(domain) == []
    assert _ext(domain) == [("update", None, {}), ("clientDelete", "0", {})]
    # vatno on a domain, clientDelete on a contact, or an orgno change are what .se refuses.
    swapped = domain.replace(b"clientDelete>0</iis:clientDelete", b"vatno>SE1</iis:vatno")
    assert any("clientDelete" in e for e in validator.errors(swapped))
    orgno = contact.replace(b"<iis:vatno>SE802405019101</iis:vatno>", b"<iis:orgno>[SE]1</iis:orgno>")
    assert validator.errors(orgno)
    create_on_update = contact.replace(b"iis:update", b"iis:create")
    assert any("not allowed on contact:update" in e for e in validator.errors(create_on_update))


def test_eurid_update(validator: FrameValidator) -> None:
    frame = build_contact_update(
        ContactUpdate(id="EU1", extensions=(EuridContactUpdate(vat="BE1", natural_person=False),)), "t-3"
    )
    assert validator.errors(frame) == []
    assert _ext(frame) == [("update", None, {}), ("chg", None, {}), ("vat", "BE1", {}), ("naturalPerson", "false", {})]
    with pytest.raises(ValueError):
        build_contact_update(ContactUpdate(id="EU1", extensions=(EuridContactUpdate(),)), "t-4")
    wrong_order = frame.replace(b"<contact-ext:vat>BE1</contact-ext:vat>", b"").replace(
        b"</contact-ext:chg>", b"<contact-ext:vat>BE1</contact-ext:vat></contact-ext:chg>"
    )
    assert validator.errors(wrong_order)


def test_norid_identity(validator: FrameValidator) -> None:
    org = NoridContactExt(identity_type="organizationNumber", identity="985821585")
    frame = build_contact_create(sample_contact("NO1", org), "t-5")
    assert validator.errors(frame) == []
    assert _ext(frame) == [
        ("create", None, {}),
        ("type", "organization", {}),
        ("identity", "985821585", {"type": "organizationNumber"}),
    ]
    person = NoridContactExt(identity_type="anonymousPersonIdentifier", identity="N.PRI.12345678")
    assert validator.errors(build_contact_create(sample_contact("NO2", person), "t-6")) == []
    # a person without a released number is still a person contact; the registrar's is a role contact
    bare = build_contact_create(sample_contact("NO4", NoridContactExt(contact_type="person")), "t-6b")
    assert validator.errors(bare) == [] and _ext(bare) == [("create", None, {}), ("type", "person", {})]
    role = build_contact_create(sample_contact("NO5", NoridContactExt(contact_type="role")), "t-6c")
    assert validator.errors(role) == []
    # an organization without its organisation number is what Norid refuses
    bare_org = build_contact_create(sample_contact("NO6", NoridContactExt(contact_type="organization")), "t-6d")
    assert any("organizationNumber" in e for e in validator.errors(bare_org))
    with pytest.raises(ValueError):  # half an identity
        build_contact_create(sample_contact("NO7", NoridContactExt(identity="X1")), "t-6e")
    with pytest.raises(ValueError):  # an update without an identity changes nothing
        build_contact_update(ContactUpdate(id="NO4", extensions=(NoridContactExt(contact_type="person"),)), "t-6f")
    update = build_contact_update(ContactUpdate(id="NO1", extensions=(org,)), "t-7")
    assert validator.errors(update) == []
    assert [t for t, _, _ in _ext(update)] == ["update", "chg", "identity"]

    assert any("nine digits" in e for e in validator.errors(frame.replace(b"985821585", b"98582158X")))
    as_person = build_contact_create(
        sample_contact("NO3", NoridContactExt("localIdentity", "X1", contact_type="organization")), "t-8"
    )
    assert any("organizationNumber" in e for e in validator.errors(as_person))
    assert validator.errors(frame.replace(b'type="organizationNumber"', b'type="passport"'))
    assert validator.errors(frame.replace(b' type="organizationNumber"', b""))
    assert parse_document(frame).find(".//no-ext-contact:create", NSMAP) is not None
    assert norid.NS == "http://www.norid.no/xsd/no-ext-contact-1.0"


def test_neulevel_nexus_rides_on_the_registrant_contact(validator: FrameValidator) -> None:
    """Net::DRI US/Contact.pm: the nexus is on contact:create/update, never on domain:create."""
    import dataclasses

    ext = NeulevelContactExt(app_purpose="P3", nexus_category="C12")
    frame = build_contact_create(sample_contact("US1", ext), "t-9")
    assert validator.errors(frame) == []
    assert _ext(frame) == [("extension", None, {}), ("unspec", "AppPurpose=P3 NexusCategory=C12", {})]
    assert parse_document(frame).find(".//neulevel:extension", NSMAP) is not None
    update = build_contact_update(ContactUpdate(id="US1", extensions=(ext,)), "t-9u")
    assert validator.errors(update) == []
    assert neulevel.unspec(NeulevelContactExt("P1", "C32", "DE")) == "AppPurpose=P1 NexusCategory=C32/DE"
    with pytest.raises(ValueError):
        neulevel.unspec(NeulevelContactExt("P1", "C31"))  # a foreign entity needs its country
    with pytest.raises(ValueError):
        neulevel.unspec(NeulevelContactExt("P1", "C11", "SE"))

    for bad in (b"AppPurpose=P3", b"AppPurpose=P9 NexusCategory=C12", b"AppPurpose=P3 NexusCategory=C31",
                b"AppPurpose=P3  NexusCategory=C12", b"AppPurpose=P3 NexusCategory=C12 Foo=bar"):  # fmt: skip
        assert validator.errors(frame.replace(b"AppPurpose=P3 NexusCategory=C12", bad)), bad
    # A domain create cannot carry it: the builder refuses, and so does the registry (grafted in).
    with pytest.raises(ValueError):
        build_domain_create(dataclasses.replace(sample_domain("exempel.us"), extensions=(ext,)), "t-10")
    root = parse_document(build_domain_create(sample_domain("exempel.us"), "t-10"))
    command = root.find("epp:command", NSMAP)
    assert command is not None
    extension = etree.Element(f"{{{NSMAP['epp']}}}extension")
    extension.append(neulevel.nexus(ext)[0])
    command.insert(1, extension)
    assert any("not allowed on domain:create" in e for e in validator.errors(root))
    assert parse_unspec("A=1 B=2") == {"A": "1", "B": "2"}
    assert parse_unspec("A=1 A=2") is None and parse_unspec("A") is None and parse_unspec("") is None
    assert neulevel.NS == "urn:ietf:params:xml:ns:neulevel-1.0"
    assert NeulevelDomainExt is NeulevelContactExt  # the old name decodes stored rows


def test_extensions_refuse_the_wrong_command() -> None:
    with pytest.raises(ValueError):
        extensions.elements(IisContactExt(orgno="[SE]1"), "contact:update")
    with pytest.raises(ValueError):
        extensions.elements(IisDomainUpdate(True), "domain:create")
    with pytest.raises(ValueError):
        extensions.elements(NeulevelContactExt("P1", "C11"), "domain:create")
    with pytest.raises(ValueError):
        extensions.elements(NeulevelContactExt("P1", "C11"), "domain:update")
