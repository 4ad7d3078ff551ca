"""The staff pages in a real headless Chromium against the running gateway: log in through the form,
filter the log, read a disclosure's values, export CSV, and check the third-country overview.

The browser runs with playwright's sync API in a worker thread, so the gateway keeps serving on the
test's event loop meanwhile.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.web.chromium import chromium_page, fill_login, needs_chromium
from tests.web.conftest import OLD_SCC, register_scenario

pytestmark = pytest.mark.integration

PERSONAL = ("Anna Andersson", "anna.andersson", "Storgatan", "19811218", "Kenji", "kenji.sato", "Tokyo",
            "Wei Zhang", "Beijing", "+46", "123 456 78")


@dataclass
class Seen:
    """What the browser saw, checked on the test's side."""

    login_title: str = ""
    all_rows: list[str] = field(default_factory=list)
    third_rows: list[str] = field(default_factory=list)
    recipient_rows: list[str] = field(default_factory=list)
    subject_rows: list[str] = field(default_factory=list)
    subject_url: str = ""
    detail_values: str = ""
    detail_facts: str = ""
    csv_name: str = ""
    csv_text: str = ""
    overview: dict[str, dict[str, str]] = field(default_factory=dict)
    expiring: str = ""
    expired: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    console_errors: list[str] = field(default_factory=list)


def drive(base: str, token: str, download_dir: Path) -> Seen:
    seen = Seen()
    with chromium_page(seen.console_errors) as page:

        def rows() -> list[str]:
            return [r.get_attribute("data-recipient") or "" for r in page.locator("tr.entry").all()]

        # login through the form; the log is where it lands
        resp = page.goto(f"{base}/ui/disclosures")
        assert resp is not None
        seen.login_title = page.title()
        fill_login(page, token)
        page.wait_for_url(re.compile(r"/ui/disclosures$"))
        seen.all_rows = rows()
        final = page.goto(f"{base}/ui/disclosures")
        assert final is not None
        seen.headers = final.all_headers()

        # third countries only
        page.select_option("select[name=third_country]", "true")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"third_country=true"))
        seen.third_rows = rows()

        # ... and one recipient
        page.select_option("select[name=recipient]", "jprs-jp")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"recipient=jprs-jp"))
        seen.recipient_rows = rows()

        # a subject by e-mail, all transfers
        page.click("text=Clear all")
        page.wait_for_url(re.compile(r"/ui/disclosures$"))
        page.fill("input[name=subject]", "Anna.Andersson@example.se")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"subject_id="))
        seen.subject_url = page.url
        seen.subject_rows = rows()

        # the .se disclosure that carried the values (its contact:create; the domain:create carried none)
        se_contact = page.locator("tr.entry[data-recipient=iis-se]", has=page.locator(".command",
                                                                                      has_text="contact:create"))
        se_contact.locator("a", has_text="details").click()
        page.wait_for_url(re.compile(r"/ui/disclosures/[0-9a-f]{32}$"))
        seen.detail_values = page.locator("#values").inner_text()
        seen.detail_facts = page.locator("#facts").inner_text()

        # CSV of the whole log
        page.goto(f"{base}/ui/disclosures")
        with page.expect_download() as info:
            page.click("#export")
        download = info.value
        seen.csv_name = download.suggested_filename
        target = download_dir / download.suggested_filename
        download.save_as(target)
        seen.csv_text = target.read_bytes().decode("utf-8-sig")

        # the overview, reached through the navigation
        page.click("nav >> text=Third countries")
        page.wait_for_url(re.compile(r"/ui/third-countries$"))
        for tr in page.locator("tr.transfer").all():
            cells = [c.inner_text().strip() for c in tr.locator("td").all()]
            seen.overview[tr.get_attribute("data-recipient") or ""] = dict(zip(
                ("recipient", "country", "basis", "instrument", "delivered", "possibly_delivered", "blocked",
                 "failed", "refused", "deleted"),
                cells, strict=True))
        seen.expiring = page.locator("#expiring").inner_text()
        seen.expired = page.locator("#expired").inner_text()
    return seen


@needs_chromium
async def test_staff_pages_in_chromium(gateway: Gateway, tmp_path: Path) -> None:
    await register_scenario(gateway)
    base = str(gateway.client.make_url("/")).rstrip("/")
    assert base.startswith("http://127.0.0.1:")
    seen = await asyncio.to_thread(drive, base, gateway.tokens.privacy, tmp_path)

    assert seen.login_title.startswith("Log in")
    # one row per command: a contact:create and a domain:create at the thick registries (.se, .org, .jp),
    # a domain:create at thin .com, the one blocked entry for .cn
    # newest first
    assert seen.all_rows == ["iis-se", "iis-se", "pir-org", "pir-org", "verisign-com", "jprs-jp", "jprs-jp",
                             "cnnic-cn"][::-1]
    assert seen.third_rows == ["pir-org", "pir-org", "jprs-jp", "jprs-jp", "cnnic-cn"][::-1]
    assert seen.recipient_rows == ["jprs-jp", "jprs-jp"]
    assert seen.subject_rows == ["iis-se", "iis-se", "pir-org", "pir-org", "verisign-com"][::-1]
    assert "anna" not in seen.subject_url.lower()  # the identifier never went into a URL

    assert "Anna Andersson" in seen.detail_values and "Storgatan 1" in seen.detail_values
    assert "access log" in seen.detail_values
    assert "Internetstiftelsen" in seen.detail_facts and "SBX-" in seen.detail_facts
    assert "contact:create" in seen.detail_facts
    reads = [a for a in await gateway.store.access_log() if a["action"] == "disclosure.values_read"]
    assert len(reads) == 1 and reads[0]["actor"] == "staff"

    assert re.fullmatch(r"disclosures-\d{8}T\d{6}Z\.csv", seen.csv_name)
    exported = list(csv.DictReader(io.StringIO(seen.csv_text)))
    assert [r["recipient"] for r in exported] == seen.all_rows[::-1]  # the export is in ledger order
    assert {r["outcome"] for r in exported} == {"delivered", "blocked"}
    assert [r["category"] for r in exported] == ["eea", "eea", "safeguard", "safeguard", "no_personal_data",
                                                 "adequacy", "adequacy", "blocked"]
    for value in PERSONAL:
        assert value not in seen.csv_text, value
    exports = [a for a in await gateway.store.access_log() if a["action"] == "disclosures.exported"]
    assert [(a["actor"], a["object_id"]) for a in exports] == [("staff", "all")]

    counts: dict[str, Any] = {r: (v["basis"], v["delivered"], v["blocked"], v["failed"])
                              for r, v in seen.overview.items()}
    assert counts == {  # entries, one per command: the contact:create and the domain:create of each registration
        "cnnic-cn": ("Blocked: no basis", "0", "1", "0"),
        "jprs-jp": ("Adequacy decision (Art. 45)", "2", "0", "0"),
        "pir-org": ("Appropriate safeguards (Art. 46)", "2", "0", "0"),
    }
    assert "2019/419" in seen.overview["jprs-jp"]["instrument"]
    assert "2021/914, module 1" in seen.expiring and "pir-org" in seen.expiring
    assert "transfers will be blocked" in seen.expiring
    assert OLD_SCC in seen.expired and "2021/1772" in seen.expired

    csp = seen.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert seen.headers["x-frame-options"] == "DENY" and seen.headers["referrer-policy"] == "no-referrer"
    assert seen.console_errors == []  # e.g. no CSP violations for our own stylesheet
