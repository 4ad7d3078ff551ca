"""The `gateway` fixture for the staff pages: the real gateway (TLS EPP sandbox behind it), whose app
mounts the /ui pages itself, over a copy of config/ in which the .org registry's SCCs end in 30 days and an
older, ended SCC is listed (so the third-country overview has something to warn about).

Staff log in with named accounts: every `gateway` has ``staff`` (privacy role) and ``audit`` (auditor), in
English for the pages' English assertions, with ``STAFF_PASSWORD``.  ``login`` (aiohttp client) and
``tests.web.chromium.fill_login`` (a browser) take an account name, a role, or one of the fixture's bearer
tokens (the account of that token's role, so tests written for token log-in read the same)."""

from __future__ import annotations

import copy
import datetime as dt
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp.test_utils import TestClient

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.services.accounts import AccountService
from gateway.store.accounts import AccountStore, StaffAccount
from tests.conftest import ROOT, VALID_BODY, Gateway, Tokens, running_gateway

EXPIRING_IN_DAYS = 30
OLD_SCC = "Commission Decision 2010/87/EU (old SCCs)"


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def web_config(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(ROOT / "config", target)
    org = target / "recipients" / "org.yaml"
    text = org.read_text(encoding="utf-8")
    until = today() + dt.timedelta(days=EXPIRING_IN_DAYS)
    text, n1 = re.subn(r"(?m)^(    signed: 2022-01-01\n)", rf"\g<1>    valid_until: {until.isoformat()}\n", text)
    text, n2 = re.subn(
        r"(?m)^safeguards:\n",
        "safeguards:\n"
        '  - article: "46(2)(c)"\n'
        f"    instrument: {OLD_SCC}\n"
        "    signed: 2015-01-01\n"
        "    valid_until: 2021-12-27\n"
        "    source: test fixture (an ended contract)\n"
        "    confirmed: true\n",
        text,
    )
    assert n1 == 1 and n2 == 1, "config/recipients/org.yaml changed shape; update tests/web/conftest.py"
    org.write_text(text, encoding="utf-8")
    # a configured controller: letters refuse to render with the shipped placeholders
    (target / "controller.yaml").write_text(
        "placeholder: false\ncontroller:\n  name: Domänbolaget AB\n  organisation_number: 556677-8899\n"
        "  address: Sveavägen 1, 111 57 Stockholm\n  email: dataskydd@domanbolaget.se\n"
        "supervisory_authority:\n  name: Integritetsskyddsmyndigheten\n  short_name: IMY\n"
        "  url: https://www.imy.se\n  country: SE\n  source: test fixture\n  confirmed: true\n",
        encoding="utf-8")
    return target


STAFF_PASSWORD = "staff password 1"
#: The accounts every ``gateway`` fixture has, by role: the names the bearer tokens of those roles carry.
STAFF = {"privacy": "staff", "auditor": "audit"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def accounts_of(gateway: Gateway) -> AccountService:
    """An account service on the gateway's own store (the app's checks the same rows)."""
    return AccountService(cast(AccountStore, gateway.store))


async def add_staff(gateway: Gateway, name: str, role: str, *, lang: str = "en", admin: bool = False,
                    password: str = STAFF_PASSWORD) -> StaffAccount:
    return await accounts_of(gateway).add(name, role=role, password=password, lang=lang, is_admin=admin)


#: The fixture's bearer tokens of the staff roles -> the account of that role (filled by ``gateway``).
_TOKEN_ACCOUNTS: dict[str, str] = {}


def staff_name(who: str) -> str:
    """``who`` as an account name: a role, a bearer token of a ``gateway`` fixture (its role's account) or a name."""
    return STAFF.get(who) or _TOKEN_ACCOUNTS.get(who) or who


async def login(client: TestClient[Any, Any], who: str, *, password: str = STAFF_PASSWORD, follow: bool = False,
                next_path: str = "/ui/disclosures") -> Any:
    """Log in through the form (its CSRF nonce first); the response (a 303 on success unless ``follow``)."""
    english = {"Accept-Language": "en"}  # the log-in page's own language (the account's applies after it)
    page = await client.get("/ui/login", headers=english)
    assert page.status == 200 and page.url.path == "/ui/login", "already logged in: clear the cookie jar first"
    m = _CSRF.search(await page.text())
    assert m, "no log-in form"
    return await client.post("/ui/login", data={"name": staff_name(who), "password": password, "csrf": m.group(1),
                                                "next": next_path}, headers=english, allow_redirects=follow)


@pytest.fixture
async def gateway(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, pki, sandbox, tokens, config_dir=web_config(tmp_path)) as gw:
        for role, name in STAFF.items():
            await add_staff(gw, name, role)
        _TOKEN_ACCOUNTS.update({tokens.privacy: STAFF["privacy"], tokens.auditor: STAFF["auditor"]})
        yield gw


def person(domain: str, order_ref: str, **registrant: Any) -> dict[str, Any]:
    b = copy.deepcopy(VALID_BODY)
    b["domain"], b["order_ref"] = domain, order_ref
    b["registrant"].update(registrant)
    return b


KENJI = {
    "name": "Kenji Sato", "national_id": None, "email": "kenji.sato@example.jp", "phone": "+81 3 1234 5678",
    "address": {"street": ["1-2-3 Chiyoda"], "city": "Tokyo", "postal_code": "100-0001", "country": "JP"},
    "language": "ja",
}
WEI = {
    "name": "Wei Zhang", "national_id": None, "email": "wei.zhang@example.cn", "phone": "+86 10 1234 5678",
    "address": {"street": ["1 Chang'an Avenue"], "city": "Beijing", "postal_code": "100000", "country": "CN"},
    "language": "zh",
}


async def register_scenario(gateway: Gateway) -> dict[str, str]:
    """Anna (SE) registers .se (EU/EEA), .org (SCCs) and .com (no personal data); Kenji .jp (adequacy);
    Wei .cn (blocked: no Chapter V basis).  Returns registration ids by domain, all finished."""
    orders = [
        (person("exempel.se", "ORD-W1"), {"delivered"}),
        (person("exempel.org", "ORD-W2"), {"delivered"}),
        (person("exempel.com", "ORD-W3"), {"delivered"}),
        (person("exempel.jp", "ORD-W4", **KENJI), {"delivered"}),
        (person("exempel.cn", "ORD-W5", **WEI), {"blocked"}),
    ]
    ids: dict[str, str] = {}
    for data, want in orders:
        r = await gateway.post(data)
        answer = await r.json()
        reg_id = answer.get("id") or answer.get("registration_id")
        assert reg_id, answer
        reg = await gateway.wait_status(reg_id, want | {"failed"})
        assert reg["status"] in want, (data["domain"], reg)
        ids[data["domain"]] = reg_id
    return ids
