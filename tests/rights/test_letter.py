"""The Art. 15 letter through the running gateway: one template printed as a tagged PDF/UA document with
the shipped fonts embedded, wholly in the reader's language (no English words in the Swedish letter
other than names, no Swedish in the English one), times in Stockholm time with the zone named, each
disclosure's domain, queued transfers as planned recipients, no staff notes, placeholders refused."""

from __future__ import annotations

import copy
import io
import re
from typing import Any

import pytest
from pypdf import PdfReader
from pypdf.generic import DictionaryObject, IndirectObject

from gateway.http.context import SERVICES
from gateway.rights.config import PLACEHOLDER_CONTROLLER, Contact, ControllerConfig
from tests.conftest import Gateway, body_for_tld
from tests.rights.conftest import anna, confirm, open_confirmed, open_request, register
from tests.rights.test_letter_catalogue import english_words, swedish_words, words

pytestmark = pytest.mark.integration

POLISH = "Łukasz Wójcik-Dvořák"
CONTROLLER = ControllerConfig(
    placeholder=False,
    controller=Contact(name="Domänbolaget AB", organisation_number="556677-8899",
                       address="Sveavägen 1, 111 57 Stockholm", email="dataskydd@domanbolaget.se"),
    dpo=Contact(name="Dataskyddsombudet", address="Sveavägen 1, 111 57 Stockholm", email="dso@domanbolaget.se"),
    supervisory_authority=PLACEHOLDER_CONTROLLER.supervisory_authority,
)


def configure(gw: Gateway) -> None:
    """The registrar's own details (the shipped config/controller.yaml is a placeholder, refused)."""
    gw.client.app[SERVICES].rights.controller = CONTROLLER


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


async def _letter(gw: Gateway, rid: str, fmt: str, **params: str) -> Any:
    r = await gw.client.get(f"/v1/requests/{rid}/extract.{fmt}", params=params, headers=gw.tokens.h("privacy"))
    assert r.status == 200, await r.text()
    return await r.read() if fmt == "pdf" else await r.text()


async def _polish_subject(gw: Gateway) -> dict[str, Any]:
    """Łukasz: a .se domain (EEA) and a .com one (thin registry, and an escrow deposit still queued)."""
    se = anna(domain="wojcik.se")
    se["registrant"].update(name=POLISH, email="lukasz@example.pl",
                            national_id={"scheme": "passport", "value": "EA1234567"})
    se["registrant"]["address"] = {"street": ["Storgatan 1"], "city": "Stockholm", "postal_code": "111 22",
                                   "country": "SE"}
    await register(gw, se)
    com = copy.deepcopy(se)
    com.update(domain="wojcik.com", order_ref="ORD-1002")
    await register(gw, com)
    return await open_confirmed(gw, email="lukasz@example.pl")


async def test_pdf_is_tagged_accessible_with_embedded_fonts_and_the_whole_name(gateway: Gateway) -> None:
    configure(gateway)
    req = await _polish_subject(gateway)
    data = await _letter(gateway, req["id"], "pdf", lang="sv")
    reader = PdfReader(io.BytesIO(data))
    root = reader.trailer["/Root"]
    assert "/StructTreeRoot" in root, "not tagged"
    assert bool(root["/MarkInfo"]["/Marked"])
    assert str(root["/Lang"]) == "sv"
    assert reader.metadata is not None and str(reader.metadata.title).startswith("Registerutdrag")
    xmp = root["/Metadata"].get_object().get_data().decode()
    assert re.search(r"pdfuaid:part[^0-9]{1,4}1", xmp), "PDF/UA-1 not declared"
    assert bool(root["/ViewerPreferences"]["/DisplayDocTitle"])
    # every font is embedded (a subset of the DejaVu Sans the package ships)
    fonts: dict[str, DictionaryObject] = {}
    for page in reader.pages:
        for ref in page["/Resources"]["/Font"].values():
            font = ref.get_object() if isinstance(ref, IndirectObject) else ref
            for desc in font.get("/DescendantFonts", [font]):
                d = desc.get_object()
                fonts[str(d["/BaseFont"])] = d["/FontDescriptor"].get_object()
    assert fonts and all("/FontFile2" in fd or "/FontFile3" in fd for fd in fonts.values()), fonts.keys()
    assert all("Letter-DejaVu-Sans" in name for name in fonts), fonts.keys()  # the shipped files, by their @font-face
    text = pdf_text(data)
    assert POLISH in text
    n = len(reader.pages)
    assert f"Sida 1 av {n}" in text and f"Sida {n} av {n}" in text
    en = await _letter(gateway, req["id"], "pdf", lang="en")
    en_text = pdf_text(en)
    assert POLISH in en_text and f"Page 1 of {len(PdfReader(io.BytesIO(en)).pages)}" in en_text
    assert str(PdfReader(io.BytesIO(en)).trailer["/Root"]["/Lang"]) == "en"


def _no_identifiers(text: str) -> str:
    return re.sub(r"\S*\d\S*", " ", text)


async def test_swedish_letter_has_no_english_and_english_letter_no_swedish(gateway: Gateway) -> None:
    configure(gateway)
    req = await _polish_subject(gateway)
    names = words(" ".join([POLISH, "Storgatan Stockholm lukasz example pl wojcik se com EA1234567",
                            CONTROLLER.controller.model_dump_json(), CONTROLLER.dpo.model_dump_json() if CONTROLLER.dpo
                            else "", "Integritetsskyddsmyndigheten IMY www imy se", req["id"]]))
    recipients = {"Internetstiftelsen", "VeriSign", "Inc", "DENIC", "Services", "GmbH", "Co", "KG"}
    allowed = names | words(" ".join(recipients)) | {"se", "us", "de"}  # country codes, as in "USA (US)"
    # a token with a digit in it is an identifier, a date or a number, never wording: registry contact ids are
    # random base32 ("…7UT2…"), whose letter runs are sometimes short words of either language
    sv_text = _no_identifiers(pdf_text(await _letter(gateway, req["id"], "pdf", lang="sv")))
    stray = (words(sv_text) & english_words()) - allowed
    assert not stray, f"English words in the Swedish letter: {sorted(stray)}"
    en_text = _no_identifiers(pdf_text(await _letter(gateway, req["id"], "pdf", lang="en")))
    stray = (words(en_text) & swedish_words()) - allowed
    assert not stray, f"Swedish words in the English letter: {sorted(stray)}"
    # and the HTML letter is the same letter
    html = await _letter(gateway, req["id"], "html", lang="sv")
    assert "<h1>Registerutdrag</h1>" in html and 'lang="sv"' in html


async def test_letter_names_domains_planned_transfers_zone_and_field_words(gateway: Gateway) -> None:
    configure(gateway)
    req = await _polish_subject(gateway)
    x = await (await gateway.client.get(f"/v1/requests/{req['id']}/extract.json", params={"lang": "sv"},
                                        headers=gateway.tokens.h("privacy"))).json()
    assert {d["domain"] for d in x["disclosures"]} == {"wojcik.se", "wojcik.com"}
    planned = {(q["recipient"]["id"], q["domain"]) for q in x["planned"]}
    assert any(domain == "wojcik.com" for _r, domain in planned), x["planned"]  # the escrow deposit still queued
    text = pdf_text(await _letter(gateway, req["id"], "pdf", lang="sv"))
    flat = " ".join(text.split())
    for needle in ("Planerade överföringar", "Depositarie för registrarens registreringsuppgifter",
                   "Domännamn wojcik.se", "Domännamn wojcik.com", "e-postadress", "personnummer",
                   "Internetstiftelsen (registret för .se)", "Rättslig grund", "Lagringstid",
                   "Sverige", "Vem har dina uppgifter nu"):
        assert needle in flat, needle
    # every time is Stockholm time with the zone named
    times = re.findall(r"\d{1,2} \w+ 20\d\d, \d\d:\d\d \(([^)]*)\)", flat)
    assert times and set(times) <= {"centraleuropeisk normaltid", "centraleuropeisk sommartid"}, times
    assert not re.search(r"\d\d:\d\d(:\d\d)? ?UTC|T\d\d:\d\d", flat)
    for internal in ("UNCONFIRMED", "config/", ".yaml", "confirmed", "placeholder", "[", "]"):
        assert internal not in flat, internal
    en = " ".join(pdf_text(await _letter(gateway, req["id"], "pdf", lang="en")).split())
    assert "Central European" in en and "e-mail address" in en and "Planned transfers" in en


async def test_placeholder_controller_refuses_the_letter_not_the_json(gateway: Gateway) -> None:
    req = await _polish_subject(gateway)  # the shipped controller.yaml: placeholder: true
    h = gateway.tokens.h("privacy")
    before = len([a for a in await gateway.store.access_log() if a["action"] == "rights.extract"])
    for fmt in ("pdf", "html"):
        r = await gateway.client.get(f"/v1/requests/{req['id']}/extract.{fmt}", headers=h)
        assert r.status == 409, fmt
        problem = await r.json()
        assert problem["code"] == "controller_not_configured"
        assert "placeholder" in problem["detail"] and "controller.name" in problem["detail"]
    r = await gateway.client.get(f"/v1/requests/{req['id']}/extract.json", headers=h)
    assert r.status == 200
    assert len([a for a in await gateway.store.access_log() if a["action"] == "rights.extract"]) > before


async def test_no_match_letter_says_one_thing(gateway: Gateway) -> None:
    configure(gateway)
    await register(gateway, anna(domain="exempel.se"))
    opened = await open_request(gateway, email="nobody@example.se")
    req = await confirm(gateway, opened, subject_ids=[])
    x = await (await gateway.client.get(f"/v1/requests/{req['id']}/extract.json",
                                        headers=gateway.tokens.h("privacy"))).json()
    assert x["disclosures"] == [] and x["planned"] == [] and x["purposes"] == []
    assert [r["right"] for r in x["rights"]] == ["complaint"]
    for lang, found_none, matched_only in (
        ("sv", "hittade inga personuppgifter om dig",
         ("Utlämnanden", "Planerade överföringar", "Vem som har dina uppgifter", "ovan", "Ändamål",
          "Rätt till rättelse", "Kontroll av utdraget")),
        ("en", "found no personal data about you",
         ("Disclosures", "Planned transfers", "Who holds your data", "above", "Purpose", "Right to rectification",
          "Verifying this extract")),
    ):
        text = " ".join(pdf_text(await _letter(gateway, req["id"], "pdf", lang=lang)).split())
        assert found_none in text
        for phrase in matched_only:
            assert phrase not in text, (lang, phrase)


async def test_letter_defaults_to_the_registrants_recorded_language(gateway: Gateway) -> None:
    """Without a language asked for, the letter is in the one the registrant recorded (the service's
    default; the staff page's "auto" and a download without ``lang`` use it)."""
    configure(gateway)
    rights = gateway.client.app[SERVICES].rights
    b = body_for_tld("eu")  # EURid receives the language, so the log holds it
    b["registrant"].update(language="en", email="english.reader@example.se",
                           national_id={"scheme": "passport", "value": "X1234567"})
    await register(gateway, b)
    req = await open_confirmed(gateway, email="english.reader@example.se")
    x = await rights.extract(req["id"], "staff")
    assert x["lang"] == "en"
    text = pdf_text(rights.render_pdf(x))
    assert "Register extract" in text and "Registerutdrag" not in text
    # Anna recorded Swedish (and .se does not receive a language at all): Swedish
    await register(gateway, anna(domain="exempel.se"))
    req_sv = await open_confirmed(gateway, email="anna.andersson@example.se")
    assert (await rights.extract(req_sv["id"], "staff"))["lang"] == "sv"


async def test_the_language_ordered_in_is_kept_even_where_no_recipient_receives_it(gateway: Gateway) -> None:
    """A .se registrant who ordered in English: no recipient is sent a language, yet the registration keeps
    the one recorded in the order (schema 9), and the letter follows it."""
    configure(gateway)
    rights = gateway.client.app[SERVICES].rights
    b = anna(domain="english-reader.se")
    b["registrant"].update(language="en", email="reader.in.english@example.se",
                           national_id={"scheme": "passport", "value": "Y7654321"})
    await register(gateway, b)
    req = await open_confirmed(gateway, email="reader.in.english@example.se")
    x = await rights.extract(req["id"], "staff")
    assert all("language" not in (d.get("values") or {}) for d in x["disclosures"])  # no one got it
    assert x["lang"] == "en"


async def test_unconfirmed_facts_warn_staff_and_stay_out_of_the_letter(gateway: Gateway) -> None:
    """The shipped retention periods are ``confirmed: false``: the staff extract page lists that; the letter
    states the configured period without a word about it.  A purpose the gateway defines itself
    (rectification) carries its basis and retention, and staff are told that retention is unconfirmed."""
    configure(gateway)
    rights = gateway.client.app[SERVICES].rights
    req = await _polish_subject(gateway)
    x = await rights.extract(req["id"], "staff", "sv")
    warnings = rights.letter_warnings(x)
    assert any("'domain_registration' is not confirmed" in w for w in warnings), warnings
    assert any("'escrow' is not confirmed" in w for w in warnings), warnings
    flat = " ".join(pdf_text(rights.render_pdf(x)).split())
    assert "15 månader efter att registreringen upphört" in flat
    for note in ("confirmed", "UNCONFIRMED", "retention.yaml"):
        assert note not in flat
    view = rights._purpose_view("rectification", "sv")
    assert view["lawful_basis"].startswith("Art. 6(1)(c)") and view["retention"].startswith("15 månader")
    x["purposes"].append(view)
    # config/retention.yaml gives rectification a period of its own, unconfirmed like the others
    assert any("'rectification' is not confirmed" in w for w in rights.letter_warnings(x)), rights.letter_warnings(x)
    assert "rättslig förpliktelse att rätta" in rights.render_html(x)


async def _staff_login(gw: Gateway) -> None:
    from gateway.services.accounts import AccountService

    await AccountService(gw.store).create_admin("eva", "a long enough pass phrase 1")
    page = await gw.client.get("/ui/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert csrf is not None
    r = await gw.client.post("/ui/login", data={"name": "eva", "password": "a long enough pass phrase 1",
                                                "csrf": csrf[1], "next": "/ui/requests"}, allow_redirects=False)
    assert r.status == 303


async def test_staff_page_refuses_placeholders_before_reading_and_warns_of_unconfirmed_facts(gateway: Gateway) -> None:
    req = await _polish_subject(gateway)
    await _staff_login(gateway)
    base = f"/ui/requests/{req['id']}"
    csrf = re.search(r'name="csrf" value="([^"]+)"', await (await gateway.client.get(base)).text())
    assert csrf is not None
    r = await gateway.client.post(f"{base}/extract", data={"csrf": csrf[1], "lang": ""}, allow_redirects=False)
    html = await r.text()
    assert r.status == 409 and "still placeholders: controller.name" in html and 'id="letter"' not in html
    assert "extract" not in [e["action"] for e in await gateway.store.request_events(req["id"])]  # nothing was read
    assert (await gateway.client.get(f"{base}/extract.pdf")).status == 409

    configure(gateway)
    r = await gateway.client.post(f"{base}/extract", data={"csrf": csrf[1], "lang": ""}, allow_redirects=False)
    html = await r.text()
    assert r.status == 200
    warnings, letter = html.split('id="letter-warnings"')[1].split("</section>")[0], html.split('id="letter"')[1]
    # eva reads Swedish
    assert "Lagringstiden för ändamålet &#39;domain_registration&#39; är inte bekräftad" in warnings
    assert "confirmed" not in letter and "UNCONFIRMED" not in letter and "Registerutdrag" in letter
    r = await gateway.client.get(f"{base}/extract.pdf?lang=en")
    assert r.status == 200 and "Page 1 of" in pdf_text(await r.read())
