"""The staff UI's Swedish catalogue against the code: every message id the page templates and the page
modules use (``_()``, ``gettext``, ``ngettext``, ``N_``) has a Swedish translation with the same
placeholders, and ids the code no longer uses are listed (a warning, not a failure: a translator may work
ahead of the code).  English needs no entries: its ids are the English text.

The ids are found the way a translator's tools find them: Babel's extractor for Python and Jinja2's for
the templates, with the options the pages' environment renders with, so a ``{% trans %}`` block's id here
is byte for byte the id looked up at render time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "gateway" / "http" / "pages"
LOCALE = ROOT / "gateway" / "locale"
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}
JINJA_OPTIONS = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true",
                 "newstyle_gettext": "true"}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{(\w+)\}")

Id = str | tuple[str, ...]


def _ids_in(path: Path, method: str) -> Iterator[tuple[Id, int]]:
    options = JINJA_OPTIONS if method != "python" else {}
    with path.open("rb") as fh:
        for lineno, message, _comments, _context in extract(method, fh, keywords=KEYWORDS, options=options):
            if isinstance(message, tuple):
                yield tuple(m for m in message if m), lineno
            else:
                yield message, lineno


def used_ids() -> dict[Id, list[str]]:
    """Every ``ui`` message id in the page modules and templates -> where it is used."""
    found: dict[Id, list[str]] = {}
    sources = [(p, "python") for p in sorted(PAGES.rglob("*.py"))]
    sources += [(p, "jinja2.ext:babel_extract") for p in sorted((PAGES / "templates").rglob("*.html"))]
    for path, method in sources:
        for msgid, lineno in _ids_in(path, method):
            found.setdefault(msgid, []).append(f"{path.relative_to(ROOT)}:{lineno}")
    return found


def catalogue(lang: str) -> Catalog:
    with (LOCALE / lang / "LC_MESSAGES" / "ui.po").open("rb") as fh:
        return read_po(fh, locale=lang, domain="ui")


def _key(msgid: Id) -> str:
    return msgid[0] if isinstance(msgid, tuple) else msgid


def _placeholders(text: str) -> set[str]:
    return {a or b for a, b in PLACEHOLDER.findall(text)}


def test_the_extraction_finds_the_pages_messages() -> None:
    """The extractor sees both kinds of source: a regression to zero would make the next test vacuous."""
    ids = used_ids()
    assert "Skip to content" in ids and "Disclosure log" in ids  # base.html, a navigation label (N_)
    assert "Page not found" in ids  # gateway/http/pages/core.py (python, N_)
    assert any(".py:" in w for v in ids.values() for w in v) and any(".html:" in w for v in ids.values() for w in v)
    assert len(ids) > 100


def test_swedish_translates_every_message_the_ui_uses() -> None:
    sv = catalogue("sv")
    missing: list[str] = []
    empty: list[str] = []
    for msgid, where in sorted(used_ids().items(), key=lambda kv: _key(kv[0])):
        msg = sv.get(_key(msgid))
        if msg is None:
            missing.append(f"{_key(msgid)!r} ({where[0]})")
            continue
        strings = msg.string if isinstance(msg.string, tuple) else (msg.string,)
        if not all(s.strip() for s in strings):
            empty.append(f"{_key(msgid)!r} ({where[0]})")
    assert not missing, "not in gateway/locale/sv/LC_MESSAGES/ui.po:\n" + "\n".join(missing)
    assert not empty, "an empty Swedish translation:\n" + "\n".join(empty)


@pytest.mark.parametrize("lang", ["sv", "en"])
def test_translations_keep_their_placeholders(lang: str) -> None:
    bad = []
    for msg in catalogue(lang):
        if not msg.id:
            continue
        ids = msg.id if isinstance(msg.id, tuple) else (msg.id,)
        strings = msg.string if isinstance(msg.string, tuple) else (msg.string,)
        want = set().union(*(_placeholders(i) for i in ids))
        for s in strings:
            if s and _placeholders(s) - want:
                bad.append(f"{ids[0]!r}: {s!r}")
            if s and not isinstance(msg.id, tuple) and _placeholders(s) != want:
                bad.append(f"{ids[0]!r}: {s!r}")
    assert not bad, "\n".join(bad)


def test_unused_swedish_messages_are_reported() -> None:
    """Ids in the catalogue no code names: listed (``pytest -s``) so they can be pruned, or marked with
    ``N_`` where a page looks them up through a variable."""
    used = {_key(m) for m in used_ids()}
    unused = sorted(m.id for m in catalogue("sv") if m.id and _key(m.id) not in used)
    if unused:  # printed, not warned: the suite turns warnings into errors (pyproject's filterwarnings)
        print("ui.po (sv) has ids no page names literally (looked up through a variable, or unused):",
              *map(repr, unused), sep="\n  ")


def test_swedish_and_english_list_the_same_ids() -> None:
    """The English catalogue lists every id too (an empty msgstr: the id is the English), so a translator
    into a third language starts from a complete list."""
    sv = {_key(m.id) for m in catalogue("sv") if m.id}
    en = {_key(m.id) for m in catalogue("en") if m.id}
    assert sorted(sv - en) == [] and sorted(en - sv) == []
