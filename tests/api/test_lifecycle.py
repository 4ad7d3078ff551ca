"""The lifecycle API end to end against the TLS sandbox: renew, delete, transfer out and transfer in."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.epp.client import EppClient
from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from adapters.epp.xml import xs_date
from gateway.errors import RegistrationEnded
from gateway.http.context import SERVICES
from gateway.outbox.payloads import EppRelease
from gateway.services.lifecycle import RELEASE_CHANGE_ID
from tests.adapters.epp.test_xml import sample_contact, sample_domain
from tests.conftest import VALID_BODY, Gateway, Tokens, body, running_gateway, running_sandbox
from tests.store.conftest import pg_cluster, pg_dsn  # noqa: F401  (fixtures: the PostgreSQL store)

pytestmark = pytest.mark.integration

#: The registrar a transferred-in domain comes from: another account at the same sandbox registry.
LOSING = "registrar2"
LOSING_PASSWORD = "sandbox-pass-2"
AUTH_CODE = "d0main-Pw"  # the authInfo ``sample_domain`` gives the domain


@pytest.fixture
def sandbox(pki: DevPki) -> Iterator[SandboxThread]:
    """The shared sandbox with a second registrar account (the losing side of a transfer in)."""
    with running_sandbox(pki, **{LOSING: LOSING_PASSWORD}) as sb:
        yield sb


async def registered(gw: Gateway, data: dict[str, Any]) -> str:
    r = await gw.post(data)
    assert r.status == 202, await r.text()
    reg_id: str = (await r.json())["id"]
    reg = await gw.wait_status(reg_id, {"delivered", "failed"})
    assert reg["status"] == "delivered", reg
    return reg_id


async def act(gw: Gateway, reg_id: str, action: str, json: Any = None, role: str = "ordering") -> Any:
    kw: dict[str, Any] = {"json": json} if json is not None else {}
    return await gw.client.post(f"/v1/registrations/{reg_id}/{action}", headers=gw.tokens.h(role), **kw)


async def registration(gw: Gateway, reg_id: str) -> dict[str, Any]:
    r = await gw.client.get(f"/v1/registrations/{reg_id}", headers=gw.tokens.h("privacy"))
    assert r.status == 200
    data: dict[str, Any] = await r.json()
    return data


async def wait_for(
    gw: Gateway, reg_id: str, done: Callable[[dict[str, Any]], bool], limit_s: float = 10.0
) -> dict[str, Any]:
    """The registration once ``done`` holds for it (bounded: the last view after ``limit_s``)."""
    for _ in range(int(limit_s / 0.05)):
        reg = await registration(gw, reg_id)
        if done(reg):
            return reg
        await asyncio.sleep(0.05)
    return await registration(gw, reg_id)


def event_kinds(reg: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in reg["events"]]


def entries(reg: dict[str, Any], command: str) -> list[dict[str, Any]]:
    return [e for e in reg["disclosures"] if e["command"] == command]


def subject_contact(reg: dict[str, Any]) -> str:
    [create] = entries(reg, "contact:create")
    cid: str = create["objects"]["contact"]
    return cid


# -- renew ------------------------------------------------------------------------------------------------


async def test_renew_moves_the_expiry_at_the_registry_and_on_the_registration(gateway: Gateway) -> None:
    reg_id = await registered(gateway, VALID_BODY)
    domains = gateway.sandbox.sandbox.domains
    before = xs_date(domains["exempel.se"]["ex_date"])
    assert before is not None

    r = await act(gateway, reg_id, "renew", {"years": 2})
    assert r.status == 202, await r.text()
    answer = await r.json()
    assert answer["registration_id"] == reg_id and answer["operation"] == "renewal"
    assert answer["recipient"] == "iis-se" and answer["operation_id"].startswith("renew-")
    assert "ended_at" not in answer

    reg = await wait_for(gateway, reg_id, lambda g: "renewed" in event_kinds(g))
    after = xs_date(domains["exempel.se"]["ex_date"])
    assert after == before.replace(year=before.year + 2)
    assert reg["expires_at"] == after.isoformat()
    assert event_kinds(reg)[-2:] == ["renewal_requested", "renewed"]
    requested = reg["events"][-2]
    assert requested["source"] == "api" and requested["detail"]["years"] == 2
    [entry] = entries(reg, "domain:renew")
    # no personal data went: no fields, transfer basis "no personal data"
    assert entry["outcome"] == "delivered" and entry["fields"] == [] and entry["result_code"] == "1000"
    assert entry["transfer"]["category"] == "no_personal_data"
    assert reg["status"] == "delivered" and reg["ended_at"] is None


async def test_renew_refusals_name_the_field_or_the_state(gateway: Gateway) -> None:
    reg_id = await registered(gateway, VALID_BODY)
    for bad, loc in (({"years": 0}, ["years"]), ({"years": 11}, ["years"]), ({}, ["years"]),
                     ({"years": "2"}, ["years"]), ({"years": 1, "period": 1}, ["period"])):
        r = await act(gateway, reg_id, "renew", bad)
        assert r.status == 422, bad
        problem = await r.json()
        assert problem["code"] == "validation_failed" and [e["loc"] for e in problem["errors"]] == [loc]
    # another client's registration, an unknown one and a malformed id all look absent
    for rid, role in ((reg_id, "other_ordering"), ("0" * 32, "ordering"), ("nope", "ordering")):
        r = await act(gateway, rid, "renew", {"years": 1}, role=role)
        assert r.status == 404 and (await r.json())["code"] == "not_found"
    # staff do not drive the lifecycle
    assert (await act(gateway, reg_id, "renew", {"years": 1}, role="privacy")).status == 403
    # a blocked registration has nothing at the registry to renew
    r = await gateway.post(body(domain="exempel.cn"))
    blocked = (await r.json())["registration_id"]
    r = await act(gateway, blocked, "renew", {"years": 1})
    assert r.status == 409 and (await r.json())["code"] == "registration_not_active"
    assert (await act(gateway, blocked, "delete")).status == 409
    assert not gateway.sandbox.sandbox.commands_of("domain:renew")


# -- delete and transfer out -------------------------------------------------------------------------------


async def test_delete_removes_the_domain_and_its_contact_at_the_registry(gateway: Gateway) -> None:
    reg_id = await registered(gateway, VALID_BODY)
    sandbox = gateway.sandbox.sandbox
    held = subject_contact(await registration(gateway, reg_id))
    assert held in sandbox.contacts

    r = await act(gateway, reg_id, "delete")
    assert r.status == 202, await r.text()
    answer = await r.json()
    assert answer["operation"] == "deletion" and answer["end_reason"] == "deleted"
    # our role ended at once, before the registry answered
    now = await registration(gateway, reg_id)
    assert now["ended_at"] == answer["ended_at"] and now["end_reason"] == "deleted"
    assert "deletion_requested" in event_kinds(now)

    reg = await wait_for(gateway, reg_id, lambda g: bool(entries(g, "contact:delete")))
    assert "exempel.se" not in sandbox.domains
    assert held not in sandbox.contacts
    [dd] = entries(reg, "domain:delete")
    assert dd["outcome"] == "deleted" and dd["fields"] == []
    [cd] = entries(reg, "contact:delete")
    assert cd["outcome"] == "deleted" and cd["objects"]["contact"] == held
    [event] = [e for e in reg["events"] if e["kind"] == "deletion_requested"]
    assert event["source"] == "api"

    # a second deletion, a transfer out or a renewal after the end: refused, nothing queued
    for action, data in (("delete", None), ("transfer-out", None), ("renew", {"years": 1})):
        r = await act(gateway, reg_id, action, data)
        assert r.status == 409, action
        problem = await r.json()
        assert problem["code"] == "registration_ended" and problem["end_reason"] == "deleted"
    assert len((await registration(gateway, reg_id))["deliveries"]) == 2  # the registration's, the deletion's


async def test_delete_keeps_the_contact_another_domain_of_the_person_uses(gateway: Gateway) -> None:
    first = await registered(gateway, VALID_BODY)
    second = await registered(gateway, body(domain="andra.se", order_ref="ORD-1002"))
    sandbox = gateway.sandbox.sandbox
    held = subject_contact(await registration(gateway, first))
    # the second domain of the same person, with the same data, points at the contact the registry holds
    assert sandbox.domains["andra.se"]["registrant"] == held

    assert (await act(gateway, first, "delete")).status == 202
    # the release row done: the domain deleted, and its contact decision made (none is due)
    reg = await wait_for(gateway, first, lambda g: [d["state"] for d in g["deliveries"]] == ["done", "done"])
    assert "exempel.se" not in sandbox.domains
    assert held in sandbox.contacts and entries(reg, "contact:delete") == []
    assert sandbox.commands_of("contact:delete") == []

    # the last domain using it goes: now the contact goes too
    assert (await act(gateway, second, "delete")).status == 202
    reg2 = await wait_for(gateway, second, lambda g: bool(entries(g, "contact:delete")))
    assert [e["objects"]["contact"] for e in entries(reg2, "contact:delete")] == [held]
    assert held not in sandbox.contacts and "andra.se" not in sandbox.domains


async def test_an_end_raced_by_another_is_refused_with_nothing_written(gateway: Gateway) -> None:
    """Two ends of one registration at once (two instances): both read it active; the outbox's unique change id
    lets one release in, and the other answers 409 with the winner's end, having written nothing."""
    reg_id = await registered(gateway, VALID_BODY)
    lifecycle = gateway.client.app[SERVICES].lifecycle
    # both requests past their check (the stale read of the slower one), then both queue
    reg, policy = await lifecycle._active("shop", reg_id)
    stale = copy.deepcopy(reg)
    won = await lifecycle._queue(reg, policy, "deletion", EppRelease("exempel.se", delete_domain=True),
                                 RELEASE_CHANGE_ID, {})
    with pytest.raises(RegistrationEnded) as lost:
        await lifecycle._queue(stale, policy, "transfer_out", EppRelease("exempel.se", delete_domain=False),
                               RELEASE_CHANGE_ID, {})
    assert lost.value.extra["end_reason"] == won["end_reason"] == "deleted"
    reg = await wait_for(gateway, reg_id, lambda g: [d["state"] for d in g["deliveries"]] == ["done", "done"])
    assert [e["kind"] for e in reg["events"] if e["source"] == "api"] == ["deletion_requested"]
    assert reg["end_reason"] == "deleted"


async def test_delete_and_a_raced_end_on_postgresql(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens, pg_dsn: str  # noqa: F811
) -> None:
    """The same on PostgreSQL: the unique change id refuses the second end there too, writing nothing."""
    async with running_gateway(tmp_path, pki, sandbox, tokens, database_url=pg_dsn) as gw:
        reg_id = await registered(gw, VALID_BODY)
        lifecycle = gw.client.app[SERVICES].lifecycle
        reg, policy = await lifecycle._active("shop", reg_id)
        assert (await act(gw, reg_id, "delete")).status == 202
        with pytest.raises(RegistrationEnded):
            await lifecycle._queue(reg, policy, "transfer_out", EppRelease("exempel.se", delete_domain=False),
                                   RELEASE_CHANGE_ID, {})
        done = await wait_for(gw, reg_id, lambda g: bool(entries(g, "contact:delete")))
        assert [e["kind"] for e in done["events"] if e["source"] == "api"] == ["deletion_requested"]
        assert "exempel.se" not in sandbox.sandbox.domains
        assert [e["outcome"] for e in entries(done, "contact:delete")] == ["deleted"]


async def test_transfer_out_ends_our_role_and_lists_contacts_the_registry_keeps(gateway: Gateway) -> None:
    reg_id = await registered(gateway, VALID_BODY)
    sandbox = gateway.sandbox.sandbox
    held = subject_contact(await registration(gateway, reg_id))

    r = await act(gateway, reg_id, "transfer-out")
    assert r.status == 202, await r.text()
    answer = await r.json()
    assert answer["operation"] == "transfer_out" and answer["end_reason"] == "transferred_out"
    reg = await wait_for(gateway, reg_id, lambda g: bool(entries(g, "contact:delete")))
    assert reg["end_reason"] == "transferred_out" and reg["ended_at"] == answer["ended_at"]
    [event] = [e for e in reg["events"] if e["kind"] == "transferred_out"]
    assert event["source"] == "api"
    # the domain is not ours to delete; it still points at the holder's contact, so the registry keeps it
    # (2305), and the log lists it as held by the registry
    assert "exempel.se" in sandbox.domains and entries(reg, "domain:delete") == []
    [cd] = entries(reg, "contact:delete")
    assert (cd["outcome"], cd["result_code"], cd["objects"]["contact"]) == ("refused", "2305", held)
    assert held in sandbox.contacts
    r = await act(gateway, reg_id, "transfer-out")
    assert r.status == 409 and (await r.json())["end_reason"] == "transferred_out"


# -- transfer in -------------------------------------------------------------------------------------------


async def _at_other_registrar(gw: Gateway, name: str) -> None:
    """``name`` registered by the losing registrar, with its own holder contact and ``AUTH_CODE``."""
    async with EppClient(gw.sandbox.endpoint(client_id=LOSING)) as client:
        await client.send(sample_contact("R2HOLDER"), "seed-contact")
        await client.send(sample_domain(name, "R2HOLDER"), "seed-domain")
    assert gw.sandbox.sandbox.domains[name]["cl_id"] == LOSING


async def post_transfer(gw: Gateway, data: dict[str, Any], key: str = "transfer-key-1") -> Any:
    headers = gw.tokens.h("ordering") | {"Idempotency-Key": key}
    return await gw.client.post("/v1/transfers", json=data, headers=headers)


async def test_transfer_in_completes_and_points_the_domain_at_our_contact(gateway: Gateway) -> None:
    await _at_other_registrar(gateway, "exempel.se")
    sandbox = gateway.sandbox.sandbox
    sandbox.auto_approve_transfers = True
    data = {**copy.deepcopy(VALID_BODY), "auth_code": AUTH_CODE}

    r = await post_transfer(gateway, data)
    assert r.status == 202, await r.text()
    plan = await r.json()
    assert plan["kind"] == "transfer" and plan["status"] == "accepted"
    [t] = plan["transfers"]
    assert t["recipient"] == "iis-se" and t["transfer"]["category"] == "eea" and "email" in t["fields_sent"]
    assert AUTH_CODE not in await r.text()
    # the same key and body replay the answer
    again = await post_transfer(gateway, data)
    assert again.status == 202 and (await again.json())["id"] == plan["id"]

    reg = await gateway.wait_status(plan["id"], {"delivered", "failed"})
    assert reg["status"] == "delivered", reg
    assert reg["kind"] == "transfer"
    commands = [e["command"] for e in reg["disclosures"]]
    assert commands[0] == "domain:transfer" and commands[-1] == "domain:update"
    assert "contact:create" in commands
    ours = subject_contact(reg)
    domain = sandbox.domains["exempel.se"]
    assert domain["cl_id"] == "registrar1" and domain["registrant"] == ours
    assert sandbox.contacts[ours]["cl_id"] == "registrar1"
    assert ["transfer_requested", "transfer_completed"] == [k for k in event_kinds(reg) if k.startswith("transfer_")]
    assert AUTH_CODE not in str(reg)
    # the domain is ours now: it can be renewed like a registered one
    r = await act(gateway, plan["id"], "renew", {"years": 1})
    assert r.status == 202


async def test_transfer_in_with_a_wrong_auth_code_is_refused_and_parked(gateway: Gateway) -> None:
    await _at_other_registrar(gateway, "exempel.se")
    gateway.sandbox.sandbox.auto_approve_transfers = True
    r = await post_transfer(gateway, {**copy.deepcopy(VALID_BODY), "auth_code": "wrong-code"})
    assert r.status == 202, await r.text()
    reg = await gateway.wait_status((await r.json())["id"], {"delivered", "failed"})
    assert reg["status"] == "failed"
    [refused] = entries(reg, "domain:transfer")
    assert (refused["outcome"], refused["result_code"]) == ("refused", "2202")
    assert entries(reg, "contact:create") == []
    assert [d["state"] for d in reg["deliveries"] if d["recipient"] == "iis-se"] == ["needs_attention"]
    assert gateway.sandbox.sandbox.domains["exempel.se"]["cl_id"] == LOSING


async def test_transfer_in_refuses_bad_input(gateway: Gateway) -> None:
    r = await post_transfer(gateway, copy.deepcopy(VALID_BODY))
    assert r.status == 422 and [e["loc"] for e in (await r.json())["errors"]] == [["auth_code"]]
    for code in ("", "with space", "x" * 129, "kod-ä"):
        r = await post_transfer(gateway, {**copy.deepcopy(VALID_BODY), "auth_code": code})
        assert r.status == 422, code
        assert [e["loc"] for e in (await r.json())["errors"]] == [["auth_code"]]
        assert code not in await r.text() or code == ""
    r = await gateway.client.post("/v1/transfers", json={**VALID_BODY, "auth_code": AUTH_CODE},
                                  headers=gateway.tokens.h("ordering"))
    assert r.status == 400 and (await r.json())["code"] == "idempotency_key_required"
    # the registration rules hold: a blocked country is refused whole, nothing sent
    r = await post_transfer(gateway, {**body(domain="exempel.cn"), "auth_code": AUTH_CODE}, key="transfer-key-2")
    assert r.status == 422 and (await r.json())["code"] == "transfer_blocked"
    assert gateway.sandbox.sandbox.frames == []
