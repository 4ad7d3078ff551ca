"""Key rotation while the gateway runs cannot destroy data (the issue: ``gateway keys rotate --retire-old``
beside a running process that kept the retired key, wrapped a new subject's data key with it, and after a
restart answered 500 ``decryption_failed`` for that subject forever).

Two gateway instances on one SQLite file and one ring file take registrations (each a new subject, so a new
data key is wrapped) while ``gateway keys rotate --retire-old`` runs as its own process.  The second instance
takes requests only (no delivery worker, so it reads no data key) and has no periodic watcher: only its
check of the ring file before each wrap keeps it off the retired key.  Then both stop, a
third starts on the same files, and every subject's disclosed values are read back, decrypted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.http.context import SERVICES
from gateway.ledger.keys import KeyRing
from gateway.store.base import DisclosureFilter
from tests.conftest import ROOT, Gateway, Tokens, body, running_gateway
from tests.identity.conftest import pnr

pytestmark = pytest.mark.integration

MAX_REGISTRATIONS = 400  # bounds the producer whatever the rotation's speed
AFTER_ROTATION = 8  # registrations sent once the old key is gone, half through each instance


def order(i: int) -> dict[str, Any]:
    data = body(domain=f"rot-{i}.se", order_ref=f"ORD-ROT-{i}")
    data["registrant"] = dict(data["registrant"], national_id={"scheme": "se_personnummer", "value": pnr(i)},
                              email=f"holder{i}@example.se")
    return data


async def rotate_retire(var: Path) -> tuple[int, str, str]:
    """``gateway keys rotate --retire-old`` as the operator runs it: another process, the real CLI."""
    env = {**os.environ, "GATEWAY_VAR_DIR": str(var), "GATEWAY_TOKENS_FILE": str(var / "tokens.yaml")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "keys", "rotate", "--retire-old", "--grace", "1", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_rotate_and_retire_while_two_instances_register_then_read_every_subject_back(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens,
) -> None:
    var = tmp_path / "var"
    accepted: dict[str, int] = {}  # registration id -> index
    during: list[int] = []
    after_rotation: list[int] = []
    failures: list[tuple[int, int, str]] = []
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(running_gateway(tmp_path, pki, sandbox, tokens, key_ring_watch_s=0.2))
        # an API-only instance without a watcher: nothing it does reads a data key, so nothing but its check
        # before each wrap can tell it that the ring changed
        second = await stack.enter_async_context(running_gateway(tmp_path, pki, sandbox, tokens, key_ring_watch_s=0,
                                                                 worker_enabled=False))
        instances = (first, second)
        old = KeyRing.from_file(var / "keys" / "kek.json")
        assert all(gw.client.app[SERVICES].ledger.ring == old for gw in instances)
        rotating = asyncio.Event()
        rotated = asyncio.Event()

        async def produce() -> None:
            for i in range(MAX_REGISTRATIONS):
                r = await instances[i % 2].post(order(i), key=f"rotation-{i:04d}")
                if r.status != 202:
                    failures.append((i, r.status, (await r.text())[:200]))
                else:
                    accepted[(await r.json())["id"]] = i
                    if rotating.is_set() and not rotated.is_set():
                        during.append(i)
                if i == 6:
                    rotating.set()
                if rotated.is_set():
                    after_rotation.append(i)
                    if len(after_rotation) >= AFTER_ROTATION:
                        return
                await asyncio.sleep(0.05)

        producer = asyncio.create_task(produce())
        await asyncio.wait_for(rotating.wait(), timeout=60)
        code, out, err = await rotate_retire(var)
        rotated.set()
        await asyncio.wait_for(producer, timeout=120)
        assert code == 0, err
        assert "retired" in out and failures == []
        assert during, "no registration was accepted while the rotation ran"
        assert len(after_rotation) == AFTER_ROTATION, "the producer ran out before the rotation ended"
        ring = KeyRing.from_file(var / "keys" / "kek.json")
        assert ring.keys.keys() == {ring.active} and ring.active != old.active
        # the instance without a watcher wrapped under the file's key, never the retired one
        assert second.client.app[SERVICES].ledger.ring.active == ring.active
        for reg_id in accepted:
            got = await first.wait_status(reg_id, {"delivered", "failed", "blocked"}, limit_s=60)
            assert got["status"] == "delivered", got
        counts = await first.store.wrapped_key_counts()
        assert counts == {ring.active: len(accepted)}, "a data key is wrapped with a key no longer in the ring"

    # restart: a fresh instance with only the new key reads every subject's values back
    async with running_gateway(tmp_path, pki, sandbox, tokens) as restarted:
        await read_every_subject_back(restarted, set(accepted))


async def read_every_subject_back(gw: Gateway, reg_ids: set[str]) -> None:
    subjects: set[str] = set()
    read = 0
    async for entry in gw.store.iter_disclosures(DisclosureFilter()):
        if entry.values_ct is None:
            continue
        r = await gw.client.get(f"/v1/disclosures/{entry.id}", headers=gw.tokens.h("privacy"))
        assert r.status == 200, await r.text()  # never 500 decryption_failed
        data = await r.json()
        assert data["values"] and data["values_erased"] is False
        assert entry.subject_id is not None
        subjects.add(entry.subject_id)
        read += 1
    expected = set()
    for reg_id in reg_ids:
        row = await gw.store.registration(reg_id)
        assert row is not None
        expected.add(row["subject_id"])
    assert len(expected) == len(reg_ids) and subjects >= expected and read >= len(reg_ids)


async def test_a_registration_is_refused_not_stored_when_the_ring_file_cannot_be_read(gateway: Gateway) -> None:
    ledger = gateway.client.app[SERVICES].ledger
    assert ledger.ring_file is not None
    path = ledger.ring_file.path
    before = await gateway.store.wrapped_key_counts()
    os.chmod(path, 0o644)
    try:
        r = await gateway.post(order(90001), key="ring-unreadable")
        assert r.status == 503, await r.text()
        assert (await r.json())["code"] == "key_ring_unavailable"
        assert await gateway.store.wrapped_key_counts() == before
    finally:
        os.chmod(path, 0o600)
    r = await gateway.post(order(90001), key="ring-unreadable")  # the same key may be retried: nothing was kept
    assert r.status == 202, await r.text()
