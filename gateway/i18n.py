"""Gettext catalogues for the staff UI and the letters to data subjects, Swedish and English.

The catalogues are the ``.po`` files under ``gateway/locale/<lang>/LC_MESSAGES/<domain>.po`` (domains
``ui`` and ``letters``), read with Babel and compiled in memory once per process: no build step, so a
checkout, a wheel and the Docker image read the very files translators edit.  Message ids are the
English text; the English catalogue may leave a ``msgstr`` empty (the id is the English), the Swedish
one may not (``tests/test_i18n.py`` checks every id used in code and templates is translated).
"""

from __future__ import annotations

import functools
import gettext
import io
from importlib.resources import files
from typing import Literal

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

Lang = Literal["sv", "en"]
SUPPORTED: tuple[Lang, ...] = ("sv", "en")
#: A Swedish registrar's staff and registrants read Swedish first.
DEFAULT_LANG: Lang = "sv"
DOMAINS = ("ui", "letters")


def normalise(lang: str | None, default: Lang = DEFAULT_LANG) -> Lang:
    """A supported language for ``lang`` ("sv-SE", "en_GB", "EN"), else ``default``."""
    if lang:
        base = lang.replace("_", "-").split("-", 1)[0].strip().lower()
        for s in SUPPORTED:
            if base == s:
                return s
    return default


def from_accept_language(header: str | None, default: Lang = DEFAULT_LANG) -> Lang:
    """The best supported language of an ``Accept-Language`` header (q-values honoured)."""
    if not header:
        return default
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag))
    for neg_q, _i, tag in sorted(ranked):
        if -neg_q <= 0:
            continue
        found = normalise(tag, default="")  # type: ignore[arg-type]
        if found:
            return found
    return default


@functools.cache
def translations(lang: Lang, domain: str) -> gettext.NullTranslations:
    """The compiled catalogue of ``domain`` in ``lang`` (an empty one when the file is missing)."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown message domain {domain!r}")
    res = files("gateway").joinpath("locale", lang, "LC_MESSAGES", f"{domain}.po")
    if not res.is_file():
        return gettext.NullTranslations()
    with res.open("rb") as fh:
        catalog = read_po(fh, locale=lang, domain=domain)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def gettext_for(lang: Lang, domain: str = "ui") -> gettext.NullTranslations:
    return translations(normalise(lang), domain)
