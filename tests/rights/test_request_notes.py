"""Casework on requests: the pure parts (actions per kind, today's values folded from the log, the form's
field errors, deadlines moved off Swedish days off, the reminder list), assigning on both stores, and the
API for assignees, internal notes and reminders on the real gateway (notes never reach a letter)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, cast

import pytest

from gateway.http.context import SERVICES
from gateway.ledger.entry import DisclosureEntry
from gateway.policy.schema import FieldRule, RecipientPolicy, Transform
from gateway.rights import casework as C
from gateway.services.accounts import AccountService
from gateway.store.accounts import AccountStore
from gateway.store.base import Store
from gateway.store.requests_extra import RequestExtraStore
from tests.conftest import Gateway
from tests.rights.conftest import anna, open_confirmed, register
from tests.rights.test_letter import configure
from tests.store.conftest import make_entry, pg_cluster, pg_dsn, store, store_spec  # noqa: F401 - fixtures

# -- pure ------------------------------------------------------------------------------------------------


def test_each_kind_offers_its_own_actions() -> None:
    assert C.actions_for("access") == {"extract"}
    assert C.actions_for("rectification") == {"rectify"}
    assert C.actions_for("erasure") == {"erase"}
    assert C.actions_for("restriction") == {"restrict", "lift"}
    assert C.actions_for("objection") == {"object", "lift"}
    assert C.actions_for("portability") == frozenset()


class _Policy:
    """Only ``fields`` of a recipient policy is read by ``fold_values``."""

    def __init__(self, fields: dict[str, FieldRule]) -> None:
        self.fields = fields


def _entry(recipient: str) -> DisclosureEntry:
    return make_entry(0, recipient=recipient)


def test_todays_values_are_the_latest_untransformed_values_sent() -> None:
    plain = FieldRule(send="if_present")
    policies = cast(dict[str, RecipientPolicy], {
        "iis": _Policy({"name": plain, "email": plain, "national_id": FieldRule(send="always",
                                                                               transform=Transform.IIS_ORGNO)}),
        "pir": _Policy({"name": plain, "email": FieldRule(send="always", transform=Transform.EMAIL_DOMAIN_ONLY),
                        "street": plain, "phone": plain}),
    })
    folded = C.fold_values([
        (_entry("iis"), {"name": "Anna Andersson", "email": "anna@example.se", "national_id": "[SE]811218-9876"}),
        (_entry("pir"), {"name": "Anna Andersson", "email": "example.se", "street": ["Storgatan 1"],
                         "phone": "+46.812345678"}),
        (_entry("gone"), {"name": "Someone Else"}),  # no longer configured: not trusted
        (_entry("iis"), None),  # a domain:create carries no values
        (_entry("pir"), {"street": ["Nygatan 9", "lgh 1102"], "phone": None}),  # a correction; phone removed
    ], policies)
    assert folded == {"name": "Anna Andersson", "email": "anna@example.se", "street": ["Nygatan 9", "lgh 1102"]}
    assert C.form_values(folded | {"national_id": "198112189876", "national_id_scheme": "se_personnummer"}) == {
        "name": "Anna Andersson", "email": "anna@example.se", "street": "Nygatan 9\nlgh 1102",
        "id_value": "198112189876", "id_scheme": "se_personnummer"}
    assert "id_scheme" not in C.form_values({"national_id_scheme": "se_personnummer"})


@pytest.mark.parametrize(("loc", "field"), [
    (["email"], "email"), (["address", "city"], "city"), (["address", "street", 0], "street"),
    (["address"], "street"), (["national_id", "value"], "id_value"), (["national_id", "scheme"], "id_scheme"),
    (["national_id"], "id_value"), (["birth_date"], ""), ([], ""),
])
def test_validation_errors_land_next_to_their_field(loc: list[Any], field: str) -> None:
    assert C.field_of(loc) == field


def test_error_messages_lose_pydantics_prefix() -> None:
    assert C.error_message("Value error, not a valid e-mail address") == "Not a valid e-mail address"
    assert C.error_message("Field required") == "Field required"


def test_a_deadline_moved_off_christmas_says_from_where() -> None:
    # opened 25 Nov 2026: one month is Friday 25 Dec (Juldagen); 26 Dec is Saturday, 27 Sunday -> Monday 28 Dec
    v = C.deadline_view(dt.date(2026, 11, 25), dt.date(2026, 12, 28), dt.date(2026, 12, 20), extended=False)
    assert (v.deadline, v.days_left, v.moved_from, v.day_off) == (dt.date(2026, 12, 28), 8, dt.date(2026, 12, 25),
                                                                   "Juldagen")
    # opened 2 Nov 2026: 2 Dec is a Wednesday, nothing moved
    v = C.deadline_view(dt.date(2026, 11, 2), dt.date(2026, 12, 2), dt.date(2026, 12, 3), extended=False)
    assert (v.moved_from, v.day_off, v.days_left) == (None, None, -1)
    # extended: three months; opened 5 Oct 2026 -> 5 Jan 2027 is a Tuesday, so nothing moved
    v = C.deadline_view(dt.date(2026, 10, 5), dt.date(2027, 1, 5), dt.date(2026, 12, 1), extended=True)
    assert v.moved_from is None
    # a weekend: opened 7 Oct 2026 -> 7 Nov 2026 is a Saturday -> Monday 9 Nov
    v = C.deadline_view(dt.date(2026, 10, 7), dt.date(2026, 11, 9), dt.date(2026, 11, 1), extended=False)
    assert (v.moved_from, v.day_off) == (dt.date(2026, 11, 7), "Lördag")


def test_reminders_are_open_requests_due_soon_soonest_first() -> None:
    today = dt.date(2026, 12, 1)
    rows = [
        {"id": "later", "state": "open", "deadline": "2026-12-20", "opened_at": "a"},
        {"id": "week", "state": "open", "deadline": "2026-12-08", "opened_at": "a"},
        {"id": "overdue", "state": "open", "deadline": "2026-11-28", "opened_at": "a"},
        {"id": "closed", "state": "closed", "deadline": "2026-11-30", "opened_at": "a"},
        {"id": "today", "state": "open", "deadline": "2026-12-01", "opened_at": "a"},
    ]
    assert [r["id"] for r in C.reminders(rows, today)] == ["overdue", "today", "week"]
    assert [r["id"] for r in C.reminders(rows, today, within_days=0)] == ["overdue", "today"]


# -- the store: one transaction for the assignee and its event, on SQLite and PostgreSQL --------------------


async def test_assigning_writes_the_column_and_its_event(store: Store) -> None:  # noqa: F811 - fixture
    rid = uuid.uuid4().hex
    await store.open_request({"id": rid, "kind": "access", "channel": "email", "identity_check": "x",
                              "verified_by": "a", "opened_by": "a", "opened_at": "2026-11-30T10:00:00Z",
                              "deadline": "2026-12-30", "state": "open", "subject_id": None, "closed_at": None,
                              "data": {}})
    extra = cast(RequestExtraStore, store)
    assert await extra.assign_request(rid, "maria", at="2026-11-30T10:01:00Z", actor="olle") is True
    assert await extra.assign_request(rid, "olle", at="2026-11-30T10:02:00Z", actor="olle") is True
    assert await extra.assign_request(rid, None, at="2026-11-30T10:03:00Z", actor="maria") is True
    assert await extra.assign_request("0" * 32, "olle", at="2026-11-30T10:04:00Z", actor="olle") is False
    row = await store.request(rid)
    assert row is not None and row["assignee"] is None
    events = await store.request_events(rid)
    assert [(e["actor"], e["action"], e["detail"]) for e in events] == [
        ("olle", "assigned", {"assignee": "maria", "previous": None}),
        ("olle", "assigned", {"assignee": "olle", "previous": "maria"}),
        ("maria", "assigned", {"assignee": None, "previous": "olle"}),
    ]


# -- the API on the real gateway --------------------------------------------------------------------------


async def _accounts(gateway: Gateway) -> None:
    svc = AccountService(cast(AccountStore, gateway.store))
    await svc.add("staff", role="privacy", password="a long password 1", lang="sv")
    await svc.add("maria", role="privacy", password="a long password 1", lang="en")
    await svc.add("audit", role="auditor", password="a long password 1", lang="en")


async def test_assignee_notes_and_reminders_through_the_api(gateway: Gateway) -> None:
    await _accounts(gateway)
    await register(gateway, anna())
    req = await open_confirmed(gateway, email="anna.andersson@example.se")
    base = f"/v1/requests/{req['id']}"
    privacy, auditor = gateway.tokens.h("privacy"), gateway.tokens.h("auditor")

    # assign: only an active privacy account; the auditor cannot
    for who in ("nobody-here", "audit"):
        r = await gateway.client.post(f"{base}/assign", json={"assignee": who}, headers=privacy)
        assert r.status == 422, who
    assert (await gateway.client.post(f"{base}/assign", json={"assignee": "maria"}, headers=auditor)).status == 403
    r = await gateway.client.post(f"{base}/assign", json={"assignee": "maria"}, headers=privacy)
    assert r.status == 200 and (await r.json())["assignee"] == "maria"
    r = await gateway.client.post(f"{base}/assign", json={"assignee": None}, headers=privacy)
    assert r.status == 200 and (await r.json())["assignee"] is None
    assert (await gateway.client.post("/v1/requests/" + "f" * 32 + "/assign", json={"assignee": "maria"},
                                      headers=privacy)).status == 404

    # notes: attributed, kept in the log, never in the extract
    note = "Ringde Anna 30/11: hon vill ha utdraget per post. INTERNT-7f3a"
    for bad in ({"text": ""}, {"text": "x" * (C.NOTE_LIMIT + 1)}, {}, {"text": "ok", "more": 1}):
        assert (await gateway.client.post(f"{base}/notes", json=bad, headers=privacy)).status == 422, bad
    r = await gateway.client.post(f"{base}/notes", json={"text": note}, headers=privacy)
    assert r.status == 201
    [event] = [e for e in (await r.json())["events"] if e["action"] == "note"]
    assert event["actor"] == "staff" and event["detail"] == {"text": note}
    assert (await gateway.client.post(f"{base}/notes", json={"text": "x"}, headers=auditor)).status == 403
    configure(gateway)
    for fmt in ("json", "html"):
        r = await gateway.client.get(f"{base}/extract.{fmt}?lang=sv", headers=privacy)
        assert r.status == 200, await r.text()
        text = await r.text()
        assert "INTERNT-7f3a" not in text and "utdraget per post" not in text, fmt

    # reminders: nothing due yet; moved to three days ahead, it is listed for staff (auditors too)
    r = await gateway.client.get("/v1/requests/reminders", headers=auditor)
    assert r.status == 200 and (await r.json())["items"] == []
    soon = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=3)).isoformat()
    await gateway.store.update_request(req["id"], {"deadline": soon})
    r = await gateway.client.get("/v1/requests/reminders", headers=auditor)
    [item] = (await r.json())["items"]
    assert item["id"] == req["id"] and item["days_left"] == 3
    assert (await (await gateway.client.get("/v1/requests/reminders?within_days=2",
                                            headers=auditor)).json())["items"] == []
    for bad in ("x", "-1", "93"):
        r = await gateway.client.get(f"/v1/requests/reminders?within_days={bad}", headers=auditor)
        assert r.status == 422, bad
    assert (await gateway.client.get("/v1/requests/reminders", headers=gateway.tokens.h("ordering"))).status == 403


async def test_todays_values_are_read_only_for_confirmed_records_and_logged(gateway: Gateway) -> None:
    await register(gateway, anna())
    req = await open_confirmed(gateway, email="anna.andersson@example.se")
    rights = gateway.client.app[SERVICES].rights
    [(sid, values)] = (await rights.current_values(req["id"], "staff")).items()
    assert values is not None and values.values["name"] == "Anna Andersson" and values.values["email"]
    assert values.transformed_only == ["national_id"]  # sent to .se only as its [SE] orgno
    log = [a for a in await gateway.store.access_log() if a["action"] == "request.subject_read"]
    assert [(a["actor"], a["object_id"], a["subject_id"]) for a in log] == [("staff", req["id"], sid)]
