"""The request pages as privacy staff work them, in a real headless Chromium: whom a request is about
(decrypted for the privacy role and logged as a read; a pseudonym for auditors), only the actions that
fit the request's kind, rectification pre-filled with today's values that keeps what was typed when a field
is invalid (the message next to the field), the assignee ("assign to me"), internal notes, and the
reminder list of requests near their deadline with weekdays and the Swedish day off a deadline moved from.

As in test_browser_requests.py, playwright's sync API runs in a worker thread while the gateway serves on
the test's event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.http.context import SERVICES
from tests.conftest import Gateway
from tests.web.chromium import chromium_page, fill_login, needs_chromium
from tests.web.conftest import add_staff, register_scenario

pytestmark = pytest.mark.integration

ANNA_EMAIL = "anna.andersson@example.se"
#: Opened on 25 November 2026: one month is Friday 25 December (Juldagen); the 26th is a Saturday and
#: the 27th a Sunday, so the answer is due on Monday 28 December.
OPENED = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)
VIEWED = dt.datetime(2026, 12, 22, 9, 0, tzinfo=dt.UTC)  # six days before the deadline


async def open_request(gw: Gateway, kind: str, *, confirm: bool = True) -> str:
    """A request for Anna (matched by her e-mail address) through the API, confirmed unless told not to."""
    h = gw.tokens.h("privacy")
    r = await gw.client.post("/v1/requests", headers=h, json={
        "kind": kind, "channel": "email", "identity_check": "BankID signature", "verified_by": "staff",
        "identifiers": {"email": ANNA_EMAIL}})
    req: dict[str, Any] = await r.json()
    assert r.status == 201, req
    if confirm:
        [candidate] = req["candidates"]
        r = await gw.client.post(f"/v1/requests/{req['id']}/subjects", headers=h,
                                 json={"subject_ids": [candidate["subject_id"]]})
        assert r.status == 200, await r.text()
    return str(req["id"])


def set_clock(gw: Gateway, at: dt.datetime) -> None:
    gw.client.app[SERVICES].rights.clock = lambda: at


def field_state(page: Any, name: str) -> dict[str, Any]:
    """A rectification field's value, its invalid flag and the text of the message it points to."""
    el = page.locator(f"#rectify-form [name={name}]")
    described = el.get_attribute("aria-describedby")
    return {"value": el.input_value(), "invalid": el.get_attribute("aria-invalid"),
            "message": page.locator(f"#{described}").inner_text() if described else None}


@dataclass
class Seen:
    forms: dict[str, list[str]] = field(default_factory=dict)
    whom: str = ""
    whom_before: str = ""
    prefilled: dict[str, str] = field(default_factory=dict)
    status_invalid: int = 0
    email_field: dict[str, Any] = field(default_factory=dict)
    city_field: dict[str, Any] = field(default_factory=dict)
    name_field: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    notice_after_fix: str = ""
    assignee: str = ""
    assignee_after_pick: str = ""
    notes: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    listing_assignee: str = ""
    transformed_hint: str = ""
    console_errors: list[str] = field(default_factory=list)


FORMS = ("extract", "rectify", "erase", "restrict", "object", "lift", "extend", "close", "assign", "note")


def forms_on(page: Any) -> list[str]:
    return [f for f in FORMS if page.locator(f"#{f}-form").count() > 0]


def drive_privacy(base: str, ids: dict[str, str], unconfirmed: str) -> Seen:
    seen = Seen()
    with chromium_page(seen.console_errors) as page:
        page.goto(f"{base}/ui/requests")
        fill_login(page, "staff")
        page.wait_for_url(re.compile(r"/ui/requests$"))

        # each kind offers its own action (and closing, extending, assigning, notes)
        for kind, rid in ids.items():
            page.goto(f"{base}/ui/requests/{rid}")
            seen.forms[kind] = forms_on(page)

        page.goto(f"{base}/ui/requests/{unconfirmed}")
        seen.whom_before = page.locator("#whom").inner_text()

        # whom the rectification is about, and its form pre-filled with today's values
        page.goto(f"{base}/ui/requests/{ids['rectification']}")
        seen.whom = page.locator("#whom").inner_text()
        for name in ("name", "email", "street", "city", "postal_code", "country", "phone", "id_value"):
            seen.prefilled[name] = page.locator(f"#rectify-form [name={name}]").input_value()

        # an invalid e-mail address: the page comes back with what was typed and the message at the field
        page.fill("#rectify-form [name=city]", "Göteborg")
        page.fill("#rectify-form [name=email]", "anna.andersson(at)example.se")
        with page.expect_response(lambda r: r.url.endswith("/rectify")) as answer:
            page.click("#rectify-form button[type=submit]")
        seen.status_invalid = answer.value.status
        seen.error = page.locator("#action-error").inner_text()
        seen.email_field = field_state(page, "email")
        seen.city_field = field_state(page, "city")
        seen.name_field = field_state(page, "name")
        page.fill("#rectify-form [name=email]", "anna@example.se")
        # the national ID is held only as .se's orgno, so the form asked for it: staff type it again
        seen.transformed_hint = page.locator("#transformed-only").inner_text()
        page.select_option("#rectify-form [name=id_scheme]", "se_personnummer")
        page.fill("#rectify-form [name=id_value]", "19811218-9876")
        page.click("#rectify-form button[type=submit]")
        page.wait_for_url(re.compile(r"\?done=rectified$"))
        seen.notice_after_fix = page.locator("#notice").inner_text()

        # assign to me, then to a colleague; an internal note
        page.click("#assign-me")
        page.wait_for_url(re.compile(r"\?done=assigned$"))
        seen.assignee = page.locator("#assignee").inner_text()
        page.select_option("#assignee-select", "maria")
        page.click("#assign")
        page.wait_for_url(re.compile(r"\?done=assigned$"))
        seen.assignee_after_pick = page.locator("#assignee").inner_text()
        page.fill("#note-text", "Anna called: the new address is from 1 December. INTERN-4711")
        page.click("#note-form button[type=submit]")
        page.wait_for_url(re.compile(r"\?done=noted$"))
        seen.notes = [n.inner_text() for n in page.locator("#notes li.note").all()]
        seen.events = [e.get_attribute("data-action") or "" for e in page.locator("tr.event").all()]

        page.goto(f"{base}/ui/requests")
        row = page.locator(f"table.requests tr[data-id='{ids['rectification']}']")
        seen.listing_assignee = row.locator("td.assignee").inner_text()
    return seen


@needs_chromium
async def test_the_request_page_for_privacy_staff_in_chromium(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await add_staff(gateway, "maria", "privacy")
    ids = {kind: await open_request(gateway, kind)
           for kind in ("access", "rectification", "erasure", "restriction", "objection")}
    unconfirmed = await open_request(gateway, "access", confirm=False)
    reads_before = len(await gateway.store.access_log())
    base = str(gateway.client.make_url("/")).rstrip("/")
    seen = await asyncio.to_thread(drive_privacy, base, ids, unconfirmed)

    common = ["extend", "close", "assign", "note"]
    assert seen.forms == {
        "access": ["extract", *common], "rectification": ["rectify", *common], "erasure": ["erase", *common],
        "restriction": ["restrict", *common], "objection": ["object", *common],
    }
    assert "Not known yet" in seen.whom_before and "Anna" not in seen.whom_before
    assert "Anna Andersson" in seen.whom and ANNA_EMAIL in seen.whom
    for domain in ("exempel.se", "exempel.org", "exempel.com"):
        assert domain in seen.whom, domain
    assert "exempel.jp" not in seen.whom and "Kenji" not in seen.whom
    assert seen.prefilled == {"name": "Anna Andersson", "email": ANNA_EMAIL, "street": "Storgatan 1",
                              "city": "Stockholm", "postal_code": "111 22", "country": "SE",
                              "phone": seen.prefilled["phone"], "id_value": seen.prefilled["id_value"]}
    assert seen.prefilled["phone"].replace(".", "").replace(" ", "") == "+46812345678"

    assert seen.status_invalid == 422
    assert "check the fields marked below" in seen.error and "{" not in seen.error
    assert seen.email_field["value"] == "anna.andersson(at)example.se" and seen.email_field["invalid"] == "true"
    assert "e-mail" in seen.email_field["message"].lower()
    assert seen.city_field == {"value": "Göteborg", "invalid": None, "message": None}
    assert seen.name_field["value"] == "Anna Andersson" and seen.name_field["invalid"] is None
    assert "queued" in seen.notice_after_fix

    assert seen.assignee == "staff" and seen.assignee_after_pick == "maria" and seen.listing_assignee == "maria"
    [note] = seen.notes
    assert "INTERN-4711" in note and "staff" in note
    assert seen.events[-3:] == ["assigned", "assigned", "note"]
    assert "rectification_pushed" in seen.events
    assert "National ID" in seen.transformed_hint
    assert [e for e in seen.console_errors if "422" not in e] == []

    # every page view that showed her data was one read per confirmed record, logged with the request
    reads = [a for a in await gateway.store.access_log() if a["action"] == "request.subject_read"]
    assert len(await gateway.store.access_log()) > reads_before
    assert reads and all(a["actor"] == "staff" for a in reads)
    assert {a["object_id"] for a in reads} <= set(ids.values())
    assert unconfirmed not in {a["object_id"] for a in reads}


def drive_others(base: str, rid: str, lang_checks: Callable[[Any], dict[str, str]]) -> dict[str, str]:
    """The auditor's view of the request, then a Swedish-speaking colleague's reminder list."""
    out: dict[str, str] = {}
    errors: list[str] = []
    with chromium_page(errors) as page:
        page.goto(f"{base}/ui/requests/{rid}")
        fill_login(page, "audit")
        page.wait_for_url(re.compile(r"/ui/requests/[0-9a-f]{32}$"))
        out["auditor_whom"] = page.locator("#whom").inner_text()
        out["auditor_forms"] = " ".join(forms_on(page))
        out["auditor_deadline"] = page.locator("#deadline").inner_text()
        page.goto(f"{base}/ui/requests")
        out["auditor_reminders"] = page.locator("#reminders").inner_text()
    with chromium_page(errors) as page:
        page.goto(f"{base}/ui/requests")
        fill_login(page, "olle")
        page.wait_for_url(re.compile(r"/ui/requests$"))
        out |= lang_checks(page)
    out["errors"] = " ".join(errors)
    return out


def swedish_reminders(page: Any) -> dict[str, str]:
    out = {"sv_reminders": page.locator("#reminders").inner_text(),
           "sv_rows": str(page.locator("#reminders tr.reminder").count()),
           "sv_title": page.locator("#reminders h2").inner_text()}
    page.click("#reminders tr.reminder a")  # from the reminder to the request
    page.wait_for_url(re.compile(r"/ui/requests/[0-9a-f]{32}$"))
    out |= {"sv_whom": page.locator("#whom").inner_text(), "sv_deadline": page.locator("#deadline").inner_text(),
            "sv_forms": " ".join(forms_on(page)), "sv_assignee": page.locator("#assignee").inner_text(),
            "sv_erase": page.locator("#erase-form h3").inner_text(), "sv_lang": page.locator("html").get_attribute(
                "lang") or ""}
    return out


@needs_chromium
async def test_auditor_pseudonym_and_swedish_reminders_in_chromium(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await add_staff(gateway, "olle", "privacy", lang="sv")
    set_clock(gateway, OPENED)
    rid = await open_request(gateway, "erasure")
    later = await open_request(gateway, "access")
    set_clock(gateway, VIEWED)
    rights = gateway.client.app[SERVICES].rights
    await rights.assign(rid, "staff", "olle")
    await gateway.store.update_request(later, {"deadline": "2027-01-25"})  # far off: not a reminder
    base = str(gateway.client.make_url("/")).rstrip("/")
    reads_before = [a for a in await gateway.store.access_log() if a["action"] == "request.subject_read"]
    seen = await asyncio.to_thread(drive_others, base, rid, swedish_reminders)

    # the auditor: a pseudonymous label and the domains, never the name; no forms; nothing decrypted
    assert re.search(r"Subject [0-9a-f]{8}", seen["auditor_whom"]) and "Anna" not in seen["auditor_whom"]
    assert "exempel.se" in seen["auditor_whom"]
    assert seen["auditor_forms"] == ""
    assert "Monday, December 28, 2026" in seen["auditor_deadline"]
    assert "moved from Friday, December 25, 2026 (Juldagen)" in seen["auditor_deadline"]
    assert "6 days left" in seen["auditor_deadline"]
    assert "Monday, December 28, 2026" in seen["auditor_reminders"] and "olle" in seen["auditor_reminders"]
    reads = [a for a in await gateway.store.access_log() if a["action"] == "request.subject_read"]
    assert reads_before == [] and [a["actor"] for a in reads] == ["olle"]  # the auditor decrypted nothing

    # in Swedish: the weekday, the holiday it moved from, the days left; the far-off request is not listed
    assert seen["sv_rows"] == "1"
    assert seen["sv_title"] == "Förfaller inom 7 dagar eller försenade"
    text = seen["sv_reminders"]
    assert "måndag 28 december 2026" in text and "flyttad från fredag 25 december 2026 (Juldagen)" in text
    assert "6 dagar kvar" in text and "radering" in text and "olle" in text
    assert "1 av dem är tilldelad dig." in text
    assert "Vem begäran gäller" in seen["sv_whom"] and "Anna Andersson" in seen["sv_whom"]
    assert "måndag 28 december 2026" in seen["sv_deadline"] and "(Juldagen)" in seen["sv_deadline"]
    assert seen["sv_forms"] == "erase extend close assign note" and seen["sv_assignee"] == "olle"
    assert seen["sv_erase"] == "Radera (art. 17)" and seen["sv_lang"] == "sv"
    assert seen["errors"] == ""
