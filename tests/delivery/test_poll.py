"""Registry notices through the poll worker against the TLS sandbox: each applied once, acknowledged after.

The gateway is the real one (``running_gateway``: SQLite, delivery worker) and the notices are the
sandbox's own (a transfer away by another registrar, an expiry, a contact the registry changed, our
transfer in approved).  Most tests drive one ``PollWorker`` round by hand (the gateway's own poll
workers are off, ``poll_interval_s=0``); one runs them as ``gateway run`` does.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.epp.client import EppClient
from adapters.epp.lifecycle import poll_once, transfer_request_with
from adapters.epp.notices import (
    ActionCompleted,
    ContactChanged,
    DomainDeleted,
    DomainExpired,
    TransferAway,
    TransferIn,
    Unknown,
)
from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from adapters.epp.types import Endpoint, PollMessage, TransferData
from gateway.delivery.poll import PollWorker, effect_of, poll_workers, registry_recipient
from gateway.policy.loader import load_policies
from tests.adapters.epp.test_xml import sample_contact, sample_domain
from tests.conftest import ROOT, VALID_BODY, Gateway, Tokens, running_gateway, running_sandbox

pytestmark = pytest.mark.integration

OTHER = "registrar2"
OTHER_PASSWORD = "sandbox-pass-2"
AUTH_CODE = "d0main-Pw"  # the authInfo ``sample_domain`` gives a domain


@pytest.fixture
def sandbox(pki: DevPki) -> Iterator[SandboxThread]:
    """The sandbox with a second registrar account (the other side of a transfer)."""
    with running_sandbox(pki, **{OTHER: OTHER_PASSWORD}) as sb:
        yield sb


def poller(gw: Gateway) -> PollWorker:
    """The gateway's poll worker for the sandbox, built as ``compose`` builds it (one per endpoint)."""
    policies = load_policies(ROOT / "config")
    [worker] = poll_workers(gw.store, policies, dict.fromkeys(policies.recipients, gw.sandbox.endpoint()), EppClient)
    return worker


async def registered(gw: Gateway, data: dict[str, Any]) -> str:
    r = await gw.post(data)
    assert r.status == 202, await r.text()
    reg_id: str = (await r.json())["id"]
    reg = await gw.wait_status(reg_id, {"delivered", "failed"})
    assert reg["status"] == "delivered", reg
    return reg_id


async def view(gw: Gateway, reg_id: str) -> dict[str, Any]:
    reg = await gw.store.registration(reg_id)
    assert reg is not None
    return reg


async def wait_for(gw: Gateway, reg_id: str, done: Callable[[dict[str, Any]], bool],
                   limit_s: float = 10.0) -> dict[str, Any]:
    """The registration once ``done`` holds for it (bounded: the last view after ``limit_s``)."""
    for _ in range(int(limit_s / 0.05)):
        reg = await view(gw, reg_id)
        if done(reg):
            return reg
        await asyncio.sleep(0.05)
    return await view(gw, reg_id)


def kinds(reg: dict[str, Any], source: str = "registry") -> list[str]:
    return [e["kind"] for e in reg["events"] if e["source"] == source]


def queue(gw: Gateway, client_id: str = "registrar1") -> list[dict[str, Any]]:
    return list(gw.sandbox.sandbox.poll_queues.get(client_id, []))


def releases(reg: dict[str, Any]) -> list[dict[str, Any]]:
    """The registration's rows at its registry after the registration's own (its release)."""
    rows = [d for d in reg["deliveries"] if d["recipient"] == "iis-se"]
    return rows[1:]


def subject_contact(reg: dict[str, Any]) -> str:
    [create] = [e for e in reg["disclosures"] if e["command"] == "contact:create"]
    cid: str = create["objects"]["contact"]
    return cid


# -- the pure part: what each notice does -------------------------------------------------------------------


def _message(**kw: Any) -> PollMessage:
    return PollMessage(id="42", queued_at="2025-01-02T03:04:05Z", text="Anna Andersson's domain", **kw)


def test_each_notice_has_its_effect_and_no_text() -> None:
    trn = TransferData("exempel.se", "serverApproved", re_id="registrar2", ac_id="registrar1",
                       re_date="2025-01-01T00:00:00Z")
    away = effect_of(TransferAway("exempel.se", "approved"), _message(transfer=trn))
    assert (away.kind, away.end_reason, away.release, away.wake, away.domain) == (
        "transferred_away", "transferred_out", True, False, "exempel.se")
    assert away.detail == {"status": "approved", "tr_status": "serverApproved", "gaining_registrar": "registrar2",
                           "losing_registrar": "registrar1", "requested_at": "2025-01-01T00:00:00Z",
                           "queued_at": "2025-01-02T03:04:05Z"}
    pending = effect_of(TransferAway("exempel.se", "pending"), _message(transfer=trn))
    assert (pending.kind, pending.end_reason, pending.release) == ("transfer_away_requested", None, False)
    for status, kind in (("approved", "transfer_approved"), ("rejected", "transfer_rejected"),
                         ("cancelled", "transfer_cancelled")):
        e = effect_of(TransferIn("exempel.se", status), _message(transfer=trn))  # type: ignore[arg-type]
        assert (e.kind, e.wake, e.end_reason, e.release) == (kind, True, None, False)
    assert not effect_of(TransferIn("exempel.se", "pending"), _message()).wake
    for notice, kind in ((DomainExpired("exempel.se"), "expired"), (DomainDeleted("exempel.se"), "deleted")):
        e = effect_of(notice, _message())
        assert (e.kind, e.end_reason, e.release, e.domain) == (kind, kind, True, "exempel.se")
    changed = effect_of(ContactChanged("HOLDER1"), _message())
    assert (changed.kind, changed.contact_id, changed.end_reason, changed.release) == (
        "contact_changed", "HOLDER1", None, False)
    done = effect_of(ActionCompleted("domain", "exempel.se", True, sv_trid="SV-1"), _message())
    assert (done.kind, done.domain, done.detail["sv_trid"]) == ("action_completed", "exempel.se", "SV-1")
    unknown = effect_of(Unknown("Anna Andersson's domain", domain="exempel.se"), _message())
    assert (unknown.kind, unknown.domain, unknown.release) == ("unknown", None, False)
    # the registry's free text (which may quote the holder) is in no effect
    for e in (away, pending, changed, done, unknown):
        assert "Anna" not in repr(e)


def test_the_registry_of_a_registration_is_its_plans() -> None:
    policies = load_policies(ROOT / "config")
    plan = [{"recipient": "escrow-agent", "kind": "escrow"}, {"recipient": "iis-se", "kind": "registry"}]
    assert registry_recipient({"plan": plan, "tld": "se"}, policies) == "iis-se"
    assert registry_recipient({"plan_json": '[{"recipient": "iis-se", "kind": "registry"}]'}, policies) == "iis-se"
    assert registry_recipient({"plan": [], "tld": "se"}, policies) == "iis-se"  # a plan naming none: its TLD's
    assert registry_recipient({"plan": [], "tld": "invalid"}, policies) is None


def test_one_worker_per_registry_endpoint_for_the_epp_recipients_only() -> None:
    policies = load_policies(ROOT / "config")
    epp = sorted(rid for rid, p in policies.recipients.items() if p.protocol == "epp" and p.enabled)
    assert len(epp) >= 3 and "iis-se" in epp
    shared, own = Endpoint("epp.example", 700, "us", "pw"), Endpoint("epp.other.example", 700, "us", "pw")
    endpoints = dict.fromkeys(policies.recipients, shared) | {"iis-se": own}
    workers = poll_workers(None, policies, endpoints, EppClient)  # type: ignore[arg-type]
    assert sorted((w.registry, sorted(w.recipients)) for w in workers) == sorted([
        ("us@epp.example:700", [rid for rid in epp if rid != "iis-se"]),
        ("us@epp.other.example:700", ["iis-se"]),
    ])


# -- against the sandbox -----------------------------------------------------------------------------------


async def test_a_transfer_away_ends_our_role_and_releases_the_contacts(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    async with running_gateway(tmp_path, pki, sandbox, tokens, poll_interval_s=0) as gw:
        reg_id = await registered(gw, VALID_BODY)
        sb = sandbox.sandbox
        async with EppClient(sandbox.endpoint(client_id=OTHER)) as other:
            assert (await transfer_request_with(other, "exempel.se", sb.domains["exempel.se"]["auth_pw"], 1,
                                                "t-away")).status == "pending"
        assert sb.approve_pending_transfers() == ["exempel.se"]
        assert len(queue(gw)) == 2  # "requested", then "completed"

        worker = poller(gw)
        assert await worker.poll_round() == 2
        assert queue(gw) == []  # both acknowledged
        reg = await wait_for(gw, reg_id, lambda r: all(d["state"] != "pending" for d in releases(r)))
        assert kinds(reg) == ["transfer_away_requested", "transferred_away"]
        assert (reg["end_reason"], reg["ended_at"] is not None) == ("transferred_out", True)
        completed = reg["events"][-1]["detail"]
        assert completed["gaining_registrar"] == OTHER and completed["msg_id"]
        # one release row, contacts only (the domain is the other registrar's now): its contact:delete was sent
        [release] = releases(reg)
        assert release["state"] == "done"
        # the other registrar's domain still points at the holder's contact: the registry keeps it (2305), and
        # the log lists it as held there
        [delete] = [e for e in reg["disclosures"] if e["command"] == "contact:delete"]
        assert (delete["objects"].get("contact"), delete["outcome"], delete["result_code"]) == (
            subject_contact(reg), "refused", "2305")
        assert sb.domains["exempel.se"]["cl_id"] == OTHER
        # nothing more to read, nothing applied again
        assert await worker.poll_round() == 0
        assert kinds(await view(gw, reg_id)) == ["transfer_away_requested", "transferred_away"]


async def test_a_message_read_again_is_applied_once_and_then_acknowledged(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    async with running_gateway(tmp_path, pki, sandbox, tokens, poll_interval_s=0) as gw:
        reg_id = await registered(gw, VALID_BODY)
        holder = subject_contact(await view(gw, reg_id))
        sandbox.sandbox.expire_domain("exempel.se")
        worker = poller(gw)
        # the effect is recorded, then the process "dies" before the ack: the message is still queued
        async with EppClient(sandbox.endpoint()) as client:
            message, _ack = await poll_once(client, "t")
        assert message is not None
        assert await worker.apply(message) is True
        assert await worker.apply(message) is False  # the same message again: nothing new
        assert len(queue(gw)) == 1
        # the next round reads it again, applies nothing, and acknowledges it
        assert await worker.poll_round() == 1
        assert queue(gw) == []
        reg = await wait_for(gw, reg_id, lambda r: all(d["state"] != "pending" for d in releases(r)))
        assert kinds(reg) == ["expired"]
        assert reg["end_reason"] == "expired"
        [release] = releases(reg)
        assert release["state"] == "done"
        # the domain is gone, so the holder's contact is deleted at the registry (and logged)
        deleted = [e for e in reg["disclosures"] if e["command"] == "contact:delete"]
        assert [(e["objects"].get("contact"), e["outcome"]) for e in deleted] == [(holder, "deleted")]
        assert sandbox.sandbox.find_contact(holder) is None


async def test_a_contact_changed_by_the_registry_is_an_event_on_every_registration_holding_it(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    async with running_gateway(tmp_path, pki, sandbox, tokens, poll_interval_s=0) as gw:
        first = await registered(gw, VALID_BODY)
        second_body = copy.deepcopy(VALID_BODY) | {"domain": "exempel2.se", "order_ref": "ORD-1002"}
        second = await registered(gw, second_body)  # the same holder: the registry's contact is reused
        other = copy.deepcopy(VALID_BODY) | {"domain": "annan.se", "order_ref": "ORD-1003"}
        other["registrant"] |= {"name": "Bo Berg", "email": "bo@example.se",
                                "national_id": {"scheme": "se_personnummer", "value": "19900101-1239"}}
        third = await registered(gw, other)
        holder = subject_contact(await view(gw, first))
        assert holder != subject_contact(await view(gw, third))

        sandbox.sandbox.registry_update_contact(holder, city="Lund")
        worker = poller(gw)
        [message] = [m for m in queue(gw)]
        assert await worker.poll_round() == 1
        assert queue(gw) == []
        for reg_id in (first, second):
            reg = await view(gw, reg_id)
            assert kinds(reg) == ["contact_changed"], reg_id
            detail = reg["events"][0]["detail"]
            assert detail["contact"] == holder and detail["msg_id"] == message["id"]
            assert reg["ended_at"] is None
        assert kinds(await view(gw, third)) == []
        # apply_notice's one registration is the first by id; the event there names the others, and theirs it
        primary, rest = sorted((first, second))
        assert (await view(gw, primary))["events"][0]["detail"]["also"] == [rest]
        assert (await view(gw, rest))["events"][0]["detail"]["primary"] == primary
        # applying it again adds nothing anywhere
        async with EppClient(sandbox.endpoint()) as client:
            sandbox.sandbox.registry_update_contact(holder, city="Malmö")
            again, _ack = await poll_once(client, "t")
        assert again is not None
        assert await worker.apply(again) is True
        assert await worker.apply(again) is False
        assert [kinds(await view(gw, r)) for r in (first, second)] == [["contact_changed"] * 2] * 2


async def test_our_approved_transfer_wakes_its_waiting_row(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    async with running_gateway(tmp_path, pki, sandbox, tokens, poll_interval_s=0) as gw:
        async with EppClient(sandbox.endpoint(client_id=OTHER)) as client:
            await client.send(sample_contact("R2HOLDER"), "seed-contact")
            await client.send(sample_domain("exempel.se", "R2HOLDER"), "seed-domain")
        headers = tokens.h("ordering") | {"Idempotency-Key": "transfer-in-0001"}
        r = await gw.client.post("/v1/transfers", json=copy.deepcopy(VALID_BODY) | {"auth_code": AUTH_CODE},
                                 headers=headers)
        assert r.status == 202, await r.text()
        reg_id = (await r.json())["id"]
        # requested, then waiting for the losing registrar or the registry (an hour, unless woken)
        reg = await wait_for(gw, reg_id, lambda r: "transfer_requested" in kinds(r, "gateway"))
        assert reg["status"] != "delivered"
        assert sandbox.sandbox.approve_pending_transfers() == ["exempel.se"]

        assert await poller(gw).poll_round() == 1
        reg = await wait_for(gw, reg_id, lambda r: r["status"] == "delivered")
        assert reg["status"] == "delivered", reg
        assert kinds(reg) == ["transfer_approved"]
        assert "transfer_completed" in kinds(reg, "gateway")
        assert sandbox.sandbox.domains["exempel.se"]["cl_id"] == "registrar1"


async def test_the_gateway_runs_its_poll_worker(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    """As ``gateway run`` wires it: the registry's deletion is read, applied and acknowledged by itself."""
    async with running_gateway(tmp_path, pki, sandbox, tokens, poll_interval_s=0.1) as gw:
        reg_id = await registered(gw, VALID_BODY)
        sandbox.sandbox.registry_delete_domain("exempel.se")
        reg = await wait_for(gw, reg_id, lambda r: r["ended_at"] is not None and queue(gw) == [])
        assert (kinds(reg), reg["end_reason"]) == (["deleted"], "deleted")
        assert queue(gw) == []
        assert len(releases(reg)) == 1
