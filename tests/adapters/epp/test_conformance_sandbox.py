"""Registry conformance against the TLS sandbox: registry modes (.dk-assigned contact ids, contact
deletes refused by policy), .fi's Traficom schema, contact:info answering for the id asked, and
domain:check / contact:delete."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from lxml import etree

from adapters.epp._xmlutil import q, sub
from adapters.epp.client import EppClient, _remap_domain, register_with
from adapters.epp.commands import binding_for
from adapters.epp.extensions import DkhmContactExt, FiContactExt, IisContactExt
from adapters.epp.sandbox import RegistrySandbox
from adapters.epp.tls import DevPki
from adapters.epp.types import (
    ContactCreate,
    ContactDelete,
    ContactInfoQuery,
    DiscloseSpec,
    DomainCheck,
    PostalInfo,
    RegistrationCommands,
)
from adapters.epp.xml import NS_CONTACT, build_contact_create, build_response, parse_response
from gateway.errors import PermanentDeliveryError
from tests.adapters.epp.test_xml import sample_contact, sample_domain

pytestmark = pytest.mark.integration

ORGNO = IisContactExt(orgno="[SE]802405-0190")


@pytest.fixture
async def sandbox(pki: DevPki) -> AsyncIterator[RegistrySandbox]:
    async with RegistrySandbox(pki=pki, validate_schemas=True, require_client_cert=True) as sb:
        yield sb
        assert sb.schema_errors == []


# ---- .dk: the registry assigns contact ids -----------------------------------------------------------


async def test_dk_mode_assigns_contact_ids_and_the_domain_carries_the_assigned_one(sandbox: RegistrySandbox) -> None:
    sandbox.assign_contact_ids = True
    contact = sample_contact("RGASKED1", DkhmContactExt(user_type="individual"))
    async with EppClient(sandbox.endpoint()) as client:
        created = await client.send(contact, "t-dk-0")
        assigned = created.created_id
        assert created.code == 1000 and assigned is not None and assigned.endswith("-DK")
        assert sandbox.find_contact("RGASKED1") is None and sandbox.find_contact(assigned) is not None
        # The id asked for does not exist: a domain naming it gets 2303 ...
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(sample_domain("exempel.dk", "RGASKED1"), "t-dk-1")
        assert excinfo.value.result_code == 2303
        # ... the one remapped to the registry's id is created.
        domain = _remap_domain(sample_domain("exempel.dk", "RGASKED1"), {"RGASKED1": assigned})
        assert (await client.send(domain, "t-dk-2")).code == 1000
        # The same create again makes another contact (no 2302 at a registry that assigns ids).
        again = await client.send(contact, "t-dk-3")
        assert again.created_id not in (None, assigned)
    assert sandbox.domains["exempel.dk"]["registrant"] == assigned
    assert sandbox.domains["exempel.dk"]["contacts"] == [("admin", assigned), ("tech", assigned)]


async def test_dk_registration_names_the_registry_assigned_contact(sandbox: RegistrySandbox) -> None:
    sandbox.assign_contact_ids = True
    contact = sample_contact("RGASKED1", DkhmContactExt(user_type="individual"))
    cmds = RegistrationCommands(contacts=(contact,), domain=sample_domain("exempel.dk", "RGASKED1"))
    async with EppClient(sandbox.endpoint()) as client:
        outcome = await register_with(client, cmds, "reg-dk-1")
    assigned = sandbox.domains["exempel.dk"]["registrant"]
    assert assigned != "RGASKED1" and sandbox.find_contact(assigned) is not None
    assert outcome.objects["contact:registrant"] == assigned


# ---- .fi: Traficom's schema ------------------------------------------------------------------------

HOLDER = FiContactExt(role=5, type=0, is_finnish=False, firstname="Sven", lastname="Svensson",
                      birth_date="1981-12-18", legalemail="sven@example.se")


def _fi(contact_id: str, ext: FiContactExt, disclose: tuple[str, ...] = ("addr", "voice", "email")) -> ContactCreate:
    return ContactCreate(
        id=contact_id,
        postal_info=PostalInfo(name="Sven Svensson", street=("Storgatan 1",), city="Stockholm", pc="11122", cc="SE"),
        email="sven@example.se",
        auth_pw="c0ntact-Pw",
        voice="+46.812345678",
        disclose=DiscloseSpec(flag=0, elements=disclose),
        extensions=(ext,),
    )


async def test_fi_birth_date_is_a_datetime_and_disclose_is_traficoms(sandbox: RegistrySandbox) -> None:
    frame = build_contact_create(_fi("RGFI1", HOLDER), "t-fi")
    assert b"<contact:birthDate>1981-12-18T00:00:00.0Z</contact:birthDate>" in frame
    # Traficom's order voice, email, addr -- not RFC 5733's addr, voice, email
    assert frame.index(b'<contact:voice/>') < frame.index(b"<contact:email/>") < frame.index(b'<contact:addr type=')
    with pytest.raises(ValueError):
        build_contact_create(_fi("RGFI2", HOLDER, ("name", "email")), "t-fi-2")  # no name in Traficom's disclose
    with pytest.raises(ValueError):
        build_contact_create(_fi("RGFI2", dataclasses.replace(HOLDER, birth_date="18.12.1981")), "t-fi-3")

    async with EppClient(sandbox.endpoint()) as client:
        assert (await client.send(_fi("RGFI1", HOLDER), "t-fi")).code == 1000

    validator = sandbox.validator
    assert validator is not None and validator.traficom_schema is not None
    # What the sandbox refuses, as Traficom's schema would: a bare date, and RFC-ordered disclose.
    bare_date = frame.replace(b"1981-12-18T00:00:00.0Z", b"1981-12-18")
    assert any("birthDate" in e for e in validator.errors(bare_date))
    rfc_order = frame.replace(b"<contact:voice/><contact:email/>", b"").replace(
        b"</contact:disclose>", b"<contact:voice/><contact:email/></contact:disclose>")
    assert rfc_order != frame and validator.errors(rfc_order)
    with_name = frame.replace(b"<contact:voice/>", b'<contact:name type="loc"/><contact:voice/>')
    assert validator.errors(with_name)


# ---- contact:info answers for the id asked; domain:check; contact:delete ------------------------------


async def test_contact_info_must_be_about_the_id_asked(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        await client.send(sample_contact("CON1", ORGNO), "t-c1")
        info = await client.send(ContactInfoQuery("con1"), "t-i1")  # ids compare casefolded
        assert info.id == "CON1"
    # The sandbox's own infData for CON1, relabelled as another contact's: refused, naming neither id.
    body = etree.Element(q(NS_CONTACT, "info"))
    sub(body, NS_CONTACT, "id", "CON1")
    answer = sandbox.contact_info(body, None, sandbox.client_id)
    frame = build_response(1000, "ok", "t-i2", "S1", res_data=answer.res_data)
    assert parse_response(frame).contact_info is not None
    query = ContactInfoQuery("CON1")
    assert binding_for(query).result(parse_response(frame), query, "t-i2").id == "CON1"
    relabelled = parse_response(frame.replace(b"<contact:id>CON1</contact:id>", b"<contact:id>CON9</contact:id>"))
    with pytest.raises(PermanentDeliveryError) as excinfo:
        binding_for(query).result(relabelled, query, "t-i2")
    assert "CON" not in str(excinfo.value) and excinfo.value.extra["epp_command"] == "contact:info"


async def test_domain_check_answers_per_name(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        await client.send(sample_contact("CON1", ORGNO), "t-c1")
        await client.send(sample_domain("taken.se", "CON1"), "t-d1")
        checked = await client.send(DomainCheck(("free.se", "TAKEN.se", "other.se")), "t-chk")
    assert [(a.name, a.available) for a in checked.names] == [("free.se", True), ("TAKEN.se", False),
                                                              ("other.se", True)]
    assert checked.available("taken.se") is False and checked.available("free.se") is True
    assert checked.available("missing.se") is None
    assert checked.names[1].reason == "In use"
    with pytest.raises(PermanentDeliveryError):  # at least one name (domain-1.0.xsd)
        async with EppClient(sandbox.endpoint()) as client:
            await client.send(DomainCheck(()), "t-chk-0")


async def test_contact_delete_and_its_refusals(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        for cid in ("DEL1", "DEL2", "DEL3"):
            await client.send(sample_contact(cid, ORGNO), f"t-{cid}")
        await client.send(sample_domain("linked.se", "DEL2"), "t-linked")
        assert (await client.send(ContactDelete("DEL1"), "t-del1")).code == 1000
        assert sandbox.find_contact("DEL1") is None
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(ContactDelete("DEL1"), "t-del1-again")
        assert excinfo.value.result_code == 2303
        with pytest.raises(PermanentDeliveryError) as excinfo:  # a domain references it
            await client.send(ContactDelete("DEL2"), "t-del2")
        assert excinfo.value.result_code == 2305 and sandbox.find_contact("DEL2") is not None

        for code in (2305, 2308):  # a registry whose policy keeps every contact
            sandbox.refuse_contact_delete = code
            with pytest.raises(PermanentDeliveryError) as excinfo:
                await client.send(ContactDelete("DEL3"), f"t-del3-{code}")
            assert excinfo.value.result_code == code and sandbox.find_contact("DEL3") is not None
        sandbox.refuse_contact_delete = None
        assert (await client.send(ContactDelete("DEL3"), "t-del3")).code == 1000
