"""Charts drawn on the server as inline SVG: the pages run no scripts (the CSP allows none), and an SVG in
the page prints, scales and is read out by a screen reader from its ``<title>`` and ``<desc>``.

Pure functions from numbers to markup: every text is escaped here, each bar carries its value
(``data-value``) and a ``<title>`` (a tooltip, and what assistive technology reads for it), and the page
puts the same numbers in a table beside each chart, so no one has to read a number off a bar.  Colours
are presentation attributes (no ``style``), chosen to keep 3:1 contrast against white and each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

#: Distinguishable in print and for common colour-vision deficiencies (Okabe-Ito, darkened for contrast).
PALETTE = ("#0b5fa5", "#c26a00", "#007a5e", "#b8336a", "#5d4aa8", "#8a6d00", "#3f3f3f")

_ids = itertools.count(1)


@dataclass(frozen=True)
class Series:
    """One named series: a value per category (month, recipient ...)."""

    name: str
    values: tuple[int, ...]
    colour: str = ""


def _fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _head(width: int, height: int, title: str, desc: str, css: str) -> tuple[str, str]:
    n = next(_ids)
    tid, did = f"chart-{n}-title", f"chart-{n}-desc"
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class={quoteattr("chart " + css)} role="img" '
            f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
            f'aria-labelledby="{tid} {did}">'
            f'<title id="{tid}">{escape(title)}</title><desc id="{did}">{escape(desc)}</desc>')
    return head, "</svg>"


def nice_max(value: int) -> int:
    """The axis top for ``value``: 1, 2 or 5 times a power of ten, at least the value (at least 1)."""
    if value <= 1:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def _legend(series: Sequence[Series], colours: Sequence[str], x: int, y: int) -> str:
    out: list[str] = []
    for i, s in enumerate(series):
        yy = y + i * 18
        out.append(f'<rect x="{x}" y="{yy}" width="12" height="12" fill="{colours[i]}"/>'
                   f'<text x="{x + 18}" y="{yy + 10}" class="legend">{escape(s.name)}</text>')
    return "".join(out)


def stacked_bars(
    title: str, desc: str, categories: Sequence[str], series: Sequence[Series], *,
    width: int = 640, height: int = 260,
) -> str:
    """Vertical bars, one per category, each stacked from ``series`` (in order, bottom up)."""
    colours = [s.colour or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    # the legend goes under the plot, one entry a line, so long basis names ("Beslut om adekvat
    # skyddsnivå (art. 45)") are never cut off
    legend_h = 18 * len(series) + 8
    left, right, top, bottom = 40, 10, 10, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    height += legend_h
    totals = [sum(s.values[i] for s in series) for i in range(len(categories))]
    top_value = nice_max(max(totals, default=0))
    head, tail = _head(width, height, title, desc, "stacked")
    parts = [head]
    for frac in (0.0, 0.5, 1.0):  # axis with three ticks
        y = top + plot_h - frac * plot_h
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{_fmt(y)}" y2="{_fmt(y)}" class="grid" '
                     f'stroke="#c8c8c8" stroke-width="1"/>'
                     f'<text x="{left - 4}" y="{_fmt(y + 4)}" text-anchor="end" class="tick">'
                     f'{_fmt(top_value * frac)}</text>')
    slot = plot_w / max(1, len(categories))
    bar_w = max(2.0, min(48.0, slot * 0.7))
    # every n-th category is labelled, so labels (about 7 px a character at 11 px) never overlap
    widest = max((len(c) for c in categories), default=1) * 7 + 8
    label_every = max(1, -(-widest // max(1, int(slot))))
    for i, cat in enumerate(categories):
        x = left + i * slot + (slot - bar_w) / 2
        base = float(top + plot_h)
        parts.append(f'<g class="bar-group" data-category={quoteattr(cat)}>')
        for s, colour in zip(series, colours, strict=True):
            v = s.values[i]
            if v <= 0:
                continue
            h = v / top_value * plot_h
            base -= h
            parts.append(f'<rect x="{_fmt(x)}" y="{_fmt(base)}" width="{_fmt(bar_w)}" height="{_fmt(h)}" '
                         f'fill="{colour}" data-series={quoteattr(s.name)} data-value="{v}">'
                         f'<title>{escape(f"{cat}, {s.name}: {v}")}</title></rect>')
        parts.append("</g>")
        if i % label_every == 0:
            parts.append(f'<text x="{_fmt(x + bar_w / 2)}" y="{top + plot_h + 16}" text-anchor="middle" '
                         f'class="label">{escape(cat)}</text>')
    parts.append(_legend(series, colours, left, top + plot_h + bottom))
    parts.append(tail)
    return "".join(parts)


def horizontal_bars(
    title: str, desc: str, items: Sequence[tuple[str, int]], *, width: int = 640, colour: str = PALETTE[0],
) -> str:
    """One horizontal bar per (label, value), in the order given, the value printed at its end."""
    row_h, label_w, gap = 24, 220, 6
    height = max(1, len(items)) * row_h + 10
    plot_w = width - label_w - 60
    top_value = max((v for _, v in items), default=0) or 1
    head, tail = _head(width, height, title, desc, "hbars")
    parts = [head]
    for i, (label, v) in enumerate(items):
        y = 5 + i * row_h
        w = v / top_value * plot_w
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 16}" text-anchor="end" class="label">{escape(short)}</text>'
                     f'<rect x="{label_w}" y="{y + gap // 2}" width="{_fmt(w)}" height="{row_h - gap}" '
                     f'fill="{colour}" data-label={quoteattr(label)} data-value="{v}">'
                     f'<title>{escape(f"{label}: {v}")}</title></rect>'
                     f'<text x="{_fmt(label_w + w + 4)}" y="{y + 16}" class="value">{v}</text>')
    parts.append(tail)
    return "".join(parts)
