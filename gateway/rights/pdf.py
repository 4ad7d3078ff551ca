"""The Art. 15 letter as PDF: the HTML letter (:mod:`gateway.rights.render`) printed by WeasyPrint.

One letter, not two: the PDF is the very template the HTML letter and the staff page show, with a
print stylesheet on top (A4, "Sida 1 av 2" / "Page 1 of 2" in the footer).  It is PDF/UA-1: tagged
(a structure tree from the HTML), with the document's language and title, so screen readers read it.

The fonts are DejaVu Sans, shipped in ``gateway/rights/fonts`` (with its licence) and loaded with
``@font-face`` from the package's own path, so "Łukasz Wójcik-Dvořák" prints the same in a
checkout, a wheel and the Docker image whatever fonts the system has; they are embedded (subset).
fontTools logs every subsetting step at INFO; that noise is silenced here.
"""

from __future__ import annotations

import logging
from importlib.resources import as_file, files
from typing import Any

from gateway.i18n import Lang
from gateway.rights.render import BASE_CSS, letter_view, render_view
from gateway.rights.texts import tr

for _name in ("fontTools", "fontTools.subset", "fontTools.ttLib", "weasyprint.progress"):
    logging.getLogger(_name).setLevel(logging.WARNING)

FONT_FAMILY = "Letter DejaVu Sans"
FONTS = {"normal": "DejaVuSans.ttf", "bold": "DejaVuSans-Bold.ttf"}


def _font_faces() -> str:
    faces = []
    for weight, filename in FONTS.items():
        with as_file(files("gateway.rights").joinpath("fonts", filename)) as path:
            url = path.resolve().as_uri()
        faces.append(f'@font-face {{ font-family: "{FONT_FAMILY}"; font-weight: {weight}; font-style: normal; '
                     f'src: url("{url}") format("truetype"); }}')
    return "\n".join(faces)


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def print_css(lang: Lang) -> str:
    """The print rules: the shipped font first, A4 pages, the page number in the reader's words."""
    before, _, after = tr(lang, "Page {page} of {pages}").partition("{page}")
    middle, _, end = after.partition("{pages}")
    counter = f"{_css_string(before)} counter(page) {_css_string(middle)} counter(pages) {_css_string(end)}"
    return "\n".join((
        _font_faces(),
        BASE_CSS,
        f'body {{ font-family: "{FONT_FAMILY}", sans-serif; margin: 0; }}',
        "@page { size: A4; margin: 1.8cm 1.8cm 2.2cm 2cm;",
        f"  @bottom-right {{ content: {counter}; font-family: \"{FONT_FAMILY}\", sans-serif; font-size: 8pt; "
        "color: #333; } }",
    ))


def render(extract: dict[str, Any]) -> bytes:
    """The letter as PDF/UA-1 bytes (refuses placeholders like the HTML letter)."""
    from weasyprint import HTML  # type: ignore[import-untyped]  # WeasyPrint ships no type information

    view = letter_view(extract)
    view["css"] = print_css(view["lang"])
    html = render_view(view)
    data = HTML(string=html, base_url=None).write_pdf(pdf_variant="pdf/ua-1", pdf_tags=True)
    assert data is not None
    return bytes(data)
