"""Renew, transfer, delete and the poll queue through ``adapters.epp.lifecycle``, against the TLS sandbox."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.epp.client import EppClient
from adapters.epp.lifecycle import (
    delete_domain_with,
    poll_ack,
    poll_once,
    renew_with,
    transfer_request_with,
)
from adapters.epp.notices import (
    ContactChanged,
    DomainDeleted,
    DomainExpired,
    Notice,
    TransferAway,
    TransferIn,
    classify,
)
from adapters.epp.sandbox import RegistrySandbox
from adapters.epp.sandbox.persist import PersistentSandbox
from adapters.epp.tls import DevPki
from adapters.epp.types import (
    ContactDelete,
    ContactInfoQuery,
    DomainCreate,
    DomainInfoQuery,
    DomainRenew,
    DomainTransfer,
)
from adapters.epp.xml import xs_date
from gateway.errors import PermanentDeliveryError
from tests.adapters.epp.test_xml import sample_contact, sample_domain

pytestmark = pytest.mark.integration

LOSING = "registrar1"
GAINING = "registrar2"


@pytest.fixture
async def sandbox(pki: DevPki) -> AsyncIterator[RegistrySandbox]:
    async with RegistrySandbox(pki=pki, accounts={GAINING: "other-secret"}) as sb:
        yield sb
        # every frame either side sent, poll messages included, passed the official schemas
        assert sb.schema_errors == []


async def _seed(client: EppClient, name: str = "exempel.se", contact_id: str = "HOLDER1") -> None:
    await client.send(sample_contact(contact_id), f"seed-{contact_id}")
    await client.send(sample_domain(name, contact_id), f"seed-{name}")


async def _drain(client: EppClient, our_client_id: str) -> list[Notice]:
    """Every queued message as a notice, each acknowledged after it was read."""
    notices: list[Notice] = []
    for _ in range(20):
        message, ack = await poll_once(client, "t-poll")
        if message is None:
            assert await ack() is None
            return notices
        notices.append(classify(message, our_client_id=our_client_id))
        acked = await ack()
        assert acked is not None and acked.msg_id == message.id
    raise AssertionError("poll queue did not drain")


async def test_renew_returns_the_new_expiry_and_never_renews_twice(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        await _seed(client)
        before = xs_date((await client.send(DomainInfoQuery("exempel.se"), "t-info")).ex_date)
        assert before is not None
        renewal = await renew_with(client, "exempel.se", 2, "t-renew", cur_exp_date=before)
        expected = before.replace(year=before.year + 2)
        assert (renewal.ex_date, renewal.reconciled, renewal.result.code) == (expected, False, 1000)
        assert xs_date(sandbox.domains["exempel.se"]["ex_date"]) == renewal.ex_date
        # The same renewal again (its answer lost): found applied, nothing sent.
        again = await renew_with(client, "exempel.se", 2, "t-renew", cur_exp_date=before)
        assert (again.ex_date, again.reconciled) == (renewal.ex_date, True)
        renews = sandbox.commands_of("domain:renew", code=1000)
        assert [r.cl_trid for r in renews] == [f"t-renew-domain-renew-{before:%Y%m%d}-2y"]
        # An expiry that is neither the one asked about nor that one renewed: refused, not guessed.
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await renew_with(client, "exempel.se", 1, "t-renew", cur_exp_date=before - dt.timedelta(days=3))
        assert excinfo.value.result_code == 2306
        # Without a recorded expiry the current one is read: a fresh renewal.
        fresh = await renew_with(client, "exempel.se", 1, "t-renew2")
        assert fresh.ex_date == renewal.ex_date.replace(year=renewal.ex_date.year + 1)
        # curExpDate must match at the registry too (the client's own DomainRenew).
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(DomainRenew("exempel.se", before, 1))
        assert excinfo.value.result_code == 2306


async def test_transfer_approved_by_the_losing_registrar(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as losing, EppClient(sandbox.endpoint(client_id=GAINING)) as gaining:
        await _seed(losing)
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await transfer_request_with(gaining, "exempel.se", "wrong-pw", 1, "t-trn")
        assert excinfo.value.result_code == 2202
        request = await transfer_request_with(gaining, "exempel.se", "d0main-Pw", 1, "t-trn")
        assert (request.status, request.result.code, request.reconciled) == ("pending", 1001, False)
        again = await transfer_request_with(gaining, "exempel.se", "d0main-Pw", 1, "t-trn")
        assert (again.status, again.reconciled) == ("pending", True)  # 2300, then the query shows it is ours

        assert await _drain(losing, LOSING) == [TransferAway("exempel.se", "pending")]
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await gaining.send(DomainTransfer("exempel.se", "approve"))
        assert excinfo.value.result_code == 2201  # only the losing registrar approves
        await losing.send(DomainTransfer("exempel.se", "approve"))
        info = await gaining.send(DomainInfoQuery("exempel.se"), "t-info")
        assert info.cl_id == GAINING and info.statuses == ("ok",)
        assert await _drain(gaining, GAINING) == [TransferIn("exempel.se", "approved")]
        assert await _drain(losing, LOSING) == [TransferAway("exempel.se", "approved")]
        # Asking once more, as a retry would: the domain is already ours (2106), reconciled.
        done = await transfer_request_with(gaining, "exempel.se", "d0main-Pw", 1, "t-trn")
        assert (done.status, done.reconciled) == ("approved", True)


async def test_transfer_approved_by_the_registry(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as losing, EppClient(sandbox.endpoint(client_id=GAINING)) as gaining:
        await _seed(losing, "forst.se")
        await losing.send(sample_domain("andra.se", "HOLDER1"), "seed-andra")
        ex_before = xs_date(sandbox.domains["forst.se"]["ex_date"])
        assert ex_before is not None

        # The pending period ran out.
        assert (await transfer_request_with(gaining, "forst.se", "d0main-Pw", 1, "t-trn1")).status == "pending"
        assert sandbox.approve_pending_transfers() == ["forst.se"]
        info = await gaining.send(DomainInfoQuery("forst.se"), "t-info")
        assert info.cl_id == GAINING and xs_date(info.ex_date) == ex_before.replace(year=ex_before.year + 1)

        # A registry where the auth code alone authorises a transfer completes it at once.
        sandbox.auto_approve_transfers = True
        instant = await transfer_request_with(gaining, "andra.se", "d0main-Pw", None, "t-trn2")
        assert (instant.status, instant.result.code) == ("approved", 1000)
        assert instant.transfer is not None and instant.transfer.tr_status == "serverApproved"
        assert sandbox.domains["andra.se"]["cl_id"] == GAINING

        assert await _drain(gaining, GAINING) == [
            TransferIn("forst.se", "approved"), TransferIn("andra.se", "approved"),
        ]  # fmt: skip
        assert await _drain(losing, LOSING) == [
            TransferAway("forst.se", "pending"), TransferAway("forst.se", "approved"),
            TransferAway("andra.se", "approved"),
        ]  # fmt: skip


async def test_delete_leaves_the_contacts(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        await _seed(client)
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(ContactDelete("HOLDER1"))
        assert excinfo.value.result_code == 2305  # still the domain's registrant
        deleted = await delete_domain_with(client, "exempel.se", "t-del")
        assert (deleted.pending, deleted.reconciled, deleted.result.code) == (False, False, 1000)
        assert "exempel.se" not in sandbox.domains
        again = await delete_domain_with(client, "exempel.se", "t-del")  # a retry after a lost answer
        assert (again.pending, again.reconciled, again.result.code) == (False, True, 2303)
        # The contact is still held by the registry; deleting it is the registrar's own command.
        assert (await client.send(ContactInfoQuery("HOLDER1"), "t-ci")).id == "HOLDER1"
        assert (await client.send(ContactDelete("HOLDER1"))).code == 1000


async def test_delete_refused_while_hosts_under_the_domain_are_used(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        await _seed(client, "host.se")
        delegated = DomainCreate(
            name="kund.se", period_years=1, auth_pw="d0main-Pw", nameservers=("ns1.host.se",),
            registrant="HOLDER1",
        )  # fmt: skip
        await client.send(delegated, "seed-kund")
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await delete_domain_with(client, "host.se", "t-del")
        assert excinfo.value.result_code == 2305
        assert "host.se" in sandbox.domains


async def test_pending_delete_then_purge(sandbox: RegistrySandbox) -> None:
    sandbox.pending_delete = True
    async with EppClient(sandbox.endpoint()) as client:
        await _seed(client)
        deleted = await delete_domain_with(client, "exempel.se", "t-del")
        assert (deleted.pending, deleted.result.code) == (True, 1001)
        info = await client.send(DomainInfoQuery("exempel.se"), "t-info")
        assert "pendingDelete" in info.statuses
        ex_date = xs_date(info.ex_date)
        assert ex_date is not None
        with pytest.raises(PermanentDeliveryError) as excinfo:
            await client.send(DomainRenew("exempel.se", ex_date, 1))
        assert excinfo.value.result_code == 2304
        again = await delete_domain_with(client, "exempel.se", "t-del")
        assert (again.pending, again.reconciled) == (True, True)
        assert sandbox.purge_pending_deletes() == ["exempel.se"]
        assert await _drain(client, LOSING) == [DomainDeleted("exempel.se")]


async def test_registry_initiated_events_reach_the_sponsor(sandbox: RegistrySandbox) -> None:
    async with EppClient(sandbox.endpoint()) as client:
        await _seed(client, "gammal.se")
        await client.send(sample_domain("stoppad.se", "HOLDER1"), "seed-stoppad")
        sandbox.expire_domain("gammal.se")
        sandbox.registry_delete_domain("stoppad.se")
        sandbox.registry_update_contact("HOLDER1", city="Göteborg", pc="411 01")
        message, ack = await poll_once(client, "t-poll")
        assert message is not None and message.text == "Domain expired" and message.domain == "gammal.se"
        await ack()
        assert await _drain(client, LOSING) == [DomainDeleted("stoppad.se"), ContactChanged("HOLDER1")]
        assert "HOLDER1" in sandbox.contacts and "gammal.se" not in sandbox.domains
        assert classify(message, our_client_id=LOSING) == DomainExpired("gammal.se")
        # An ack repeated after a lost answer finds the message gone: done, not an error.
        assert await poll_ack(client, message.id, "t-poll") is None


async def test_registry_events_and_pending_deletes_survive_a_restart(pki: DevPki, tmp_path: Path) -> None:
    first = PersistentSandbox(pki=pki, state_dir=tmp_path, validate_schemas=False)
    first.seed_contact("HOLDER1", cl_id=LOSING)
    first.seed_domain("exempel.se", cl_id=LOSING, registrant="HOLDER1")
    first.seed_domain("kvar.se", cl_id=LOSING, registrant="HOLDER1")
    first.domains["kvar.se"]["pending_delete"] = {"since": "2024-01-01T00:00:00.0Z", "sv_trid": "SBX-DEL-1"}
    first.save()
    first.registry_update_contact("HOLDER1", city="Lund")
    first.expire_domain("exempel.se")
    saved = json.loads((tmp_path / "objects.json").read_text(encoding="utf-8"))
    assert [m["msg"] for m in saved["poll_queues"][LOSING]] == ["Contact updated by the registry", "Domain expired"]

    second = PersistentSandbox(pki=pki, state_dir=tmp_path, validate_schemas=False)
    assert second.contacts["HOLDER1"]["postal_info"][0]["city"] == "Lund"
    assert "exempel.se" not in second.domains
    assert second.purge_pending_deletes() == ["kvar.se"]
    third = PersistentSandbox(pki=pki, state_dir=tmp_path, validate_schemas=False)
    assert [m["msg"] for m in third.poll_queues[LOSING]] == [
        "Contact updated by the registry", "Domain expired", "Domain deleted",
    ]  # fmt: skip
    assert third.poll("req", None, LOSING).code == 1301
