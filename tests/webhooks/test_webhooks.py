"""Webhooks for the ordering system, end to end on loopback: a gateway wired to the EPP sandbox, and
receivers (aiohttp servers on 127.0.0.1) that verify each signature with their own HMAC code."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.clock import iso
from gateway.compose import build
from tests.conftest import VALID_BODY, Gateway, Tokens, body, gateway_settings, running_gateway

WEBHOOK_KW: dict[str, Any] = dict(
    webhooks_allow_loopback_http=True, webhook_poll_s=0.05, webhook_backoff_base_s=0.05, webhook_backoff_max_s=0.2,
    webhook_timeout_s=2.0,
)


def independent_signature(secret: str, msg_id: str, timestamp: str, raw: bytes) -> str:
    """Standard Webhooks, written apart from gateway.webhooks: HMAC-SHA256 over "id.timestamp.body"."""
    key = base64.b64decode(secret.split("_", 1)[1])
    return "v1," + base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + raw, hashlib.sha256)
                                    .digest()).decode()


@dataclass
class Receiver:
    url: str
    fail_first: int = 0
    secret: str = ""
    raw: list[tuple[dict[str, str], bytes]] = field(default_factory=list)  # every request, retries too
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # de-duplicated by webhook-id
    bad: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.raw.append((headers, raw))
        if len(self.raw) <= self.fail_first:
            return web.Response(status=503)
        msg_id, stamp, sig = headers["webhook-id"], headers["webhook-timestamp"], headers["webhook-signature"]
        if sig != independent_signature(self.secret, msg_id, stamp, raw) or abs(time.time() - int(stamp)) > 300:
            self.bad.append(msg_id)
            return web.Response(status=400)
        self.events.setdefault(msg_id, json.loads(raw))
        self.arrived.set()
        return web.Response(status=204)

    async def wait(self, n: int, limit_s: float = 15.0) -> list[dict[str, Any]]:
        async def enough() -> None:
            while len(self.events) < n:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), limit_s)
        return list(self.events.values())


@pytest.fixture
async def receivers() -> AsyncIterator[list[Receiver]]:
    """Two loopback receivers (``/a`` answers 503 to its first two requests when asked to)."""
    made: list[tuple[TestServer, Receiver]] = []

    async def start() -> Receiver:
        app = web.Application()
        server = TestServer(app, host="127.0.0.1")
        r = Receiver(url="")
        app.router.add_post("/hook", r.handle)
        await server.start_server()
        r.url = str(server.make_url("/hook"))
        made.append((server, r))
        return r

    out = [await start(), await start()]
    try:
        yield out
    finally:
        for server, _ in made:
            await server.close()


@pytest.fixture
async def hooked(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, pki, sandbox, tokens, **WEBHOOK_KW) as gw:
        yield gw


async def subscribe(gw: Gateway, receiver: Receiver, role: str = "ordering", **extra: Any) -> dict[str, Any]:
    r = await gw.client.post("/v1/webhooks", json={"url": receiver.url, **extra}, headers=gw.tokens.h(role))
    assert r.status == 201, await r.text()
    created: dict[str, Any] = await r.json()
    assert r.headers["Location"] == f"/v1/webhooks/{created['id']}"
    receiver.secret = created["secret"]
    return created


PERSONAL = ("Anna", "Andersson", "anna@", "Storgatan", "Stockholm", "19811218", "+46", "exempel", "subject")


def assert_no_personal_data(raw: bytes, event: dict[str, Any]) -> None:
    assert set(event) == {"id", "type", "timestamp", "data"}
    assert set(event["data"]) == {"registration_id", "order_ref", "status", "code"}
    text = raw.decode()
    for value in PERSONAL:
        assert value not in text, value


async def test_delivered_and_blocked_registrations_are_posted_signed_without_personal_data(
    hooked: Gateway, receivers: list[Receiver]
) -> None:
    rx = receivers[0]
    created = await subscribe(hooked, rx)
    assert created["events"] == ["registration.delivered", "registration.failed", "registration.blocked",
                                 "registration.changed"]
    r = await hooked.post(VALID_BODY)
    assert r.status == 202
    reg_id = (await r.json())["id"]
    await hooked.wait_status(reg_id, {"delivered"})
    blocked = await hooked.post(body(domain="exempel.cn", order_ref="ORD-CN"))
    assert blocked.status == 422
    blocked_id = (await blocked.json())["registration_id"]

    events = await rx.wait(2)
    assert rx.bad == []
    by_type = {e["type"]: e for e in events}
    assert by_type["registration.delivered"]["data"] == {
        "registration_id": reg_id, "order_ref": VALID_BODY["order_ref"], "status": "delivered", "code": "1000"}
    assert by_type["registration.blocked"]["data"] == {
        "registration_id": blocked_id, "order_ref": "ORD-CN", "status": "blocked", "code": "transfer_blocked"}
    for headers, raw in rx.raw:
        event = json.loads(raw)
        assert headers["webhook-id"] == event["id"] and headers["content-type"] == "application/json"
        assert_no_personal_data(raw, event)

    # the sender records each answer after the receiver has it: wait (bounded) for the second record
    for _ in range(100):
        listed = await (await hooked.client.get("/v1/webhooks", headers=hooked.tokens.h("ordering"))).json()
        [hook] = listed["items"]
        if hook["deliveries"]["pending"] == 0:
            break
        await asyncio.sleep(0.05)
    assert "secret" not in hook and hook["deliveries"] == {"pending": 0, "delivered": 2, "failed": 0}
    assert {e["type"] for e in hook["recent"]} == {"registration.delivered", "registration.blocked"}


async def test_a_receiver_that_fails_twice_gets_the_event_once_deduplicated(
    hooked: Gateway, receivers: list[Receiver]
) -> None:
    rx = receivers[0]
    rx.fail_first = 2
    await subscribe(hooked, rx, events=["registration.delivered"])
    r = await hooked.post(VALID_BODY)
    await hooked.wait_status((await r.json())["id"], {"delivered"})
    [event] = await rx.wait(1)
    assert event["type"] == "registration.delivered"
    assert len(rx.raw) == 3 and len({h["webhook-id"] for h, _ in rx.raw}) == 1  # the same event, retried
    assert len({raw for _, raw in rx.raw}) == 1  # byte for byte
    [hook] = (await (await hooked.client.get("/v1/webhooks", headers=hooked.tokens.h("ordering"))).json())["items"]
    [recent] = hook["recent"]
    assert (recent["state"], recent["attempts"], recent["last_status"]) == ("delivered", 3, "204")


async def test_a_receiver_that_never_answers_2xx_is_given_up_and_shown_failed(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens, receivers: list[Receiver]
) -> None:
    rx = receivers[0]
    rx.fail_first = 1000
    kw = WEBHOOK_KW | {"webhook_max_attempts": 3}
    app, store = await build(gateway_settings(tmp_path, pki, sandbox.port, tokens, **kw))
    async with TestClient(TestServer(app)) as client:
        gw = Gateway(client, store, tokens, sandbox)
        await subscribe(gw, rx)
        r = await gw.post(VALID_BODY)
        await gw.wait_status((await r.json())["id"], {"delivered"})
        deadline = asyncio.get_running_loop().time() + 15
        hook: dict[str, Any] = {}
        while asyncio.get_running_loop().time() < deadline:
            [hook] = (await (await client.get("/v1/webhooks", headers=tokens.h("ordering"))).json())["items"]
            if hook["deliveries"]["failed"]:
                break
            await asyncio.sleep(0.05)
        assert hook["deliveries"] == {"pending": 0, "delivered": 0, "failed": 1}
        assert (hook["recent"][0]["attempts"], hook["recent"][0]["last_status"]) == (3, "503")
        assert len(rx.raw) == 3


async def test_a_pending_event_is_delivered_after_a_crash_like_restart(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens, receivers: list[Receiver]
) -> None:
    """The first gateway's sender never sends (it polls once an hour) and one send is left leased, as by a
    sender that died mid-send; a new gateway on the same SQLite file delivers it."""
    rx = receivers[0]
    first_kw = WEBHOOK_KW | {"webhook_poll_s": 3600.0}
    app, store = await build(gateway_settings(tmp_path, pki, sandbox.port, tokens, **first_kw))
    async with TestClient(TestServer(app)) as client:
        gw = Gateway(client, store, tokens, sandbox)
        await subscribe(gw, rx)
        r = await gw.post(VALID_BODY)
        reg_id = (await r.json())["id"]
        await gw.wait_status(reg_id, {"delivered"})
        now = dt.datetime.now(dt.UTC)
        [leased] = await store.claim_webhook_events(iso(now), iso(now + dt.timedelta(seconds=0.5)), 10)
    assert rx.raw == []

    app, _ = await build(gateway_settings(tmp_path, pki, sandbox.port, tokens, **WEBHOOK_KW))
    async with TestClient(TestServer(app)):
        [event] = await rx.wait(1)
    assert event["id"] == leased.event_id and event["data"]["registration_id"] == reg_id
    assert rx.bad == []


async def test_another_clients_registrations_never_reach_this_clients_url(
    hooked: Gateway, receivers: list[Receiver]
) -> None:
    mine, theirs = receivers
    mine_hook = await subscribe(hooked, mine)
    await subscribe(hooked, theirs, role="other_ordering")
    r = await hooked.post(VALID_BODY, role="other_ordering")
    await hooked.wait_status((await r.json())["id"], {"delivered"})
    await theirs.wait(1)
    r = await hooked.post(body(domain="exempel.cn"))  # this client's own: only to its own URL
    assert r.status == 422
    await mine.wait(1)
    await asyncio.sleep(0.3)
    assert [e["type"] for e in mine.events.values()] == ["registration.blocked"]
    assert [e["type"] for e in theirs.events.values()] == ["registration.delivered"]
    # nor can the other client see or end this client's webhook
    listed = await (await hooked.client.get("/v1/webhooks", headers=hooked.tokens.h("other_ordering"))).json()
    assert mine_hook["id"] not in {h["id"] for h in listed["items"]}
    gone = await hooked.client.delete(f"/v1/webhooks/{mine_hook['id']}", headers=hooked.tokens.h("other_ordering"))
    assert gone.status == 404
    ok = await hooked.client.delete(f"/v1/webhooks/{mine_hook['id']}", headers=hooked.tokens.h("ordering"))
    assert ok.status == 204
    assert (await (await hooked.client.get("/v1/webhooks", headers=hooked.tokens.h("ordering"))).json()) == {
        "items": []}


@pytest.mark.parametrize("payload, loc", [
    ({"url": "http://hooks.example.com/in"}, ["url"]),
    ({"url": "https://10.0.0.5/in"}, ["url"]),
    ({"url": "https://user:pw@hooks.example.com/in"}, ["url"]),
    ({"url": "https://hooks.example.com/in#frag"}, ["url"]),
    ({"url": "https://localhost/in"}, None),  # loopback allowed here: the setting is on
    ({"url": "ftp://hooks.example.com/in"}, ["url"]),
    ({"url": "https://hooks.example.com/ä"}, ["url"]),
    ({"url": "https://nodots/in"}, ["url"]),
    ({"url": "https://hooks.example.com/in", "events": ["registration.exploded"]}, ["events", 0]),
    ({"url": "https://hooks.example.com/in", "events": []}, ["events"]),
    ({"url": "https://hooks.example.com/in", "secret": "mine"}, ["secret"]),
    ({}, ["url"]),
])
async def test_webhook_requests_are_validated_strictly(
    hooked: Gateway, payload: dict[str, Any], loc: list[Any] | None
) -> None:
    r = await hooked.client.post("/v1/webhooks", json=payload, headers=hooked.tokens.h("ordering"))
    if loc is None:
        assert r.status == 201
        return
    assert r.status == 422, await r.text()
    problem = await r.json()
    assert problem["code"] == "validation_failed"
    assert [str(p) for p in problem["errors"][0]["loc"]] == [str(p) for p in loc]


async def test_only_ordering_clients_use_webhooks(hooked: Gateway) -> None:
    r = await hooked.client.post("/v1/webhooks", json={"url": "https://hooks.example.com/in"},
                                 headers=hooked.tokens.h("privacy"))
    assert r.status == 403
    assert (await hooked.client.get("/v1/webhooks")).status == 401
    assert (await hooked.client.delete("/v1/webhooks/nothex", headers=hooked.tokens.h("ordering"))).status == 404


async def test_without_the_setting_loopback_http_is_refused(gateway: Gateway) -> None:
    r = await gateway.client.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"},
                                  headers=gateway.tokens.h("ordering"))
    assert r.status == 422
    assert (await r.json())["errors"][0]["loc"] == ["url"]
