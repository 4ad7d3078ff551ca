"""kill -9 of a real gateway process while it group-commits concurrent acceptances, then restart.

Many registrations (each its own Idempotency-Key and domain) are sent at once, so the store's writer
commits them in groups; the process is killed while requests are still in flight.  On the database left
behind: every request answered 202 is wholly there (registration, outbox rows, idempotency row), nothing
is there in part, and a request that got no answer is either wholly there or wholly absent.  After a
restart, re-sending an unanswered request with its key gives the stored answer or a fresh acceptance,
never a second registration.
"""

from __future__ import annotations

import asyncio
import copy
import json
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from tests.conftest import VALID_BODY, Tokens, running_sandbox
from tests.test_crash_recovery import GatewayProcess

pytestmark = pytest.mark.integration

#: requests prepared; the kill comes after ``KILL_AFTER`` answers, with up to ``CONCURRENCY`` in flight
REQUESTS = 600
CONCURRENCY = 32
KILL_AFTER = 150


@pytest.fixture
def sandbox_thread(pki: DevPki) -> Iterator[SandboxThread]:
    with running_sandbox(pki) as sb:
        yield sb


def _body(i: int) -> dict[str, Any]:
    body = copy.deepcopy(VALID_BODY)
    body["domain"] = f"grupp{i}.se"
    body["order_ref"] = f"ORD-G{i}"
    return body


def _key(i: int) -> str:
    return f"group-crash-{i:04d}"


async def _fire_and_kill(gw: GatewayProcess, headers: dict[str, str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Send registrations ``CONCURRENCY`` at a time; SIGKILL the gateway at the ``KILL_AFTER``-th answer.
    Returns the answered keys (with their 202 bodies) and every key that was sent."""
    answered: dict[str, dict[str, Any]] = {}
    sent: set[str] = set()
    killed = asyncio.Event()
    todo = iter(range(1, REQUESTS + 1))
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=gw.url, timeout=15, limits=limits) as client:

        async def one(i: int) -> None:
            sent.add(_key(i))
            try:
                r = await client.post("/v1/registrations", json=_body(i),
                                      headers={**headers, "Idempotency-Key": _key(i)})
            except httpx.TransportError:
                return  # no answer: the process died with this request in flight
            assert r.status_code == 202, r.text
            answered[_key(i)] = r.json()
            if len(answered) >= KILL_AFTER and not killed.is_set():
                killed.set()
                assert gw.proc is not None
                gw.proc.send_signal(signal.SIGKILL)

        async def lane() -> None:
            for i in todo:
                if killed.is_set():
                    return
                await one(i)

        await asyncio.wait_for(asyncio.gather(*(lane() for _ in range(CONCURRENCY))), 120)
    assert killed.is_set(), "every request was answered before the kill: raise REQUESTS"
    assert gw.proc is not None
    gw.proc.wait(timeout=10)
    return answered, sent


def _answers(db: Path) -> dict[str, dict[str, Any]]:
    """The answer stored with each key, replayed to a request that repeats it."""
    conn = sqlite3.connect(db)
    try:
        return {str(k): json.loads(a) for k, a in conn.execute(
            "SELECT key, response_json FROM idempotency WHERE key LIKE 'group-crash-%'")}
    finally:
        conn.close()


def _stored(db: Path) -> tuple[dict[str, str], set[str], Counter[str]]:
    """What the killed process left on disk: key -> registration id, the registration ids, and outbox rows
    per registration."""
    conn = sqlite3.connect(db)
    try:
        keys = {str(k): str(r) for k, r in conn.execute(
            "SELECT key, registration_id FROM idempotency WHERE key LIKE 'group-crash-%'")}
        regs = {str(r) for (r,) in conn.execute("SELECT id FROM registrations WHERE order_ref LIKE 'ORD-G%'")}
        outbox = Counter(str(r) for (r,) in conn.execute(
            "SELECT o.registration_id FROM outbox o JOIN registrations g ON g.id = o.registration_id "
            "WHERE g.order_ref LIKE 'ORD-G%'"))
    finally:
        conn.close()
    return keys, regs, outbox


def test_kill9_during_group_commits_keeps_every_request_whole(
    tmp_path: Path, pki: DevPki, sandbox_thread: SandboxThread, tokens: Tokens
) -> None:
    started = time.monotonic()
    gw = GatewayProcess(tmp_path, pki, sandbox_thread.port, tokens)
    gw.env["GATEWAY_WORKER_ENABLED"] = "false"  # acceptance only: the rows stay as accept wrote them
    headers = tokens.h("ordering")
    db = tmp_path / "var" / "gateway.sqlite3"
    gw.start()
    try:
        # the holder's subject exists before the storm, so every request below is one plain acceptance
        first = httpx.post(f"{gw.url}/v1/registrations", json=_body(0), timeout=10,
                           headers={**headers, "Idempotency-Key": _key(0)})
        assert first.status_code == 202, first.text
        answered, sent = asyncio.run(_fire_and_kill(gw, headers))
        keys, regs, outbox = _stored(db)
        per_registration = outbox[first.json()["id"]]
        assert per_registration >= 1

        # every answered request is wholly there, under the id it was answered with
        for key, body in answered.items():
            assert keys.get(key) == body["id"], key
        # nothing is there in part: each registration has its key and all its outbox rows, each key its
        # registration, and no outbox row lacks its registration (the JOIN above would drop it: count them)
        assert set(keys.values()) == regs
        assert all(outbox[r] == per_registration for r in regs)
        assert sum(outbox.values()) == len(regs) * per_registration
        # what the process left beyond the answers were requests in flight at the kill, no more
        in_flight = set(keys) - set(answered) - {_key(0)}
        assert in_flight <= sent and len(in_flight) <= CONCURRENCY
        unanswered = sent - set(answered)
        stored_answers = _answers(db)
        assert unanswered  # the kill did cut requests off mid-flight

        gw.start()
        # re-sent with its key, an unanswered request is answered from what was stored or accepted afresh
        with httpx.Client(base_url=gw.url, timeout=15) as client:
            for key in sorted(unanswered):
                i = int(key.rsplit("-", 1)[1])
                r = client.post("/v1/registrations", json=_body(i), headers={**headers, "Idempotency-Key": key})
                assert r.status_code == 202, r.text
                if key in keys:  # stored before the kill: its answer, not a second registration
                    assert r.json() == stored_answers[key] and r.json()["id"] == keys[key]
            for key in sorted(answered)[:20]:  # an answered one replays its first answer
                i = int(key.rsplit("-", 1)[1])
                r = client.post("/v1/registrations", json=_body(i), headers={**headers, "Idempotency-Key": key})
                assert r.status_code == 202 and r.json() == answered[key]
    finally:
        gw.stop()

    keys, regs, outbox = _stored(db)
    assert set(keys) == sent | {_key(0)}  # every request sent is there, once
    assert len(regs) == len(keys) and set(keys.values()) == regs
    assert all(outbox[r] == per_registration for r in regs)
    conn = sqlite3.connect(db)
    try:  # never a domain registered twice
        dupes = conn.execute("SELECT domain, COUNT(*) FROM registrations WHERE order_ref LIKE 'ORD-G%' "
                             "GROUP BY domain HAVING COUNT(*) > 1").fetchall()
    finally:
        conn.close()
    assert dupes == []
    assert time.monotonic() - started < 240
