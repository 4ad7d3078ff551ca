"""Debian's Chromium under Playwright, for the browser tests (Playwright cannot download browsers here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run"]

#: Skipped on a developer machine without Chromium; in CI (which installs it) a missing browser fails.
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"),
                                    reason="Debian's chromium is not installed")


@contextmanager
def chromium_page(errors: list[str], **context: Any) -> Iterator[Any]:
    """A fresh page; console errors and 4xx/5xx responses are appended to ``errors``.  ``context`` adds
    options of the browser context (``locale``, ``viewport``, ``bypass_csp`` ...)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_context(accept_downloads=True, **context).new_page()
            page.set_default_timeout(10_000)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            yield page
        finally:
            browser.close()


def fill_login(page: Any, who: str, password: str | None = None) -> None:
    """Fill in and send the log-in form on ``page`` (which shows it): ``who`` is an account name, a role or
    one of the fixture's bearer tokens (see ``tests.web.conftest.staff_name``)."""
    from tests.web.conftest import STAFF_PASSWORD, staff_name

    page.fill("#name", staff_name(who))
    page.fill("#password", password or STAFF_PASSWORD)
    page.click("form.login button[type=submit]")
