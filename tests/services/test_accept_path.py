"""The accept path is one store call (``accept_request``: read, decide, write), on both real stores.

The store is the real one, seen through a thin wrapper that records the name of every store call the
registration service and its ledger make.  On PostgreSQL the read and the write are apart (a pooled
connection, then the group writer), so a test can run a step between them (a concurrent request, an
erasure, a key rotation) by wrapping the store's own read; races make the service read and decide again
(``SubjectErased``, ``SubjectRaced``), never file under a stale holder.  On SQLite a write that finds
the holder changed since its read (made by a request in the same group, or by another process) reads and
decides again inside its transaction: the tests show that concurrent requests for one new holder share it
without a second call (``tests/store/test_group_commit.py`` covers another process).

Idempotency keys are bound to the body's bytes as received: other bytes under the same key are a
conflict, even when they parse to the same JSON; an answer stored under the hash older versions kept
(the parsed body re-encoded) still replays.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from gateway.errors import GatewayError, IdempotencyConflict
from gateway.ledger.checkpoint import CheckpointSigner
from gateway.ledger.keys import BlindIndexer, KeyRing, WrappedKey, rewrap
from gateway.models import RegistrationRequest, TransferRequest
from gateway.outbox.epp import RegistrarContact
from gateway.policy.loader import PolicySet, load_policies
from gateway.services.ledger import Ledger
from gateway.services.registrations import RegistrationService, request_hash
from gateway.store.base import Store
from tests.conftest import ROOT, VALID_BODY, body
from tests.store import conftest as store_fixtures
from tests.store.conftest import RawDB

# the store fixtures of the contract suite: ``store`` and ``raw`` on SQLite and on PostgreSQL
pg_cluster = store_fixtures.pg_cluster
pg_dsn = store_fixtures.pg_dsn
store_spec = store_fixtures.store_spec
store = store_fixtures.store
raw = store_fixtures.raw

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
ONE_CALL = ["accept_request"]
_POLICIES: list[PolicySet] = []


def policies() -> PolicySet:
    if not _POLICIES:
        _POLICIES.append(load_policies(ROOT / "config"))
    return _POLICIES[0]


class CountingStore:
    """A real store, every call of which is recorded by name; ``after[name]`` runs once right after the
    next call of that name returns (before the caller sees the answer)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.after: dict[str, Callable[[], Awaitable[None]]] = {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        async def call(*args: Any, **kw: Any) -> Any:
            self.calls.append(name)
            result = await target(*args, **kw)
            if (step := self.after.pop(name, None)) is not None:
                await step()
            return result

        return call

    def take(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


def service(inner: Store, *, ring: KeyRing | None = None, ring_file: Path | None = None,
            index_key: bytes = b"\x02" * 32) -> tuple[RegistrationService, CountingStore]:
    counting = CountingStore(inner)
    as_store = cast(Store, counting)
    ledger = Ledger(as_store, ring or KeyRing("k1", {"k1": b"\x01" * 32}), BlindIndexer(index_key),
                    CheckpointSigner.generate(), ring_file=ring_file)
    return RegistrationService(as_store, ledger, policies(), RegistrarContact(), b"s" * 32,
                               clock=lambda: NOW), counting


def encoded(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


async def submit(svc: RegistrationService, data: dict[str, Any], key: str | None = None, *,
                 model: type[RegistrationRequest] = RegistrationRequest) -> tuple[int, dict[str, Any]]:
    raw_body = encoded(data)
    return await svc.submit("shop", key or uuid.uuid4().hex, raw_body, model.model_validate_json(raw_body))


async def subject_of(inner: Store, reg_id: str) -> str:
    reg = await inner.registration(reg_id)
    assert reg is not None and reg["subject_id"] is not None
    return str(reg["subject_id"])


def person(domain: str, **registrant: Any) -> dict[str, Any]:
    b = copy.deepcopy(body(domain=domain, order_ref=f"O-{domain.split('.')[0]}"))
    b["registrant"].update(registrant)
    return b


async def test_every_kind_of_request_makes_one_store_call(store: Store) -> None:
    svc, counting = service(store)
    # a first registration of a holder (strong identifier): a new subject, written with the registration
    status, first = await submit(svc, person("exempel-a.se"), key="key-first-001")
    assert status == 202 and counting.take() == ONE_CALL
    holder = await subject_of(store, first["id"])
    # the same holder again: found by the one read, with its wrapped key, and filed under it
    status, second = await submit(svc, person("exempel-b.se"))
    assert status == 202 and counting.take() == ONE_CALL
    assert await subject_of(store, second["id"]) == holder
    # a registrant without a strong identifier: a holder record of its own
    no_id = person("exempel-c.com")  # .com asks for none
    del no_id["registrant"]["national_id"]
    status, third = await submit(svc, no_id)
    assert status == 202 and counting.take() == ONE_CALL
    assert await subject_of(store, third["id"]) != holder
    # a transfer in, and a registration refused for a required recipient (nothing sent, all logged)
    status, transfer = await submit(svc, person("exempel-d.se") | {"auth_code": "Abc-123-xyz"}, model=TransferRequest)
    assert status == 202 and transfer["kind"] == "transfer" and counting.take() == ONE_CALL
    status, blocked = await submit(svc, person("exempel.cn"))
    assert status == 422 and blocked["code"] == "transfer_blocked" and counting.take() == ONE_CALL
    # a replay is the same one call, writing nothing; so is a conflict
    assert await submit(svc, person("exempel-a.se"), key="key-first-001") == (202, first)
    assert counting.take() == ONE_CALL
    with pytest.raises(IdempotencyConflict):
        await submit(svc, person("exempel-z.se"), key="key-first-001")
    assert counting.take() == ONE_CALL
    assert await store.idempotent_response("shop", "key-first-001") is not None
    # a request refused before anything is stored (no adapter for the TLD) reads only the key's answer
    with pytest.raises(GatewayError) as refused:
        await submit(svc, person("exempel.invalid"))
    assert refused.value.status < 500 and counting.take() == ["idempotent_response"]
    with pytest.raises(IdempotencyConflict):  # ... and a used key is still a used key
        await submit(svc, person("exempel.invalid"), key="key-first-001")


async def test_restrictions_come_with_the_one_read(store: Store) -> None:
    svc, counting = service(store)
    _, first = await submit(svc, person("exempel-a.se"))
    holder = await subject_of(store, first["id"])
    await store.add_restriction({"id": uuid.uuid4().hex, "subject_id": holder, "kind": "restriction", "scope": "all",
                                 "since": NOW.isoformat()})
    counting.take()
    status, answer = await submit(svc, person("exempel-b.se"))
    assert status == 422 and answer["code"] == "subject_restricted"
    assert counting.take() == ONE_CALL


def between_read_and_write(inner: Store, monkeypatch: pytest.MonkeyPatch,
                           step: Callable[[], Awaitable[None]]) -> None:
    """Run ``step`` once, right after PostgreSQL's ``accept_request`` has read and before it decides and
    writes (it reads through its own ``accept_context``)."""
    read = inner.accept_context

    async def read_then_step(*args: Any) -> Any:
        result = await read(*args)
        monkeypatch.setattr(inner, "accept_context", read)
        await step()
        return result

    monkeypatch.setattr(inner, "accept_context", read_then_step)


def strong_digest(svc: RegistrationService) -> str:
    merge_on = svc.ledger.identity_of(RegistrationRequest.model_validate_json(encoded(person("x.se"))).registrant)[1]
    assert merge_on is not None
    return merge_on


@pytest.mark.parametrize("store_spec", ["postgres"], indirect=True)
async def test_a_holder_made_first_by_a_concurrent_request_is_read_again_and_used(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, counting = service(store)
    b, _ = service(store)
    results: list[tuple[int, dict[str, Any]]] = []

    async def b_files_the_same_person_first() -> None:
        results.append(await submit(b, person("exempel-b.se")))

    # A reads (no holder yet), then B makes the holder, then A writes: the store refuses A's new subject
    # (SubjectRaced, nothing written) and A's second call finds B's holder in its read
    between_read_and_write(store, monkeypatch, b_files_the_same_person_first)
    status, answer = await submit(a, person("exempel-a.se"))
    assert status == 202 and results[0][0] == 202
    assert counting.take() == ONE_CALL * 2
    assert await subject_of(store, answer["id"]) == await subject_of(store, results[0][1]["id"])
    assert len(await store.find_subjects([("strong_id", strong_digest(a))])) == 1


async def test_concurrent_first_registrations_of_one_holder_share_it(store: Store, store_spec: Any) -> None:
    """Eight requests for one new holder at once: one subject, every registration filed under it.  On
    SQLite none of them ever needs a second call: a write that finds the holder made since its read
    decides again inside its transaction."""
    svc, counting = service(store)
    answers = await asyncio.gather(*(submit(svc, person(f"exempel-{n}.se")) for n in range(8)))
    assert [status for status, _ in answers] == [202] * 8
    assert len({await subject_of(store, answer["id"]) for _, answer in answers}) == 1
    assert len(await store.find_subjects([("strong_id", strong_digest(svc))])) == 1
    calls = counting.take()
    assert set(calls) == {"accept_request"}
    if store_spec.kind == "sqlite":
        assert len(calls) == 8


@pytest.mark.parametrize("store_spec", ["postgres"], indirect=True)
async def test_a_holder_erased_after_the_read_is_not_filed_under(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, counting = service(store)
    _, first = await submit(svc, person("exempel-a.se"))
    holder = await subject_of(store, first["id"])
    counting.take()

    async def erase() -> None:
        assert await store.shred_subject(holder, NOW.isoformat())

    between_read_and_write(store, monkeypatch, erase)
    status, answer = await submit(svc, person("exempel-b.se"))
    assert status == 202
    # the write named the holder, which the store found erased (SubjectErased, nothing written): read again
    assert counting.take() == ONE_CALL * 2
    fresh = await subject_of(store, answer["id"])
    assert fresh != holder
    key = await store.subject_key(fresh)
    assert key is not None and key.wrapped is not None


async def test_an_erased_holder_is_never_filed_under(store: Store) -> None:
    """An erasure and a registration of the same person at once: the registration is filed under the
    holder only if it was still live when written, else under a fresh subject; never under a dead key."""
    svc, _ = service(store)
    _, first = await submit(svc, person("exempel-a.se"))
    holder = await subject_of(store, first["id"])
    (status, answer), shredded = await asyncio.gather(submit(svc, person("exempel-b.se")),
                                                     store.shred_subject(holder, NOW.isoformat()))
    assert status == 202 and shredded
    filed = await subject_of(store, answer["id"])
    if filed != holder:
        key = await store.subject_key(filed)
        assert key is not None and key.wrapped is not None
    status, later = await submit(svc, person("exempel-c.se"))
    assert status == 202 and await subject_of(store, later["id"]) not in (holder,)


@pytest.mark.parametrize("store_spec", ["postgres"], indirect=True)
async def test_a_key_rewrapped_after_the_read_is_read_again(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ring_path = tmp_path / "ring.json"
    old = KeyRing("k1", {"k1": b"\x01" * 32})
    old.save(ring_path)
    svc, counting = service(store, ring=old, ring_file=ring_path)
    _, first = await submit(svc, person("exempel-a.se"))
    holder = await subject_of(store, first["id"])
    counting.take()

    async def rotate_and_retire() -> None:
        # another process rotates: the holder's key is re-wrapped under k2, and k1 leaves the ring file
        new = KeyRing("k2", {"k1": old.keys["k1"], "k2": b"\x03" * 32})
        key = await store.subject_key(holder)
        assert key is not None and key.kid == "k1" and key.wrapped is not None
        fresh = rewrap(new, WrappedKey("k1", key.wrapped), holder)
        await store.replace_wrapped_key(holder, fresh.kid, fresh.blob)
        new.without_key("k1").save(ring_path)
        assert svc.ledger.reload_ring(force=True)  # this process's watcher picks the retirement up

    between_read_and_write(store, monkeypatch, rotate_and_retire)
    status, answer = await submit(svc, person("exempel-b.se"))
    assert status == 202
    # the key read with the holder names a kid the ring no longer has: the call is made again, and reads
    # the key under its new wrapping (k2); the data key is the same
    assert counting.take() == ONE_CALL * 2
    assert await subject_of(store, answer["id"]) == holder
    assert await svc.ledger.dek(holder) is not None


async def test_the_key_is_bound_to_the_body_bytes(store: Store) -> None:
    svc, _ = service(store)
    data = person("exempel-a.se")
    first = encoded(data)
    req = RegistrationRequest.model_validate_json(first)
    status, answer = await svc.submit("shop", "key-bytes-0001", first, req)
    assert status == 202
    assert await svc.submit("shop", "key-bytes-0001", first, req) == (202, answer)
    # the same JSON, other bytes (keys reordered, other spacing): another request under a used key
    reordered = json.dumps(dict(reversed(list(data.items()))), indent=1).encode()
    assert json.loads(reordered) == data and reordered != first
    with pytest.raises(IdempotencyConflict):
        await svc.submit("shop", "key-bytes-0001", reordered, req)
    # the same key from another client is another key
    status, other = await svc.submit("other-shop", "key-bytes-0001", reordered, req)
    assert status == 202 and other["id"] != answer["id"]


async def test_an_answer_stored_under_the_old_hash_still_replays(store: Store, raw: RawDB) -> None:
    svc, _ = service(store)
    data = person("exempel-a.se")
    sent = encoded(data)
    status, answer = await svc.submit("shop", "key-legacy-001", sent, RegistrationRequest.model_validate_json(sent))
    assert status == 202
    # what versions before body hashing stored: the parsed body re-encoded, sorted, ASCII, bare hex
    legacy = hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    await raw.execute("UPDATE idempotency SET request_hash=? WHERE client=? AND key=?",
                      legacy, "shop", "key-legacy-001")
    retried = json.dumps(data, indent=2).encode()  # a client's retry across the upgrade, re-serialised
    req = RegistrationRequest.model_validate_json(retried)
    assert await svc.submit("shop", "key-legacy-001", retried, req) == (202, answer)
    changed = encoded(person("exempel-b.se"))
    with pytest.raises(IdempotencyConflict):
        await svc.submit("shop", "key-legacy-001", changed, RegistrationRequest.model_validate_json(changed))


async def test_the_plan_and_the_answer_are_encoded_once(store: Store, raw: RawDB) -> None:
    """The bytes the HTTP layer sends are the answer stored under the key, and the plan stored with the
    registration is the answer's ``transfers``, byte for byte: each is encoded once.  A replay answers the
    same object."""
    svc, _ = service(store)
    data = person("exempel-a.se")
    sent = encoded(data)
    status, answer, body_bytes = await svc.submit_encoded("shop", "key-once-0001", sent,
                                                          RegistrationRequest.model_validate_json(sent))
    assert status == 202 and json.loads(body_bytes) == answer
    [idem] = await raw.fetch("SELECT response_json FROM idempotency WHERE client=? AND key=?", "shop", "key-once-0001")
    [reg] = await raw.fetch("SELECT plan_json FROM registrations WHERE id=?", answer["id"])
    assert idem["response_json"] == body_bytes.decode()
    assert f'"transfers":{reg["plan_json"]}' in idem["response_json"]
    assert json.loads(reg["plan_json"]) == answer["transfers"]
    again = await svc.submit_encoded("shop", "key-once-0001", sent, RegistrationRequest.model_validate_json(sent))
    assert again[:2] == (202, answer) and json.loads(again[2]) == answer


def test_the_body_hash_is_of_the_bytes() -> None:
    sent = encoded(VALID_BODY)
    assert request_hash(sent) == "sha256:" + hashlib.sha256(sent).hexdigest()
    assert request_hash(sent) != request_hash(sent + b" ")
