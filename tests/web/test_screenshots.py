"""The README's screenshots (``docs/screenshots/*.png``), taken in a real headless Chromium from the
running gateway with seeded data: the log-in page, the disclosure log, the third-country overview, a
data-subject request and its Art. 15 letter, in Swedish.

Only when asked: ``SCREENSHOTS=docs/screenshots .venv/bin/pytest tests/web/test_screenshots.py -p no:randomly``
(the folder, relative to the repository root, is written).  Otherwise skipped, so an ordinary run never
changes files in the work tree."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import Gateway
from tests.web.axe import ROOT, axe_page
from tests.web.chromium import fill_login, needs_chromium
from tests.web.test_a11y import OFFICER, Seeded, seed
from tests.web.test_a11y import gateway as gateway  # the fixture: the controller configured

pytestmark = [pytest.mark.integration, needs_chromium,
              pytest.mark.skipif(not os.environ.get("SCREENSHOTS"), reason="set SCREENSHOTS=<folder> to take them")]

#: What is taken: file name -> (path, what to wait for).
SHOTS = {
    "login": ("/ui/login?next=" + quote("/ui/disclosures", safe=""), "form.login"),
    "disclosure-log": ("/ui/disclosures", "table"),
    "third-countries": ("/ui/third-countries", "h1"),
}


def take(s: Seeded, folder: Path) -> list[Path]:
    written: list[Path] = []
    errors: list[str] = []
    with axe_page(errors, locale="sv-SE", width=1280) as page:

        def shot(name: str, height: int = 900) -> None:
            path = folder / f"{name}.png"
            # the first screen: what a reader of the README takes in
            page.screenshot(path=str(path), clip={"x": 0, "y": 0, "width": 1280, "height": height})
            written.append(path)

        path, ready = SHOTS["login"]
        page.goto(s.base + path)
        page.wait_for_selector(ready)
        shot("login", height=460)
        fill_login(page, OFFICER)
        page.wait_for_url(re.compile(r"/ui/disclosures$"))
        for name in ("disclosure-log", "third-countries"):
            path, ready = SHOTS[name]
            page.goto(s.base + path)
            page.wait_for_selector(ready)
            shot(name)
        page.goto(f"{s.base}/ui/requests/{s.request_id}")
        shot("request")
        page.select_option("#extract-form select[name=lang]", "sv")
        page.click("#extract-form button[type=submit]")
        page.wait_for_selector("#letter")
        shot("extract-letter")
    return written


async def test_take_the_readme_screenshots(gateway: Gateway) -> None:
    folder = ROOT / os.environ["SCREENSHOTS"]
    folder.mkdir(parents=True, exist_ok=True)
    written = await asyncio.to_thread(take, await seed(gateway), folder)
    assert [p.name for p in written] == ["login.png", "disclosure-log.png", "third-countries.png", "request.png",
                                         "extract-letter.png"]
    for p in written:
        assert p.stat().st_size > 10_000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
