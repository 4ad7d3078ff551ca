"""Every staff page checked with axe-core in a real headless Chromium: no serious or critical
violation (labels, contrast, names, landmarks, ARIA) on the log-in page, the disclosure log and a
disclosure, the third-country overview, who read what, the requests list, a request, a new request, an
Art. 15 extract, the Art. 30 record, the explainer (empty and with a plan), parked deliveries, a
subject's holdings, the accounts page, and the error pages (404, 403); in Swedish (the default), and
again in English after the header's language switch.  The keyboard gets a skip link first and a visible
focus ring.

The browser runs with playwright's sync API in a worker thread, so the gateway keeps serving on the
test's event loop meanwhile."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.http.context import SERVICES, Services
from tests.conftest import VALID_BODY, Gateway, Tokens, running_gateway
from tests.http.test_parked import db_of, refused_registration
from tests.web.axe import Violation, axe_page, blocking, needs_axe
from tests.web.chromium import fill_login, needs_chromium
from tests.web.conftest import STAFF, add_staff, register_scenario, web_config

pytestmark = [pytest.mark.integration, needs_chromium, needs_axe]

OFFICER = "ingrid"  # privacy role, administrator, Swedish


#: The registrar's details in ``controller.yaml``, so the Art. 15 letter can be made (a placeholder refuses).
def configured(tmp_path: Path) -> Path:
    """The web tests' config: ``web_config`` fills in the controller's details (letters refuse placeholders)."""
    cfg = web_config(tmp_path)
    assert "placeholder: false" in (cfg / "controller.yaml").read_text(encoding="utf-8")
    return cfg


@pytest.fixture
async def gateway(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens) -> AsyncIterator[Gateway]:
    """The web tests' gateway (staff accounts ``staff`` and ``audit``), its controller configured."""
    async with running_gateway(tmp_path, pki, sandbox, tokens, config_dir=configured(tmp_path)) as gw:
        for role, name in STAFF.items():
            await add_staff(gw, name, role)
        yield gw


@dataclass
class Seeded:
    base: str
    entry_id: str
    subject_id: str
    request_id: str


@dataclass
class Seen:
    found: dict[str, list[Violation]] = field(default_factory=dict)
    headings: dict[str, str] = field(default_factory=dict)
    langs: dict[str, str] = field(default_factory=dict)
    first_tab: dict[str, Any] = field(default_factory=dict)
    focus_outline: str = ""
    planted: set[str] = field(default_factory=set)
    parked_rows: int = 0
    errors: list[str] = field(default_factory=list)


def services(gateway: Gateway) -> Services:
    app: web.Application | None = gateway.client.app
    assert app is not None
    return app[SERVICES]


async def seed(gateway: Gateway) -> Seeded:
    """Registrations in every outcome, a parked delivery, an admin officer, and Anna's access request with her
    record confirmed."""
    ids = await register_scenario(gateway)
    await refused_registration(gateway, "parkerad.se", db_of(gateway))  # a parked delivery, with its buttons
    await add_staff(gateway, OFFICER, "privacy", lang="sv", admin=True)
    reg = await gateway.wait_status(ids["exempel.se"], {"delivered"})
    rights = services(gateway).rights
    opened = await rights.open_request(kind="access", channel="email", verified_by=OFFICER, actor=OFFICER,
                                       identity_check="Svar från e-postadressen i registret",
                                       identifiers={"email": VALID_BODY["registrant"]["email"]})
    await rights.confirm_subjects(opened["id"], OFFICER, [reg["subject_id"]])
    base = str(gateway.client.make_url("/")).rstrip("/")
    return Seeded(base, reg["disclosures"][0]["id"], reg["subject_id"], opened["id"])


def drive(s: Seeded) -> Seen:
    seen = Seen()
    with axe_page(seen.errors, locale="sv-SE") as page:  # a Swedish browser, as at a Swedish registrar

        def check(name: str, path: str | None = None) -> None:
            if path is not None:
                page.goto(s.base + path)
            seen.found[name] = blocking(page)
            seen.headings[name] = page.locator("h1").first.inner_text()
            seen.langs[name] = page.get_attribute("html", "lang") or ""

        check("login", "/ui/login?next=" + quote("/ui/disclosures", safe=""))
        fill_login(page, OFFICER)
        page.wait_for_url(re.compile(r"/ui/disclosures$"))

        pages = {
            "disclosures": "/ui/disclosures", "disclosure": f"/ui/disclosures/{s.entry_id}",
            "third-countries": "/ui/third-countries", "access": "/ui/access", "requests": "/ui/requests",
            "request": f"/ui/requests/{s.request_id}", "request-new": "/ui/requests/new", "art30": "/ui/art30",
            "explain": "/ui/explain", "outbox": "/ui/outbox", "holdings": f"/ui/subjects/{s.subject_id}/holdings",
            "accounts": "/ui/accounts", "not-found": "/ui/no-such-page",
        }
        for name, path in pages.items():
            check(name, path)
        page.goto(s.base + pages["outbox"])
        seen.parked_rows = page.locator("tr.parked").count()  # the page was checked with its Retry/Cancel forms

        # the keyboard: a skip link first, then a visible focus ring (not the browser's default removed)
        page.goto(s.base + "/ui/art30")
        page.keyboard.press("Tab")  # the skip link comes first, and shows when focused
        seen.first_tab = page.evaluate("""() => { const a = document.activeElement; const r = a.getBoundingClientRect();
            return {cls: a.className, text: a.textContent, top: r.top, href: a.getAttribute('href')}; }""")
        page.keyboard.press("Enter")
        seen.first_tab["then"] = page.evaluate("() => document.activeElement.id")
        page.keyboard.press("Tab")
        seen.focus_outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")

        # the explainer with a plan
        page.goto(s.base + "/ui/explain")
        for sel, value in (("#rf-name", "Test Person"), ("#rf-street", "Storgatan 1"), ("#rf-city", "Stockholm"),
                           ("#rf-email", "test@example.se"), ("#rf-phone", "+46 8 123 456 78")):
            page.fill(sel, value)
        page.click("form.explain button[type=submit]")
        page.wait_for_selector("#plan")
        check("explain-plan")

        # the Art. 15 extract, made from the request page
        page.goto(f"{s.base}/ui/requests/{s.request_id}")
        page.select_option("#extract-form select[name=lang]", "sv")
        page.click("#extract-form button[type=submit]")
        page.wait_for_selector("#letter")
        check("extract")

        # the header's switch: English from here on, for this account
        page.goto(s.base + "/ui/third-countries")
        page.click("form.language button[value=en]")
        page.wait_for_url(re.compile(r"/ui/third-countries$"))
        check("third-countries-en")
        check("art30-en", "/ui/art30")
        check("not-found-en", "/ui/no-such-page")
        page.click("form.language button[value=sv]")
        page.wait_for_url(re.compile(r"/ui/no-such-page$"))
        seen.headings["back-to-sv"] = page.locator("h1").first.inner_text()

        # an auditor on a privacy-only page
        page.click("form.who button[type=submit]")
        page.wait_for_url(re.compile(r"/ui/login"))
        page.goto(s.base + "/ui/login?next=" + quote("/ui/disclosures", safe=""))
        fill_login(page, STAFF["auditor"])
        page.wait_for_url(re.compile(r"/ui/disclosures$"))
        check("forbidden", "/ui/explain")

        # the check can fail: a field without a label and grey-on-grey text are caught
        page.evaluate("""() => document.querySelector('main').insertAdjacentHTML('beforeend',
            '<input type="text" name="x"><p style="color:#bbb;background:#ccc">faint</p>')""")
        seen.planted = {v.rule for v in blocking(page)}
    return seen


async def test_every_page_has_no_serious_accessibility_violation(gateway: Gateway) -> None:
    seen = await asyncio.to_thread(drive, await seed(gateway))

    bad = {name: [str(v) for v in found] for name, found in seen.found.items() if found}
    assert not bad, bad
    assert len(seen.found) == 20  # every page above was checked

    # Swedish by default, English after the switch, Swedish again after switching back
    assert seen.headings["login"] == "Logga in" and seen.langs["login"] == "sv"
    assert seen.headings["art30"] == "Register över behandlingar (art. 30)" and seen.langs["art30"] == "sv"
    assert seen.headings["not-found"] == "Sidan finns inte"
    assert seen.headings["art30-en"] == "Record of processing activities (Art. 30)" and seen.langs["art30-en"] == "en"
    assert seen.headings["not-found-en"] == "Page not found"
    assert seen.headings["back-to-sv"] == "Sidan finns inte"
    assert seen.headings["forbidden"] == "Not allowed"  # the auditor account chose English: it wins over the cookie

    assert seen.first_tab["cls"] == "skip" and seen.first_tab["href"] == "#main"
    assert seen.first_tab["text"] == "Hoppa till innehållet" and seen.first_tab["top"] >= 0
    assert seen.first_tab["then"] == "main"  # following it moves the focus past the header
    assert seen.focus_outline not in ("", "none")
    assert {"label", "color-contrast"} <= seen.planted
    assert seen.parked_rows == 1
    expected = re.compile(r"(403|404) .*/ui/(no-such-page|explain)$|.*status of (403|404)")
    assert not [e for e in seen.errors if not expected.match(e)], seen.errors
