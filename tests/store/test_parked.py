"""Parked outbox rows (``needs_attention``): listed per recipient, retried or cancelled by staff with the
action in the access log; run against SqliteStore and PostgresStore alike."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.errors import OutboxRowNotFound
from gateway.store.base import OutboxItem, Store
from gateway.store.parked_rows import PARKED_COLUMNS
from tests.store.conftest import RawDB, make_accepted, make_entry, ts

REASON = "permanent refusal: EPP 2306 (parameter value policy error)"


async def park(store: Store, item: OutboxItem, minutes: float, reason: str = REASON) -> None:
    """Park ``item`` the way the delivery worker does: ``finish`` with ``needs_attention`` and a reason."""
    entry = make_entry(int(minutes * 10), id=f"ent-park-{item.id}-{minutes}", registration_id=item.registration_id,
                       recipient=item.recipient, outcome="failed", result_code="2306")
    assert await store.finish(item, entry, state="needs_attention", next_attempt_at=None, now=ts(minutes),
                              parked_reason=reason)


async def claimed(store: Store, now: float) -> dict[str, OutboxItem]:
    return {i.recipient: i for i in await store.claim_due(ts(now), 10)}


async def status(store: Store, reg_id: str) -> str:
    reg = await store.registration(reg_id)
    assert reg is not None
    return str(reg["status"])


async def test_parked_rows_are_listed_per_recipient_without_payload(store: Store) -> None:
    await store.accept(make_accepted(1, recipients=("iis", "verisign")), ts(0))
    await store.accept(make_accepted(2, recipients=("verisign", "eurid")), ts(0))
    items = await store.claim_due(ts(1), 10)
    by = {(i.registration_id, i.recipient): i for i in items}
    await park(store, by[("reg-acc-0002", "verisign")], 2)
    await park(store, by[("reg-acc-0001", "verisign")], 3, reason="transient failures past the deadline (72 h)")
    await park(store, by[("reg-acc-0002", "eurid")], 4)
    done = make_entry(1, id="ent-done", registration_id="reg-acc-0001", outcome="delivered")
    await store.finish(by[("reg-acc-0001", "iis")], done, state="done", next_attempt_at=None, now=ts(2))

    rows = await store.parked()
    assert [(r["recipient"], r["registration_id"]) for r in rows] == [
        ("eurid", "reg-acc-0002"), ("verisign", "reg-acc-0002"), ("verisign", "reg-acc-0001")]
    first = rows[1]
    assert tuple(first) == PARKED_COLUMNS  # nothing else: no payload, fields or subject
    assert first["id"] == by[("reg-acc-0002", "verisign")].id and isinstance(first["id"], int)
    assert first["attempts"] == 1 and first["last_code"] == "2306" and first["parked_reason"] == REASON
    assert first["purpose"] == "domain_registration" and first["change_id"] == "" and first["updated_at"] == ts(2)
    assert [r["registration_id"] for r in await store.parked("verisign")] == ["reg-acc-0002", "reg-acc-0001"]
    assert await store.parked("iis") == []
    assert await status(store, "reg-acc-0001") == "failed"  # a parked row fails its registration


async def test_retry_puts_the_row_back_and_logs_who_did_it(store: Store, raw: RawDB) -> None:
    await store.accept(make_accepted(1, recipients=("iis", "verisign")), ts(0))
    items = await claimed(store, 1)
    done = make_entry(1, id="ent-done", registration_id="reg-acc-0001", outcome="delivered")
    await store.finish(items["iis"], done, state="done", next_attempt_at=None, now=ts(2))
    vs = items["verisign"]
    await park(store, vs, 3)
    assert await status(store, "reg-acc-0001") == "failed"

    with pytest.raises(OutboxRowNotFound):
        await store.retry_parked(vs.id + 1000, ts(4), actor="anna")
    assert not await store.retry_parked(items["iis"].id, ts(4), actor="anna")  # delivered: not parked
    assert await store.parked_actions() == []  # a refusal writes nothing

    assert await store.retry_parked(vs.id, ts(5), actor="anna")
    row = (await raw.fetch("SELECT state, next_attempt_at, deadline_at, parked_reason, claim_token, attempts "
                           "FROM outbox WHERE id=?", vs.id))[0]
    assert row == {"state": "pending", "next_attempt_at": ts(5), "deadline_at": None, "parked_reason": None,
                   "claim_token": None, "attempts": 1}
    assert await status(store, "reg-acc-0001") == "delivering"
    assert await store.parked() == []
    assert await store.parked_actions() == [{"at": ts(5), "actor": "anna", "action": "retry", "row_id": vs.id,
                                             "recipient": "verisign", "registration_id": "reg-acc-0001"}]
    log = await store.access_log()
    assert [(a["actor"], a["action"], a["object_id"]) for a in log] == [("anna", "outbox.retry", str(vs.id))]
    assert not await store.retry_parked(vs.id, ts(6), actor="anna")  # pending now: the worker's again

    # due at once, and delivered on the next claim
    again = await claimed(store, 5)
    assert list(again) == ["verisign"] and again["verisign"].attempts == 2
    ok = make_entry(2, id="ent-vs-ok", registration_id="reg-acc-0001", outcome="delivered")
    await store.finish(again["verisign"], ok, state="done", next_attempt_at=None, now=ts(7))
    assert await status(store, "reg-acc-0001") == "delivered"


async def test_cancel_is_final_and_the_history_is_newest_first(store: Store, raw: RawDB) -> None:
    await store.accept(make_accepted(1, recipients=("iis",)), ts(0))
    await store.accept(make_accepted(2, recipients=("iis",)), ts(0))
    items = {i.registration_id: i for i in await store.claim_due(ts(1), 10)}
    one, two = items["reg-acc-0001"], items["reg-acc-0002"]
    await park(store, one, 2)
    await park(store, two, 2)

    assert await store.retry_parked(one.id, ts(3), actor="anna")
    assert await store.cancel_parked(two.id, ts(4), actor="bertil")
    assert not await store.cancel_parked(two.id, ts(5), actor="bertil")  # cancelled is final
    assert not await store.retry_parked(two.id, ts(5), actor="bertil")
    assert (await raw.fetch("SELECT state FROM outbox WHERE id=?", two.id))[0]["state"] == "cancelled"
    assert await status(store, "reg-acc-0002") == "failed"
    assert await store.claim_due(ts(9), 10) != []  # only the retried row comes back
    assert await store.claim_due(ts(9), 10) == []

    history = await store.parked_actions()
    assert [(h["action"], h["actor"], h["row_id"], h["at"]) for h in history] == [
        ("cancel", "bertil", two.id, ts(4)), ("retry", "anna", one.id, ts(3))]
    assert len(await store.parked_actions(limit=1)) == 1
    # the access log keeps the subject id, so a subject's log shows what staff did with its rows
    assert [(a["action"], a["subject_id"]) for a in await store.access_log()] == [
        ("outbox.retry", one.subject_id), ("outbox.cancel", two.subject_id)]


async def test_an_optional_row_leaves_the_registration_status_alone(store: Store, raw: RawDB) -> None:
    """A parked marketing row does not count for the registration: retrying or cancelling it must not
    turn a delivered registration back into a delivering or failed one, nor announce anything."""
    a = make_accepted(3, recipients=("iis",))
    a.outbox.append(dataclasses.replace(a.outbox[0], recipient="mailer", required=False))
    await store.accept(a, ts(0))
    items = await claimed(store, 1)
    ok = make_entry(1, id="ent-ok", registration_id="reg-acc-0003", outcome="delivered")
    await store.finish(items["iis"], ok, state="done", next_attempt_at=None, now=ts(2))
    await park(store, items["mailer"], 2)
    assert await status(store, "reg-acc-0003") == "delivered"
    assert await store.retry_parked(items["mailer"].id, ts(3), actor="anna")
    assert await status(store, "reg-acc-0003") == "delivered"
    mailer = (await claimed(store, 3))["mailer"]
    await park(store, mailer, 4)
    assert await store.cancel_parked(mailer.id, ts(5), actor="anna")
    assert await status(store, "reg-acc-0003") == "delivered"
