"""A data-subject access request in a real headless Chromium: log in, open the request through the form
for a registered subject found by e-mail, see her record listed as a candidate with nothing offered on it
yet, tick it and confirm, produce the Swedish extract, read it, and download its PDF.

As in test_browser.py, playwright's sync API runs in a worker thread while the gateway serves on the
test's event loop.
"""

from __future__ import annotations

import asyncio
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.conftest import Gateway
from tests.web.chromium import chromium_page, fill_login, needs_chromium
from tests.web.conftest import register_scenario

pytestmark = pytest.mark.integration

ANNA_RECIPIENTS = ("Internetstiftelsen (registret för .se)", "Public Interest Registry (registret för .org)",
                   "VeriSign, Inc. (registret för .com)")
OTHERS = ("exempel.jp", "exempel.cn", "Japan Registry Services", "China Internet Network", "Kenji", "Wei Zhang",
          "example.jp", "example.cn")


@dataclass
class Seen:
    request_url: str = ""
    subject: str = ""
    candidates: list[str] = field(default_factory=list)
    extract_offered_before: bool = True
    confirmed_url: str = ""
    subject_after: str = ""
    events: list[str] = field(default_factory=list)
    extract_title: str = ""
    letter: str = ""
    covers: str = ""
    page_text: str = ""
    pdf_name: str = ""
    pdf_path: Path | None = None
    events_after: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)


def drive(base: str, token: str, download_dir: Path) -> Seen:
    seen = Seen()
    with chromium_page(seen.console_errors) as page:

        # log in on the way to the requests page, reached through the navigation
        page.goto(f"{base}/ui/requests")
        fill_login(page, token)
        page.wait_for_url(re.compile(r"/ui/requests$"))
        page.click("#new-request")
        page.wait_for_url(re.compile(r"/ui/requests/new$"))

        # open an access request for the person who wrote from her registered address
        page.select_option("select[name=kind]", "access")
        page.select_option("select[name=channel]", "email")
        page.fill("input[name=identity_check]", "Reply from the e-mail address on record")
        page.fill("input[name=email]", "Anna.Andersson@example.se")
        page.click("form.request-form button[type=submit]")
        page.wait_for_url(re.compile(r"/ui/requests/[0-9a-f]{32}$"))
        seen.request_url = page.url
        seen.subject = page.locator("#subject").inner_text()
        seen.candidates = [f"{c.get_attribute('data-subject')} {c.get_attribute('data-matched-by')}"
                           for c in page.locator("tr.candidate").all()]
        seen.extract_offered_before = page.locator("#extract-form").count() > 0

        # staff tick her record (the identity check showed it is hers) and confirm
        page.check("#confirm-form input[name=subject_id]")
        page.click("#confirm-form button[type=submit]")
        page.wait_for_url(re.compile(r"/ui/requests/[0-9a-f]{32}\?done=confirmed$"))
        seen.confirmed_url = page.url
        seen.subject_after = page.locator("#subject").inner_text()
        seen.events = [e.get_attribute("data-action") or "" for e in page.locator("tr.event").all()]

        # the extract, in Swedish
        page.select_option("#extract-form select[name=lang]", "sv")
        page.click("#extract-form button[type=submit]")
        page.wait_for_url(re.compile(r"/ui/requests/[0-9a-f]{32}/extract$"))
        seen.extract_title = page.title()
        seen.letter = page.locator("#letter").inner_text()
        seen.covers = page.locator("#covers").inner_text()
        seen.page_text = page.locator("body").inner_text()

        # ... and its PDF
        with page.expect_download() as info:
            page.click("#download-pdf")
        download = info.value
        seen.pdf_name = download.suggested_filename
        seen.pdf_path = download_dir / download.suggested_filename
        download.save_as(seen.pdf_path)

        # back on the request, both extracts are in its log
        page.click("text=← Request")
        page.wait_for_url(re.compile(r"/ui/requests/[0-9a-f]{32}$"))
        seen.events_after = [e.get_attribute("data-action") or "" for e in page.locator("tr.event").all()]
    return seen


@needs_chromium
async def test_access_request_and_extract_in_chromium(gateway: Gateway, tmp_path: Path) -> None:
    await register_scenario(gateway)
    base = str(gateway.client.make_url("/")).rstrip("/")
    seen = await asyncio.to_thread(drive, base, gateway.tokens.privacy, tmp_path)

    assert "anna" not in seen.request_url.lower()
    assert seen.subject.startswith("not confirmed (1 candidate record")
    [candidate] = seen.candidates
    anna = candidate.split()[0]
    assert candidate == f"{anna} email" and seen.extract_offered_before is False
    assert seen.subject_after.startswith(f"confirmed (1): {anna}")
    assert seen.events == ["opened", "candidates_found", "subjects_confirmed"]

    assert seen.extract_title.startswith("Register extract")  # the page speaks the staff member's language (en)
    letter = seen.letter
    assert "Registerutdrag" in letter and "Integritetsskyddsmyndigheten" in letter
    for name in ANNA_RECIPIENTS:
        assert name in letter, name
    # one entry per command: contact:create and domain:create at .se and .org, domain:create at thin .com
    assert "Utlämnanden (5)" in letter and "Anna Andersson" in letter and "Rätt till radering" in letter
    for domain in ("exempel.se", "exempel.org", "exempel.com"):
        assert domain in seen.covers, domain
    for other in OTHERS:  # another subject's registrations and data are nowhere on the page
        assert other not in seen.page_text, other

    assert re.fullmatch(r"extract-[0-9a-f]{32}-sv-\d{8}\.pdf", seen.pdf_name)
    assert seen.pdf_path is not None
    data = seen.pdf_path.read_bytes()
    assert data.startswith(b"%PDF")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    for needle in ("Registerutdrag", "Integritetsskyddsmyndigheten", "Anna Andersson", *ANNA_RECIPIENTS):
        assert needle in text, needle
    for other in OTHERS:
        assert other not in text, other

    assert seen.events_after == ["opened", "candidates_found", "subjects_confirmed", "extract", "extract"]
    reads = [a for a in await gateway.store.access_log() if a["action"] == "rights.extract"]
    assert len(reads) == 2 and {a["actor"] for a in reads} == {"staff"}
    assert seen.console_errors == []  # no CSP violations: the letter's inline style is not on the page
