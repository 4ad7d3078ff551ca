"""The disclosure log as privacy staff use it, over ~50 registrations across ten TLDs made through the real
API (TLS EPP sandbox behind it): domain and data-subject columns (names for the privacy role, each read
logged; pseudonyms for auditors), sorting, totals, numbered pages, domain and order-reference search,
CSV that opens right in Swedish Excel, XLSX, and the table in Chromium at 800 px."""

from __future__ import annotations

import asyncio
import copy
import csv
import io
import re
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from aiohttp.test_utils import TestClient

from gateway.store.base import DisclosureFilter
from tests.conftest import VALID_BODY, Gateway
from tests.web.chromium import chromium_page, fill_login, needs_chromium
from tests.web.conftest import STAFF_PASSWORD, add_staff
from tests.web.conftest import login as form_login

pytestmark = pytest.mark.integration

PASSWORD = STAFF_PASSWORD
CSRF = re.compile(r'name="csrf" value="([^"]+)"')

#: Ten TLDs: EU/EEA registries, thin .com/.net, adequacy (.ch, .jp), safeguards (.org, .io), blocked (.cn).
TLDS = ("se", "nu", "eu", "ch", "org", "com", "net", "jp", "io", "cn")
PEOPLE = (
    ("Åsa Öberg", "asa.oberg@example.se", "SE", "Göteborg", ("se_personnummer", "19750304-1233")),
    ("Łukasz Wójcik-Dvořák", "lukasz@example.pl", "PL", "Kraków", ("passport", "PL1234567")),
    ("Kenji Sato", "kenji.sato@example.jp", "JP", "Tokyo", ("passport", "TK7654321")),
    ("Ingrid Nilsson", "ingrid.nilsson@example.se", "SE", "Umeå", ("se_personnummer", "19880512-4560")),
    ("Jean Dupont", "jean.dupont@example.fr", "FR", "Paris", ("passport", "FR5556667")),
)
SEED = 50


def person_of(i: int) -> int:
    """Who registers domain ``i``: each TLD gets several people; .eu only EU residents (its eligibility)."""
    p = (i + i // len(TLDS)) % len(PEOPLE)
    return 0 if TLDS[i % len(TLDS)] == "eu" and PEOPLE[p][2] not in ("SE", "PL", "FR") else p


def body(i: int) -> dict[str, Any]:
    """Registration ``i``: one of five people, one of ten TLDs, its own order reference."""
    name, email, country, city, (scheme, number) = PEOPLE[person_of(i)]
    b = copy.deepcopy(VALID_BODY)
    b["domain"], b["order_ref"] = f"exempel-{i:02d}.{TLDS[i % len(TLDS)]}", f"ORD-{1000 + i}"
    b["registrant"].update({"name": name, "email": email, "national_id": {"scheme": scheme, "value": number},
                            "language": "sv"})
    b["registrant"]["address"] = {"street": ["Gatan 1"], "city": city, "postal_code": "12345", "country": country}
    return b


async def seed(gateway: Gateway, count: int = SEED) -> dict[str, str]:
    """``count`` registrations through the API, all finished; registration ids by domain."""
    ids: dict[str, str] = {}
    for i in range(count):
        r = await gateway.post(body(i))
        answer = await r.json()
        reg_id = answer.get("id") or answer.get("registration_id")  # a blocked one is a 422 with its id
        assert reg_id, (r.status, answer)
        ids[body(i)["domain"]] = reg_id
    for domain, reg_id in ids.items():
        reg = await gateway.wait_status(reg_id, {"delivered", "blocked", "failed"}, limit_s=60)
        assert reg["status"] in ("delivered", "blocked"), (domain, reg)
    return ids


async def make_account(gateway: Gateway, name: str, role: str, lang: str = "sv") -> None:
    """A named staff account (the fixture's helper), in ``lang``."""
    await add_staff(gateway, name, role, lang=lang)


async def login(client: TestClient[Any, Any], name: str) -> None:
    r = await form_login(client, name)
    assert r.status == 303, await r.text()


def rows_of(html: str) -> list[dict[str, str]]:
    return [dict(zip(("id", "recipient", "domain"), m, strict=True)) for m in re.findall(
        r'<tr class="entry[^"]*" data-id="([0-9a-f]+)" data-recipient="([^"]+)" data-outcome="[^"]+" '
        r'data-category="[^"]+" data-domain="([^"]*)">', html)]


async def get(client: TestClient[Any, Any], path: str, **headers: str) -> str:
    r = await client.get(path, headers=headers)
    assert r.status == 200, (path, r.status, (await r.text())[:500])
    return await r.text()


async def test_log_columns_sorting_totals_pages_and_search(gateway: Gateway) -> None:
    await seed(gateway)
    await make_account(gateway, "petra", "privacy", lang="en")
    await make_account(gateway, "olle", "auditor")
    stored = [e async for e in gateway.store.iter_disclosures(DisclosureFilter())]
    assert len(stored) > SEED  # thick registries: a contact:create and a domain:create each
    client = gateway.client
    await login(client, "petra")

    html = await get(client, "/ui/disclosures?size=25")
    rows = rows_of(html)
    assert len(rows) == 25
    newest = sorted(stored, key=lambda e: e.leaf_index or 0, reverse=True)
    assert [r["id"] for r in rows] == [e.id for e in newest[:25]]  # newest first
    assert f"{len(stored)} disclosures" in html
    blocked = sum(1 for e in stored if e.outcome == "blocked")
    assert f"Blocked: {blocked}" in html
    assert 'aria-current="page"' in html and 'id="next-page"' in html
    last = -(-len(stored) // 25)
    assert f"page={last}" in html  # the last page's number is linked
    page2 = rows_of(await get(client, "/ui/disclosures?size=25&page=2"))
    assert [r["id"] for r in page2] == [e.id for e in newest[25:50]]
    # names for the privacy role (decrypted, each read recorded), domains beside them
    assert "Łukasz Wójcik-Dvořák" in html and "Åsa Öberg" in html
    reads = [a for a in await gateway.store.access_log() if a["action"] == "subject.name_read"]
    assert reads and {a["actor"] for a in reads} == {"petra"} and all(a["subject_id"] for a in reads)

    # sort by domain, both ways; by outcome
    up = [r["domain"] for r in rows_of(await get(client, "/ui/disclosures?sort=domain&dir=asc&size=200"))]
    assert up == sorted(up) and len(up) == len(stored)
    down = [r["domain"] for r in rows_of(await get(client, "/ui/disclosures?sort=domain&dir=desc&size=200"))]
    assert down == sorted(up, reverse=True)
    html = await get(client, "/ui/disclosures?sort=domain&dir=asc")
    assert 'aria-sort="ascending"' in html and "sort=domain&amp;dir=desc" in html  # the heading flips it

    # search by domain (part, any case) and by order reference, with totals for the filter
    found = rows_of(await get(client, "/ui/disclosures?domain=EXEMPEL-07"))
    assert {r["domain"] for r in found} == {"exempel-07.jp"} and len(found) == 2
    found = rows_of(await get(client, "/ui/disclosures?order_ref=ORD-1009"))
    assert {r["domain"] for r in found} == {"exempel-09.cn"}
    html = await get(client, "/ui/disclosures?domain=exempel-0&third_country=true&outcome=blocked")
    assert {r["domain"] for r in rows_of(html)} == {"exempel-09.cn"} and "1 disclosure<" in html
    assert (await client.get("/ui/disclosures?sort=evil")).status == 400
    assert (await client.get("/ui/disclosures?size=7")).status == 400
    assert (await client.get("/ui/disclosures?domain=%00x")).status == 400

    # an auditor sees pseudonyms, never names, and no read is recorded for that
    before = len(await gateway.store.access_log())
    await client.post("/ui/logout", data={"csrf": CSRF.search(html).group(1)})  # type: ignore[union-attr]
    await login(client, "olle")
    html = await get(client, "/ui/disclosures?size=200")
    assert "Łukasz" not in html and "Åsa" not in html and "Kenji" not in html
    codes = set(re.findall(r"(?:Subject|Person) ([0-9a-f]{8})", html))
    assert len(codes) == len(PEOPLE)  # one stable pseudonym per person
    assert len(await gateway.store.access_log()) == before


def sheet_rows(data: bytes) -> list[list[str]]:
    """The first sheet of an XLSX as text rows (read from its XML: no spreadsheet library needed)."""
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        shared = [("".join(t.text or "" for t in si.iter(f"{{{ns['m']}}}t")))
                  for si in ElementTree.fromstring(z.read("xl/sharedStrings.xml")).findall("m:si", ns)]
        sheet = ElementTree.fromstring(z.read("xl/worksheets/sheet1.xml"))
    out: list[list[str]] = []
    for row in sheet.iter(f"{{{ns['m']}}}row"):
        cells = []
        for c in row.findall("m:c", ns):
            v = c.find("m:v", ns)
            text = "" if v is None or v.text is None else v.text
            cells.append(shared[int(text)] if c.get("t") == "s" else text)
        out.append(cells)
    return out


async def test_exports_open_right_in_excel(gateway: Gateway) -> None:
    await seed(gateway, 12)
    await make_account(gateway, "petra", "privacy")
    client = gateway.client
    await login(client, "petra")

    # Swedish UI: UTF-8 with a BOM, ";" between cells, domain and subject columns, no names
    r = await client.get("/ui/disclosures.csv?third_country=true")
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/csv")
    raw = await r.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    header = text.splitlines()[0]
    assert header.startswith("seq;id;recorded_at;") and ";domain;order_ref;subject;" in header
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert {row["domain"] for row in rows} == {"exempel-03.ch", "exempel-04.org", "exempel-07.jp", "exempel-08.io",
                                               "exempel-09.cn"}
    assert all(re.fullmatch(r"Subject [0-9a-f]{8}", row["subject"]) for row in rows)
    assert "Kenji" not in text and "subject_name" not in header
    # "," on request (and by default in English)
    r = await client.get("/ui/disclosures.csv?sep=comma&order_ref=ORD-1007")
    rows = list(csv.DictReader(io.StringIO((await r.read()).decode("utf-8-sig"))))
    assert [row["domain"] for row in rows] == ["exempel-07.jp", "exempel-07.jp"]
    assert (await client.get("/ui/disclosures.csv?sep=tab")).status == 400

    # XLSX with names: the privacy role only, every name read recorded
    r = await client.get("/ui/disclosures.xlsx?names=1&third_country=true")
    assert r.status == 200 and "spreadsheetml" in r.headers["Content-Type"]
    sheet = sheet_rows(await r.read())
    head, body_rows = sheet[0], sheet[1:]
    assert head[:4] == ["seq", "id", "recorded_at", "attempted_at"] and head[-1] == "subject_name"
    names = {row[head.index("domain")]: row[head.index("subject_name")] for row in body_rows}
    assert names["exempel-07.jp"] == PEOPLE[7 % len(PEOPLE)][0]  # Kenji Sato
    assert names["exempel-04.org"] == PEOPLE[4][0]
    log = await gateway.store.access_log()
    exports = [a["object_id"] for a in log if a["action"] == "disclosures.exported"]
    assert exports == ["third_country=true", "order_ref=ORD-1007", "format=xlsx names=1 third_country=true"]
    assert any(a["action"] == "subject.name_read" and a["object_id"] == "disclosures-export" for a in log)

    await make_account(gateway, "olle", "auditor")
    await client.post("/ui/logout", data={"csrf": CSRF.search(await get(client, "/ui/disclosures")).group(1)})  # type: ignore[union-attr]
    await login(client, "olle")
    assert (await client.get("/ui/disclosures.xlsx?names=1")).status == 400


@needs_chromium
async def test_log_in_chromium_at_800_px(gateway: Gateway, tmp_path: Path) -> None:
    await seed(gateway, 30)
    await make_account(gateway, "petra", "privacy", lang="sv")
    base = str(gateway.client.make_url("/")).rstrip("/")

    def drive() -> dict[str, Any]:
        seen: dict[str, Any] = {"errors": []}
        with chromium_page(seen["errors"]) as page:
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(f"{base}/ui/disclosures?size=25")
            fill_login(page, "petra")
            page.wait_for_url(re.compile(r"/ui/disclosures\?size=25"))
            seen["lang"] = page.locator("html").get_attribute("lang")
            seen["total"] = page.locator("#total").inner_text()
            # sort by domain with the column heading (a plain link)
            page.click("th a.sort[href*='sort=domain']")
            page.wait_for_url(re.compile(r"sort=domain"))
            seen["sorted"] = [r.get_attribute("data-domain") for r in page.locator("tr.entry").all()]
            # at 800 px the page does not scroll sideways: the table turns into labelled cards
            page.set_viewport_size({"width": 800, "height": 900})
            seen["overflow"] = page.evaluate("document.documentElement.scrollWidth")
            seen["first_cells"] = page.locator("tr.entry").first.inner_text()
            page.click("nav.pages >> a.page >> text=2")
            page.wait_for_url(re.compile(r"page=2"))
            seen["page2"] = [r.get_attribute("data-domain") for r in page.locator("tr.entry").all()]
            # search by order reference next to the subject search
            page.fill("input[name=order_ref]", "ORD-1017")
            page.click("form.filters button[type=submit]")
            page.wait_for_url(re.compile(r"order_ref=ORD-1017"))
            seen["ordered"] = [r.get_attribute("data-domain") for r in page.locator("tr.entry").all()]
            page.screenshot(path=str(tmp_path / "log-800.png"), full_page=True)
        return seen

    seen = await asyncio.to_thread(drive)
    assert seen["lang"] in ("sv", "en")
    assert seen["overflow"] <= 800, seen["overflow"]
    assert re.search(r"\d+", seen["total"])
    assert "exempel-" in seen["first_cells"]
    assert seen["sorted"] == sorted(seen["sorted"]) and len(seen["sorted"]) == 25
    assert seen["page2"] and seen["page2"][0] >= seen["sorted"][-1]
    assert set(seen["ordered"]) == {"exempel-17.jp"}
    assert seen["errors"] == []


async def test_subject_search_lists_records_sharing_an_e_mail(gateway: Gateway) -> None:
    """A family e-mail address: two people, two records, listed to choose from (never merged)."""
    for i, (name, number) in enumerate((("Åsa Öberg", "19750304-1233"), ("Ingrid Nilsson", "19880512-4560"))):
        b = body(i * 10)  # .se both
        b["domain"], b["order_ref"] = f"familj-{i}.se", f"FAM-{i}"
        b["registrant"].update({"name": name, "email": "familjen@example.se",
                                "national_id": {"scheme": "se_personnummer", "value": number}})
        r = await gateway.post(b)
        await gateway.wait_status((await r.json())["id"], {"delivered"}, limit_s=30)
    await make_account(gateway, "petra", "privacy", lang="en")
    await login(gateway.client, "petra")
    csrf = CSRF.search(await get(gateway.client, "/ui/disclosures")).group(1)  # type: ignore[union-attr]
    r = await gateway.client.post("/ui/disclosures", data={"csrf": csrf, "subject": "Familjen@example.se",
                                                           "domain": "familj"})
    html = await r.text()
    assert r.status == 200 and "familjen" not in str(r.url)
    choices = re.findall(r'<li class="subject-choice" data-subject="([0-9a-f]{32})"><a href="([^"]+)"', html)
    assert len(choices) == 2 and not rows_of(html)
    one = await get(gateway.client, choices[0][1].replace("&amp;", "&"))
    assert len({r["domain"] for r in rows_of(one)}) == 1 and "domain=familj" in choices[0][1]
