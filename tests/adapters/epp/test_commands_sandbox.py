"""Every EPP command and registry extension, through the client, against the TLS sandbox registry."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from adapters.epp.client import EppClient
from adapters.epp.extensions import (
    DkhmContactExt,
    EuridContactExt,
    EuridContactUpdate,
    IisContactExt,
    IisContactUpdate,
    IisDomainUpdate,
    NeulevelContactExt,
    NoridContactExt,
    dkhm,
    eurid,
    iis,
    neulevel,
    norid,
)
from adapters.epp.sandbox import RegistrySandbox
from adapters.epp.tls import DevPki
from adapters.epp.types import (
    Address,
    ContactDelete,
    ContactInfoQuery,
    ContactUpdate,
    DiscloseSpec,
    DomainDelete,
    DomainInfoQuery,
    DomainRenew,
    DomainTransfer,
    DomainUpdate,
    PollAck,
    PollRequest,
    PostalInfoChange,
)
from adapters.epp.xml import xs_date
from gateway.errors import PermanentDeliveryError
from tests.adapters.epp.test_xml import sample_contact, sample_domain

pytestmark = pytest.mark.integration

ORGNO = IisContactExt(orgno="[SE]802405-0190", vatno="SE802405019001")


@pytest.fixture
async def sandbox(pki: DevPki) -> AsyncIterator[RegistrySandbox]:
    async with RegistrySandbox(
        pki=pki, validate_schemas=True, require_client_cert=True, accounts={"registrar2": "other-secret"}
    ) as sb:
        yield sb
        # Every frame either side sent must have passed the official schemas and the hand checks.
        assert sb.schema_errors == []


async def _seed(client: EppClient, name: str = "exempel.se", *contact_ids: str) -> None:
    for cid in contact_ids or ("RG1A2B",):
        await client.send(sample_contact(cid, ORGNO), f"seed-{cid}")
    await client.send(sample_domain(name, (contact_ids or ("RG1A2B",))[0]), f"seed-{name}")


async def test_contact_update_and_delete(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        await client.send(sample_contact("CON1", ORGNO), "t-c1")
        update = ContactUpdate(
            id="CON1",
            add_status=("clientDeleteProhibited",),
            postal_info=(
                PostalInfoChange(
                    type="loc", name="Anna Berg", org="", addr=Address(city="Uppsala", cc="SE", street=("Ny väg 2",))
                ),
            ),
            voice="",
            email="anna.berg@example.se",
            disclose=DiscloseSpec(flag=0, elements=("email", "voice")),
            extensions=(IisContactUpdate(vatno="SE802405019101"),),
        )
        result = await client.send(update)
        assert result.code == 1000 and result.sv_trid and result.cl_trid
        contact = sandbox.contacts["CON1"]
        assert contact["status"] == ["clientDeleteProhibited"]
        assert contact["postal_info"][0] | {"street": ["Ny väg 2"]} == {
            "type": "loc", "name": "Anna Berg", "org": None, "street": ["Ny väg 2"],
            "city": "Uppsala", "sp": None, "pc": None, "cc": "SE",
        }  # fmt: skip
        assert (contact["voice"], contact["email"], contact["fax"]) == (None, "anna.berg@example.se", "+46.812345679")
        assert contact["disclose"] == {"flag": "0", "elements": ["voice", "email"]}
        assert contact["extensions"][iis.NS] == {"orgno": "[SE]802405-0190", "vatno": "SE802405019101"}
        assert (await client.send(ContactInfoQuery("CON1"), "t-ci")).statuses == ("clientDeleteProhibited",)

        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(ContactDelete("CON1"))
        assert excinfo.value.result_code == 2304  # clientDeleteProhibited
        await client.send(ContactUpdate(id="CON1", rem_status=("clientDeleteProhibited",)))
        assert (await client.send(ContactDelete("CON1"))).code == 1000
        assert "CON1" not in sandbox.contacts

        # A contact in use by a domain cannot go.
        await _seed(client, "linked.se", "CON2")
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(ContactDelete("CON2"))
        assert excinfo.value.result_code == 2305


async def test_domain_update_with_registrant_change_is_idempotent(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        await _seed(client, "exempel.se", "OLD1")
        await client.send(sample_contact("NEW1", ORGNO), "t-new")
        update = DomainUpdate(
            name="exempel.se",
            add_ns=("ns3.example.net",),
            rem_ns=("ns1.example.net",),
            add_contacts=(("billing", "NEW1"),),
            rem_contacts=(("tech", "OLD1"),),
            add_status=("clientTransferProhibited",),
            registrant="NEW1",
            auth_pw="new-d0main-Pw",
        )
        first = await client.send(update)
        again = await client.send(update)  # the same update resent: nothing doubles
        assert (first.code, again.code) == (1000, 1000)
        assert first.cl_trid == again.cl_trid  # derived from the operation, so a resend is recognisable
        assert first.sv_trid != again.sv_trid
        info = await client.send(DomainInfoQuery("exempel.se"), "t-info")
        assert info.registrant == "NEW1"
        assert info.nameservers == ("ns2.example.net", "ns3.example.net")
        assert info.contacts == (("admin", "OLD1"), ("billing", "NEW1"))
        assert info.statuses == ("clientTransferProhibited",)
        assert sandbox.domains["exempel.se"]["auth_pw"] == "new-d0main-Pw"

        await client.send(DomainUpdate(name="exempel.se", add_status=("clientUpdateProhibited",)))
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(DomainUpdate(name="exempel.se", add_ns=("ns4.example.net",)))
        assert excinfo.value.result_code == 2304
        # Lifting the lock is itself allowed.
        await client.send(DomainUpdate(name="exempel.se", rem_status=("clientUpdateProhibited",)))


async def test_domain_renew_and_delete(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        await _seed(client)
        before = xs_date((await client.send(DomainInfoQuery("exempel.se"), "t-i1")).ex_date)
        assert before is not None
        renew = DomainRenew(name="exempel.se", cur_exp_date=before, period_years=1)
        renewed = await client.send(renew)
        assert renewed.result.code == 1000 and renewed.name == "exempel.se"
        assert xs_date(renewed.ex_date) == before.replace(year=before.year + 1)
        # Replaying the same renew cannot renew twice: curExpDate no longer matches.
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(renew)
        assert excinfo.value.result_code == 2306

        assert (await client.send(DomainDelete("exempel.se"))).code == 1000
        assert "exempel.se" not in sandbox.domains
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(DomainDelete("exempel.se"))
        assert excinfo.value.result_code == 2303


async def test_transfer_request_approve_with_poll_messages(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as losing, EppClient(sandbox.endpoint(client_id="registrar2")) as gaining:
        await _seed(losing)
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await gaining.send(DomainTransfer("exempel.se", "request", auth_pw="wrong-pw"))
        assert excinfo.value.result_code == 2202

        requested = await gaining.send(
            DomainTransfer("exempel.se", "request", auth_pw="d0main-Pw", period_years=1)
        )
        assert requested.pending is True and requested.result.code == 1001
        assert requested.transfer is not None
        assert (requested.transfer.tr_status, requested.transfer.re_id, requested.transfer.ac_id) == (
            "pending", "registrar2", "registrar1",
        )  # fmt: skip
        assert "pendingTransfer" in (await losing.send(DomainInfoQuery("exempel.se"), "t-i1")).statuses

        queued = await losing.send(PollRequest())
        assert (queued.result.code, queued.count) == (1301, 1)
        assert queued.message is not None and queued.message.text == "Transfer requested"
        assert queued.message.transfer is not None and queued.message.transfer.re_id == "registrar2"
        acked = await losing.send(PollAck(queued.message.id))
        assert (acked.result.code, acked.count, acked.msg_id) == (1000, 0, queued.message.id)

        query = await losing.send(DomainTransfer("exempel.se", "query"))
        assert query.transfer is not None and query.transfer.tr_status == "pending"
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await gaining.send(DomainTransfer("exempel.se", "approve"))
        assert excinfo.value.result_code == 2201  # only the sponsor approves
        approved = await losing.send(DomainTransfer("exempel.se", "approve"))
        assert approved.transfer is not None and approved.transfer.tr_status == "clientApproved"
        assert sandbox.domains["exempel.se"]["cl_id"] == "registrar2"

        notice = await gaining.send(PollRequest())
        assert notice.message is not None and notice.message.text == "Transfer approved"
        await gaining.send(PollAck(notice.message.id))
        empty = await gaining.send(PollRequest())
        assert (empty.result.code, empty.count, empty.message) == (1300, 0, None)
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await gaining.send(PollAck(notice.message.id))
        assert excinfo.value.result_code == 2303


async def test_transfer_reject_and_cancel(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as owner, EppClient(sandbox.endpoint(client_id="registrar2")) as other:
        await _seed(owner)
        request = DomainTransfer("exempel.se", "request", auth_pw="d0main-Pw")
        assert (await other.send(request)).pending
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await other.send(request)
        assert excinfo.value.result_code == 2300  # already pending
        rejected = await owner.send(DomainTransfer("exempel.se", "reject"))
        assert rejected.transfer is not None and rejected.transfer.tr_status == "clientRejected"
        assert (await other.send(request)).pending
        cancelled = await other.send(DomainTransfer("exempel.se", "cancel"))
        assert cancelled.transfer is not None and cancelled.transfer.tr_status == "clientCancelled"
        assert sandbox.domains["exempel.se"]["cl_id"] == "registrar1"
        texts = []
        while (polled := await owner.send(PollRequest())).message is not None:
            texts.append(polled.message.text)
            await owner.send(PollAck(polled.message.id))
        assert texts == ["Transfer requested", "Transfer requested", "Transfer cancelled"]
        assert [m["msg"] for m in sandbox.poll_queues["registrar2"]] == ["Transfer rejected"]
        # The sponsor cannot "transfer" to itself.
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await owner.send(request)
        assert excinfo.value.result_code == 2106


async def test_every_registry_extension(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        # .se: iis create, contact update (vatno) and domain update (clientDelete)
        await _seed(client, "exempel.se", "SE1")
        await client.send(ContactUpdate(id="SE1", extensions=(IisContactUpdate(vatno="SE802405019201"),)))
        await client.send(DomainUpdate(name="exempel.se", extensions=(IisDomainUpdate(client_delete=True),)))
        assert sandbox.contacts["SE1"]["extensions"][iis.NS]["vatno"] == "SE802405019201"
        assert sandbox.domains["exempel.se"]["extensions"][iis.NS] == {"clientDelete": "1"}

        # .eu: contact-ext create and update
        eu = EuridContactExt(type="registrant", natural_person=True, lang="sv", country_of_citizenship="SE")
        await client.send(sample_contact("EU1", eu), "t-eu")
        await client.send(ContactUpdate(id="EU1", extensions=(EuridContactUpdate(lang="en", vat="BE0123"),)))
        assert sandbox.contacts["EU1"]["extensions"][eurid.NS] | {} == {
            "type": "registrant", "lang": "en", "vat": "BE0123", "naturalPerson": "true", "countryOfCitizenship": "SE",
        }  # fmt: skip

        # .dk: dkhm elements, validated by the real dkhm-4.5.xsd
        dk = DkhmContactExt(user_type="association", cvr="29403473")
        await client.send(sample_contact("DK1", dk), "t-dk")
        assert sandbox.contacts["DK1"]["extensions"][dkhm.NS] == {"userType": "association", "CVR": "29403473"}

        # .no: organisation identity, then a corrected identity
        no = NoridContactExt(identity_type="organizationNumber", identity="985821585")
        await client.send(sample_contact("NO1", no), "t-no")
        assert sandbox.contacts["NO1"]["extensions"][norid.NS] == {
            "type": "organization", "identity": "985821585", "identity@type": "organizationNumber",
        }  # fmt: skip
        fixed = dataclasses.replace(no, identity="974760673")
        await client.send(ContactUpdate(id="NO1", extensions=(fixed,)))
        assert sandbox.contacts["NO1"]["extensions"][norid.NS]["identity"] == "974760673"

        # .no: a person is a person contact too, with or without an identity
        await client.send(sample_contact("NO2P", NoridContactExt(contact_type="person")), "t-no-p")
        assert sandbox.contacts["NO2P"]["extensions"][norid.NS] == {"type": "person"}

        # .us: the nexus on the registrant's contact create, changed by a contact update
        us = sample_contact("US1", NeulevelContactExt(app_purpose="P1", nexus_category="C11"))
        await client.send(us, "t-us")
        assert sandbox.contacts["US1"]["extensions"][neulevel.NS] == {"unspec": "AppPurpose=P1 NexusCategory=C11"}
        await client.send(sample_domain("exempel.us", "US1"), "t-us-d")
        assert sandbox.domains["exempel.us"]["extensions"] == {}
        foreign = NeulevelContactExt(app_purpose="P2", nexus_category="C31", nexus_country="SE")
        await client.send(ContactUpdate(id="US1", extensions=(foreign,)))
        unspec = sandbox.contacts["US1"]["extensions"][neulevel.NS]["unspec"]
        assert unspec == "AppPurpose=P2 NexusCategory=C31/SE"


async def test_registry_refuses_malformed_extension_values(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        bad = sample_contact("NO2", NoridContactExt(identity_type="organizationNumber", identity="98582158"))
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(bad, "t-bad-no")
        assert excinfo.value.result_code == 2001
        assert any("organizationNumber has nine digits" in e for e in sandbox.schema_errors)
        assert "NO2" not in sandbox.contacts
    sandbox.schema_errors.clear()
