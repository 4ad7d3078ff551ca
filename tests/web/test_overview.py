"""The third-country overview: a privacy officer answers "which third-country transfers did we make this
period, under which basis, for whom?" from this one page in Chromium; the counts per recipient, basis and
month; the server-drawn charts (accessible SVG beside data tables); the date range and its presets."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from gateway.http.pages.overview import Range, month_start, parse_range, presets
from gateway.store.base import DisclosureFilter
from tests.conftest import Gateway
from tests.web.chromium import chromium_page, fill_login, needs_chromium
from tests.web.test_disclosure_log import PEOPLE, TLDS, get, login, make_account, person_of, seed

THIRD = {"ch": "adequacy", "org": "safeguard", "jp": "adequacy", "io": "derogation", "cn": "blocked"}
RECIPIENT_TLD = {"switch-ch": "ch", "pir-org": "org", "jprs-jp": "jp", "io-registry": "io", "cnnic-cn": "cn"}


def test_presets_and_range() -> None:
    today = dt.date(2026, 1, 15)
    named = dict(presets(today))
    assert named["Last month"] == Range(dt.date(2025, 12, 1), dt.date(2025, 12, 31))
    assert named["This month"] == Range(dt.date(2026, 1, 1), today)
    assert named["Last 12 months"].first == dt.date(2025, 2, 1)
    assert month_start(dt.date(2026, 3, 31), 14) == dt.date(2025, 1, 1)
    rng = parse_range({"from": "2025-11-20", "to": "2026-01-02"}, today)
    assert rng.months() == ["2025-11", "2025-12", "2026-01"]
    assert rng.since == "2025-11-20T00:00:00.000000Z" and rng.until == "2026-01-03T00:00:00.000000Z"
    assert parse_range({}, today) == named["Last 12 months"]
    from gateway.errors import BadFilter

    for bad in ({"from": "2026-02-01", "to": "2026-01-01"}, {"from": "2020-01-01"}, {"to": "01/02/2026"},
                {"from": "2026-02-30"}):
        with pytest.raises(BadFilter):
            parse_range(bad, today)


async def test_counts_per_recipient_basis_and_month(gateway: Gateway) -> None:
    await seed(gateway, 20)
    await make_account(gateway, "olle", "auditor", lang="en")
    await login(gateway.client, "olle")
    html = await get(gateway.client, "/ui/third-countries")
    stored = [e async for e in gateway.store.iter_disclosures(DisclosureFilter(third_country=True))]
    month = stored[0].recorded_at[:7]
    per_recipient = Counter(e.recipient for e in stored)
    rows = re.findall(r'<tr class="month-row" data-recipient="([a-z0-9-]+)" data-category="([a-z_]+)">(.*?)</tr>',
                      html, re.S)
    assert {r for r, _, _ in rows} == set(per_recipient)
    for recipient, category, cells in rows:
        assert category == THIRD[RECIPIENT_TLD[recipient]]
        m = re.search(rf'data-month="{month}">(\d+)<', cells)
        assert m and int(m.group(1)) == per_recipient[recipient], recipient
    # three charts, each an accessible SVG with a data table beside it
    svgs = re.findall(r'<svg [^>]*role="img"[^>]*aria-labelledby="([^"]+)"', html)
    assert len(svgs) == 3
    assert html.count('<table class="chart-data">') == 3
    assert "Third-country transfers per month, by basis" in html
    # an auditor sees pseudonyms in "for whom", no names, and nothing is recorded for it
    who = html.split('id="subjects"')[1].split("</section>")[0]
    assert "Subject " in who and "Kenji" not in who and "Łukasz" not in who
    assert not [a for a in await gateway.store.access_log() if a["action"] == "subject.name_read"]
    # a range with nothing in it
    html = await get(gateway.client, "/ui/third-countries?from=2020-01-01&to=2020-12-31")
    assert "No transfers to third countries in this period." in html and "<svg" not in html
    assert (await gateway.client.get("/ui/third-countries?from=2020-13-01")).status == 400


@needs_chromium
async def test_privacy_officer_answers_the_third_country_question(gateway: Gateway, tmp_path: Path) -> None:
    """From one page: which transfers (recipients, countries), under which basis, for whom (names, domains)."""
    await seed(gateway)
    await make_account(gateway, "petra", "privacy", lang="sv")
    base = str(gateway.client.make_url("/")).rstrip("/")

    def drive() -> dict[str, Any]:
        seen: dict[str, Any] = {"errors": []}
        with chromium_page(seen["errors"]) as page:
            page.set_viewport_size({"width": 1280, "height": 1000})
            page.goto(f"{base}/ui/third-countries")
            fill_login(page, "petra")
            page.wait_for_url(re.compile(r"/ui/third-countries$"))
            page.click("a.preset >> nth=1")  # this month (the seeded transfers were made today)
            page.wait_for_url(re.compile(r"from=\d{4}-\d{2}-01"))
            seen["summary"] = page.locator("#summary").inner_text()
            seen["subjects"] = [
                {"who": tr.locator("td.who").inner_text(), "domain": tr.get_attribute("data-domain"),
                 "recipient": tr.get_attribute("data-recipient"), "category": tr.get_attribute("data-category")}
                for tr in page.locator("tr.subject-row").all()]
            seen["charts"] = page.locator("svg.chart").count()
            seen["chart_titles"] = [t.text_content() for t in page.locator("svg.chart > title").all()]
            seen["bars"] = page.locator("svg.chart rect[data-value]").count()
            page.emulate_media(media="print")
            seen["form_hidden_in_print"] = not page.locator("form.range").is_visible()
            page.emulate_media(media="screen")
            page.screenshot(path=str(tmp_path / "third-countries.png"), full_page=True)
            # follow one person's link to exactly those entries in the log
            link = page.locator("tr.subject-row[data-domain='exempel-07.jp'] a").first
            link.click()
            page.wait_for_url(re.compile(r"/ui/disclosures\?.*subject_id="))
            seen["log_domains"] = {r.get_attribute("data-domain") for r in page.locator("tr.entry").all()}
        return seen

    seen = await asyncio.to_thread(drive)
    assert seen["errors"] == []
    assert seen["charts"] == 3 and all(seen["chart_titles"]) and seen["bars"] > 0
    assert seen["form_hidden_in_print"]
    expected = {f"exempel-{i:02d}.{TLDS[i % len(TLDS)]}": PEOPLE[person_of(i)][0]
                for i in range(50) if TLDS[i % len(TLDS)] in THIRD}
    got = {s["domain"]: s for s in seen["subjects"]}
    assert set(got) == set(expected)
    for domain, name in expected.items():
        assert got[domain]["who"].startswith(name), (domain, got[domain])
        assert got[domain]["category"] == THIRD[domain.rsplit(".", 1)[1]]
    assert seen["log_domains"] == {"exempel-07.jp"}
    reads = [a for a in await gateway.store.access_log() if a["action"] == "subject.name_read"]
    assert {a["actor"] for a in reads} == {"petra"} and {a["object_id"] for a in reads} >= {"third-countries"}
