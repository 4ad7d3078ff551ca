"""The letter's words, pure: every message id of the letter is translated into Swedish, configuration facts
the shipped files put in a letter have Swedish words, times are Stockholm time with the zone named,
staff notes are stripped, and a controller with placeholders is refused.  Also the word lists
``test_letter`` checks the PDFs against (the letters catalogue's own English ids and Swedish strings)."""

from __future__ import annotations

import ast
import functools
import logging
import re
from importlib.resources import files
from typing import Any

import pytest
from babel.messages.pofile import read_po

from gateway.errors import ControllerNotConfigured, LetterNotRenderable
from gateway.policy.loader import load_policies
from gateway.rights import render, texts
from gateway.rights.config import load_controller, load_retention
from gateway.rights.service import recorded_language
from tests.conftest import ROOT

_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def words(text: str) -> set[str]:
    """Lower-case words of two letters or more (a hyphenated word is one word)."""
    return {w.lower() for w in _WORD.findall(text) if len(w) > 1}


@functools.cache
def _catalogue(lang: str) -> dict[str, str]:
    with files("gateway").joinpath("locale", lang, "LC_MESSAGES", "letters.po").open("rb") as fh:
        cat = read_po(fh, locale=lang, domain="letters")
    return {str(m.id): str(m.string) for m in cat if m.id}


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{[a-z]+\}", text))


def english_words() -> set[str]:
    """Words of the letters' English ids that no Swedish string uses (so "art", "GDPR", "IMY" are neither)."""
    sv = _catalogue("sv")
    en_words = set().union(*(words(re.sub(r"\{[a-z]+\}", " ", i)) for i in sv))
    return en_words - set().union(*(words(s) for s in sv.values()))


def swedish_words() -> set[str]:
    sv = _catalogue("sv")
    sv_words = set().union(*(words(re.sub(r"\{[a-z]+\}", " ", s)) for s in sv.values()))
    return sv_words - set().union(*(words(i) for i in sv))


def _ids_in_code() -> set[str]:
    ids: set[str] = set()
    tree = ast.parse((ROOT / "gateway" / "rights" / "texts.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "N_"
                and node.args and isinstance(node.args[0], ast.Constant)):
            ids.add(str(node.args[0].value))
    template = (ROOT / "gateway" / "rights" / "templates" / "extract.html.j2").read_text(encoding="utf-8")
    ids |= set(re.findall(r'_\("([^"]+)"\)', template)) | set(re.findall(r"_\('([^']+)'\)", template))
    return ids | {"Register extract", "Page {page} of {pages}"}


def test_every_letter_message_is_in_both_catalogues_and_translated_into_swedish() -> None:
    sv, en = _catalogue("sv"), _catalogue("en")
    used = _ids_in_code()
    assert len(used) > 100
    assert used - set(sv) == set(), "ids missing in sv/letters.po"
    assert used - set(en) == set(), "ids missing in en/letters.po"
    for msgid in used:
        assert sv[msgid], msgid  # (a word may be the same in both: "organisation")
        assert _placeholders(sv[msgid]) == _placeholders(msgid), msgid
    assert set(sv) == set(en)


def test_configuration_facts_a_letter_shows_have_swedish_words() -> None:
    """Recipient names, lawful bases and partners' retention in the shipped configuration: each one is
    translated (or a registry's name in the "X (.tld registry)" form); nothing says UNCONFIRMED."""
    policies = load_policies(ROOT / "config")
    retention = load_retention(ROOT / "config")
    facts = [p.lawful_basis for p in retention.purposes.values()]
    facts += [p.retention for p in policies.recipients.values() if p.retention]
    facts += [b["lawful_basis"] for b in texts.BUILTIN_PURPOSES.values()]
    assert texts.untranslated(facts, "sv") == []
    for policy in policies.recipients.values():
        sv = texts.recipient_name(policy.name, "sv")
        en = texts.recipient_name(policy.name, "en")
        assert "UNCONFIRMED" not in sv + en and "registry)" not in sv, (policy.recipient, sv)
        m = re.fullmatch(r"(.+) \((\.[a-z]+) registry\)", policy.name)
        if m:  # a registry's own name is a proper name; our words around it are Swedish
            assert sv == f"{m[1]} (registret för {m[2]})"
        else:
            assert not (words(sv) & english_words()), (policy.recipient, sv)
    for p in policies.recipients.values():
        for s in p.safeguards:
            sv = texts.instrument_text(s.instrument, "sv")
            assert not (words(sv) & english_words()), sv


def test_times_are_stockholm_time_with_the_zone_named() -> None:
    assert texts.when("2026-11-25T16:53:18.504337Z", "sv") == "25 november 2026, 17:53 (centraleuropeisk normaltid)"
    assert texts.when("2026-06-25T16:53:18Z", "en") == "25 June 2026, 18:53 (Central European Summer Time)"
    assert texts.day("2027-02-25", "sv") == "25 februari 2027"


def test_field_names_and_values_in_words() -> None:
    # in the order a person reads a registration: name and identity first
    assert texts.field_names(["email", "postal_code", "national_id"], "sv") == "personnummer, postnummer, e-postadress"
    assert texts.field_name("email", "en") == "e-mail address"
    assert texts.value_text("kind", "person", "sv") == "privatperson"
    assert texts.value_text("national_id", "[SE]811218-9876", "sv") == "811218-9876 (Sverige)"
    assert texts.value_text("country", "PL", "sv") == "Polen"
    assert texts.value_text("language", "en", "sv") == "engelska"
    assert texts.value_text("street", ["Storgatan 1", "Lgh 1102"], "sv") == "Storgatan 1, Lgh 1102"


def test_recipients_and_staff_notes() -> None:
    assert texts.recipient_name("Internetstiftelsen (.se registry)", "sv") == "Internetstiftelsen (registret för .se)"
    assert texts.recipient_name("Internetstiftelsen (.se registry)", "en") == "Internetstiftelsen (.se registry)"
    assert texts.recipient_name(".io registry operator (identity UNCONFIRMED)", "sv") == "registret för .io"
    assert texts.recipient_name(".io registry operator (identity UNCONFIRMED)", "en") == ".io registry operator"
    assert texts.letter_safe("15 months (final figure UNCONFIRMED)") == "15 months"
    assert "modul 1" in texts.instrument_text("Commission Implementing Decision (EU) 2021/914, module 1", "sv")


def test_recorded_language() -> None:
    assert recorded_language([]) == "sv"
    assert recorded_language([{"language": "en"}, None, {"name": "x"}]) == "en"
    assert recorded_language([{"language": "en"}, {"language": "de"}]) == "sv"


def _extract(**over: Any) -> dict[str, Any]:
    c = load_controller(ROOT / "config")
    x: dict[str, Any] = {
        "lang": "sv", "request_id": "r" * 32, "subject_id": None, "subject_ids": [],
        "generated_at": "2026-11-30T10:00:00Z",
        "controller": c.controller.model_dump() | {"placeholder": c.placeholder}, "dpo": None,
        "supervisory_authority": {"name": "Integritetsskyddsmyndigheten", "short_name": "IMY",
                                  "url": "https://www.imy.se", "country": "SE"},
        "purposes": [], "retention": [], "disclosures": [], "planned": [],
        "checkpoint": {"size": 1, "timestamp": "2026-11-30T10:00:00Z", "key_id": "k", "root": "r"},
    }
    return x | over


def test_placeholders_refuse_the_whole_letter_naming_the_settings() -> None:
    with pytest.raises(ControllerNotConfigured) as err:
        render.render_html(_extract())
    assert err.value.status == 409
    assert "placeholder" in err.value.detail and "controller.name" in err.value.detail
    configured = {"placeholder": False, "name": "Domänbolaget AB", "organisation_number": "556677-8899",
                  "address": "Sveavägen 1, Stockholm", "email": "dataskydd@domanbolaget.se"}
    with pytest.raises(ControllerNotConfigured) as err:
        render.render_html(_extract(controller=configured | {"email": "privacy@registrar.invalid"}))
    assert "controller.email" in err.value.detail and "controller.name" not in err.value.detail
    html = render.render_html(_extract(controller=configured))
    assert "Domänbolaget AB" in html and "hittade inga personuppgifter" in html


def test_a_staff_note_never_leaves_in_a_letter() -> None:
    configured = {"placeholder": False, "name": "Domänbolaget AB (address UNCONFIRMED)", "organisation_number": None,
                  "address": "Sveavägen 1, Stockholm", "email": "dataskydd@domanbolaget.se"}
    with pytest.raises(LetterNotRenderable):
        render.render_html(_extract(controller=configured))


def test_printing_logs_no_font_subsetting_noise(caplog: pytest.LogCaptureFixture) -> None:
    from gateway.rights import pdf

    configured = {"placeholder": False, "name": "Łukasz Wójcik-Dvořák AB", "organisation_number": None,
                  "address": "Sveavägen 1, Stockholm", "email": "dataskydd@domanbolaget.se"}
    with caplog.at_level(logging.DEBUG):
        data = pdf.render(_extract(controller=configured, lang="en"))
    assert data.startswith(b"%PDF")
    noisy = [r for r in caplog.records if r.name.startswith(("fontTools", "weasyprint"))]
    assert noisy == [], [(r.name, r.getMessage()) for r in noisy[:5]]
