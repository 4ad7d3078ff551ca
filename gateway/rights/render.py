"""Printable letters for an Art. 15 extract: HTML (jinja2, autoescaped) and PDF (fpdf2).

The PDF embeds DejaVu Sans when the system has it, so Swedish letters (å, ä, ö) and the en dash
render; without it, the core Helvetica font is used and text is reduced to Latin-1.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from fpdf import FPDF
from fpdf.enums import XPos, YPos

from gateway.rights.texts import HOLDINGS, LABELS

TEMPLATES = Path(__file__).parent / "templates"
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DASH = "\u2013"  # en dash, for empty cells
DEJAVU_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def when(timestamp: str) -> str:
    """``2026-11-25T16:53:18.504337Z`` → ``2026-11-25 16:53 UTC`` (the extract keeps the exact value)."""
    if len(timestamp) >= 16 and timestamp[10] == "T" and timestamp.endswith("Z"):
        return f"{timestamp[:10]} {timestamp[11:16]} UTC"
    return timestamp


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["when"] = when
    return env


def _labels(extract: dict[str, Any]) -> dict[str, str]:
    lang = extract.get("lang")
    if lang not in LABELS:
        raise ValueError("extract lang must be 'sv' or 'en'")
    return LABELS[lang]


def render_html(extract: dict[str, Any]) -> str:
    return _env().get_template("extract.html.j2").render(x=extract, L=_labels(extract), HL=HOLDINGS[extract["lang"]])


def _value_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


class _Letter:
    def __init__(self, unicode_font: Path | None, bold_font: Path | None) -> None:
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.pdf.set_margins(18, 16, 18)
        if unicode_font is not None:
            self.pdf.add_font("DejaVu", "", str(unicode_font))
            self.pdf.add_font("DejaVu", "B", str(bold_font or unicode_font))
            self.family, self.latin1 = "DejaVu", False
        else:
            self.family, self.latin1 = "helvetica", True
        self.pdf.add_page()

    def _t(self, text: str) -> str:
        if self.latin1:
            text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u2019", "'").replace("\u2022", "-")
            return text.encode("latin-1", "replace").decode("latin-1")
        return text

    def line(self, text: str, size: float = 10, bold: bool = False, gap: float = 0.0) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)
        self.pdf.multi_cell(0, size * 0.5, self._t(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if gap:
            self.pdf.ln(gap)

    def heading(self, text: str) -> None:
        self.pdf.ln(3)
        self.line(text, 12.5, bold=True, gap=1)

    def pairs(self, rows: Iterable[tuple[str, str]]) -> None:
        for label, value in rows:
            self.pdf.set_font(self.family, "B", 9.5)
            self.pdf.cell(56, 5, self._t(label))
            self.pdf.set_font(self.family, "", 9.5)
            self.pdf.multi_cell(0, 5, self._t(value or DASH), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def output(self) -> bytes:
        return bytes(self.pdf.output())


def render_pdf(extract: dict[str, Any]) -> bytes:
    L = _labels(extract)
    font = DEJAVU if DEJAVU.exists() else None
    doc = _Letter(font, DEJAVU_BOLD if font and DEJAVU_BOLD.exists() else None)
    x = extract
    c = x["controller"]
    doc.line(L["title"], 18, bold=True)
    doc.line(L["subtitle"], 10, gap=3)
    org = f" ({c['organisation_number']})" if c.get("organisation_number") else ""
    sa = x["supervisory_authority"]
    rows = [(L["controller"], f"{c['name']}{org}, {c['address']}, {c['email']}")]
    if x.get("dpo"):
        rows.append((L["dpo"], f"{x['dpo']['name']}, {x['dpo']['email']}"))
    rows += [
        (L["authority"], f"{sa['name']} ({sa['short_name']}), {sa['url']}"),
        (L["generated_at"], when(x["generated_at"])),
        (L["request"], x["request_id"]),
        (L["subject"], ", ".join(x.get("subject_ids") or []) or x.get("subject_id") or DASH),
    ]
    doc.pairs(rows)
    doc.pdf.ln(2)
    doc.line(L["intro"])
    doc.heading(L["source"])
    doc.line(x["source"])
    doc.heading(L["purposes"])
    for p in x["purposes"] or x["retention"]:
        doc.pairs([(L["purpose"], p["description"]), (L["lawful_basis"], p["lawful_basis"] or DASH),
                   (L["retention"], p["retention"] or DASH)])
        doc.pdf.ln(1.5)
    doc.heading(f"{L['disclosures']} ({len(x['disclosures'])})")
    if not x["disclosures"]:
        doc.line(L["none"])
    for i, d in enumerate(x["disclosures"], 1):
        doc.line(f"{i}. {d['recipient']['name']}", 10.5, bold=True, gap=0.5)
        values = d.get("values")
        shown = ("; ".join(f"{k}: {_value_text(v)}" for k, v in sorted(values.items())) if values
                 else d.get("values_note_text") or DASH)
        rows = [
            (L["country"], f"{d['recipient']['country_name']} ({d['recipient']['country']})"),
            (L["date"], when(d["date"])),
            (L["purpose"], d["purpose_text"] + (f" {DASH} {d['legal_basis']['processing']}"
                                                if d["legal_basis"].get("processing") else "")),
            (L["transfer"], d["legal_basis"]["text"]),
            (L["outcome"], d["outcome_text"]),
            (L["fields"], ", ".join(d["fields"]) or DASH),
            (L["values"], shown),
        ]
        if d.get("withheld"):
            rows.append((L["withheld"], ", ".join(d["withheld"])))
        doc.pairs(rows)
        doc.pdf.ln(2)
    if "holdings" in x:  # extracts made before holdings existed have no such section
        _holdings_pdf(doc, x)
    doc.heading(L["rights"])
    for r in x["rights"]:
        doc.line(f"• {r['text']}", gap=1)
    doc.heading(L["automated"])
    doc.line(x["automated_decisions"])
    doc.heading(L["verification"])
    doc.line(x["verification"]["text"], gap=1)
    cp = x["checkpoint"]
    doc.line(f"{L['checkpoint']}: {cp['size']} {L['entries']}, {cp['timestamp']}, key {cp['key_id']}", 8.5)
    doc.line(f"root {cp['root']}", 8.5)
    return doc.output()


def _holdings_pdf(doc: _Letter, x: dict[str, Any]) -> None:
    """The "who holds your data now" section: per recipient its objects, then our own copy."""
    H, HL, L = x["holdings"], HOLDINGS[x["lang"]], _labels(x)
    doc.heading(H["heading"])
    doc.line(H["intro"], gap=1)
    if not H["recipients"]:
        doc.line(HL["none"])
    for r in H["recipients"]:
        doc.line(f"{r['name']} ({r['country_name']}, {r['country']})", 10.5, bold=True, gap=0.5)
        for o in r["objects"]:
            doc.pairs([(HL["object"], f"{o['kind_text']}: {o['id']}"), (HL["since"], when(o["since"])),
                       (HL["fields"], ", ".join(o["fields"]) or DASH), (HL["ends"], o["ends"])])
            doc.pdf.ln(1)
    if H["own"]:
        doc.line(HL["own"], 10.5, bold=True, gap=0.5)
        for c in H["own"]:
            doc.pairs([(L["purpose"], c["purpose_text"]), (HL["object"], c["domain"] or c["registration_id"]),
                       (HL["ends"], f"{c['ends']} ({c['entries']} {L['entries']})")])
            doc.pdf.ln(1)
