"""Partner adapters against real aiohttp servers on loopback: an e-mail partner, an escrow agent, a SPAR front."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from adapters.address_lookup import AddressLookupClient
from adapters.epp.tls import ensure_dev_pki
from adapters.escrow import EscrowClient, EscrowRecord, build_deposit, decrypt_deposit
from adapters.http_partner import HttpPartnerClient, PartnerEndpoint
from gateway.errors import InvalidDeposit, PermanentDeliveryError

pytestmark = pytest.mark.integration


@asynccontextmanager
async def serve(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server(ssl=ssl_context)
    try:
        yield str(server.make_url("/")).rstrip("/")
    finally:
        await server.close()


def endpoint(base_url: str, token: str, **kw: Any) -> PartnerEndpoint:
    defaults: dict[str, Any] = dict(
        timeout_s=2.0, verify=False, max_attempts=5, max_total_s=5.0, backoff_base_s=0.01, backoff_max_s=0.05
    )
    defaults.update(kw)
    return PartnerEndpoint(base_url=base_url, token=token, **defaults)


# ---- e-mail partner ----------------------------------------------------------------------------


@dataclass
class MailPartner:
    """Fails the first ``failures`` requests with 503, then stores one message per idempotency key."""

    failures: int = 2
    slow_first_s: float = 0.0
    keys_seen: list[str] = field(default_factory=list)
    messages: dict[str, Any] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self.post)
        return app

    async def post(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer mail-token":
            return web.Response(status=401)
        key = request.headers["Idempotency-Key"]
        self.keys_seen.append(key)
        if self.slow_first_s:
            delay, self.slow_first_s = self.slow_first_s, 0.0
            await asyncio.sleep(delay)
        if self.failures > 0:
            self.failures -= 1
            return web.json_response({"error": "try later"}, status=503)
        if key not in self.messages:
            self.messages[key] = await request.json()
        return web.json_response({"id": f"msg-{list(self.messages).index(key) + 1}"}, status=202)


MESSAGE = {"to": "anna.andersson@example.se", "template": "welcome", "lang": "sv"}


async def test_mail_partner_gets_one_message_despite_retries() -> None:
    partner = MailPartner(failures=2)
    async with serve(partner.app()) as url, HttpPartnerClient(endpoint(url, "mail-token", name="mail")) as client:
        receipt = await client.send("/v1/messages", MESSAGE, "delivery-0001")
        assert (receipt.status, receipt.partner_ref, receipt.attempts) == (202, "msg-1", 3)
        # The worker re-sending after a crash uses the same key: still one message.
        again = await client.send("/v1/messages", MESSAGE, "delivery-0001")
        assert (again.partner_ref, again.attempts) == ("msg-1", 1)
    assert partner.keys_seen == ["delivery-0001"] * 4
    assert partner.messages == {"delivery-0001": MESSAGE}


async def test_real_timeout_is_retried_with_the_same_key() -> None:
    partner = MailPartner(failures=0, slow_first_s=1.0)
    async with serve(partner.app()) as url:
        async with HttpPartnerClient(endpoint(url, "mail-token", timeout_s=0.2)) as client:
            receipt = await client.send("/v1/messages", MESSAGE, "delivery-0002")
    assert receipt.attempts == 2
    assert partner.keys_seen == ["delivery-0002", "delivery-0002"]
    assert len(partner.messages) == 1


async def test_mail_partner_over_https_with_a_pinned_ca(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path / "pki")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
    partner = MailPartner(failures=1)
    async with serve(partner.app(), server_ctx) as url:
        assert url.startswith("https://127.0.0.1:")
        async with HttpPartnerClient(endpoint(url, "mail-token", verify=str(pki.ca_cert))) as client:
            receipt = await client.send("/v1/messages", MESSAGE, "delivery-0003")
        assert (receipt.status, receipt.attempts) == (202, 2)

        # A server whose certificate does not chain to the pinned CA is a human's problem: no retries.
        other_ca = ensure_dev_pki(tmp_path / "other").ca_cert
        async with HttpPartnerClient(endpoint(url, "mail-token", verify=str(other_ca))) as client:
            with pytest.raises(PermanentDeliveryError) as info:
                await client.send("/v1/messages", MESSAGE, "delivery-0004")
        assert info.value.extra["attempts"] == 1
    assert partner.keys_seen == ["delivery-0003", "delivery-0003"]


# ---- escrow agent ------------------------------------------------------------------------------


@dataclass
class EscrowAgent:
    """Stores sealed deposits by id, opening each with its private key; a repeat upload stores nothing."""

    private_key: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    failures: int = 1
    deposits: dict[str, bytes] = field(default_factory=dict)
    puts: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_put("/deposits/{deposit_id}", self.put)
        return app

    async def put(self, request: web.Request) -> web.Response:
        self.puts += 1
        if request.headers.get("Authorization") != "Bearer escrow-token":
            return web.Response(status=401)
        deposit_id = request.match_info["deposit_id"]
        if request.headers.get("Idempotency-Key") != deposit_id:
            return web.Response(status=400)
        sealed = await request.read()
        digest = base64.b64encode(hashlib.sha256(sealed).digest()).decode()
        if request.headers.get("Content-Digest") != f"sha-256=:{digest}:":
            return web.Response(status=400)
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=503)
        try:
            plaintext = decrypt_deposit(sealed, self.private_key)
        except InvalidDeposit:
            return web.Response(status=422)
        if deposit_id in self.deposits:
            return web.json_response({"id": f"agent-{deposit_id}"}, status=200)
        self.deposits[deposit_id] = plaintext
        return web.json_response({"id": f"agent-{deposit_id}"}, status=201)


RECORDS = [
    EscrowRecord(
        "exempel.com", "com", "subj-anna",
        {"registrant": {"name": "Anna Andersson", "email": "anna.andersson@example.se", "cc": "SE"},
         "billing": {"name": "Anna Andersson", "email": "faktura@example.se", "cc": "SE"}},
    ),
    EscrowRecord("bertil.org", "org", "subj-bertil", {"registrant": {"name": "Bertil Berg", "cc": "SE"}}),
]
WATERMARK = datetime(2026, 11, 25, tzinfo=UTC)


async def test_escrow_agent_stores_one_readable_copy() -> None:
    agent = EscrowAgent()
    async with serve(agent.app()) as url:
        ep = endpoint(url, "escrow-token", name="escrow")
        async with EscrowClient(ep, agent.private_key.public_key()) as client:
            summary, first = await client.deposit(
                RECORDS, registrar_id="9999", deposit_id="rde-9999-20261125", watermark=WATERMARK
            )
            _, second = await client.deposit(
                RECORDS, registrar_id="9999", deposit_id="rde-9999-20261125", watermark=WATERMARK
            )
    assert (first.status, first.attempts, first.agent_ref) == (201, 2, "agent-rde-9999-20261125")
    assert (second.status, second.attempts) == (200, 1)
    assert first.sha256 != second.sha256  # re-sealed with a fresh key ...
    assert list(agent.deposits) == ["rde-9999-20261125"]  # ... yet stored once
    stored = agent.deposits["rde-9999-20261125"]
    assert stored == build_deposit(RECORDS, "9999", "rde-9999-20261125", WATERMARK)
    assert hashlib.sha256(stored).hexdigest() == summary.sha256
    assert summary.subjects == ["subj-anna", "subj-bertil"] and summary.domains == 2
    assert agent.puts == 3


async def test_escrow_agent_with_another_key_refuses_the_deposit() -> None:
    agent = EscrowAgent(failures=0)
    async with serve(agent.app()) as url:
        async with EscrowClient(endpoint(url, "escrow-token"), X25519PrivateKey.generate().public_key()) as client:
            with pytest.raises(PermanentDeliveryError) as info:
                await client.deposit(RECORDS, registrar_id="9999", deposit_id="rde-2", watermark=WATERMARK)
    assert info.value.result_code == 422
    assert agent.deposits == {}


# ---- SPAR front --------------------------------------------------------------------------------


@dataclass
class SparFront:
    people: dict[str, dict[str, Any]]
    seen_paths: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/lookups", self.lookup)
        return app

    async def lookup(self, request: web.Request) -> web.Response:
        self.seen_paths.append(request.path_qs)
        if request.headers.get("Authorization") != "Bearer spar-token":
            return web.Response(status=401)
        body = await request.json()
        answer = self.people.get(body["personnummer"])
        if answer is None:
            return web.json_response({"result": "not_found"}, status=404)
        return web.json_response(answer)


async def test_spar_lookups_found_protected_not_found() -> None:
    spar = SparFront(
        {
            "198112189876": {
                "result": "found",
                "person": {"given_name": "Anna", "surname": "Andersson",
                           "address": {"street": "Storgatan 1", "postal_code": "111 22", "city": "Stockholm"}},
                "marketing_opt_out": True,
                "birth_date": "1981-12-18",
            },
            "194107086995": {"result": "protected_identity", "marketing_opt_out": False},
        }
    )
    async with serve(spar.app()) as url, AddressLookupClient(endpoint(url, "spar-token", name="spar")) as client:
        found = await client.lookup("19811218-9876", "address_update", blind_index="idx-anna")
        protected = await client.lookup("194107086995", "address_update", blind_index="idx-protected")
        missing = await client.lookup("199001011239", "address_update", blind_index="idx-missing")
    assert found.category == "found" and found.address is not None and found.address.city == "Stockholm"
    assert found.marketing_opt_out is True
    assert (protected.category, protected.name, protected.address) == ("protected_identity", None, None)
    assert protected.marketing_opt_out is True
    assert (missing.category, missing.name) == ("not_found", None)
    assert [r.record.blind_index for r in (found, protected, missing)] == ["idx-anna", "idx-protected", "idx-missing"]
    assert spar.seen_paths == ["/v1/lookups"] * 3
    assert all("1981" not in json.dumps(r.record.as_dict()) for r in (found, protected, missing))
