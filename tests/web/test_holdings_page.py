"""The holdings page (``/ui/subjects/{id}/holdings``) through aiohttp's client against the running gateway:
per recipient the objects that hold the person's data now, in English and Swedish, for privacy staff and
auditors; an unknown subject is a 404 page."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import Gateway
from tests.web.conftest import person
from tests.web.test_pages import login

pytestmark = pytest.mark.integration


async def test_holdings_page_lists_the_live_objects_in_both_languages(gateway: Gateway) -> None:
    r = await gateway.post(person("exempel.se", "ORD-1"))
    reg = await gateway.wait_status((await r.json())["id"], {"delivered", "failed"})
    assert reg["status"] == "delivered", reg
    sid = reg["subject_id"]
    [contact] = [e["objects"]["contact"] for e in reg["disclosures"] if e["command"] == "contact:create"]

    await login(gateway.client, gateway.tokens.privacy)
    page = await gateway.client.get(f"/ui/subjects/{sid}/holdings")
    html = await page.text()
    assert page.status == 200, html
    assert 'data-recipient="iis-se"' in html
    assert re.search(rf'data-kind="contact" data-id="{contact}" data-ends="contact_in_use"', html)
    assert 'data-kind="domain" data-id="exempel.se"' in html
    assert "deleted when no domain of ours uses it" in html and "Who holds your data now" in html
    assert "kept while the registration is ours, then 15 months" in html
    assert "Anna" not in html  # ids, fields and dates only: never a value

    sv = await (await gateway.client.get(f"/ui/subjects/{sid}/holdings", params={"lang": "sv"})).text()
    assert "Vem har dina uppgifter nu" in sv and "raderas när ingen av våra domäner använder det" in sv

    missing = await gateway.client.get(f"/ui/subjects/{uuid.uuid4().hex}/holdings")
    assert missing.status == 404

    gateway.client.session.cookie_jar.clear()
    await login(gateway.client, gateway.tokens.auditor)
    seen = await gateway.client.get(f"/ui/subjects/{sid}/holdings")
    assert seen.status == 200 and contact in await seen.text()
