"""The data-subject request pages, the Art. 30 record and the explainer, through aiohttp's client: roles,
CSRF on every action, opening a request through the form, confirming its candidate records before any
action, extracts in Swedish and English, erasure's typed confirmation, the log's subject search that never
merges records, and an explainer that sends nothing."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import secrets
from typing import Any

import pytest
from aiohttp import web
from pypdf import PdfReader

from gateway.auth import Role
from gateway.http.context import SERVICES
from gateway.http.pages.session import Session
from gateway.identity import name_address_key, strong_identifier
from gateway.models import Registrant
from gateway.rights.recipients import request_deletions
from gateway.store.base import DisclosureFilter
from tests.conftest import VALID_BODY, Gateway
from tests.rights.conftest import extra_links
from tests.web.conftest import register_scenario
from tests.web.test_pages import csrf_of, key_of, login, page_csrf

pytestmark = pytest.mark.integration

ANNA_EMAIL = "anna.andersson@example.se"
REQUEST_LINK = re.compile(r"^/ui/requests/([0-9a-f]{32})$")
CANDIDATE = re.compile(r'<tr class="candidate[^"]*" data-subject="([0-9a-f]{32})" data-matched-by="([a-z_ ]*)"')


def app_of(gateway: Gateway) -> web.Application:
    app: web.Application | None = gateway.client.app
    assert app is not None
    return app


async def open_via_form(gateway: Gateway, expect: int = 303, **fields: str) -> Any:
    csrf = await page_csrf(gateway.client, "/ui/requests/new")
    data = {"csrf": csrf, "kind": "access", "channel": "email", "identity_check": "BankID signature",
            "verified_by": "staff"} | fields
    r = await gateway.client.post("/ui/requests/new", data=data, allow_redirects=False)
    assert r.status == expect, await r.text()
    return r


def candidates_of(html: str) -> dict[str, str]:
    """The request page's candidate records: subject id → how it matched."""
    return dict(CANDIDATE.findall(html))


async def confirm_via_form(gateway: Gateway, rid: str, *subject_ids: str, none: bool = False,
                           expect: int = 303) -> Any:
    csrf = await page_csrf(gateway.client, f"/ui/requests/{rid}")
    data: list[tuple[str, str]] = [("csrf", csrf), *(("subject_id", s) for s in subject_ids)]
    if none:
        data.append(("none", "yes"))
    r = await gateway.client.post(f"/ui/requests/{rid}/subjects", data=data, allow_redirects=False)
    assert r.status == expect, await r.text()
    return r


async def open_anna(gateway: Gateway, *, confirm: bool = True) -> str:
    """Anna's access request by e-mail; with ``confirm`` staff tick her one candidate record and confirm."""
    r = await open_via_form(gateway, email=ANNA_EMAIL)
    m = REQUEST_LINK.match(r.headers["Location"])
    assert m, r.headers["Location"]
    rid = m.group(1)
    if confirm:
        html = await (await gateway.client.get(f"/ui/requests/{rid}")).text()
        [subject] = candidates_of(html) or [None]  # a request for Anna: her record, matched by e-mail
        if subject is not None:
            r = await confirm_via_form(gateway, rid, subject)
            assert r.headers["Location"] == f"/ui/requests/{rid}?done=confirmed"
    return rid


async def subject_of(gateway: Gateway, recipient: str) -> str:
    """The subject of the one registration at ``recipient``: its entries (one per command: the contact:create
    that carried the values, then the domain:create) all name the same record."""
    entries = await gateway.store.disclosures(DisclosureFilter(recipient=recipient))
    assert [e.command for e in entries] == ["contact:create", "domain:create"]
    [subject_id] = {e.subject_id for e in entries}
    assert subject_id is not None
    return subject_id


def anna_strong_key() -> str:
    found = strong_identifier(Registrant.model_validate_json(json.dumps(VALID_BODY["registrant"])))
    assert found is not None
    return found[1]


async def events(gateway: Gateway, rid: str) -> list[str]:
    return [e["action"] for e in await gateway.store.request_events(rid)]


async def post(gateway: Gateway, path: str, csrf: str | None, **fields: str) -> Any:
    data = dict(fields)
    if csrf is not None:
        data["csrf"] = csrf
    return await gateway.client.post(path, data=data, allow_redirects=False)


def action_paths(rid: str) -> list[tuple[str, dict[str, str]]]:
    base = f"/ui/requests/{rid}"
    return [
        (f"{base}/extract", {"lang": "sv"}), (f"{base}/extend", {"reason": "complex request"}),
        (f"{base}/restrict", {"scope": "all"}), (f"{base}/object", {"scope": "marketing"}),
        (f"{base}/lift", {"restriction_id": "0" * 32}), (f"{base}/erase", {"confirm": "ERASE"}),
        (f"{base}/close", {"outcome": "done"}), (f"{base}/subjects", {"none": "yes"}),
    ]


# -- roles and CSRF -----------------------------------------------------------------------------------

async def test_roles(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await login(gateway.client, gateway.tokens.privacy)
    rid = await open_anna(gateway)
    gateway.client.session.cookie_jar.clear()

    # not logged in: to the login page
    for path in ("/ui/requests", f"/ui/requests/{rid}", "/ui/art30", "/ui/explain", "/ui/requests/new"):
        r = await gateway.client.get(path, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/ui/login?next="), path

    # a cookie no session in the store has opens nothing
    unknown = {"rg_session": secrets.token_urlsafe(32)}
    for path in ("/ui/requests", f"/ui/requests/{rid}", "/ui/requests/new", "/ui/art30", "/ui/art30.json",
                 "/ui/explain", f"/ui/requests/{rid}/extract.pdf"):
        r = await gateway.client.get(path, cookies=unknown, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"].startswith("/ui/login?next="), path

    # the auditor reads lists, details and the Art. 30 record, and does nothing else
    await login(gateway.client, gateway.tokens.auditor)
    for path in ("/ui/requests", "/ui/requests?state=all", f"/ui/requests/{rid}", "/ui/art30", "/ui/art30.json"):
        assert (await gateway.client.get(path)).status == 200, path
    html = await (await gateway.client.get(f"/ui/requests/{rid}")).text()
    assert "Only the privacy role can act" in html and 'id="erase-form"' not in html
    assert 'data-action="subjects_confirmed"' in html
    assert len(candidates_of(html)) == 1 and 'id="confirm-form"' not in html and 'type="checkbox"' not in html
    nav = html.split("</nav>")[0]
    assert "/ui/requests" in nav and "/ui/art30" in nav and "/ui/explain" not in nav
    for path in ("/ui/requests/new", "/ui/explain", f"/ui/requests/{rid}/extract.json",
                 f"/ui/requests/{rid}/extract.pdf"):
        assert (await gateway.client.get(path)).status == 403, path
    csrf = await page_csrf(gateway.client, "/ui/requests")
    for path, fields in [*action_paths(rid), ("/ui/requests/new", {"email": ANNA_EMAIL, "kind": "access"}),
                         ("/ui/explain", {"tld": "se"})]:
        r = await post(gateway, path, csrf, **fields)
        assert r.status == 403, path
    assert await events(gateway, rid) == ["opened", "candidates_found", "subjects_confirmed"]
    assert [a for a in await gateway.store.access_log() if a["action"] == "rights.extract"] == []


async def test_every_action_needs_the_sessions_csrf_token(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await login(gateway.client, gateway.tokens.privacy)
    rid = await open_anna(gateway)
    other = Session("staff", Role.PRIVACY, "0" * 64).csrf_token(key_of(gateway))  # another session's
    paths = [*action_paths(rid), ("/ui/requests/new", {"email": ANNA_EMAIL, "kind": "access", "channel": "email",
                                                       "identity_check": "x", "verified_by": "y"}),
             ("/ui/explain", {"tld": "se"})]
    for path, fields in paths:
        for token in (None, "", other):
            r = await post(gateway, path, token, **fields)
            assert r.status == 403, (path, token)
            assert "CSRF" in await r.text()
    assert await events(gateway, rid) == ["opened", "candidates_found", "subjects_confirmed"]
    assert len(await gateway.store.requests()) == 1
    assert await gateway.store.restrictions((await gateway.store.requests())[0]["subject_id"]) == []


# -- opening and listing ----------------------------------------------------------------------------------

async def test_the_request_page_confirms_candidates_before_any_action(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await register_scenario(gateway)
    anna, kenji = await subject_of(gateway, "iis-se"), await subject_of(gateway, "jprs-jp")
    # Anna's record carries her strong identifier; Kenji's shares her e-mail address (say, a reseller's)
    extra_links(monkeypatch, gateway, ("strong_id", anna_strong_key(), anna), ("email", ANNA_EMAIL, kenji))
    await login(gateway.client, gateway.tokens.privacy)
    r = await open_via_form(gateway, email=ANNA_EMAIL, national_id="811218-9876",
                            national_id_scheme="se_personnummer")
    rid = r.headers["Location"].rsplit("/", 1)[1]
    base = f"/ui/requests/{rid}"
    html = await (await gateway.client.get(base)).text()
    assert candidates_of(html) == {anna: "strong_id national_id email", kenji: "email"}
    # the lone strong match is pre-ticked and marked; the e-mail-only match is not; nothing is confirmed yet
    assert f'value="{anna}" id="candidate-{anna}" checked>' in html
    assert f'value="{kenji}" id="candidate-{kenji}">' in html
    assert html.count("suggested: the only record matched by a strong identifier") == 1
    assert "not confirmed" in html and 'id="confirm-first"' in html

    # posted anyway (a stale page, a crafted form): refused, nothing done
    csrf = await page_csrf(gateway.client, base)
    rectify = {"kind": "person", "name": "Anna Andersson", "street": "Nygatan 9", "city": "Stockholm",
               "country": "SE", "email": ANNA_EMAIL, "phone": "+46 8 123 456 78", "language": "sv"}
    for path, fields in ((f"{base}/extract", {"lang": "sv"}), (f"{base}/restrict", {"scope": "all"}),
                         (f"{base}/object", {"scope": "marketing"}), (f"{base}/erase", {"confirm": "ERASE"}),
                         (f"{base}/rectify", rectify), (f"{base}/lift", {"restriction_id": "0" * 32})):
        r = await post(gateway, path, csrf, **fields)
        assert r.status == 409, path
        assert "Confirm which candidate records are the data subject&#39;s first" in await r.text(), path
    assert (await gateway.client.get(f"{base}/extract.json")).status == 409
    assert await events(gateway, rid) == ["opened", "candidates_found"]
    for sid in (anna, kenji):
        key = await gateway.store.subject_key(sid)
        assert key is not None and key.wrapped is not None
        assert await gateway.store.restrictions(sid) == []
    assert [a for a in await gateway.store.access_log() if a["action"] == "rights.extract"] == []

    # only candidates, and either records or "none of these"
    r = await confirm_via_form(gateway, rid, "0" * 32, expect=422)
    assert "Only candidate records of this request can be confirmed" in await r.text()
    await confirm_via_form(gateway, rid, anna, none=True, expect=400)
    assert await events(gateway, rid) == ["opened", "candidates_found"]

    await confirm_via_form(gateway, rid, anna)
    html = await (await gateway.client.get(base)).text()
    assert f'value="{anna}" id="candidate-{anna}" checked>' in html and 'id="extract-form"' in html
    assert 'id="erase-form"' not in html  # an access request offers the extract, not an erasure
    assert f'value="{kenji}" id="candidate-{kenji}">' in html and "suggested:" not in html
    [event] = [e for e in await gateway.store.request_events(rid) if e["action"] == "subjects_confirmed"]
    assert event["detail"]["subject_ids"] == [anna]
    detail = html.split('data-action="subjects_confirmed"')[1].split("</tr>")[0]
    assert "strong_id + national_id + email" in detail
    letter = (await (await post(gateway, f"{base}/extract", csrf, lang="en")).text()).split('id="letter"')[1]
    assert "Anna Andersson" in letter and "Kenji" not in letter and "Japan Registry" not in letter


async def test_the_form_finds_by_phone_and_by_name_with_address(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The form's phone (any spacing) and name with postal address (any case, street lines, postal code
    with or without its space) reach the index as registrations store them."""
    await register_scenario(gateway)
    anna, kenji = await subject_of(gateway, "iis-se"), await subject_of(gateway, "jprs-jp")
    extra_links(monkeypatch, gateway, ("phone", "+46812345678", anna), ("phone", "+46812345678", kenji),
                ("name_address", name_address_key("Anna Andersson", ["Storgatan 1"], "111 22", "SE"), anna))
    await login(gateway.client, gateway.tokens.privacy)
    r = await open_via_form(gateway, phone="+46 8 123 456 78", name="ANNA  andersson", street="Storgatan 1\n",
                            postal_code="11122", country="se")
    html = await (await gateway.client.get(r.headers["Location"])).text()
    assert candidates_of(html) == {anna: "phone name_address", kenji: "phone"}
    assert "suggested:" not in html and " checked>" not in html  # no strong match: nothing pre-ticked
    r = await open_via_form(gateway, 422, phone="08-123 456 78")
    assert "identifiers.phone" in await r.text()


async def test_the_log_search_never_merges_records_sharing_an_identifier(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await register_scenario(gateway)
    anna, kenji = await subject_of(gateway, "iis-se"), await subject_of(gateway, "jprs-jp")
    extra_links(monkeypatch, gateway, ("email", ANNA_EMAIL, kenji))  # Kenji's record shares Anna's address
    await login(gateway.client, gateway.tokens.privacy)
    csrf = await page_csrf(gateway.client)
    r = await gateway.client.post("/ui/disclosures", allow_redirects=False,
                                  data={"csrf": csrf, "subject": ANNA_EMAIL, "outcome": "delivered"})
    html = await r.text()
    assert r.status == 200 and "anna" not in str(r.url).lower()
    choices = dict(re.findall(r'<li class="subject-choice" data-subject="([0-9a-f]{32})"><a href="([^"]+)"', html))
    assert set(choices) == {anna, kenji}
    assert "data-recipient" not in html and 'id="export"' not in html  # no rows of both, no CSV of both
    for sid, href in choices.items():
        assert href.replace("&amp;", "&") == f"/ui/disclosures?outcome=delivered&subject_id={sid}"
    page = await (await gateway.client.get(choices[kenji].replace("&amp;", "&"))).text()
    assert re.findall(r'data-recipient="([a-z0-9-]+)"', page) == ["jprs-jp", "jprs-jp"]  # contact, then domain
    export = page.split('id="export" href="')[1].split('"')[0].replace("&amp;", "&")
    rows = list(csv.DictReader(io.StringIO((await (await gateway.client.get(export)).read()).decode("utf-8-sig"))))
    assert {row["subject_id"] for row in rows} == {kenji}
    assert [row["recipient"] for row in rows] == ["jprs-jp", "jprs-jp"]
    # one record: straight to its rows, as before
    r = await gateway.client.post("/ui/disclosures", allow_redirects=False,
                                  data={"csrf": csrf, "subject": "811218-9876"})
    assert r.status == 303 and r.headers["Location"] == f"/ui/disclosures?subject_id={anna}"


async def test_open_a_request_through_the_form_and_see_it(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await login(gateway.client, gateway.tokens.privacy)
    form = await (await gateway.client.get("/ui/requests/new")).text()
    for kind in ("access", "rectification", "erasure", "restriction", "objection"):
        assert f'<option value="{kind}"' in form
    for field in ("email", "national_id", "phone", "name", "postal_code", "country", "contact_id", "domain"):
        assert f'name="{field}"' in form, field
    assert '<textarea name="street"' in form and 'id="candidates-hint"' in form

    r = await open_via_form(gateway, kind="erasure", channel="letter", email=" Anna.Andersson@EXAMPLE.se",
                            national_id="811218-9876", domain="exempel.se")
    location = r.headers["Location"]
    assert "anna" not in location.lower() and "811218" not in location  # identifiers never go into a URL
    m = REQUEST_LINK.match(location)
    assert m is not None
    rid = m.group(1)
    html = await (await gateway.client.get(location)).text()
    assert '<dd id="kind">erasure</dd>' in html and '<dd id="state">open</dd>' in html
    # her record is a candidate, with how it matched; nothing is offered on it before staff confirm
    [row] = await gateway.store.requests()
    assert row["subject_id"] is None
    [(subject, matched)] = candidates_of(html).items()
    assert matched == "national_id email domain"
    assert re.search(r'id="subject"><strong>not confirmed</strong> <small>\(1 candidate record:', html)
    assert 'id="confirm-form"' in html and f'value="{subject}"' in html and 'id="confirm-first"' in html
    for action in ("extract", "restrict", "object", "rectify", "erase"):
        assert f'id="{action}-form"' not in html, action
    assert 'id="close-form"' in html and 'id="extend-form"' in html
    assert 'data-action="opened"' in html and 'data-action="candidates_found"' in html
    opened = (await gateway.store.request_events(rid))[0]["detail"]
    assert opened["identifiers_given"] == ["domain", "email", "national_id"]  # not the form's default country
    assert re.search(r"(28|29|30|31) days left", html)
    assert row["deadline"] in html
    listing = await (await gateway.client.get("/ui/requests")).text()
    assert "1 candidate to confirm" in listing.split(f'data-id="{rid}"')[1].split("</tr>")[0]

    r = await confirm_via_form(gateway, rid, subject)
    html = await (await gateway.client.get(r.headers["Location"])).text()
    assert 'id="notice"' in html and 'id="subject">confirmed (1):' in html
    assert f'id="confirmed-log" href="/ui/disclosures?subject_id={subject}"' in html
    assert 'id="erase-form"' in html  # an erasure request offers erasing, and only that, on her data
    for action in ("extract", "restrict", "object", "rectify"):
        assert f'id="{action}-form"' not in html, action
    assert 'id="confirm-first"' not in html and 'data-action="subjects_confirmed"' in html
    # whom it is about: her name and e-mail from the data sent (a logged read), only in that section
    whom = html.split('id="whom"')[1].split("</section>")[0]
    assert "Anna Andersson" in whom and "anna.andersson@example.se" in whom
    outside = html.replace(whom, "")
    for value in ("Anna", "811218", "anna.andersson"):  # what the person gave is not stored nor shown
        assert value not in outside
        assert value not in json.dumps(await gateway.store.request_events(rid))
        assert value not in json.dumps(await gateway.store.requests())

    listing = await (await gateway.client.get("/ui/requests")).text()
    assert f'data-id="{rid}"' in listing and 'data-kind="erasure"' in listing
    assert "confirmed (1)" in listing.split(f'data-id="{rid}"')[1].split("</tr>")[0]
    assert 'id="new-request"' in listing

    # a person nobody registered: opened with no candidate; staff confirm that no record is theirs, after
    # which only the (empty) extract and closing are offered
    r = await open_via_form(gateway, email="nobody@example.org")
    nobody = r.headers["Location"]
    html = await (await gateway.client.get(nobody)).text()
    assert 'id="no-candidates"' in html and candidates_of(html) == {} and 'id="extract-form"' not in html
    nobody_id = nobody.rsplit("/", 1)[1]
    r = await confirm_via_form(gateway, nobody_id, expect=400)  # neither ticks nor "none of these"
    assert "none of these" in await r.text()
    await confirm_via_form(gateway, nobody_id, none=True)
    html = await (await gateway.client.get(nobody)).text()
    assert 'id="subject">confirmed: <strong>none</strong>' in html and 'id="no-subject-actions"' in html
    assert 'id="erase-form"' not in html and 'id="restrict-form"' not in html and 'id="close-form"' in html
    assert 'id="extract-form"' in html

    # no identifier: the form again, with the error, nothing opened; name and address only together
    r = await open_via_form(gateway, 422, domain="exempel.se")
    assert 'id="form-error"' in await r.text()
    r = await open_via_form(gateway, 422, name="Anna Andersson", email="")
    text = await r.text()
    assert 'id="form-error"' in text and "identifiers.street" in text and 'value="Anna Andersson"' in text
    r = await open_via_form(gateway, 400, kind="portability", email=ANNA_EMAIL)
    assert len(await gateway.store.requests()) == 2


async def test_list_filters_by_state_and_marks_overdue(gateway: Gateway) -> None:
    await login(gateway.client, gateway.tokens.privacy)
    late = await open_anna(gateway)
    closed = await open_anna(gateway)
    await gateway.store.update_request(late, {"deadline": "2020-01-31"})
    csrf = await page_csrf(gateway.client, f"/ui/requests/{closed}")
    assert (await post(gateway, f"/ui/requests/{closed}/close", csrf, outcome="withdrawn")).status == 303

    async def rows(query: str) -> dict[str, str]:
        html = await (await gateway.client.get(f"/ui/requests{query}")).text()
        return {rid: cls for cls, rid in re.findall(r'<tr class="request ([a-z-]+)" data-id="([0-9a-f]{32})"', html)}

    assert await rows("") == {late: "overdue"}
    assert await rows("?state=closed") == {closed: "closed"}
    assert await rows("?state=all") == {late: "overdue", closed: "closed"}
    html = await (await gateway.client.get("/ui/requests")).text()
    assert "days overdue" in html
    detail = await (await gateway.client.get(f"/ui/requests/{late}")).text()
    assert 'id="deadline" class="overdue"' in detail and "days overdue" in detail
    assert (await gateway.client.get("/ui/requests?state=pending")).status == 400


# -- extracts -------------------------------------------------------------------------------------------

def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


async def test_extract_pages_in_swedish_and_english(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await login(gateway.client, gateway.tokens.privacy)
    rid = await open_anna(gateway)
    csrf = await page_csrf(gateway.client, f"/ui/requests/{rid}")

    r = await post(gateway, f"/ui/requests/{rid}/extract", csrf, lang="sv")
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    sv = await r.text()
    letter = sv.split('id="letter"')[1]
    assert "<h1>Registerutdrag</h1>" in letter and "Integritetsskyddsmyndigheten" in letter
    for name in ("Internetstiftelsen (registret för .se)", "Public Interest Registry (registret för .org)",
                 "VeriSign, Inc. (registret för .com)", "Anna Andersson", "811218-9876"):
        assert name in letter, name
    for other in ("Japan Registry", "Kenji", "China Internet", "Wei Zhang", "exempel.jp", "exempel.cn"):
        assert other not in sv, other
    assert "<style>" not in sv and " style=" not in sv  # the letter's inline style is left out (CSP)
    covers = sv.split('id="covers"')[1].split("</p>")[0]
    assert "exempel.se" in covers and "exempel.org" in covers and "exempel.jp" not in covers
    for fmt in ("pdf", "json"):
        assert f'href="/ui/requests/{rid}/extract.{fmt}?lang=sv"' in sv

    en = await (await post(gateway, f"/ui/requests/{rid}/extract", csrf, lang="en")).text()
    assert "<h1>Register extract</h1>" in en and "Registerutdrag" not in en
    assert "Internetstiftelsen (.se registry)" in en and "Sweden" in en

    r = await gateway.client.get(f"/ui/requests/{rid}/extract.json?lang=en")
    assert r.status == 200 and r.headers["Content-Disposition"].startswith(f'attachment; filename="extract-{rid}-en-')
    x = await r.json()
    assert x["lang"] == "en" and {d["recipient"]["id"] for d in x["disclosures"]} == {"iis-se", "pir-org",
                                                                                        "verisign-com"}
    r = await gateway.client.get(f"/ui/requests/{rid}/extract.pdf?lang=sv")
    assert r.status == 200 and r.content_type == "application/pdf"
    text = pdf_text(await r.read())
    assert "Registerutdrag" in text and "Internetstiftelsen (registret för .se)" in text and "Kenji" not in text
    assert (await gateway.client.get(f"/ui/requests/{rid}/extract.pdf?lang=de")).status == 400
    assert (await post(gateway, f"/ui/requests/{rid}/extract", csrf, lang="de")).status == 400

    # every extract is a step in the request's log and a logged read
    assert await events(gateway, rid) == ["opened", "candidates_found", "subjects_confirmed", "extract", "extract",
                                          "extract", "extract"]
    reads = [a for a in await gateway.store.access_log() if a["action"] == "rights.extract"]
    assert len(reads) == 4 and {a["object_id"] for a in reads} == {rid}
    detail = await (await gateway.client.get(f"/ui/requests/{rid}")).text()
    assert detail.count('data-action="extract"') == 4


# -- actions ----------------------------------------------------------------------------------------------

async def test_actions_and_the_event_log(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await login(gateway.client, gateway.tokens.privacy)
    rid = await open_anna(gateway)
    base = f"/ui/requests/{rid}"
    csrf = await page_csrf(gateway.client, base)
    [row] = await gateway.store.requests()
    subject = row["subject_id"]

    # extend: needs a reason; once only
    r = await post(gateway, f"{base}/extend", csrf, reason="  ")
    assert r.status == 422 and 'id="action-error"' in await r.text()
    r = await post(gateway, f"{base}/extend", csrf, reason="many registrations to go through")
    assert r.status == 303 and r.headers["Location"] == f"{base}?done=extended"
    html = await (await gateway.client.get(r.headers["Location"])).text()
    assert 'id="notice"' in html and "many registrations to go through" in html and 'id="extend-form"' not in html
    r = await post(gateway, f"{base}/extend", csrf, reason="again")
    assert r.status == 409 and "already extended" in await r.text()

    # restrict, object, lift
    assert (await post(gateway, f"{base}/restrict", csrf, scope="no-such-recipient")).status == 422
    assert (await post(gateway, f"{base}/restrict", csrf, scope="all")).status == 303
    assert (await post(gateway, f"{base}/object", csrf, scope="marketing")).status == 303
    active = await gateway.store.restrictions(subject)
    assert [(a["kind"], a["scope"]) for a in active] == [("restriction", "all"), ("objection", "marketing")]
    html = await (await gateway.client.get(base)).text()
    assert 'id="lift-form"' not in html and active[0]["id"] in html  # lifting fits restriction/objection requests
    assert "iis-se" in html.split('data-action="restricted"')[1].split("</tr>")[0]  # Art. 19: whom to tell
    assert (await post(gateway, f"{base}/lift", csrf, restriction_id="f" * 32)).status == 404
    assert (await post(gateway, f"{base}/lift", csrf, restriction_id="nope")).status == 400
    assert (await post(gateway, f"{base}/lift", csrf, restriction_id=active[0]["id"])).status == 303
    assert [a["id"] for a in await gateway.store.restrictions(subject)] == [active[1]["id"]]

    # erase: only with the word typed
    for typed in (None, "", "erase", "yes"):
        fields = {} if typed is None else {"confirm": typed}
        r = await post(gateway, f"{base}/erase", csrf, **fields)
        assert r.status == 422 and "type ERASE" in await r.text(), typed
        key = await gateway.store.subject_key(subject)
        assert key is not None and key.wrapped is not None
    r = await post(gateway, f"{base}/erase", csrf, confirm="ERASE")
    assert r.status == 303
    key = await gateway.store.subject_key(subject)
    assert key is not None and key.wrapped is None
    html = await (await gateway.client.get(base)).text()
    erasure = html.split('id="erasure"')[1].split("</section>")[0]
    for recipient in ("iis-se", "pir-org"):
        assert f'data-recipient="{recipient}"' in erasure
    assert "not possible" in erasure and 'id="erase-form"' not in html

    # close, then nothing more
    assert (await post(gateway, f"{base}/close", csrf, outcome="")).status == 422
    assert (await post(gateway, f"{base}/close", csrf, outcome="erased; registries asked")).status == 303
    html = await (await gateway.client.get(base)).text()
    assert '<dd id="state">closed</dd>' in html and "erased; registries asked" in html
    assert 'id="close-form"' not in html and 'id="extract-form"' in html
    assert (await post(gateway, f"{base}/restrict", csrf, scope="all")).status == 409

    steps = ["opened", "candidates_found", "subjects_confirmed", "extended", "restricted", "art19_notices",
             "objected", "art19_notices", "lifted", "erased", "closed"]
    assert await events(gateway, rid) == steps
    for action in steps:
        assert f'data-action="{action}"' in html, action
    # Art. 19: the API's notices were taken for the page's restriction too; registries are told by staff
    notices = html.split('data-action="art19_notices"')[1].split("</tr>")[0]
    assert "recipient: iis-se, status: manual" in notices and "recipient: pir-org, status: manual" in notices
    assert (await gateway.client.get("/ui/requests/" + "f" * 32)).status == 404
    assert (await post(gateway, "/ui/requests/" + "f" * 32 + "/close", csrf, outcome="x")).status == 404


async def test_erasure_asks_https_partners_to_delete_as_the_api_does(gateway: Gateway) -> None:
    await login(gateway.client, gateway.tokens.privacy)
    rid = await open_anna(gateway)
    rights = app_of(gateway)[SERVICES].rights  # the one the page's and the API's erase both go through
    report: dict[str, Any] = {"recipients": [
        {"recipient": "marketing-partner", "deletion_request": "possible", "registrations": ["a" * 32, "b" * 32]},
        {"recipient": "iis-se", "deletion_request": "not_possible", "registrations": ["c" * 32]},
    ]}
    await request_deletions(rights.store, rights.policies, rights.partners, request_id=rid, actor="staff",
                            report=report)
    # no endpoint for the partner in this gateway: the request fails and says so; the registry is left to staff
    assert report["recipients"][0]["status"] == "failed" and "ask the recipient directly" in \
        report["recipients"][0]["reason"]
    assert "status" not in report["recipients"][1]
    [event] = [e for e in await gateway.store.request_events(rid) if e["action"] == "deletion_requested"]
    assert event["detail"] == {"recipient": "marketing-partner", "status": "failed", "registrations": 2}


async def test_pages_share_the_apis_rights_service(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    await login(gateway.client, gateway.tokens.privacy)
    svc = app_of(gateway)[SERVICES]
    assert svc.rights.store is svc.store and svc.rights.changes is svc.changes
    calls: list[str] = []
    real_art30 = svc.rights.art30

    async def counted() -> dict[str, Any]:
        calls.append("art30")
        return await real_art30()

    monkeypatch.setattr(svc.rights, "art30", counted)
    assert (await gateway.client.get("/ui/art30")).status == 200
    assert (await gateway.client.get("/v1/art30", headers=gateway.tokens.h("privacy"))).status == 200
    assert calls == ["art30", "art30"]


# -- Art. 30 and the explainer ------------------------------------------------------------------------------

async def test_art30_page_lists_every_configured_recipient(gateway: Gateway) -> None:
    await register_scenario(gateway)
    await login(gateway.client, gateway.tokens.auditor)
    html = await (await gateway.client.get("/ui/art30")).text()
    policies = app_of(gateway)[SERVICES].registrations.policies
    section = html.split('id="recipients"')[1].split("</section>")[0]
    listed = set(re.findall(r'<tr class="recipient" data-recipient="([a-z0-9-]+)"', section))
    assert listed == set(policies.recipients) and len(listed) == 20
    assert "Integritetsskyddsmyndigheten" in html
    transfers = dict(re.findall(r'<tr class="transfer" data-recipient="([a-z0-9-]+)" data-category="([a-z_]+)"',
                                html))
    assert transfers["jprs-jp"] == "adequacy" and transfers["cnnic-cn"] == "blocked"
    assert transfers["pir-org"] == "safeguard" and "iis-se" not in transfers
    assert "AES-256-GCM" in html and "Merkle" in html
    r = await gateway.client.get("/ui/art30.json")
    assert r.status == 200 and r.headers["Content-Disposition"].startswith('attachment; filename="art30-')
    assert (await r.json())["record"].startswith("Art. 30(1)")


EXPLAIN_ANNA = {
    "kind": "person", "name": "Anna Andersson", "id_scheme": "se_personnummer", "id_value": "19811218-9876",
    "street": "Storgatan 1", "city": "Stockholm", "postal_code": "111 22", "country": "SE",
    "email": "anna.andersson@example.se", "phone": "+46 8 123 456 78", "language": "sv",
}


def plan_of(html: str, recipient: str) -> str:
    return html.split(f'data-recipient="{recipient}"')[1].split("</article>")[0]


async def test_explainer_shows_what_would_go_where_and_sends_nothing(gateway: Gateway) -> None:
    await login(gateway.client, gateway.tokens.privacy)
    commands, connections = len(gateway.sandbox.sandbox.commands), gateway.sandbox.sandbox.connections_opened
    form = await (await gateway.client.get("/ui/explain")).text()
    csrf = csrf_of(form)

    r = await post(gateway, "/ui/explain", csrf, tld="se", **EXPLAIN_ANNA)
    assert r.status == 200
    html = await r.text()
    iis = plan_of(html, "iis-se")
    assert 'data-category="eea"' in html.split('data-recipient="iis-se"')[1][:60]
    assert re.search(r'data-field="national_id"><th scope="row">national_id</th><td>\[SE\]811218-9876</td>', iis)
    assert '<tr class="withheld" data-field="language">' in iis
    assert 'id="verdict">The registration would go ahead.' in html

    r = await post(gateway, "/ui/explain", csrf, tld=".CN", **EXPLAIN_ANNA)
    html = await r.text()
    cn = plan_of(html, "cnnic-cn")
    assert 'data-category="blocked"' in html and "blocked" in cn and "transfer_blocked" in cn
    assert '<dd class="would-send">nothing</dd>' in cn and 'class="not-sent"' in cn
    assert "would be refused" in html

    # .com: the thin registry gets no personal data; escrow is listed
    html = await (await post(gateway, "/ui/explain", csrf, tld="com", **EXPLAIN_ANNA)).text()
    assert "No personal data." in plan_of(html, "verisign-com") and 'data-recipient="escrow-agent"' in html

    # invalid sample: the fields named, the form kept
    r = await post(gateway, "/ui/explain", csrf, tld="se", **(EXPLAIN_ANNA | {"email": "not-an-email",
                                                                             "id_value": "19811218-9875"}))
    html = await r.text()
    assert r.status == 422 and 'id="field-errors"' in html and "<code>email</code>" in html
    assert "<code>national_id.value</code>" in html and 'data-recipient="iis-se"' not in html
    r = await post(gateway, "/ui/explain", csrf, tld="zz", **EXPLAIN_ANNA)
    assert r.status == 422 and "no recipient policy for .zz" in await r.text()
    r = await post(gateway, "/ui/explain", csrf, tld="se", **(EXPLAIN_ANNA | {"id_scheme": ""}))
    assert r.status == 422

    # nothing reached the registry sandbox, nothing was logged or queued
    assert len(gateway.sandbox.sandbox.commands) == commands
    assert gateway.sandbox.sandbox.connections_opened == connections
    assert await gateway.store.disclosures(DisclosureFilter()) == []
    assert await gateway.store.requests() == []


async def test_rectify_from_the_request_page(gateway: Gateway) -> None:
    ids = await register_scenario(gateway)
    await login(gateway.client, gateway.tokens.privacy)
    rid = await open_anna(gateway)
    csrf = await page_csrf(gateway.client, f"/ui/requests/{rid}")
    before = len(gateway.sandbox.sandbox.frames)
    fields = {"kind": "person", "name": "Anna Andersson", "id_scheme": "se_personnummer", "id_value": "19811218-9876",
              "street": "Nygatan 9", "city": "Stockholm", "postal_code": "111 22", "country": "SE",
              "email": ANNA_EMAIL, "phone": "+46 8 123 456 78", "language": "sv"}
    r = await post(gateway, f"/ui/requests/{rid}/rectify", csrf, **fields)
    assert r.status == 303, await r.text()
    assert "rectification_pushed" in await events(gateway, rid)
    reg = await gateway.wait_status(ids["exempel.se"], {"delivered"})
    for _ in range(100):
        reg = await gateway.wait_status(ids["exempel.se"], {"delivered"})
        if any(e["purpose"] == "rectification" for e in reg["disclosures"]):
            break
        await asyncio.sleep(0.05)
    [pushed] = [e for e in reg["disclosures"] if e["purpose"] == "rectification"]
    assert pushed["fields"] == ["street"] and pushed["outcome"] == "delivered"
    assert any(b"<contact:update" in f and b"Nygatan 9" in f for f in gateway.sandbox.sandbox.frames[before:])
    # without the session's CSRF token nothing is pushed
    r = await post(gateway, f"/ui/requests/{rid}/rectify", None, **fields)
    assert r.status == 403
