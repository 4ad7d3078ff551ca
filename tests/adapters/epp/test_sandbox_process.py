"""The sandbox registry as its own process: what it confirmed survives a ``kill -9``, and its state file
holds every object shape (contact pairs, poll messages with their resData) as the registry had it."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from adapters.epp.client import EppClient, find_domain, register
from adapters.epp.sandbox import DEFAULT_PASSWORD, RegistrySandbox
from adapters.epp.sandbox.objects import ObjectStore
from adapters.epp.sandbox.persist import STATE_FILE, PersistentSandbox, restore, snapshot
from adapters.epp.tls import DevPki, ensure_dev_pki
from adapters.epp.types import ContactInfoQuery, DomainTransfer, Endpoint, PollRequest
from gateway.errors import PermanentDeliveryError
from gateway.settings import Settings
from tests.adapters.epp.test_client_sandbox import commands
from tests.adapters.epp.test_xml import sample_contact

pytestmark = pytest.mark.integration


def start(
    tmp_path: Path, state_dir: Path, *extra: str, module: str = "adapters.epp.sandbox"
) -> tuple[subprocess.Popen[str], int]:
    """``python -m adapters.epp.sandbox`` with a state directory; returns once it listens (at most 30 s)."""
    env = {k: v for k, v in os.environ.items() if k not in ("GATEWAY_SANDBOX_PASSWORD", "GATEWAY_REGISTRAR_PASSWORD")}
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--port", "0", "--pki-dir", str(tmp_path / "pki"),
         "--state-dir", str(state_dir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
    )
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout=30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("EPP sandbox listening on 127.0.0.1:"):
        proc.kill()
        proc.wait()
        pytest.fail(f"sandbox did not start: {line!r}")
    return proc, int(line.rsplit(":", 1)[1])


def endpoint(pki: DevPki, port: int) -> Endpoint:
    # no password given anywhere: the sandbox's default must be the gateway's
    return Endpoint(host="127.0.0.1", port=port, client_id="registrar1", password=Settings().registrar_password,
                    ca_file=str(pki.ca_cert), cert_file=str(pki.client_cert), key_file=str(pki.client_key),
                    server_name="localhost", timeout_s=10)


def kill_9(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_the_sandbox_password_is_the_gateways() -> None:
    assert DEFAULT_PASSWORD == Settings.model_fields["registrar_password"].default


def test_python_m_gateway_sandbox_logs_in_with_the_gateways_defaults(tmp_path: Path) -> None:
    """The name the issue used: started with defaults, the gateway's default endpoint logs in (no 2200)."""
    proc, port = start(tmp_path, tmp_path / "state", module="gateway.sandbox")
    pki = ensure_dev_pki(tmp_path / "pki")
    try:
        async def hello() -> int:
            async with EppClient(endpoint(pki, port)) as client:
                return (await client.send(sample_contact("RGDEFAULT"), "t-default")).code

        assert asyncio.run(hello()) == 1000
    finally:
        kill_9(proc)


def test_a_contact_outlives_kill_9_of_the_registry(tmp_path: Path) -> None:
    state = tmp_path / "state"
    proc, port = start(tmp_path, state)
    pki = ensure_dev_pki(tmp_path / "pki")
    try:
        async def create() -> int:
            async with EppClient(endpoint(pki, port)) as client:
                return (await client.send(sample_contact("RGKILL9"), "t-create")).code

        assert asyncio.run(create()) == 1000
    finally:
        kill_9(proc)  # no chance to flush anything: what is on disk is what was saved before the answer
    assert json.loads((state / STATE_FILE).read_text())["contacts"]["RGKILL9"]["email"] == "anna@example.se"

    proc, port = start(tmp_path, state)
    try:
        async def info() -> tuple[str, str | None]:
            async with EppClient(endpoint(pki, port)) as client:
                found = await client.send(ContactInfoQuery("RGKILL9"), "t-info")
                with pytest.raises(PermanentDeliveryError) as again:
                    await client.send(sample_contact("RGKILL9"), "t-again")
                return found.id, str(again.value.result_code)

        assert asyncio.run(info()) == ("RGKILL9", "2302")  # found, and still there for a duplicate create
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def test_without_a_state_dir_nothing_is_written(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "adapters.epp.sandbox", "--help"], stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=30)
    assert "--state-dir" in out and "in memory only" in out


async def test_snapshot_keeps_every_shape(pki: DevPki, tmp_path: Path) -> None:
    """Domains with (type, id) contact pairs, a pending transfer and the poll message it queued (with
    its resData element) come back equal, and the counters go on where they stopped."""
    async with PersistentSandbox(pki=pki, accounts={"registrar2": "second-pass-2"}, state_dir=tmp_path) as sb:
        assert (await register(sb.endpoint(), commands("exempel.se", "RGSNAP1"), "snap")).domain_result.code == 1000
        async with EppClient(sb.endpoint(client_id="registrar2")) as other:
            auth = sb.domains["exempel.se"]["auth_pw"]
            result = await other.send(DomainTransfer(name="exempel.se", op="request", auth_pw=auth), "t-trn")
            assert result.result.code == 1001
        saved = sb.saves
        assert saved >= 3  # contact, domain, transfer: each saved before its answer
        assert sb.schema_errors == []
        before = snapshot(sb)

    data = json.loads((tmp_path / STATE_FILE).read_text())
    restored = ObjectStore()
    restore(restored, data)
    original = RegistrySandbox(pki=pki)
    restore(original, before)
    assert restored.domains == original.domains
    assert all(isinstance(pair, tuple) for pair in restored.domains["exempel.se"]["contacts"])
    [message] = restored.poll_queues["registrar1"]
    assert isinstance(message["res_data"], etree._Element)
    assert etree.QName(message["res_data"]).localname == "trnData"
    # numbering goes on: a new object gets a fresh roid, a new message a fresh id
    roids = {c["roid"] for c in restored.contacts.values()} | {d["roid"] for d in restored.domains.values()}
    assert restored._roid("C") not in roids
    assert int(next(restored._msg_ids)) > int(message["id"])

    # and a registry started on that directory answers from it
    async with PersistentSandbox(pki=pki, state_dir=tmp_path) as again:
        assert await find_domain(again.endpoint(), "exempel.se", "t-find") is not None
        async with EppClient(again.endpoint()) as client:
            polled = await client.send(PollRequest(), "t-poll")
            assert polled.result.code == 1301 and polled.count == 1


def test_a_state_file_of_another_format_is_refused(tmp_path: Path, pki: DevPki) -> None:
    (tmp_path / STATE_FILE).write_text(json.dumps({"format": 99}))
    with pytest.raises(ValueError, match="format 99"):
        PersistentSandbox(pki=pki, state_dir=tmp_path)
