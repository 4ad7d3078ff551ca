"""The parked-deliveries page in a real headless Chromium against the running gateway: two registrations
the EPP sandbox refused for good are listed under their registry; staff retry one (it is delivered) and
cancel the other with the page's buttons, the decisions are listed with who took them, a form without
the session's CSRF token is refused, and the auditor sees the page without the buttons."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.http.test_parked import db_of, refused_registration
from tests.web.chromium import chromium_page, fill_login, needs_chromium

pytestmark = pytest.mark.integration


@dataclass
class Seen:
    counts: str = ""
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # row id, registration, code, reason
    after_retry_notice: str = ""
    after_retry_rows: list[str] = field(default_factory=list)
    forged_status: int = 0
    after_cancel_empty: str = ""
    history: list[tuple[str, str, str]] = field(default_factory=list)  # action, row id, actor
    auditor_rows: int = 0
    auditor_buttons: int = 0
    auditor_history: int = 0
    errors: list[str] = field(default_factory=list)


def login(page: Any, base: str, token: str) -> None:
    """Through the login form, from the page itself (the form sends the browser back to it)."""
    page.goto(f"{base}/ui/outbox")
    fill_login(page, token)
    page.wait_for_url(re.compile(r"/ui/outbox$"))


def drive(base: str, privacy: str, auditor: str) -> Seen:
    seen = Seen()
    with chromium_page(seen.errors) as page:
        login(page, base, privacy)
        seen.counts = page.locator("#counts").inner_text()
        for tr in page.locator("section.recipient[data-recipient=iis-se] tr.parked").all():
            seen.rows.append((tr.get_attribute("data-id") or "", tr.get_attribute("data-registration") or "",
                              tr.locator("td.code").inner_text(), tr.locator("td.reason").inner_text()))
        first, second = seen.rows[0][0], seen.rows[1][0]

        page.locator(f"tr.parked[data-id='{first}'] form.retry button").click()
        page.wait_for_url(re.compile(r"/ui/outbox\?done=retried$"))
        seen.after_retry_notice = page.locator("#notice").inner_text()
        seen.after_retry_rows = [tr.get_attribute("data-id") or "" for tr in page.locator("tr.parked").all()]

        # the session cookie alone is not enough: the form's CSRF token must match the session
        forged = page.request.post(f"{base}/ui/outbox/{second}/cancel", form={"csrf": "forged"})
        seen.forged_status = forged.status

        page.locator(f"tr.parked[data-id='{second}'] form.cancel button").click()
        page.wait_for_url(re.compile(r"/ui/outbox\?done=cancelled$"))
        seen.after_cancel_empty = page.locator("#empty").inner_text()
        for tr in page.locator("#history tr.action").all():
            seen.history.append((tr.get_attribute("data-action") or "", tr.get_attribute("data-id") or "",
                                 tr.locator("td.actor").inner_text()))

        page.click("form.who button[type=submit]")  # log out
        page.wait_for_url(re.compile(r"/ui/login"))
        login(page, base, auditor)
        seen.auditor_rows = page.locator("tr.parked").count()
        seen.auditor_buttons = page.locator("form.retry, form.cancel").count()
        seen.auditor_history = page.locator("#history tr.action").count()
    return seen


@needs_chromium
async def test_parked_deliveries_page_in_chromium(gateway: Gateway) -> None:
    db = db_of(gateway)
    first = await refused_registration(gateway, "parkerad-ett.se", db)
    second = await refused_registration(gateway, "parkerad-tva.se", db)
    base = str(gateway.client.make_url("/")).rstrip("/")

    seen = await asyncio.to_thread(drive, base, gateway.tokens.privacy, gateway.tokens.auditor)

    assert seen.errors == [], seen.errors
    assert seen.counts.strip() == "iis-se: 2"
    assert [r[1] for r in seen.rows] == [first, second]
    assert all(r[3] not in ("", "—") for r in seen.rows)  # every row says why it is parked
    assert all("2306" in f"{r[2]} {r[3]}" for r in seen.rows)  # and the registry's result code
    one, two = seen.rows[0][0], seen.rows[1][0]
    assert "Queued again" in seen.after_retry_notice and seen.after_retry_rows == [two]
    assert seen.forged_status == 403
    assert "No parked deliveries" in seen.after_cancel_empty
    assert seen.history == [("cancel", two, "staff"), ("retry", one, "staff")]
    assert (seen.auditor_rows, seen.auditor_buttons, seen.auditor_history) == (0, 0, 2)

    assert (await gateway.wait_status(first, {"delivered"}))["status"] == "delivered"
    reg = await gateway.wait_status(second, {"failed"})
    assert [d["state"] for d in reg["deliveries"]] == ["cancelled"]
    log = [(a["actor"], a["action"], a["object_id"]) for a in await gateway.store.access_log()
           if a["action"].startswith("outbox.")]
    assert log == [("staff", "outbox.retry", one), ("staff", "outbox.cancel", two)]
