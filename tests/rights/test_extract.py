"""Art. 15 extracts through the running gateway: complete for the subject, nobody else's, verifiable
offline (and tamper-evident), rendered as Swedish and English letters."""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from gateway.cli.rights import main as cli_main
from gateway.http.context import SERVICES
from gateway.rights.extract import verify_extract
from tests.conftest import ROOT, Gateway
from tests.rights.conftest import anna, bertil, confirm, entries, open_confirmed, open_request, public_key_pem, register
from tests.rights.test_letter import configure

pytestmark = pytest.mark.integration


async def _two_subjects(gw: Gateway) -> tuple[set[str], set[str]]:
    await register(gw, anna(domain="exempel.se"))
    await register(gw, bertil(domain="bertils.se"))
    await register(gw, anna(domain="annan.se"))
    await register(gw, anna(domain="blockerad.cn"), want="blocked")
    await register(gw, anna(domain="exempel.com"))
    rows = await entries(gw)
    subjects = {r["subject_id"] for r in rows}
    assert len(subjects) == 2
    by_subject: dict[str, set[str]] = {}
    for r in rows:
        by_subject.setdefault(r["subject_id"], set()).add(r["id"])
    # one entry per command: Anna's contact:create and domain:create for exempel.se, a domain:create for
    # annan.se (her contact reused), the .cn refusal and the thin .com domain:create; Bertil's contact:create
    # and domain:create (his own contact: reuse never crosses people)
    anna_ids = next(ids for ids in by_subject.values() if len(ids) == 5)
    bertil_ids = next(ids for ids in by_subject.values() if len(ids) == 2)
    contacts = {r["subject_id"]: r["objects"]["contact:registrant"] for r in rows if r["command"] == "contact:create"}
    assert len(contacts) == 2 and len(set(contacts.values())) == 2
    return anna_ids, bertil_ids


async def test_extract_lists_every_disclosure_of_the_subject_and_none_of_another(gateway: Gateway) -> None:
    anna_ids, bertil_ids = await _two_subjects(gateway)
    # found by the blind index from what the person gives: 10-digit personnummer, e-mail in other case
    opened = await open_request(gateway, email=" Anna.Andersson@Example.se", national_id="811218-9876")
    [candidate] = opened["candidates"]
    assert candidate["matched_by"] == ["national_id", "email"] and opened["subject_id"] is None
    h = gateway.tokens.h("privacy")
    # nothing is read before staff confirm whose record it is
    r = await gateway.client.get(f"/v1/requests/{opened['id']}/extract.json", headers=h)
    assert r.status == 409 and (await r.json())["code"] == "subject_not_confirmed"
    req = await confirm(gateway, opened)
    assert req["subject_id"] == candidate["subject_id"] and req["state"] == "open"
    assert [e["action"] for e in req["events"]] == ["opened", "candidates_found", "subjects_confirmed"]
    r = await gateway.client.get(f"/v1/requests/{req['id']}/extract.json", params={"lang": "en"}, headers=h)
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    x = await r.json()
    got = {d["id"] for d in x["disclosures"]}
    assert got == anna_ids
    assert not got & bertil_ids
    assert x["lang"] == "en" and x["supervisory_authority"]["name"] == "Integritetsskyddsmyndigheten"
    assert {r["right"] for r in x["rights"]} == {"rectification", "erasure", "restriction", "objection", "complaint"}
    assert x["retention"] and x["source"]
    by_recipient = {d["recipient"]["id"]: d for d in x["disclosures"]}
    iis = [d for d in x["disclosures"] if d["recipient"]["id"] == "iis-se"]
    assert sorted(d["leaf"]["command"] for d in iis) == ["contact:create", "domain:create", "domain:create"]
    for d in iis:
        assert d["recipient"]["name"] == "Internetstiftelsen (.se registry)"
        assert d["recipient"]["country"] == "SE" and d["outcome"] == "delivered"
        assert d["legal_basis"]["transfer_category"] == "eea"
        if d["leaf"]["command"] == "contact:create":  # the command that carried her data
            assert d["values"]["national_id"] == "[SE]811218-9876" and d["values_note"] is None
            assert set(d["values"]) == set(d["fields"])
        else:  # the domain:create points at the contact and carries no values
            assert d["fields"] == [] and d["values"] is None and d["values_note"] == "none_sent"
    cn = by_recipient["cnnic-cn"]
    assert cn["outcome"] == "blocked" and cn["values"] is None and cn["values_note"] == "none_sent"
    com = by_recipient["verisign-com"]
    assert com["legal_basis"]["transfer_category"] == "no_personal_data" and com["fields"] == []
    # every leaf is the row the log holds
    for d in x["disclosures"]:
        assert d["leaf"]["id"] == d["id"] and d["leaf"]["subject_id"] == req["subject_id"]

    assert verify_extract(x, await public_key_pem(gateway)) == []

    # the extract was logged, with ids only
    svc = gateway.client.app[SERVICES]
    actions = [a["action"] for a in await svc.store.access_log(req["subject_id"])]
    assert "rights.extract" in actions
    detail = await (await gateway.client.get(f"/v1/requests/{req['id']}", headers=h)).json()
    assert detail["events"][-1]["action"] == "extract"
    assert detail["events"][-1]["detail"]["entries"] == 5
    text = json.dumps(detail)
    for pii in ("Anna", "anna.andersson", "811218", "Storgatan"):
        assert pii not in text, pii


def _flip_b64(value: str) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


async def test_verify_extract_detects_tampering(gateway: Gateway) -> None:
    await register(gateway, anna(domain="exempel.se"))
    await register(gateway, anna(domain="annan.se"))
    await register(gateway, bertil(domain="bertils.se"))
    req = await open_confirmed(gateway, email="anna.andersson@example.se")
    x = await (await gateway.client.post(
        f"/v1/requests/{req['id']}/extract", json={"lang": "sv"}, headers=gateway.tokens.h("privacy"))).json()
    pem = await public_key_pem(gateway)
    assert verify_extract(x, pem) == []
    # Anna's contact:create and two domain:create (the second reuses her contact); none of Bertil's
    assert len(x["disclosures"]) == 3 and all(d["proof"] for d in x["disclosures"])

    def tampered(fn: Any) -> list[str]:
        y = copy.deepcopy(x)
        fn(y)
        return verify_extract(y, pem)

    def leaf_value(y: dict[str, Any]) -> None:
        y["disclosures"][0]["leaf"]["recipient_country"] = "US"

    def shown_value(y: dict[str, Any]) -> None:
        y["disclosures"][0]["recipient"]["name"] = "Someone else"

    def proof_byte(y: dict[str, Any]) -> None:
        y["disclosures"][1]["proof"][0] = _flip_b64(y["disclosures"][1]["proof"][0])

    def root(y: dict[str, Any]) -> None:
        y["checkpoint"]["root"] = _flip_b64(y["checkpoint"]["root"])

    def signature(y: dict[str, Any]) -> None:
        y["checkpoint"]["signature"] = _flip_b64(y["checkpoint"]["signature"])

    def foreign_subject(y: dict[str, Any]) -> None:
        y["subject_ids"] = ["0" * 32]
        y["subject_id"] = "0" * 32

    assert any("inclusion proof" in p for p in tampered(leaf_value))
    assert any("recipient.name" in p for p in tampered(shown_value))
    assert any("disclosure 1" in p and "inclusion proof" in p for p in tampered(proof_byte))
    root_problems = tampered(root)
    assert any("signature" in p for p in root_problems) and any("inclusion proof" in p for p in root_problems)
    assert tampered(signature) == ["checkpoint: signature does not verify with this public key"]
    assert all("another data subject" in p for p in tampered(foreign_subject))
    # another key does not verify it either
    from gateway.ledger.checkpoint import CheckpointSigner

    assert verify_extract(x, CheckpointSigner.generate().public_pem()) != []
    assert verify_extract({"not": "an extract"}, pem) != []


async def test_cli_verifies_an_extract_offline(gateway: Gateway, tmp_path: Path) -> None:
    await register(gateway, anna(domain="exempel.se"))
    req = await open_confirmed(gateway, email="anna.andersson@example.se", national_id="19811218-9876")
    r = await gateway.client.get(f"/v1/requests/{req['id']}/extract.json", headers=gateway.tokens.h("privacy"))
    x = await r.json()
    extract_file, key_file = tmp_path / "extract.json", tmp_path / "key.pem"
    extract_file.write_text(json.dumps(x, ensure_ascii=False), encoding="utf-8")
    key_file.write_bytes(await public_key_pem(gateway))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "gateway.cli.rights", "extract", "verify", str(extract_file), "--public-key",
         str(key_file)], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert "ok: 2 disclosures verified" in done.stdout  # contact:create and domain:create
    x["disclosures"][0]["leaf"]["recipient_name"] = "Another registry"
    extract_file.write_text(json.dumps(x), encoding="utf-8")
    assert cli_main(["extract", "verify", str(extract_file), "--public-key", str(key_file)]) == 1
    assert cli_main(["extract", "verify", str(tmp_path / "missing.json"), "--public-key", str(key_file)]) == 2


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


async def test_letters_in_swedish_and_english(gateway: Gateway) -> None:
    configure(gateway)  # the controller's own details: a letter with placeholders is refused
    await register(gateway, anna(domain="exempel.se"))
    odd = bertil(domain="bertils.se")
    odd["registrant"]["name"] = "Bertil <b>Berg</b> Öström"
    await register(gateway, odd)
    h = gateway.tokens.h("privacy")
    req = await open_confirmed(gateway, email="anna.andersson@example.se")
    r = await gateway.client.get(f"/v1/requests/{req['id']}/extract.pdf", params={"lang": "sv"}, headers=h)
    assert r.status == 200 and r.content_type == "application/pdf"
    sv = _pdf_text(await r.read())
    for needle in ("Registerutdrag", "Internetstiftelsen (registret för .se)", "Integritetsskyddsmyndigheten",
                   "Utlämnanden", "Rätt till radering", "Anna Andersson", "Sverige"):
        assert needle in sv, needle
    r = await gateway.client.get(f"/v1/requests/{req['id']}/extract.pdf", params={"lang": "en"}, headers=h)
    en = _pdf_text(await r.read())
    for needle in ("Register extract", "Internetstiftelsen (.se registry)", "Integritetsskyddsmyndigheten",
                   "Right to erasure", "Sweden"):
        assert needle in en, needle
    assert "Registerutdrag" not in en

    r = await gateway.client.get(f"/v1/requests/{req['id']}/extract.html", params={"lang": "sv"}, headers=h)
    assert r.status == 200 and r.content_type == "text/html"
    html = await r.text()
    assert "<h1>Registerutdrag</h1>" in html and "Integritetsskyddsmyndigheten" in html
    # autoescaped: a registrant's own value cannot inject markup
    req_b = await open_confirmed(gateway, email="bertil@example.se")
    r = await gateway.client.get(f"/v1/requests/{req_b['id']}/extract.html", params={"lang": "en"}, headers=h)
    html_b = await r.text()
    assert "Bertil &lt;b&gt;Berg&lt;/b&gt; Öström" in html_b and "<b>Berg" not in html_b
    pdf_b = await (await gateway.client.get(f"/v1/requests/{req_b['id']}/extract.pdf", params={"lang": "en"},
                                            headers=h)).read()
    assert "Öström" in _pdf_text(pdf_b)
    r = await gateway.client.get(f"/v1/requests/{req['id']}/extract.pdf", params={"lang": "de"}, headers=h)
    assert r.status == 422 and (await r.json())["code"] == "validation_failed"
