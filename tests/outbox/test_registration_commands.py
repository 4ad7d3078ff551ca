"""The EPP commands a registration is built as: the registrar's own contact (marked, with its registry's
extension), an auth code per object, Norid persons, the .us nexus on the registrant, .fi's disclose --
and every one of them accepted by the TLS sandbox registry."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from adapters.epp.client import EppClient, register_with
from adapters.epp.extensions import (
    DkhmContactExt,
    EuridContactExt,
    FiContactExt,
    IisContactExt,
    NeulevelContactExt,
    NoridContactExt,
)
from adapters.epp.sandbox import FrameValidator, RegistrySandbox
from adapters.epp.tls import DevPki
from adapters.epp.types import RegistrationCommands
from adapters.epp.xml import build_contact_create, build_domain_create
from gateway.models import RegistrationRequest
from gateway.outbox.epp import (
    RegistrarContact,
    auth_code,
    commands_from_json,
    commands_to_json,
    nexus_on_registrant,
    norid_contact,
    registrar_extensions,
)
from gateway.outbox.payloads import EppRegistration
from gateway.policy.loader import load_policies
from gateway.services.registrations import plan_registration, registration_payload
from tests.conftest import ROOT, body_for_tld

NOW = dt.datetime(2025, 3, 14, 12, 0, tzinfo=dt.UTC)
SECRET = b"k" * 32
EPP_TLDS = ("se", "eu", "dk", "no", "fi", "us", "org", "com")


@pytest.fixture(scope="module")
def policies() -> Any:
    return load_policies(ROOT / "config")


@pytest.fixture(scope="module")
def validator() -> FrameValidator:
    return FrameValidator()


def _commands(policies: Any, tld: str, reg_id: str = "0f" * 16, **registrant: Any) -> RegistrationCommands:
    req = RegistrationRequest.model_validate_json(json.dumps(body_for_tld(tld, **registrant)))
    [plan] = [p for p in plan_registration(req, policies, NOW) if p.refusal is None and p.policy.epp is not None]
    payload, _ = registration_payload(req, reg_id, plan, RegistrarContact(), SECRET, NOW.date())
    assert isinstance(payload, EppRegistration)
    return payload.commands


@pytest.mark.parametrize("tld", EPP_TLDS)
def test_every_frame_of_a_registration_is_valid(policies: Any, validator: FrameValidator, tld: str) -> None:
    cmds = _commands(policies, tld)
    for contact in cmds.contacts:
        assert validator.errors(build_contact_create(contact, "t-1")) == [], contact.id
    assert validator.errors(build_domain_create(cmds.domain, "t-2")) == []


@pytest.mark.parametrize("tld", EPP_TLDS)
def test_the_registrar_contact_is_marked_and_carries_its_registrys_extension(policies: Any, tld: str) -> None:
    cmds = _commands(policies, tld)
    registrar = RegistrarContact()
    ids = {c.id for c in cmds.contacts}
    assert cmds.registrar_contacts == ({registrar.id} & ids)
    assert all(c.id != registrar.id for c in cmds.subject_contacts())
    kinds = {type(e) for c in cmds.contacts if c.id == registrar.id for e in c.extensions}
    expected = {"se": {IisContactExt}, "eu": {EuridContactExt}, "dk": {DkhmContactExt}, "no": {NoridContactExt},
                "fi": {FiContactExt}}.get(tld, set())
    assert kinds == (expected if registrar.id in ids else set())


def test_registrar_extensions_hold_company_data_only() -> None:
    r = RegistrarContact()
    exts = registrar_extensions(r, ["iis", "eurid", "dkhm", "norid", "ficora", "neulevel"])
    assert exts == (
        IisContactExt(orgno=r.orgno, vatno=r.vat),
        EuridContactExt(type="tech", natural_person=False, lang="en", vat=r.vat),
        DkhmContactExt(user_type="company", cvr=r.vat),
        NoridContactExt(contact_type="role"),
        FiContactExt(role=4, type=1, is_finnish=False),
    )  # no nexus: that is the registrant's


def test_registrar_contacts_round_trip_and_are_omitted_when_empty(policies: Any) -> None:
    cmds = _commands(policies, "se")
    data = commands_to_json(cmds)
    assert data["registrar_contacts"] == ["RGREGISTRAR"]
    assert commands_from_json(json.loads(json.dumps(data))) == cmds
    thin = _commands(policies, "com")
    assert thin.registrar_contacts == frozenset() and "registrar_contacts" not in commands_to_json(thin)
    assert commands_from_json(commands_to_json(thin)) == thin


def test_every_object_has_its_own_auth_code(policies: Any) -> None:
    cmds = _commands(policies, "se")
    codes = [cmds.domain.auth_pw, *(c.auth_pw for c in cmds.contacts)]
    assert len(set(codes)) == len(codes)
    again = _commands(policies, "se")  # deterministic: a retried registration addresses the same objects
    assert again.domain.auth_pw == cmds.domain.auth_pw
    other = _commands(policies, "se", reg_id="1e" * 16)
    assert other.domain.auth_pw != cmds.domain.auth_pw
    assert auth_code(SECRET, "r", "domain:a.se") != auth_code(SECRET, "r", "contact:RG1") != auth_code(SECRET, "r")


def test_norid_persons_are_person_contacts() -> None:
    assert norid_contact({"national_id_scheme": "no_fodselsnummer", "national_id": "01010750160"}, "person") == (
        NoridContactExt("nationalIdentityNumber", "01010750160", contact_type="person"))
    # a number of another country is not sent to Norid, the person still is a person contact
    assert norid_contact({"national_id_scheme": "se_personnummer", "national_id": "198112189876"}, "person") == (
        NoridContactExt(contact_type="person"))
    assert norid_contact({"national_id_scheme": "no_organisasjonsnummer", "national_id": "985821585"},
                         "organisation") == NoridContactExt("organizationNumber", "985821585")
    assert norid_contact({"national_id_scheme": "se_organisationsnummer", "national_id": "5566778899"},
                         "organisation") is None


def test_us_nexus_rides_on_the_registrant_contact(policies: Any) -> None:
    cmds = _commands(policies, "us")
    [registrant] = [c for c in cmds.contacts if c.id == cmds.domain.registrant]
    assert [type(e) for e in registrant.extensions] == [NeulevelContactExt]
    assert cmds.domain.extensions == ()
    assert nexus_on_registrant(cmds) is cmds
    # a row queued before the move: decoded as stored, moved just before sending
    nexus = registrant.extensions[0]
    assert isinstance(nexus, NeulevelContactExt)
    old = dataclasses.replace(
        cmds,
        contacts=tuple(dataclasses.replace(c, extensions=()) for c in cmds.contacts),
        domain=dataclasses.replace(cmds.domain, extensions=(nexus,)),
    )
    assert commands_from_json(commands_to_json(old)) == old
    assert nexus_on_registrant(old) == cmds


def test_fi_disclose_holds_only_what_traficom_has(policies: Any) -> None:
    cmds = _commands(policies, "fi")
    for contact in cmds.contacts:
        if contact.disclose is not None:
            assert set(contact.disclose.elements) <= {"voice", "email", "addr"}


# ---- against the TLS sandbox ------------------------------------------------------------------------


@pytest.fixture
async def sandbox(pki: DevPki) -> AsyncIterator[RegistrySandbox]:
    async with RegistrySandbox(pki=pki, validate_schemas=True, require_client_cert=True) as sb:
        yield sb
        assert sb.schema_errors == []


@pytest.mark.integration
@pytest.mark.parametrize("tld", EPP_TLDS)
async def test_registrations_pass_the_sandbox_registry(policies: Any, sandbox: RegistrySandbox, tld: str) -> None:
    first = _commands(policies, tld)
    second = _commands(policies, tld, reg_id="1e" * 16, label="andra")
    async with EppClient(sandbox.endpoint()) as client:
        for n, cmds in enumerate((first, second)):
            outcome = await register_with(client, nexus_on_registrant(cmds), f"reg-{tld}-{n}")
            assert outcome.domain_result.code == 1000
    for cmds in (first, second):
        domain = sandbox.domains[cmds.domain.name]
        assert domain["auth_pw"] == cmds.domain.auth_pw
        for contact in cmds.contacts:
            stored = sandbox.find_contact(contact.id)
            assert stored is not None
            if contact.id not in cmds.registrar_contacts:
                assert stored["auth_pw"] == contact.auth_pw != domain["auth_pw"]
    registrar = sandbox.find_contact(RegistrarContact().id)
    assert (registrar is not None) == bool(first.registrar_contacts)
