"""lxml helpers shared by ``xml``, the per-registry ``extensions`` modules and the sandbox (private)."""

from __future__ import annotations

from collections.abc import Iterable

from lxml import etree


def q(ns: str, name: str) -> str:
    """Clark notation ``{ns}name``."""
    return f"{{{ns}}}{name}"


def sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    el = etree.SubElement(parent, q(ns, name))
    if text is not None:
        el.text = text
    return el


def subs(parent: etree._Element, ns: str, members: Iterable[tuple[str, str | None]]) -> None:
    """``sub`` each ``(name, text)`` whose text is not ``None``, in the order given.

    Schemas fix the order of members, so callers list them in schema order once and optional
    members that were not released (``None``) simply do not appear.
    """
    for name, text in members:
        if text is not None:
            sub(parent, ns, name, text)


def top(prefix: str, ns: str, name: str, text: str | None = None) -> etree._Element:
    """A detached element that declares its own prefix, as registries' examples do."""
    el = etree.Element(q(ns, name), nsmap={prefix: ns})
    if text is not None:
        el.text = text
    return el
