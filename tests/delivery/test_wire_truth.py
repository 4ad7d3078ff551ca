"""The log tells the truth about the wire: one entry per command that carried personal data, checked
against the frames the TLS sandbox received, not the gateway's own view.

- a ``contact:create`` the registry accepted is a disclosure even when the ``domain:create`` then fails;
  the registration undoes it (``contact:delete``, logged), and a contact the registry will not delete
  stays listed, in the Art. 15 extract too;
- a frame written with no answer is "possibly delivered", and the retry settles it via <info>;
- an attempt that never left (connection refused) stores no fields and no values, and rights processing
  does not count that registry as a recipient;
- the Chapter V basis is evaluated again when sending: a decision that ended since acceptance blocks it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
from pathlib import Path
from typing import Any

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.delivery.worker import DeliveryWorker
from gateway.http.context import SERVICES
from gateway.policy.loader import load_policies
from gateway.rights.extract import verify_extract
from gateway.store.base import DisclosureFilter
from tests.conftest import ROOT, VALID_BODY, Gateway, Tokens, body_for_tld, running_gateway
from tests.rights.conftest import open_confirmed, public_key_pem

#: EPP 2306 "parameter value policy error": the registry refuses the domain for good.
POLICY_ERROR = 2306


def _frames(gw: Gateway, element: bytes) -> list[bytes]:
    return [f for f in gw.sandbox.sandbox.frames if element in f]


async def _entries(gw: Gateway, reg_id: str) -> list[dict[str, Any]]:
    r = await gw.client.get("/v1/disclosures", params={"registration_id": reg_id}, headers=gw.tokens.h("privacy"))
    assert r.status == 200
    items: list[dict[str, Any]] = (await r.json())["items"]
    return sorted(items, key=lambda e: e["seq"])


async def test_a_refused_domain_create_still_logs_the_contact_and_undoes_it(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    sandbox.faults.fail_next("domain:create", POLICY_ERROR)
    async with running_gateway(tmp_path, pki, sandbox, tokens) as gw:
        r = await gw.post(VALID_BODY)
        assert r.status == 202, await r.text()
        reg_id = (await r.json())["id"]
        assert (await gw.wait_status(reg_id, {"failed"}))["status"] == "failed"
        entries = await _entries(gw, reg_id)

    steps = [(e["command"], e["outcome"]) for e in entries]
    assert steps == [("contact:create", "delivered"), ("domain:create", "refused"), ("contact:delete", "deleted")]
    contact, domain, delete = entries
    assert "email" in contact["fields"] and contact["sv_trid"]  # the data reached the registry
    assert domain["result_code"] == str(POLICY_ERROR) and domain["fields"] == []
    held_id = contact["objects"]["contact"]
    assert delete["objects"] == {"contact": held_id} and delete["fields"] == []
    # the wire agrees: the subject's contact went out once, then was deleted, and the registry holds none
    creates = [f for f in _frames(gw, b"<contact:create") if b"Andersson" in f]
    assert len(creates) == 1
    assert len(_frames(gw, b"<contact:delete")) == 1
    assert held_id not in sandbox.sandbox.contacts
    assert "exempel.se" not in sandbox.sandbox.domains


async def test_a_contact_the_registry_keeps_is_in_the_extract(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    sandbox.sandbox.refuse_contact_delete = 2305  # this registry refuses every delete
    sandbox.faults.fail_next("domain:create", POLICY_ERROR)
    async with running_gateway(tmp_path, pki, sandbox, tokens) as gw:
        r = await gw.post(VALID_BODY)
        reg_id = (await r.json())["id"]
        await gw.wait_status(reg_id, {"failed"})
        entries = await _entries(gw, reg_id)
        assert [(e["command"], e["outcome"]) for e in entries] == [
            ("contact:create", "delivered"), ("domain:create", "refused"), ("contact:delete", "refused")]
        held_id = entries[0]["objects"]["contact"]
        assert held_id in sandbox.sandbox.contacts  # the registry holds the person's data

        # the person's Art. 15 extract says so: the contact with the data at the registry, and the refused delete
        req = await open_confirmed(gw, email="anna.andersson@example.se", national_id="811218-9876")
        r = await gw.client.get(f"/v1/requests/{req['id']}/extract.json", params={"lang": "en"},
                                headers=gw.tokens.h("privacy"))
        assert r.status == 200, await r.text()
        extract = await r.json()
        assert verify_extract(extract, await public_key_pem(gw)) == []
    at_registry = [d for d in extract["disclosures"] if d["recipient"]["id"] == "iis-se"]
    received = [d for d in at_registry if d["outcome"] == "delivered"]
    assert len(received) == 1 and held_id in received[0]["leaf"]["objects_json"]
    assert received[0]["leaf"]["command"] == "contact:create" and "email" in received[0]["fields"]
    assert received[0]["outcome_text"] == "Disclosed"
    kept = [d for d in at_registry if d["leaf"]["command"] == "contact:delete"]
    assert [d["outcome"] for d in kept] == ["refused"]


async def test_a_create_without_an_answer_is_possibly_delivered_then_settled(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    # the registry creates the contact but its answer never comes within the gateway's EPP timeout
    sandbox.faults.stall_seconds("contact:create", 3.0)
    async with running_gateway(tmp_path, pki, sandbox, tokens, epp_timeout_s=1.0, epp_attempts=1) as gw:
        r = await gw.post(VALID_BODY)
        reg_id = (await r.json())["id"]
        assert (await gw.wait_status(reg_id, {"delivered"}, limit_s=20))["status"] == "delivered"
        entries = await _entries(gw, reg_id)
    contact_steps = [(e["outcome"], e["reason"]) for e in entries if e["command"] == "contact:create"]
    assert contact_steps[0][0] == "possibly_delivered"
    # the retry sent it again, got "object exists", and <info> showed it is ours: settled, logged
    assert contact_steps[-1] == ("delivered", "reconciled via <info>")
    possibly = next(e for e in entries if e["outcome"] == "possibly_delivered")
    assert "email" in possibly["fields"]  # the registry may hold these: rights processing must reach it
    assert [e["command"] for e in entries if e["outcome"] == "delivered"] == ["contact:create", "domain:create"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(gw: Gateway, *, port: int | None = None, **kw: Any) -> DeliveryWorker:
    """A delivery worker over the gateway's own store and ledger, as ``gateway.compose`` builds one, with
    every registry at the sandbox (or at ``port``, where nothing listens)."""
    endpoint = dataclasses.replace(gw.sandbox.sandbox.endpoint(), **({"port": port} if port else {}))
    return DeliveryWorker(gw.client.app[SERVICES].store, gw.client.app[SERVICES].ledger,
                          load_policies(ROOT / "config"), lambda recipient: endpoint, **kw)


async def test_nothing_sent_stores_nothing_and_reaches_no_one(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    # the registry is down: every connection is refused, so no frame ever leaves the gateway
    async with running_gateway(tmp_path, pki, sandbox, tokens, worker_enabled=False) as gw:
        r = await gw.post(VALID_BODY)
        reg_id = (await r.json())["id"]
        later = dt.datetime.now(dt.UTC)

        def clock() -> dt.datetime:
            return later

        worker = _worker(gw, port=_closed_port(), clock=clock, backoff_max_s=0.0)
        for _ in range(3):
            assert await worker.run_once() == 1
            later += dt.timedelta(seconds=1)  # due again (no backoff) at the next round
        entries = await gw.store.disclosures(DisclosureFilter(registration_id=reg_id))
        assert [e.outcome for e in entries] == ["failed"] * 3
        assert all(e.fields == () and e.values_ct is None for e in entries)
        # still pending: retried until the recipient's deadline (72 h), not given up after a few attempts
        reg = await gw.store.registration(reg_id)
        assert reg is not None and reg["status"] == "delivering"
        # ... and once the deadline has passed, parked for staff (the next attempt fails too)
        later += dt.timedelta(hours=73)
        assert await worker.run_once() == 1
        parked = await gw.store.parked()
        assert [p["registration_id"] for p in parked] == [reg_id] and "deadline" in parked[0]["parked_reason"]
        # rights processing does not count this registry as having (possibly) received anything
        subject_id = entries[0].subject_id
        assert subject_id is not None
        rights = gw.client.app[SERVICES].rights
        assert await rights._recipients_reached([subject_id]) == []
    assert sandbox.sandbox.frames == []


async def test_a_transfer_basis_that_ended_since_acceptance_blocks_the_send(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    async with running_gateway(tmp_path, pki, sandbox, tokens, worker_enabled=False) as gw:
        r = await gw.post(body_for_tld("uk"))
        assert r.status == 202, await r.text()
        plan = await r.json()
        [t] = plan["transfers"]
        assert t["transfer"]["category"] == "adequacy"  # accepted inside the UK decision's window
        ends = dt.date.fromisoformat(t["transfer"]["valid_until"])
        later = dt.datetime.combine(ends + dt.timedelta(days=5), dt.time(12), tzinfo=dt.UTC)
        worker = _worker(gw, clock=lambda: later)
        assert await worker.run_once() == 1
        [entry] = await gw.store.disclosures(DisclosureFilter(registration_id=plan["id"]))
        assert entry.outcome == "blocked" and entry.fields == () and entry.values_ct is None
        assert entry.category == "blocked" and entry.reason is not None and "ended" in entry.reason
        # the plan keeps the acceptance-time decision; the entry carries the send-time one
        reg = await gw.store.registration(plan["id"])
        assert reg is not None and reg["status"] == "failed"
    assert sandbox.sandbox.frames == []


async def test_a_second_domain_of_the_same_person_reuses_the_registry_contact(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    sandbox.sandbox.assign_contact_ids = True  # as at .dk: the registry names its contacts itself
    async with running_gateway(tmp_path, pki, sandbox, tokens) as gw:
        ids = []
        for label in ("forsta", "andra"):
            r = await gw.post(dict(VALID_BODY, domain=f"{label}.se", order_ref=label))
            assert r.status == 202, await r.text()
            ids.append((await r.json())["id"])
            assert (await gw.wait_status(ids[-1], {"delivered"}))["status"] == "delivered"
        first, second = [await _entries(gw, reg_id) for reg_id in ids]
        # the person's data went to the registry once; the second domain points at the same contact
        creates = [f for f in _frames(gw, b"<contact:create") if b"Andersson" in f]
        assert len(creates) == 1
        # and the registrar's own tech contact was ensured once for this registry, not per order
        assert len(_frames(gw, b"<contact:create")) == 2
        [contact] = [e for e in first if e["command"] == "contact:create"]
        assert [e["command"] for e in second] == ["domain:create"]
        held = contact["objects"]["contact"]
        assert sandbox.sandbox.domains["andra.se"]["registrant"] == held
        assert sandbox.sandbox.domains["forsta.se"]["registrant"] == held
        # changed data is another copy: a new contact for the third domain
        changed = dict(VALID_BODY, domain="tredje.se", order_ref="tredje")
        changed["registrant"] = dict(VALID_BODY["registrant"], email="anna.ny@example.se")
        r = await gw.post(changed)
        reg_id = (await r.json())["id"]
        assert (await gw.wait_status(reg_id, {"delivered"}))["status"] == "delivered"
        third = await _entries(gw, reg_id)
        assert [e["command"] for e in third] == ["contact:create", "domain:create"]
        assert third[0]["objects"]["contact"] != held


async def test_no_contact_is_shared_across_people_sharing_an_email_or_across_clients(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    """Reuse is per person and ordering client: a household sharing one e-mail gets one contact each, and the
    same person ordering through another client gets another (that client's changes must not reach it)."""
    family = "familjen@example.se"
    per = dict(VALID_BODY["registrant"], name="Per Persson", email=family)
    qarin = dict(VALID_BODY["registrant"], name="Qarin Qvist", email=family,
                 national_id={"scheme": "se_personnummer", "value": "19880320-0016"})
    async with running_gateway(tmp_path, pki, sandbox, tokens) as gw:
        orders = [("per.se", per, "ordering"), ("qarin.se", qarin, "ordering"), ("per-hos-b.se", per, "other_ordering")]
        for domain, registrant, role in orders:
            r = await gw.post(dict(VALID_BODY, domain=domain, order_ref=domain, registrant=registrant), role=role)
            assert r.status == 202, await r.text()
            assert (await gw.wait_status((await r.json())["id"], {"delivered"}))["status"] == "delivered"
    domains = sandbox.sandbox.domains
    registrants = {d: domains[d]["registrant"] for d, _, _ in orders}
    assert len(set(registrants.values())) == 3  # three contacts at the registry, one per person and client
    # the wire: each contact:create carried exactly one person's name, and Per's data went once per client
    creates = [f for f in _frames(gw, b"<contact:create") if family.encode() in f]
    assert sum(b"Qarin Qvist" in f for f in creates) == 1
    assert sum(b"Per Persson" in f for f in creates) == 2
    assert not any(b"Qarin Qvist" in f and b"Per Persson" in f for f in creates)
    assert all(c in sandbox.sandbox.contacts for c in registrants.values())  # each one the registry holds
