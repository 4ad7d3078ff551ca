"""axe-core in the browser tests: the npm package's ``axe.min.js`` (``npm ci`` at the repository root),
injected into each page by Playwright.  The pages' CSP forbids every script, so the browser context is
made with ``bypass_csp``: the check runs in the page without the page being changed to allow it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.web.chromium import chromium_page

ROOT = Path(__file__).resolve().parents[2]
AXE_JS = ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: The impacts a page may not have any of.
BLOCKING = ("serious", "critical")

#: Without ``npm ci`` the check cannot run: skipped on a developer machine, a failure in CI.
needs_axe = pytest.mark.skipif(not AXE_JS.exists() and not os.environ.get("CI"),
                               reason="axe-core is not installed (run `npm ci` at the repository root)")


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    help: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.rule} ({self.impact}): {self.help} at {', '.join(self.targets)}"


_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations.map(v => ({rule: v.id, impact: v.impact || "", help: v.help,
                                      targets: v.nodes.slice(0, 5).map(n => n.target.join(" "))}));
}"""


def violations(page: Any) -> list[Violation]:
    """Every axe violation on ``page`` as it is now (axe injected first if the page has none yet)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE_JS.read_text(encoding="utf-8"))
    return [Violation(v["rule"], v["impact"], v["help"], tuple(v["targets"])) for v in page.evaluate(_RUN)]


def blocking(page: Any) -> list[Violation]:
    return [v for v in violations(page) if v.impact in BLOCKING]


@contextmanager
def axe_page(errors: list[str], *, locale: str | None = None, width: int = 1280) -> Iterator[Any]:
    """A fresh Chromium page whose context bypasses the CSP (for the injected axe-core); console errors
    and 4xx/5xx responses are appended to ``errors``."""
    with chromium_page(errors, bypass_csp=True, locale=locale, viewport={"width": width, "height": 900}) as page:
        yield page
