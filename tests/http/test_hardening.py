"""Issue 13, transport and deployment: oversized headers, what reaches the log, a CSV export that fails
half-way, who may read /metrics, and the SQLite files' mode."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import ClientPayloadError

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.auth import hash_token
from gateway.errors import LedgerCorrupt
from gateway.http.pages import disclosures as log_pages
from gateway.services.accounts import AccountService
from gateway.store.accounts import AccountStore
from gateway.store.sqlite import SqliteStore
from tests.conftest import VALID_BODY, Gateway, Tokens, running_gateway

pytestmark = pytest.mark.integration

SECRET = "hdr-secret-7f3a9c"  # stands for a credential or a cookie: must never be echoed or logged


# -- oversized request lines and headers --------------------------------------------------------------

@pytest.mark.parametrize("size", [8_200, 10_240, 30_000])
async def test_a_large_header_gets_a_problem_and_is_not_echoed(gateway: Gateway, size: int) -> None:
    """aiohttp's own limit (8,190) answered in plain text quoting the header's start (and logged it)."""
    value = SECRET + "x" * (size - len(SECRET))
    for path in ("/healthz", "/v1/disclosures", "/ui/login"):
        r = await gateway.client.get(path, headers={"X-Padding": value})
        assert r.status == 431, (path, r.status)
        assert r.content_type == "application/problem+json"
        problem = await r.json()
        assert problem["code"] == "header_too_large" and problem["status"] == 431
        assert SECRET not in await r.text()
    r = await gateway.client.get("/v1/disclosures", headers={"Authorization": f"Bearer {value}"})
    assert r.status == 431 and SECRET not in await r.text()


async def test_a_long_request_line_gets_a_problem(gateway: Gateway) -> None:
    r = await gateway.client.get("/v1/disclosures?recipient=" + SECRET + "a" * 10_000,
                                 headers=gateway.tokens.h("auditor"))
    assert r.status == 414 and r.content_type == "application/problem+json"
    assert (await r.json())["code"] == "uri_too_long"
    assert SECRET not in await r.text()


async def test_headers_within_limits_still_work(gateway: Gateway) -> None:
    r = await gateway.client.get("/healthz", headers={"X-Padding": "x" * 8_000})
    assert r.status == 200


async def test_no_header_value_reaches_the_log(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    """Neither the access log (aiohttp's default format names User-Agent and Referer) nor aiohttp's
    parser errors (which quote the line) nor our problem path may write a header value."""
    caplog.set_level(logging.DEBUG)
    headers = {"User-Agent": SECRET, "Referer": f"https://{SECRET}.example/", "Cookie": f"rg_session={SECRET}"}
    assert (await gateway.client.get("/healthz", headers=headers)).status == 200
    assert (await gateway.client.get("/v1/disclosures", headers={"Authorization": f"Bearer {SECRET}"})).status == 401
    assert (await gateway.client.get("/healthz", headers={"X-Padding": SECRET + "x" * 10_000})).status == 431
    # beyond even the raised parser limit aiohttp answers by itself; its log record is cut to the type
    host, port = gateway.client.host, gateway.client.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {SECRET}{'x' * 40_000}\r\n\r\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request")
    for _ in range(20):  # the server logs after it answered
        if any("error_type=" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.05)
    assert any("error_type=LineTooLong" in r.getMessage() for r in caplog.records)
    assert SECRET not in caplog.text


# -- a CSV export that fails after it started ---------------------------------------------------------

async def _staff_cookie(gateway: Gateway) -> str:
    """A live auditor session (an account and a session in the gateway's store), as its cookie value."""
    accounts = AccountService(cast(AccountStore, gateway.store))
    value, _ = await accounts.start_session(await accounts.add("audit", role="auditor", password="audit password 1"))
    return value


@pytest.mark.parametrize("failure", [RuntimeError("disk I/O error"), LedgerCorrupt("entry 7 does not decode")])
async def test_csv_export_failing_half_way_ends_the_stream_without_a_second_status(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    r = await gateway.post(VALID_BODY)
    await gateway.wait_status((await r.json())["id"], {"delivered"})
    real_rows = log_pages.export_rows

    async def failing_rows(svc: Any, session: Any, q: Any, *, names: bool) -> AsyncIterator[list[str]]:
        async for row in real_rows(svc, session, q, names=names):
            for _ in range(600):  # more than one write's worth, so the failure comes after bytes went out
                yield row
        raise failure

    monkeypatch.setattr(log_pages, "export_rows", failing_rows)
    cookie = await _staff_cookie(gateway)
    # what goes over the wire: one status line, the rows so far, and no final chunk
    reader, writer = await asyncio.open_connection(gateway.client.host, gateway.client.port)
    writer.write(f"GET /ui/disclosures.csv HTTP/1.1\r\nHost: x\r\nCookie: rg_session={cookie}\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Transfer-Encoding: chunked" in raw
    assert raw.count(b"HTTP/1.1") == 1, raw[-400:]
    assert b"iis-se" in raw
    assert not raw.endswith(b"\r\n0\r\n\r\n")
    # and a client sees a failed download, not a complete file
    r = await gateway.client.get("/ui/disclosures.csv", cookies={"rg_session": cookie})
    assert r.status == 200
    with pytest.raises(ClientPayloadError):
        await r.read()


async def test_csv_export_failing_before_it_started_is_an_error_page(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_rows(svc: Any, session: Any, q: Any, *, names: bool) -> AsyncIterator[list[str]]:
        raise LedgerCorrupt("entry 1 does not decode")
        yield  # pragma: no cover - makes this an async generator

    monkeypatch.setattr(log_pages, "export_rows", failing_rows)
    r = await gateway.client.get("/ui/disclosures.csv", cookies={"rg_session": await _staff_cookie(gateway)})
    assert r.status == 500 and r.content_type == "text/html"


# -- /metrics -----------------------------------------------------------------------------------------

SCRAPE_TOKEN = "scrape-token-for-prometheus-0001"


@pytest.fixture
async def metered(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens) -> AsyncIterator[Gateway]:
    async with running_gateway(tmp_path, pki, sandbox, tokens, metrics_token_sha256=hash_token(SCRAPE_TOKEN)) as gw:
        yield gw


async def test_metrics_need_a_staff_token(gateway: Gateway) -> None:
    r = await gateway.client.get("/metrics")
    assert r.status == 401 and r.content_type == "application/problem+json"
    r = await gateway.client.get("/metrics", headers=gateway.tokens.h("ordering"))
    assert r.status == 403
    r = await gateway.client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert r.status == 401  # no scrape token configured here
    for role in ("privacy", "auditor"):
        r = await gateway.client.get("/metrics", headers=gateway.tokens.h(role))
        assert r.status == 200 and "gateway_http_requests_total" in await r.text()


async def test_metrics_take_the_dedicated_scrape_token(metered: Gateway) -> None:
    r = await metered.client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert r.status == 200 and "gateway_http_requests_total" in await r.text()
    assert (await metered.client.get("/metrics")).status == 401
    r = await metered.client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}x"})
    assert r.status == 401
    # the scrape token is no staff token
    r = await metered.client.get("/v1/disclosures", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
    assert r.status == 401


# -- the SQLite files ---------------------------------------------------------------------------------

def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes(directory: Path) -> dict[str, int]:
    return {p.name: _mode(p) for p in directory.iterdir()}


def _loosen(directory: Path) -> None:
    for p in directory.iterdir():
        p.chmod(0o644)


async def test_sqlite_files_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask: files would be 0644
    try:
        store = SqliteStore(tmp_path / "gateway.sqlite3")  # the migrations write: WAL and SHM exist
        modes = _modes(tmp_path)
        assert set(modes) >= {"gateway.sqlite3", "gateway.sqlite3-wal", "gateway.sqlite3-shm"}
        assert set(modes.values()) == {0o600}, modes
        await store.close()
        _loosen(tmp_path)  # as an older version left them
        store = SqliteStore(tmp_path / "gateway.sqlite3")
        modes = _modes(tmp_path)
        assert "gateway.sqlite3" in modes and set(modes.values()) == {0o600}, modes
        await store.close()
    finally:
        os.umask(old)


async def test_the_gateways_database_is_owner_only(gateway: Gateway, tmp_path: Path) -> None:
    db = tmp_path / "var" / "gateway.sqlite3"
    assert (await gateway.post(VALID_BODY)).status == 202
    for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        assert _mode(p) == 0o600, p.name
