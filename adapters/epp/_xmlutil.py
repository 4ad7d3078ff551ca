"""lxml helpers shared by ``xml`` and the per-registry ``extensions`` modules (private)."""

from __future__ import annotations

from lxml import etree


def q(ns: str, name: str) -> str:
    """Clark notation ``{ns}name``."""
    return f"{{{ns}}}{name}"


def sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, q(ns, name))
    if text is not None:
        el.text = text
    return el


def top(prefix: str, ns: str, name: str, text: str | None = None) -> etree._Element:
    """A detached element that declares its own prefix, as registries' examples do."""
    el = etree.Element(q(ns, name), nsmap={prefix: ns})
    if text is not None:
        el.text = text
    return el
