"""The server-drawn SVG charts: well-formed XML, accessible (role, title, desc), every text escaped, and
bars whose size is proportional to their value."""

from __future__ import annotations

import itertools
from xml.etree import ElementTree

from gateway.http.pages.charts import Series, horizontal_bars, nice_max, stacked_bars

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ElementTree.Element:
    root = ElementTree.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    return root


def bars(root: ElementTree.Element) -> list[ElementTree.Element]:
    return [r for r in root.iter(f"{SVG}rect") if r.get("data-value") is not None]


def test_stacked_bars_are_proportional_and_stack() -> None:
    months = ["2026-01", "2026-02", "2026-03"]
    series = [Series("Adequacy", (4, 0, 10)), Series("Blocked", (1, 2, 5))]
    root = parse(stacked_bars("Per month", "by basis", months, series))
    rects = bars(root)
    assert len(rects) == 5  # zero values draw nothing
    per_unit = {float(r.get("height") or 0) / int(r.get("data-value") or 1) for r in rects}
    assert max(per_unit) - min(per_unit) < 0.01  # one scale for every bar
    # in March, Blocked sits on top of Adequacy
    march = next(g for g in root.iter(f"{SVG}g") if g.get("data-category") == "2026-03")
    low, high = march.findall(f"{SVG}rect")
    assert abs(float(high.get("y") or 0) + float(high.get("height") or 0) - float(low.get("y") or 0)) < 0.01
    # the tallest stack (15) reaches at most the axis top (nice_max(15) == 20)
    assert nice_max(15) == 20 and nice_max(0) == 1 and nice_max(100) == 100 and nice_max(101) == 200
    assert {t.text for t in root.iter(f"{SVG}title")} >= {"2026-03, Blocked: 5", "Per month"}


def test_horizontal_bars_escape_and_scale() -> None:
    items = [("<script>alert(1)</script> & Co", 8), ("Registry \"two\"", 2), ("Empty", 0)]
    svg = horizontal_bars("Top recipients", "largest first", items)
    assert "<script>" not in svg
    root = parse(svg)
    rects = bars(root)
    widths = [float(r.get("width") or 0) for r in rects]
    assert widths[0] == 4 * widths[1] and widths[2] == 0
    assert rects[0].get("data-label") == "<script>alert(1)</script> & Co"  # escaped in the markup, intact here


def test_empty_chart_is_still_valid() -> None:
    root = parse(stacked_bars("Nothing", "no data", [], []))
    assert bars(root) == []
    root = parse(horizontal_bars("Nothing", "no data", []))
    assert bars(root) == []


def test_a_year_of_months_keeps_labels_apart_and_legend_names_whole() -> None:
    """Twelve month labels on a 640-wide chart would overlap: every n-th is labelled, never two closer
    than a label's width; the legend sits under the plot with each basis name in full."""
    months = [f"2026-{m:02d}" for m in range(1, 13)]
    long_name = "Beslut om adekvat skyddsnivå (art. 45)"
    root = parse(stacked_bars("Per month", "by basis", months, [Series(long_name, tuple(range(12)))]))
    labels = [t for t in root.iter(f"{SVG}text") if t.get("class") == "label"]
    xs = [float(t.get("x") or 0) for t in labels]
    assert 1 < len(labels) < 12
    assert all(b - a >= len("2026-01") * 7 for a, b in itertools.pairwise(xs))
    [legend] = [t for t in root.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert legend.text == long_name
    plot_bottom = max(float(r.get("y") or 0) + float(r.get("height") or 0) for r in bars(root))
    assert float(legend.get("y") or 0) > plot_bottom  # under the plot, not squeezed beside it
