"""The Art. 15 letter: one jinja2 template (``templates/extract.html.j2``) for the HTML letter, the staff
page and the PDF (:mod:`gateway.rights.pdf` prints the same HTML with WeasyPrint).

:func:`letter_view` turns an extract (the verifiable JSON) into what the letter says, in the letter's
language: field names as words, recipients, bases and outcomes through the ``letters`` catalogue,
times in Stockholm time with the zone named.  It refuses, before anything is rendered, a controller
whose details are still placeholders (``ControllerNotConfigured``, 409): a letter naming "[Registrar
AB]" must never leave the building, nor half a letter.  A last check refuses a letter that would carry
a staff note ("UNCONFIRMED", a configuration file's name).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from gateway.errors import ControllerNotConfigured, LetterNotRenderable, ValidationFailed
from gateway.i18n import Lang, gettext_for
from gateway.rights import texts
from gateway.rights.texts import DASH, LANGS, tr

TEMPLATES = Path(__file__).parent / "templates"

#: The letter's own look; print rules give A4 pages.  The staff page drops it (its CSP allows no inline
#: style) and shows the letter with ui.css.
BASE_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10pt; line-height: 1.35;
       color: #111; margin: 2cm; }
h1 { font-size: 17pt; margin: 0.6em 0 0; }
h2 { font-size: 12.5pt; margin-top: 1.3em; border-bottom: 1px solid #777; }
h3 { font-size: 10.5pt; margin: 0.9em 0 0.2em; }
table { border-collapse: collapse; width: 100%; margin: 0.3em 0 0.8em; }
th, td { text-align: left; vertical-align: top; padding: 3px 6px; border: 1px solid #bbb; }
th { background: #f0f0f0; }
table:not(.purposes) th[scope=row] { width: 30%; }
.meta { color: #333; }
.note { font-style: italic; color: #333; }
.code { font-size: 8pt; word-break: break-all; }
.letterhead .sender { font-size: 8.5pt; color: #333; }
.addressee { font-style: normal; margin: 1.2em 0 1em; font-size: 10.5pt; }
.dateline { text-align: right; }
@media print {
  body { margin: 0; }
  section.disclosure, section.holding, tr { page-break-inside: avoid; }
  h2, h3 { page-break-after: avoid; }
}
"""

_PLACEHOLDER = re.compile(r"\[[^\]]*\]|\.invalid\b|\bexample\.(?:com|org|net)\b", re.I)
#: Staff notes that must never reach a data subject (checked on the rendered letter).
_INTERNAL = re.compile(r"\bUNCONFIRMED\b|\.ya?ml\b|\bconfig/|confirmed: ?false")


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )


def letter_lang(extract: dict[str, Any]) -> Lang:
    lang = extract.get("lang")
    if lang not in LANGS:
        raise ValidationFailed("lang must be 'sv' or 'en'", errors=[{"loc": ["lang"], "type": "literal_error"}])
    return "sv" if lang == "sv" else "en"


def controller_placeholders(controller: dict[str, Any]) -> list[str]:
    """The controller settings still holding placeholders ("placeholder" itself when it is true)."""
    found = ["placeholder"] if controller.get("placeholder") else []
    for key in ("name", "organisation_number", "address", "email", "phone"):
        value = controller.get(key)
        if isinstance(value, str) and _PLACEHOLDER.search(value):
            found.append(f"controller.{key}")
    return found


def require_configured(extract: dict[str, Any]) -> None:
    """Refuse (409) a letter whose controller is still the shipped placeholder, naming the settings."""
    missing = controller_placeholders(extract.get("controller") or {})
    dpo = extract.get("dpo") or {}
    missing += [f"dpo.{k}" for k in ("name", "email") if isinstance(dpo.get(k), str) and _PLACEHOLDER.search(dpo[k])]
    if missing:
        settings = [m for m in missing if m != "placeholder"]
        raise ControllerNotConfigured(
            "the controller's details are not configured"
            + (f" (still placeholders: {', '.join(settings)})" if settings else "")
            + ": set them in controller.yaml" + (" and set placeholder: false" if "placeholder" in missing else "")
            + " before a letter can be made"
        )


def _addressee(extract: dict[str, Any], lang: Lang) -> list[str]:
    """The name and postal address the subject's latest disclosure carried (an empty list if none did)."""
    for d in reversed(extract.get("disclosures") or []):
        v = d.get("values") or {}
        if not v.get("name"):
            continue
        street = v.get("street")
        lines = [str(v["name"])]
        if v.get("organisation"):
            lines.append(str(v["organisation"]))
        lines += [str(s) for s in street] if isinstance(street, list) else [str(street)] if street else []
        town = " ".join(str(p) for p in (v.get("postal_code"), v.get("city")) if p)
        if town:
            lines.append(town)
        if v.get("country"):
            lines.append(texts.country_name(str(v["country"]), lang))
        return lines
    return []


def _purpose(p: dict[str, Any], lang: Lang) -> dict[str, str]:
    return {"description": p.get("description") or p["purpose"],
            "lawful_basis": texts.config_text(p.get("lawful_basis"), lang),
            "retention": p.get("retention") or DASH}


def _disclosure(d: dict[str, Any], lang: Lang) -> dict[str, Any]:
    basis = d["legal_basis"]
    values = d.get("values") or {}
    r = d["recipient"]
    return {
        "recipient": texts.recipient_name(r["name"], lang),
        "domain": d.get("domain") or DASH,
        "country": f"{texts.country_name(r['country'], lang)} ({r['country']})",
        "date": texts.when(d["date"], lang),
        "purpose": d.get("purpose_text") or d["purpose"],
        "lawful_basis": texts.config_text(basis.get("processing"), lang) if basis.get("processing") else "",
        "transfer": texts.transfer_text(basis["transfer_category"], basis.get("article"), basis.get("instrument"),
                                        lang),
        "outcome": texts.outcome_text(d["outcome"], lang),
        "fields": texts.field_names(d.get("fields") or [], lang),
        "values": [(texts.field_name(k, lang), texts.value_text(k, values[k], lang))
                   for k in sorted(values, key=texts.field_order)],
        "values_note": texts.value_note_text(d["values_note"], lang) if d.get("values_note") else DASH,
        "withheld": texts.field_names(d.get("withheld") or [], lang) if d.get("withheld") else "",
    }


def _planned(q: dict[str, Any], lang: Lang) -> dict[str, Any]:
    t = q.get("transfer") or {}
    return {
        "recipient": texts.recipient_name(q["recipient"]["name"], lang),
        "domain": q.get("domain") or DASH,
        "country": f"{texts.country_name(q['recipient']['country'], lang)} ({q['recipient']['country']})",
        "purpose": q.get("purpose_text") or q.get("purpose") or DASH,
        "lawful_basis": texts.config_text(q.get("lawful_basis"), lang) if q.get("lawful_basis") else "",
        "transfer": texts.transfer_text(t.get("category", ""), t.get("article"), t.get("instrument"), lang),
        "fields": texts.field_names(q.get("fields") or [], lang),
    }


_ISO_DAY = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")


def _days_in_words(text: str, lang: Lang) -> str:
    """``purged on 2028-02-29`` → ``gallras den 29 februari 2028``: holdings' dates as the letter writes them."""
    return _ISO_DAY.sub(lambda m: texts.day(m.group(1), lang), text)


def _holdings(h: dict[str, Any] | None, lang: Lang) -> dict[str, Any] | None:
    if h is None:  # extracts made before holdings existed have no such section
        return None
    words = texts.HOLDINGS[lang]
    return {
        "recipients": [{
            "name": texts.recipient_name(r["name"], lang),
            "country": f"{texts.country_name(r['country'], lang)}, {r['country']}",
            "objects": [{"kind": words.get(o["kind"], o["kind"]), "id": o["id"], "since": texts.when(o["since"], lang),
                         "fields": texts.field_names(o.get("fields") or [], lang),
                         "ends": _days_in_words(o["ends"], lang)}
                        for o in r["objects"]],
        } for r in h["recipients"]],
        "own": [{"purpose": c.get("purpose_text") or c["purpose"], "domain": c.get("domain") or c["registration_id"],
                 "entries": c["entries"], "ends": _days_in_words(c["ends"], lang)} for c in h["own"]],
    }


def letter_view(extract: dict[str, Any], css: str = BASE_CSS) -> dict[str, Any]:
    """What the letter says, in its language (pure; raises ``ControllerNotConfigured`` first)."""
    require_configured(extract)
    lang = letter_lang(extract)
    x = extract
    cp = x["checkpoint"]
    matched = bool(x.get("subject_ids") or x.get("subject_id"))
    rights = texts.rights(lang)
    if not matched:  # nothing of theirs is processed: only the complaint right applies
        rights = [r for r in rights if r["right"] == "complaint"]
    generated = texts.when(x["generated_at"], lang)
    return {
        "lang": lang,
        "title": f"{tr(lang, 'Register extract')} {DASH} {x['controller']['name']}",
        "css": css,
        "matched": matched,
        "generated": generated,
        "generated_iso": x["generated_at"],
        "request_id": x["request_id"],
        "controller": x["controller"],
        "dpo": x.get("dpo"),
        "authority": x["supervisory_authority"],
        "addressee": _addressee(x, lang),
        "source": tr(lang, texts.SOURCE),
        "automated": tr(lang, texts.AUTOMATED),
        "verification": tr(lang, texts.VERIFY),
        "purposes": [_purpose(p, lang) for p in (x.get("purposes") or x.get("retention") or [])],
        "disclosures": [_disclosure(d, lang) for d in x["disclosures"]],
        "planned": [_planned(q, lang) for q in x.get("planned") or []],
        "holdings": _holdings(x.get("holdings"), lang),
        "rights": [r["text"] for r in rights],
        "checkpoint": {"size": cp["size"], "when": texts.when(cp.get("timestamp"), lang),
                       "key_id": cp.get("key_id", DASH), "root": cp.get("root", "")},
    }


def render_view(view: dict[str, Any]) -> str:
    lang: Lang = view["lang"]
    html = _env().get_template("extract.html.j2").render(v=view, _=gettext_for(lang, "letters").gettext)
    if _INTERNAL.search(html):
        raise LetterNotRenderable("the letter would carry an internal note; see the staff extract page's warnings")
    return html


def render_html(extract: dict[str, Any]) -> str:
    """The letter as one HTML document (autoescaped), in the extract's language."""
    return render_view(letter_view(extract))
