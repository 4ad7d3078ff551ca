"""One frame per command x registry extension, each validated as the sandbox validates: the official
EPP schemas, dkhm-4.5 and EURid's contact-ext-1.3, Traficom's contact schema (relaxed) and the hand
checks for iis, Norid and neulevel.  A builder change that breaks any registry's schema fails here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from adapters.epp.commands import binding_for
from adapters.epp.extensions import (
    DkhmContactExt,
    EuridContactExt,
    EuridContactUpdate,
    FiContactExt,
    IisContactExt,
    IisContactUpdate,
    IisDomainUpdate,
    NeulevelContactExt,
    NoridContactExt,
)
from adapters.epp.sandbox import FrameValidator
from adapters.epp.types import (
    Address,
    Command,
    ContactCreate,
    ContactDelete,
    ContactInfoQuery,
    ContactUpdate,
    DiscloseSpec,
    DomainCheck,
    DomainDelete,
    DomainInfoQuery,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    PollAck,
    PollRequest,
    PostalInfo,
    PostalInfoChange,
)
from tests.adapters.epp.test_xml import sample_contact, sample_domain

HETU = "131052-308T"


def _fi_contact(ext: FiContactExt, org: str | None = None) -> ContactCreate:
    return ContactCreate(
        id="RGFI1",
        postal_info=PostalInfo(name="Matti Meikäläinen", org=org, street=("Mannerheimintie 1",), city="Helsinki",
                               pc="00100", cc="FI"),
        email="matti@example.fi",
        auth_pw="c0ntact-Pw",
        voice="+358.91234567",
        disclose=DiscloseSpec(flag=0, elements=("addr", "voice", "email")),
        extensions=(ext,),
    )


CONTACT_CREATES: dict[str, ContactCreate] = {
    "plain": sample_contact("RG1"),
    "iis": sample_contact("SE1", IisContactExt(orgno="[SE]802405-0190", vatno="SE802405019001")),
    "eurid-person": sample_contact("EU1", EuridContactExt(type="registrant", natural_person=True, lang="sv",
                                                          country_of_citizenship="SE")),
    "eurid-registrar": sample_contact("EU2", EuridContactExt(type="tech", natural_person=False, lang="en",
                                                             vat="SE556677889901")),
    "dkhm": sample_contact("DK1", DkhmContactExt(user_type="company", cvr="29403473")),
    "norid-org": sample_contact("NO1", NoridContactExt("organizationNumber", "985821585")),
    "norid-person": sample_contact("NO2", NoridContactExt(contact_type="person")),
    "norid-person-fnr": sample_contact("NO3", NoridContactExt("nationalIdentityNumber", "01010750160",
                                                              contact_type="person")),
    "norid-role": sample_contact("NO4", NoridContactExt(contact_type="role")),
    "neulevel": sample_contact("US1", NeulevelContactExt("P1", "C31", "SE")),
    "fi-finnish-person": _fi_contact(FiContactExt(role=5, type=0, is_finnish=True, firstname="Matti",
                                                  lastname="Meikäläinen", identity=HETU, legalemail="m@example.fi")),
    "fi-foreign-person": _fi_contact(FiContactExt(role=5, type=0, is_finnish=False, birth_date="1981-12-18",
                                                  legalemail="m@example.fi")),
    "fi-company": _fi_contact(FiContactExt(role=5, type=1, is_finnish=True, registernumber="2077474-0",
                                           legalemail="m@example.fi"), org="Esimerkki Oy"),
    "fi-registrar": _fi_contact(FiContactExt(role=4, type=1, is_finnish=False), org="Example Hosting AB"),
}

CONTACT_UPDATES: dict[str, ContactUpdate] = {
    "plain": ContactUpdate(id="RG1", postal_info=(PostalInfoChange(addr=Address(city="Lund", cc="SE")),),
                           voice="", email="a@example.se", add_status=("clientDeleteProhibited",)),
    "iis": ContactUpdate(id="SE1", extensions=(IisContactUpdate("SE802405019101"),)),
    "eurid": ContactUpdate(id="EU1", extensions=(EuridContactUpdate(lang="en", country_of_citizenship="FI"),)),
    "norid": ContactUpdate(id="NO1", extensions=(NoridContactExt("organizationNumber", "974760673"),)),
    "neulevel": ContactUpdate(id="US1", extensions=(NeulevelContactExt("P3", "C12"),)),
}

OTHER_COMMANDS: dict[str, Command[Any]] = {
    "contact:delete": ContactDelete("RG1"),
    "contact:info": ContactInfoQuery("RG1", auth_pw="c0ntact-Pw"),
    "domain:create": sample_domain("exempel.se", "RG1"),
    "domain:create-thin": sample_domain("exempel.com", None),
    "domain:update": DomainUpdate(name="exempel.se", add_ns=("ns3.example.net",), rem_contacts=(("tech", "RG1"),),
                                  registrant="RG2", auth_pw="n3w-Pw"),
    "domain:update-iis": DomainUpdate(name="exempel.se", extensions=(IisDomainUpdate(client_delete=True),)),
    "domain:delete": DomainDelete("exempel.se"),
    "domain:renew": DomainRenew("exempel.se", dt.date(2027, 3, 14), 2),
    "domain:transfer-request": DomainTransfer("exempel.se", "request", auth_pw="d0main-Pw", period_years=1),
    "domain:transfer-query": DomainTransfer("exempel.se", "query"),
    "domain:info": DomainInfoQuery("exempel.se"),
    "domain:check": DomainCheck(("exempel.se", "exempel.nu")),
    "poll:req": PollRequest(),
    "poll:ack": PollAck("12"),
}


@pytest.fixture(scope="module")
def validator() -> FrameValidator:
    v = FrameValidator()
    assert v.eurid_schema and v.traficom_schema is not None, "shared/epp-ext-schemas must be installed"
    return v


def _frame(command: Command[Any]) -> bytes:
    build: Callable[[Any, str], bytes] = binding_for(command).build
    return build(command, "matrix-1")


@pytest.mark.parametrize("name", sorted(CONTACT_CREATES))
def test_contact_create_per_extension_is_valid(validator: FrameValidator, name: str) -> None:
    assert validator.errors(_frame(CONTACT_CREATES[name])) == []


@pytest.mark.parametrize("name", sorted(CONTACT_UPDATES))
def test_contact_update_per_extension_is_valid(validator: FrameValidator, name: str) -> None:
    assert validator.errors(_frame(CONTACT_UPDATES[name])) == []


@pytest.mark.parametrize("name", sorted(OTHER_COMMANDS))
def test_every_other_command_is_valid(validator: FrameValidator, name: str) -> None:
    assert validator.errors(_frame(OTHER_COMMANDS[name])) == []


def test_the_matrix_can_fail(validator: FrameValidator) -> None:
    """Each schema source is live: a wrong value under each is refused."""
    eurid = _frame(CONTACT_CREATES["eurid-person"]).replace(b">sv<", b">swe<")
    fi = _frame(CONTACT_CREATES["fi-foreign-person"]).replace(b"T00:00:00.0Z", b"")
    dk = _frame(CONTACT_CREATES["dkhm"]).replace(b">company<", b">firma<")
    us = _frame(CONTACT_CREATES["neulevel"]).replace(b"AppPurpose=P1", b"AppPurpose=P7")
    base = _frame(OTHER_COMMANDS["domain:check"]).replace(b"<domain:name>exempel.se</domain:name>", b"")
    base = base.replace(b"<domain:name>exempel.nu</domain:name>", b"")
    for frame in (eurid, fi, dk, us, base):
        assert validator.errors(frame)
