"""Who read what (/ui/access): every decryption, export and extract by whom and when, filterable by person,
kind, data subject and date, newest first in numbered pages; shown by pseudonym (reading the list decrypts
nothing)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.web.chromium import chromium_page, fill_login, needs_chromium
from tests.web.test_disclosure_log import CSRF, get, login, make_account, rows_of, seed

pytestmark = pytest.mark.integration


async def reads_by_petra(gateway: Gateway) -> None:
    """Petra (privacy) reads the log (names), one disclosure's values, and exports the log."""
    await make_account(gateway, "petra", "privacy", lang="en")
    await login(gateway.client, "petra")
    html = await get(gateway.client, "/ui/disclosures?domain=exempel-07")
    entry = rows_of(html)[0]["id"]
    await get(gateway.client, f"/ui/disclosures/{entry}")
    assert (await gateway.client.get("/ui/disclosures.csv?third_country=true")).status == 200
    await gateway.client.post("/ui/logout", data={"csrf": CSRF.search(html).group(1)})  # type: ignore[union-attr]


async def test_filters_pages_and_validation(gateway: Gateway) -> None:
    await seed(gateway, 10)
    await reads_by_petra(gateway)
    await make_account(gateway, "olle", "auditor", lang="en")
    await login(gateway.client, "olle")
    log = await gateway.store.access_log()
    assert {a["action"] for a in log} >= {"subject.name_read", "disclosure.values_read", "disclosures.exported"}

    html = await get(gateway.client, "/ui/access")
    actions = re.findall(r'<tr class="access-row" data-action="([^"]+)" data-actor="([^"]+)">', html)
    assert len(actions) == len(log) and actions[0] == ("disclosures.exported", "petra")  # newest first
    assert "Values of a disclosure decrypted" in html and "Disclosure log exported" in html
    assert "Kenji" not in html and "Subject " in html  # pseudonyms, no names

    html = await get(gateway.client, "/ui/access?action=disclosure.values_read&actor=petra")
    rows = re.findall(r'data-action="([^"]+)" data-actor="([^"]+)"', html)
    assert rows == [("disclosure.values_read", "petra")]
    assert re.search(r'href="/ui/disclosures/[0-9a-f]{32}"', html)  # the object read, linked
    subject = next(a["subject_id"] for a in log if a["action"] == "disclosure.values_read")
    html = await get(gateway.client, f"/ui/access?subject_id={subject}")
    assert {a for a, _ in re.findall(r'data-action="([^"]+)" data-actor="([^"]+)"', html)} <= {
        "disclosure.values_read", "subject.name_read"}
    today = dt.datetime.now(dt.UTC).date()
    assert "0 accesses recorded" in await get(gateway.client, f"/ui/access?until={today - dt.timedelta(days=1)}")
    assert f"{len(log)} accesses recorded" in await get(gateway.client, f"/ui/access?since={today}")

    # numbered pages
    html = await get(gateway.client, "/ui/access?size=25")
    if len(log) > 25:
        assert 'id="next-page"' in html
        page2 = await get(gateway.client, "/ui/access?size=25&page=2")
        assert len(re.findall(r'class="access-row"', page2)) == min(25, len(log) - 25)
    for bad in ("subject_id=nothex", "since=yesterday", "size=3", "page=0", "actor=%00"):
        r = await gateway.client.get(f"/ui/access?{bad}")
        assert r.status == 400 and r.content_type == "text/html", bad


@needs_chromium
async def test_who_read_what_in_chromium(gateway: Gateway, tmp_path: Path) -> None:
    await seed(gateway, 10)
    await reads_by_petra(gateway)
    await make_account(gateway, "olle", "auditor", lang="sv")
    base = str(gateway.client.make_url("/")).rstrip("/")

    def drive() -> dict[str, Any]:
        seen: dict[str, Any] = {"errors": []}
        with chromium_page(seen["errors"]) as page:
            page.goto(f"{base}/ui/access")
            fill_login(page, "olle")
            page.wait_for_url(re.compile(r"/ui/access$"))
            seen["all"] = page.locator("tr.access-row").count()
            page.select_option("select[name=actor]", "petra")
            page.select_option("select[name=action]", "disclosure.values_read")
            page.click("form.filters button[type=submit]")
            page.wait_for_url(re.compile(r"action=disclosure.values_read"))
            seen["filtered"] = [(r.get_attribute("data-actor"), r.get_attribute("data-action"))
                                for r in page.locator("tr.access-row").all()]
            page.locator("tr.access-row td.object a").first.click()
            page.wait_for_url(re.compile(r"/ui/disclosures/[0-9a-f]{32}$"))
            seen["detail"] = page.locator("#facts").inner_text()
            page.screenshot(path=str(tmp_path / "access.png"), full_page=True)
        return seen

    seen = await asyncio.to_thread(drive)
    assert seen["errors"] == []
    assert seen["all"] >= 3
    assert seen["filtered"] == [("petra", "disclosure.values_read")]
    assert "exempel-07.jp" in seen["detail"]
