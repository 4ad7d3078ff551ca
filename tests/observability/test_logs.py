"""JSON on every line, one request id per request, carried to the deliveries it caused, no personal data."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import structlog
from aiohttp.test_utils import TestClient, TestServer

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.compose import build
from tests.conftest import VALID_BODY, Gateway, Tokens, gateway_settings
from tests.observability.conftest import Lines

#: every value of the registrant, and of its parts, that must never reach a log line
PERSONAL = ["Anna Andersson", "Andersson", "19811218-9876", "198112189876", "Storgatan", "Stockholm", "111 22",
            "anna.andersson@example.se", "anna.andersson", "+46 8 123 456 78", "+46.812345678", "812345678"]


async def test_a_registration_logs_json_with_one_request_id_down_to_its_delivery(
    gateway: Gateway, json_logs: Lines
) -> None:
    rid = "order-1001.attempt-1"
    headers = gateway.tokens.h("ordering") | {"Idempotency-Key": "obs-0000001", "X-Request-ID": rid}
    r = await gateway.client.post("/v1/registrations", json=VALID_BODY, headers=headers)
    assert r.status == 202 and r.headers["X-Request-ID"] == rid
    reg = (await r.json())["id"]
    assert (await gateway.wait_status(reg, {"delivered"}))["status"] == "delivered"
    logging.getLogger("asyncio").warning("a library line")
    logging.getLogger("fontTools.subset").info("glyphs subset")  # noise: silenced

    lines = json_logs.records()
    access = [x for x in lines if x["event"] == "http.access" and x.get("request_id") == rid]
    assert access and access[0]["route"] == "/v1/registrations" and access[0]["status"] == 202
    assert access[0]["method"] == "POST" and access[0]["logger"] == "aiohttp.access"
    delivered = [x for x in lines if x["event"] == "delivery.delivered" and x.get("registration") == reg]
    assert delivered and {x.get("request_id") for x in delivered} == {rid}
    library = [x for x in lines if x["event"] == "a library line"]
    assert library == [library[0]] and library[0]["logger"] == "asyncio" and library[0]["level"] == "warning"
    assert not any(x["event"] == "glyphs subset" for x in lines)
    assert all("timestamp" in x and "level" in x for x in lines)
    for value in PERSONAL:
        assert value not in json_logs.text, value


async def test_request_ids_are_validated_generated_and_bound_to_the_request_lines(
    gateway: Gateway, json_logs: Lines
) -> None:
    log = structlog.get_logger("test")
    r = await gateway.client.get("/healthz")
    fresh = r.headers["X-Request-ID"]
    assert len(fresh) == 32
    for bad in ("x" * 65, "with space", "ünïcode"):
        r = await gateway.client.get("/healthz", headers={"X-Request-ID": bad})
        assert r.headers["X-Request-ID"] not in (bad, fresh) and len(r.headers["X-Request-ID"]) == 32
    r = await gateway.client.get("/v1/registrations/" + "0" * 32, headers={"X-Request-ID": "rq-401"})
    assert r.status == 401 and r.headers["X-Request-ID"] == "rq-401"  # a problem answer has it too
    r = await gateway.client.get("/nowhere", headers={"X-Request-ID": "rq-unmatched"})
    assert r.status == 404 and r.headers["X-Request-ID"] == "rq-unmatched"
    log.info("outside.any.request")
    lines = json_logs.records()
    [outside] = [x for x in lines if x["event"] == "outside.any.request"]
    assert "request_id" not in outside
    access = {x["request_id"]: x for x in lines if x["event"] == "http.access"}
    assert access["rq-401"]["route"] == "/v1/registrations/{reg_id}"
    assert access["rq-unmatched"]["route"] == "unmatched"  # the path itself is never logged
    assert "/nowhere" not in json_logs.text


async def test_the_request_id_reaches_a_delivery_made_by_another_gateway(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens, json_logs: Lines
) -> None:
    """The id travels with the outbox row, not in a process's memory: a registration accepted by one
    gateway (no worker) and delivered by a second on the same database has the first request's id on
    the second's delivery lines."""
    rid = "order-2002.accepted-by-a"
    settings_a = gateway_settings(tmp_path, pki, sandbox.port, tokens, worker_enabled=False)
    app_a, _ = await build(settings_a)
    a: TestClient[Any, Any] = TestClient(TestServer(app_a))
    await a.start_server()
    try:
        headers = tokens.h("ordering") | {"Idempotency-Key": "obs-0000002", "X-Request-ID": rid}
        r = await a.post("/v1/registrations", json=VALID_BODY, headers=headers)
        assert r.status == 202 and r.headers["X-Request-ID"] == rid
        reg = (await r.json())["id"]
    finally:
        await a.close()
    # durable, not remembered: the row itself names the request (a fresh process would find it there)
    db = sqlite3.connect(settings_a.resolved_db())
    try:
        stored = db.execute("SELECT request_id FROM outbox WHERE registration_id=?", (reg,)).fetchall()
    finally:
        db.close()
    assert stored and {r[0] for r in stored} == {rid}

    app_b, store_b = await build(gateway_settings(tmp_path, pki, sandbox.port, tokens))
    b: TestClient[Any, Any] = TestClient(TestServer(app_b))
    await b.start_server()
    try:
        second = Gateway(b, store_b, tokens, sandbox)
        assert (await second.wait_status(reg, {"delivered"}))["status"] == "delivered"
    finally:
        await b.close()

    lines = json_logs.records()
    delivered = [x for x in lines if x["event"] == "delivery.delivered" and x.get("registration") == reg]
    assert delivered and {x.get("request_id") for x in delivered} == {rid}
    # the second gateway's own requests (its status polls) have ids of their own
    polls = {x.get("request_id") for x in lines if x["event"] == "http.access" and x["method"] == "GET"}
    assert polls and rid not in polls
