"""Issue 13, "HIGH: subject identity": the four reported scenarios as regression tests, each on SQLite and
on PostgreSQL, plus the seams of the fix (a registration racing an erasure, subjects from before schema 2,
the reach of a change, what an ordering client sees).

P and Q are different people sharing a family e-mail address; N1 and N2 are their personnummer.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import pytest

from gateway.identity import strong_key
from gateway.ledger.keys import new_data_key, wrap
from gateway.models import IdScheme, NationalId, Registrant
from gateway.services.changes import ChangeService
from gateway.store.base import Store
from tests.api.test_registrations import commands
from tests.conftest import ROOT, Gateway
from tests.identity.conftest import Keys, World, order, policies, registrant
from tests.store.conftest import RawDB, StoreSpec

pytestmark = pytest.mark.integration

EPP = "urn:ietf:params:xml:ns:epp-1.0"
CONTACT = "urn:ietf:params:xml:ns:contact-1.0"

E = "familjen@example.se"
N1, N2 = "19811218-9876", "19880320-0016"
P = registrant("Per Persson", E, national_id=N1, street="Persgatan 11", phone="+46 8 123 456 78")
Q = registrant("Qarin Qvist", E, national_id=N2, street="Qvarnvägen 22", phone="+46 31 123 45 67")
#: What only P's records may contain (P's name, personnummer in the forms registries get, street).
P_ONLY = ("Per Persson", "811218-9876", "198112189876", "Persgatan")


def flat(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


async def _registered_pair(world: World) -> tuple[str, str]:
    """P and Q registered (.se: personnummer sent) and delivered; returns their subjects."""
    (sa, a), (sb, b) = await world.register(P, "per.se"), await world.register(Q, "qarin.se")
    assert sa == sb == 202, (a, b)
    await world.deliver({a["id"], b["id"]})
    return await world.subject_of(a["id"]), await world.subject_of(b["id"])


# -- (b) Art. 15: Q's records never hold P's values -----------------------------------------------------

async def test_q_found_by_personnummer_has_only_q_records(world: World) -> None:
    """Before: the shared e-mail merged P and Q, so Q's extract (found by Q's personnummer alone) showed
    P's name, personnummer and street."""
    p_subject, q_subject = await _registered_pair(world)
    assert p_subject != q_subject
    found = await world.store.find_subjects(world.ledger.digests([("national_id", N2)]))
    assert found == [q_subject]
    strong = strong_key(NationalId(scheme=IdScheme.SE_PERSONNUMMER, value=N2), "SE")
    assert await world.store.find_subjects(world.ledger.digests([("strong_id", strong)])) == [q_subject]
    q_records = flat(await world.records(q_subject))
    assert "Qarin Qvist" in q_records and "Qvarnvägen" in q_records
    for value in P_ONLY:
        assert value not in q_records, value
    # the shared e-mail still finds both, as candidates for staff to tell apart (never merged)
    assert sorted(await world.store.find_subjects(world.ledger.digests([("email", E)]))) == sorted(
        [p_subject, q_subject])
    assert [r["domain"] for r in await world.store.subject_registrations(q_subject)] == ["qarin.se"]


# -- (c) Q's erasure leaves P readable --------------------------------------------------------------------

async def test_q_erasure_leaves_p_readable(world: World, store: Store, keys: Keys) -> None:
    """Before: one subject, one data key; erasing Q destroyed P's data."""
    p_subject, q_subject = await _registered_pair(world)
    assert await world.ledger.shred(q_subject, "2026-11-26T00:00:00Z")
    for w in (world, World.over(store, keys)):  # this ledger and a fresh one over the same store
        assert not await w.readable(q_subject)
        assert await w.readable(p_subject)
        assert "Per Persson" in flat(await w.records(p_subject))


# -- (d) erasure through one process is seen at once by another -------------------------------------------

class OtherProcess:
    """``tests/identity/other_process.py``: a second gateway process on the same database."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, spec: StoreSpec, keys: Keys) -> OtherProcess:
        import os

        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.identity.other_process", spec.kind, spec.target, cwd=ROOT,
            env={**os.environ, **keys.env()}, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self = cls(proc)
        assert await self._line() == "ready"
        return self

    async def _line(self) -> str:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            assert self.proc.stderr is not None
            pytest.fail((await self.proc.stderr.read()).decode(errors="replace"))
        return line.decode().strip()

    async def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        await self.proc.stdin.drain()
        answer: dict[str, Any] = json.loads(await self._line())
        return answer

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b'{"op": "quit"}\n')
            await self.proc.stdin.drain()
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def test_erasure_in_one_process_is_seen_at_once_by_another(store_spec: StoreSpec, keys: Keys) -> None:
    """Before: each process cached data keys for its lifetime, so after an erasure through process A,
    process B still decrypted, and filed P's next registration under the erased subject."""
    a_store = await store_spec.open()
    other = None
    try:
        a = World.over(a_store, keys)
        status, reg = await a.register(P, "per.se")
        assert status == 202
        [entry] = await a.deliver({reg["id"]})
        erased_subject = await a.subject_of(reg["id"])
        other = await OtherProcess.start(store_spec, keys)
        assert (await other.ask(op="read", entry=entry.id))["values"]["name"] == "Per Persson"  # B used the key

        assert await a.ledger.shred(erased_subject, "2026-11-26T00:00:00Z")
        assert await other.ask(op="read", entry=entry.id) == {"erased": True}
        again = await other.ask(op="register", registrant=P, domain="per-igen.se")
        assert again["status"] == 202 and again["live"]
        assert again["subject"] != erased_subject  # a fresh subject, not the erased one
        # ... which is P's holder for every process from now on (same strong identifier)
        status, third = await a.register(P, "per-tredje.se")
        assert status == 202 and await a.subject_of(third["id"]) == again["subject"]
    finally:
        if other is not None:
            await other.stop()
        await a_store.close()


class ErasedBeforeAccept:
    """Installed on a PostgreSQL store, whose ``accept_request`` reads on a pooled connection, decides,
    then calls its own ``accept``: another process erases the holder right before the first ``accept``
    commits, the window between finding the subject and filing under it.  (On SQLite the caller never
    sees that window: a write that finds the holder changed reads and decides again inside its
    transaction; ``tests/store/test_group_commit.py`` shows it.)"""

    def __init__(self, inner: Any, eraser: World) -> None:
        self._accept = inner.accept
        self._eraser = eraser
        self.erased: list[str] = []
        inner.accept = self.accept

    async def accept(self, a: Any, now: str) -> Any:
        sid = a.registration["subject_id"]
        if not self.erased and a.subject is None:
            assert await self._eraser.ledger.shred(sid, now)
            self.erased.append(sid)
        return await self._accept(a, now)


@pytest.mark.parametrize("store_spec", ["postgres"], indirect=True)
async def test_a_registration_racing_an_erasure_starts_a_fresh_subject(store_spec: StoreSpec, keys: Keys) -> None:
    stores = [await store_spec.open(), await store_spec.open()]
    try:
        b = World.over(stores[1], keys)
        status, first = await b.register(P, "per.se")
        assert status == 202
        racing = ErasedBeforeAccept(stores[0], b)
        a = World.over(stores[0], keys)
        status, second = await a.register(P, "per-igen.se")
        assert status == 202
        assert racing.erased == [await b.subject_of(first["id"])]
        fresh = await a.subject_of(second["id"])
        assert fresh != racing.erased[0] and await a.ledger.dek(fresh) is not None
    finally:
        for s in stores:
            await s.close()


# -- subjects made before schema 2 -------------------------------------------------------------------------

@pytest.fixture
async def raw_db(store_spec: StoreSpec, store: Store) -> Any:
    r = await store_spec.raw()
    try:
        yield r
    finally:
        await r.close()


async def test_a_subject_from_before_schema_2_is_never_merged_into(world: World, raw_db: RawDB) -> None:
    """A subject made by the old rule has national_id and e-mail links but no strong_id link (and may
    hold several people merged by e-mail).  Its number alone does not say which register issued it (a
    passport or another country's number can be the same digits), so nothing is merged into it: P's next
    registration starts a strong-id subject, and staff find both by the number."""
    legacy = "1" * 32
    wrapped = wrap(world.ledger.ring, new_data_key(), legacy)
    await raw_db.execute("INSERT INTO subjects(id, kid, wrapped, created_at) VALUES (?,?,?,?)",
                         legacy, wrapped.kid, wrapped.blob, "2025-01-01T00:00:00Z")
    for kind, digest in world.ledger.digests([("national_id", N1), ("email", E)]):
        await raw_db.execute("INSERT INTO subject_index(kind, digest, subject_id) VALUES (?,?,?)", kind, digest, legacy)

    status, reg = await world.register(P, "per.se")
    assert status == 202
    p_subject = await world.subject_of(reg["id"])
    assert p_subject != legacy
    key = await world.store.subject_key(p_subject)
    assert key is not None and key.basis == "strong_id"
    assert sorted(await world.store.find_subjects(world.ledger.digests([("national_id", N1)]))) == sorted(
        [legacy, p_subject])
    legacy_key = await world.store.subject_key(legacy)
    assert legacy_key is not None and legacy_key.basis is None and legacy_key.wrapped is not None

    # a registrant without a national ID sharing the legacy e-mail: a holder record of its own
    status, reg = await world.register(registrant("Rut Rask", E), "rut.eu")
    assert status == 202
    assert await world.subject_of(reg["id"]) not in (legacy, p_subject)
    # a change through a legacy registration reaches that registration only
    changes = ChangeService(world.store, world.ledger, policies())
    assert await changes.client_scope(legacy, "reg-of-legacy", "shop") == ["reg-of-legacy"]


# -- the reach of a change ----------------------------------------------------------------------------------

async def test_a_change_reaches_the_callers_registrations_of_the_holder_only(world: World) -> None:
    """Rights processing (no scope) reaches the whole subject; an ordering client's change only the
    registrations it created for that holder."""
    regs = {}
    for domain, client in (("per.se", "shop"), ("per-b.se", "othershop"), ("per-c.se", "shop")):
        status, body = await world.register(P, domain, client)
        assert status == 202
        regs[domain] = body["id"]
    await world.deliver(set(regs.values()))
    sid = await world.subject_of(regs["per.se"])
    assert {await world.subject_of(r) for r in regs.values()} == {sid}  # one holder (strong identifier)
    changes = ChangeService(world.store, world.ledger, policies())
    new = Registrant.model_validate_json(json.dumps(dict(P, email="per.ny@example.se")))

    shop = await changes.client_scope(sid, regs["per.se"], "shop")
    assert sorted(shop) == sorted([regs["per.se"], regs["per-c.se"]])
    assert await changes.client_scope(sid, regs["per-b.se"], "othershop") == [regs["per-b.se"]]
    reached = {c.registration_id for c in await changes.push(sid, new, registration_ids=shop)}
    assert reached == set(shop)
    assert {c.registration_id for c in await changes.push(sid, new)} == set(regs.values())

    # a holder record (no strong identifier) is one registration
    status, body = await world.register(registrant("Rut Rask", E), "rut.eu")
    rut = await world.subject_of(body["id"])
    assert await changes.client_scope(rut, body["id"], "shop") == [body["id"]]


# -- over HTTP, with the TLS EPP sandbox: (a) the cross-client change, and what ordering clients see --------

def _updates(gw: Gateway) -> list[str]:
    """The contact ids of every <contact:update> the registry sandbox received."""
    out = []
    for c in commands(gw.sandbox.sandbox.frames):
        upd = c.find(f"{{{EPP}}}update/{{{CONTACT}}}update")
        if upd is not None:
            out.append(upd.findtext(f"{{{CONTACT}}}id") or "")
    return out


async def _delivered(gw: Gateway, data: dict[str, Any], role: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the ordering client's answer, the staff view once delivered)."""
    r = await gw.post(data, role=role)
    assert r.status == 202, await r.text()
    answer = await r.json()
    view = await gw.wait_status(answer["id"], {"delivered", "failed"})
    assert view["status"] == "delivered", view
    return answer, view


async def _change(gw: Gateway, reg_id: str, new: dict[str, Any], role: str) -> tuple[str, dict[str, Any]]:
    r = await gw.client.post(f"/v1/registrations/{reg_id}/registrant", json=new, headers=gw.tokens.h(role))
    assert r.status == 202, await r.text()
    return await r.text(), await r.json()


async def _change_delivered(gw: Gateway, reg_id: str) -> None:
    for _ in range(200):
        view = await gw.wait_status(reg_id, {"delivered"})
        if any(e["purpose"] == "registrant_change" and e["outcome"] == "delivered" for e in view["disclosures"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the change was not delivered")


def _contact(view: dict[str, Any]) -> str:
    contact: str = view["disclosures"][0]["objects"]["contact:registrant"]
    return contact


async def test_a_cross_client_change_reaches_nothing_of_another_client(gw: Gateway) -> None:
    """(a) Before: B's change of its registrant Q (who shares P's e-mail) was pushed to A's registration
    of P at IIS, and B's answer named A's registration."""
    a, a_view = await _delivered(gw, order(P, "per.se"), "ordering")
    b, b_view = await _delivered(gw, order(Q, "qarin.se"), "other_ordering")
    a_contact, b_contact = _contact(a_view), _contact(b_view)
    before = len(_updates(gw))

    text, answer = await _change(gw, b["id"], dict(Q, email="qarin.ny@example.se"), "other_ordering")
    assert {c["registration_id"] for c in answer["recipients"]} == {b["id"]}
    for foreign in (a["id"], a_contact, a_view["subject_id"], "per.se"):
        assert foreign not in text
    assert "subject" not in text and b_view["subject_id"] not in text
    await _change_delivered(gw, b["id"])
    assert _updates(gw)[before:] == [b_contact]  # nothing for A's contact
    assert gw.sandbox.sandbox.contacts[a_contact]["email"] == E
    assert gw.sandbox.sandbox.contacts[b_contact]["email"] == "qarin.ny@example.se"


async def test_two_clients_of_one_holder_change_only_their_own_registrations(gw: Gateway) -> None:
    """The same person (same personnummer) registered through two ordering clients is one holder; a change
    from one client still reaches only that client's registrations."""
    a, a_view = await _delivered(gw, order(P, "per.se"), "ordering")
    b, b_view = await _delivered(gw, order(P, "per-hos-b.se"), "other_ordering")
    assert a_view["subject_id"] == b_view["subject_id"]
    before = len(_updates(gw))

    text, answer = await _change(gw, b["id"], dict(P, email="per.ny@example.se"), "other_ordering")
    assert {c["registration_id"] for c in answer["recipients"]} == {b["id"]}
    for foreign in (a["id"], _contact(a_view), a_view["subject_id"], "per.se"):
        assert foreign not in text
    await _change_delivered(gw, b["id"])
    assert _updates(gw)[before:] == [_contact(b_view)]
    assert gw.sandbox.sandbox.contacts[_contact(a_view)]["email"] == E


def _keys(data: Any) -> set[str]:
    if isinstance(data, dict):
        return set(data) | {k for v in data.values() for k in _keys(v)}
    if isinstance(data, list):
        return {k for v in data for k in _keys(v)}
    return set()


async def test_ordering_clients_never_see_subject_ids(gw: Gateway) -> None:
    """Item 3: a subject id groups one holder's records across clients; only staff see it."""
    r = await gw.post(order(P, "per.se"))
    assert r.status == 202
    accepted = await r.json()
    blocked = await gw.post(order(P, "per.cn"))
    assert blocked.status == 422
    staff = await gw.wait_status(accepted["id"], {"delivered", "failed"})
    sid = staff["subject_id"]
    assert sid and all(e["subject_id"] == sid for e in staff["disclosures"])  # staff roles may see it

    mine = await gw.client.get(f"/v1/registrations/{accepted['id']}", headers=gw.tokens.h("ordering"))
    assert mine.status == 200
    _, changed = await _change(gw, accepted["id"], dict(P, phone="+46 8 765 432 10"), "ordering")
    for answer in (accepted, await blocked.json(), await mine.json(), changed):
        assert not {k for k in _keys(answer) if "subject" in k}, answer
        assert sid not in flat(answer)
    assert (await mine.json())["disclosures"]  # the entries are there, without their subject

