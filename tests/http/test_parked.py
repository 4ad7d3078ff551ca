"""Parked deliveries through the API, end to end on loopback: a registration the EPP sandbox refuses for
good is parked; staff list it per registry, retry it (the worker is woken and delivers it) or cancel it,
and every action is in the answer's history with its actor."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.store.sqlite import SqliteStore
from tests.conftest import Gateway, Tokens, body, running_gateway

#: EPP 2306 "parameter value policy error": a refusal no retry changes (never retried by the worker).
PERMANENT = 2306
REASON = "permanent refusal by the registry (EPP 2306)"


def park_failed_rows(db: Path, reason: str = REASON) -> int:
    """Rows the worker gave up on, parked as the delivery worker parks them (``needs_attention`` with a
    reason).  A worker that already parks leaves none in ``failed``, and this changes nothing."""
    with sqlite3.connect(db) as conn:
        return conn.execute("UPDATE outbox SET state='needs_attention', parked_reason=? WHERE state='failed'",
                            (reason,)).rowcount


async def refused_registration(gw: Gateway, domain: str, db: Path) -> str:
    """Register ``domain`` while the sandbox refuses its domain:create for good; returns the registration
    id once its registry delivery is parked."""
    gw.sandbox.faults.fail_next("domain:create", PERMANENT)
    r = await gw.post(body(domain=domain, order_ref=f"ORD-{secrets.token_hex(3)}"))
    assert r.status == 202, await r.text()
    reg_id: str = (await r.json())["id"]
    assert (await gw.wait_status(reg_id, {"failed"}))["status"] == "failed"
    park_failed_rows(db)
    return reg_id


@pytest.fixture
async def slow_gateway(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens) -> AsyncIterator[Gateway]:
    """A gateway whose worker polls only every 30 s: a delivery within seconds of a retry proves that the
    retry woke it."""
    async with running_gateway(tmp_path, pki, sandbox, tokens, worker_poll_s=30.0) as gw:
        yield gw


def db_of(gw: Gateway) -> Path:
    """The gateway's SQLite file, for ``park_failed_rows``."""
    assert isinstance(gw.store, SqliteStore)
    return Path(gw.store.path)


async def parked(gw: Gateway, role: str = "privacy", query: str = "") -> dict[str, Any]:
    r = await gw.client.get(f"/v1/outbox/parked{query}", headers=gw.tokens.h(role))
    assert r.status == 200, await r.text()
    data: dict[str, Any] = await r.json()
    return data


async def test_staff_list_retry_and_cancel_parked_deliveries(slow_gateway: Gateway) -> None:
    gw = slow_gateway
    db = db_of(gw)
    first = await refused_registration(gw, "parkerad-ett.se", db)
    second = await refused_registration(gw, "parkerad-tva.se", db)

    listed = await parked(gw)
    assert [(i["registration_id"], i["recipient"]) for i in listed["items"]] == [
        (first, "iis-se"), (second, "iis-se")]
    assert listed["recipients"] == {"iis-se": 2} and listed["actions"] == []
    row = listed["items"][0]
    assert row["parked_reason"] and row["attempts"] >= 1
    assert str(PERMANENT) in f"{row['last_code']} {row['parked_reason']}"  # the refusal's code is shown
    assert set(row) == {"id", "registration_id", "recipient", "purpose", "change_id", "attempts", "last_code",
                        "parked_reason", "updated_at"}
    text = str(listed)
    assert "Anna" not in text and "Storgatan" not in text and "19811218" not in text  # no personal data
    assert (await parked(gw, "auditor"))["recipients"] == {"iis-se": 2}  # the auditor reads
    assert (await parked(gw, query="?recipient=eurid"))["items"] == []
    bad = await gw.client.get("/v1/outbox/parked?recipient=NOT%20A%20RECIPIENT", headers=gw.tokens.h("privacy"))
    assert bad.status == 422 and (await bad.json())["code"] == "query_invalid"
    assert (await gw.client.get("/v1/outbox/parked", headers=gw.tokens.h("ordering"))).status == 403

    one, two = listed["items"][0]["id"], listed["items"][1]["id"]
    for role in ("auditor", "ordering"):
        r = await gw.client.post(f"/v1/outbox/{one}/retry", headers=gw.tokens.h(role))
        assert r.status == 403 and (await r.json())["code"] == "forbidden"
    for target in (str(two + 1000), "x1", "\uff11", "9" * 19):  # unknown, not digits, fullwidth, too long
        r = await gw.client.post(f"/v1/outbox/{target}/cancel", headers=gw.tokens.h("privacy"))
        assert r.status == 404 and (await r.json())["code"] == "outbox_row_not_found"

    r = await gw.client.post(f"/v1/outbox/{one}/retry", headers=gw.tokens.h("privacy"))
    assert r.status == 200 and await r.json() == {"id": one, "state": "pending"}
    delivered = await gw.wait_status(first, {"delivered"}, limit_s=15)
    assert delivered["status"] == "delivered"  # the worker polls every 30 s: the retry woke it
    r = await gw.client.post(f"/v1/outbox/{one}/retry", headers=gw.tokens.h("privacy"))
    assert r.status == 409 and (await r.json())["code"] == "outbox_row_not_parked"

    r = await gw.client.post(f"/v1/outbox/{two}/cancel", headers=gw.tokens.h("privacy"))
    assert r.status == 200 and await r.json() == {"id": two, "state": "cancelled"}
    r = await gw.client.post(f"/v1/outbox/{two}/retry", headers=gw.tokens.h("privacy"))
    assert r.status == 409
    await asyncio.sleep(0.2)
    reg = await gw.wait_status(second, {"failed"})
    assert reg["status"] == "failed" and [d["state"] for d in reg["deliveries"]] == ["cancelled"]

    after = await parked(gw)
    assert after["items"] == [] and after["recipients"] == {}
    assert [(a["action"], a["actor"], a["row_id"], a["recipient"], a["registration_id"])
            for a in after["actions"]] == [("cancel", "staff", two, "iis-se", second),
                                           ("retry", "staff", one, "iis-se", first)]
    assert len((await parked(gw, query="?history=1"))["actions"]) == 1
