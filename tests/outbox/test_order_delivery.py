"""Orders are built into commands by the delivery worker, against the TLS sandbox registry.

- a row accepted now (an order) goes out as the commands the order names: the deterministic contact id
  and auth codes, and the disclosure entries quote the digest of the commands that were sent, not the
  order's;
- a row queued by an earlier version (``EppRegistration``, commands built at acceptance, sealed with the
  old encoder) is still delivered as stored, under its own digest.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from adapters.epp.sandbox.server import SandboxThread
from gateway.delivery.worker import DeliveryWorker
from gateway.ledger.checkpoint import CheckpointSigner
from gateway.ledger.entry import DisclosureEntry
from gateway.ledger.keys import BlindIndexer, KeyRing, seal
from gateway.models import RegistrationRequest
from gateway.outbox.epp import RegistrarContact, auth_code, commands_for
from gateway.outbox.payloads import EppOrder, EppRegistration, OutboxContent, outbox_aad
from gateway.policy.loader import PolicySet, load_policies
from gateway.services.ledger import Ledger
from gateway.services.registrations import RegistrationService
from gateway.store.base import DisclosureFilter
from gateway.store.sqlite import SqliteStore
from tests.conftest import ROOT, VALID_BODY

SECRET = b"s" * 32
REGISTRY = "iis-se"
STEPS = [("contact:create", "delivered"), ("domain:create", "delivered")]


class World:
    """One gateway's services over a SQLite store, and a delivery worker to the sandbox."""

    def __init__(self, tmp_path: Path, sandbox: SandboxThread) -> None:
        self.db = tmp_path / "gateway.db"
        self.store = SqliteStore(self.db)
        self.policies: PolicySet = load_policies(ROOT / "config")
        self.ledger = Ledger(self.store, KeyRing("k1", {"k1": b"\x01" * 32}), BlindIndexer(b"\x02" * 32),
                             CheckpointSigner.generate())
        self.registrations = RegistrationService(self.store, self.ledger, self.policies, RegistrarContact(), SECRET)
        endpoint = sandbox.sandbox.endpoint()
        self.worker = DeliveryWorker(self.store, self.ledger, self.policies, lambda recipient: endpoint)

    async def accept(self, data: dict[str, Any]) -> str:
        body = json.dumps(data).encode()
        status, answer = await self.registrations.submit("shop", uuid.uuid4().hex, body,
                                                         RegistrationRequest.model_validate_json(body))
        assert status == 202, answer
        return str(answer["id"])

    def row(self, reg_id: str) -> dict[str, Any]:
        with sqlite3.connect(self.db) as c:
            c.row_factory = sqlite3.Row
            r = c.execute("SELECT id, subject_id, payload_ct, payload_digest FROM outbox WHERE registration_id=? "
                          "AND recipient=?", (reg_id, REGISTRY)).fetchone()
        return dict(r)

    async def content(self, reg_id: str) -> tuple[dict[str, Any], OutboxContent]:
        row = self.row(reg_id)
        sealed = await self.ledger.open_json(row["subject_id"], row["payload_ct"], outbox_aad(reg_id, REGISTRY))
        return row, OutboxContent.from_json(sealed)

    async def deliver(self, reg_id: str) -> list[DisclosureEntry]:
        for _ in range(5):  # bounded: one claim round delivers the registry's row
            if not await self.worker.run_once():
                break
        entries = [e async for e in self.store.iter_disclosures(DisclosureFilter(registration_id=reg_id))]
        return [e for e in entries if e.recipient == REGISTRY]


@pytest.fixture
async def world(tmp_path: Path, sandbox: SandboxThread) -> Any:
    w = World(tmp_path, sandbox)
    try:
        yield w
    finally:
        await w.store.close()


async def test_an_order_goes_out_as_the_commands_it_names_and_is_logged_with_their_digest(
    world: World, sandbox: SandboxThread
) -> None:
    reg_id = await world.accept(VALID_BODY)
    row, content = await world.content(reg_id)
    order = content.payload
    assert isinstance(order, EppOrder) and order.auth_pw is None
    # the ids and auth codes are derived at acceptance exactly as before (crash recovery relies on them)
    o = order.order
    assert o.contact_auth == auth_code(SECRET, reg_id, f"contact:{o.contact_id}")
    assert o.domain_auth == auth_code(SECRET, reg_id, "domain:exempel.se")
    assert o.registrar_auth == auth_code(SECRET, "registrar")
    assert row["payload_digest"] == order.digest()

    entries = await world.deliver(reg_id)
    sent = EppRegistration(commands_for(o, content.values, world.policies.recipients[REGISTRY], RegistrarContact()))
    assert [(e.command, e.outcome) for e in entries] == STEPS
    assert {e.payload_digest for e in entries} == {sent.digest()} != {row["payload_digest"]}
    # the wire agrees: the subject's contact under the order's id and auth code, the domain under its code
    frames = sandbox.sandbox.frames
    [create] = [f for f in frames if b"<contact:create" in f and b"Andersson" in f]
    assert o.contact_id.encode() in create and o.contact_auth.encode() in create
    [domain] = [f for f in frames if b"<domain:create" in f]
    assert o.domain_auth.encode() in domain and o.contact_id.encode() in domain


async def test_a_row_queued_with_built_commands_by_an_earlier_version_is_still_delivered(
    world: World, sandbox: SandboxThread
) -> None:
    reg_id = await world.accept(VALID_BODY)
    row, content = await world.content(reg_id)
    assert isinstance(content.payload, EppOrder)
    # what an earlier version sealed into this row: the commands built at acceptance, its JSON encoder's output
    cmds = commands_for(content.payload.order, content.values, world.policies.recipients[REGISTRY], RegistrarContact())
    old = OutboxContent(EppRegistration(cmds), content.values)
    dek = await world.ledger.dek(row["subject_id"])
    assert dek is not None
    old_ct = seal(dek, json.dumps(old.to_json(), sort_keys=True, ensure_ascii=False).encode(),
                  outbox_aad(reg_id, REGISTRY).encode())
    with sqlite3.connect(world.db) as c:
        c.execute("UPDATE outbox SET payload_ct=?, payload_digest=? WHERE id=?",
                  (old_ct, old.payload.digest(), row["id"]))

    entries = await world.deliver(reg_id)
    assert [(e.command, e.outcome) for e in entries] == STEPS
    assert {e.payload_digest for e in entries} == {old.payload.digest()}
    assert "exempel.se" in sandbox.sandbox.domains
    [create] = [f for f in sandbox.sandbox.frames if b"<contact:create" in f and b"Andersson" in f]
    assert cmds.subject_contacts()[0].id.encode() in create  # (the fixture checks every frame's schema validity)
