"""A registry that is down for a while (minutes in life, seconds here): every registration accepted meanwhile
is delivered exactly once after it returns, nothing is parked, and the attempts that never reached it are
logged as such (no fields, no values).  The registry's own frames are the witness."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import cast

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.store.base import DisclosureFilter
from tests.conftest import Tokens, body, running_gateway

N = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_registrations_during_an_outage_are_delivered_once_when_the_registry_returns(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    port = _free_port()  # where the registry will listen once it is back; nothing listens there yet
    down_registry = cast(SandboxThread, SimpleNamespace(port=port))  # the gateway's registry address, for now dead
    back = SandboxThread(pki=pki, port=port, client_id="registrar1", password="sandbox-pass-1", validate_schemas=True)
    try:
        async with running_gateway(tmp_path, pki, down_registry, tokens, breaker_failures=3,
                                   breaker_cooldown_s=0.3, backoff_base_s=0.05, backoff_max_s=0.3,
                                   epp_attempts=1) as gw:
            ids = []
            for i in range(N):
                r = await gw.post(body(domain=f"outage-{i}.se", order_ref=f"OUT-{i}"))
                assert r.status == 202, await r.text()
                ids.append((await r.json())["id"])
            await asyncio.sleep(2.0)  # the outage: attempts fail, the breaker opens and probes
            down = await gw.store.disclosures(DisclosureFilter(limit=1000))
            assert down and all(e.outcome == "failed" for e in down)
            assert all(e.fields == () and e.values_ct is None for e in down)  # nothing left, nothing stored
            back.start()  # the registry returns on the same address
            for reg_id in ids:
                reg = await gw.wait_status(reg_id, {"delivered", "failed"}, limit_s=20)
                assert reg["status"] == "delivered", reg
            entries = await gw.store.disclosures(DisclosureFilter(limit=1000))
            assert await gw.store.parked() == []
    finally:  # after the gateway closed its sessions, as a registry outlives its clients
        back.stop()
    assert back.sandbox.schema_errors == []
    assert sorted(back.sandbox.domains) == sorted(f"outage-{i}.se" for i in range(N))
    domain_creates = [f for f in back.sandbox.frames if b"<domain:create" in f]
    assert len(domain_creates) == N  # each sent once, after the registry returned
    delivered = [(e.registration_id, e.command) for e in entries if e.outcome == "delivered"]
    assert sorted(r for r, c in delivered if c == "domain:create") == sorted(ids)
    # one person: the registry holds their data in one contact (the later registrations point at it, even
    # while several of the person's rows are in flight at once), and that contact:create is logged once
    contact_entries = [r for r, c in delivered if c == "contact:create"]
    subject_creates = [f for f in back.sandbox.frames if b"<contact:create" in f and b"Andersson" in f]
    assert len(contact_entries) == len(subject_creates) == 1
