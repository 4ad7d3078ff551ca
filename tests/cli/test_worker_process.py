"""Delivery in ``gateway worker`` processes: the API (``GATEWAY_DELIVERY=external``) only accepts and wakes
them; a worker killed with ``kill -9`` mid-delivery is restarted by its supervisor and the delivery completes
with each command logged once; two workers on one SQLite file deliver every registration exactly once.

The API runs in the test's process (as ``gateway run`` builds it) and the registry is the TLS sandbox
thread, so the frames the workers sent are counted at the registry, not only in the gateway's log."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.cli.worker import READY, STOP_MARGIN_S, WorkerSupervisor
from tests.conftest import ROOT, Gateway, Tokens, body, running_gateway

pytestmark = pytest.mark.integration

#: the claim lease of these tests' workers: how long a killed worker's row waits before another takes it
LEASE_S = 1.0


def worker_env(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, **extra: str) -> dict[str, str]:
    """The settings ``running_gateway`` gives the API, as a worker process reads them."""
    var = tmp_path / "var"
    return {
        "GATEWAY_VAR_DIR": str(var), "GATEWAY_CONFIG_DIR": str(ROOT / "config"),
        "GATEWAY_PKI_DIR": str(pki.directory), "GATEWAY_SANDBOX_PORT": str(sandbox.port),
        "GATEWAY_TOKENS_FILE": str(var / "tokens.yaml"), "GATEWAY_WORKER_POLL_S": "0.05",
        "GATEWAY_BACKOFF_BASE_S": "0.05", "GATEWAY_BACKOFF_MAX_S": "0.2", "GATEWAY_EPP_TIMEOUT_S": "5",
        "GATEWAY_WORKER_LEASE_S": str(LEASE_S), "GATEWAY_WORKER_SHUTDOWN_GRACE_S": "1", **extra,
    }


async def wait_for(pred: Any, limit_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not await pred():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def status(gw: Gateway, reg_id: str) -> dict[str, Any]:
    r = await gw.client.get(f"/v1/registrations/{reg_id}", headers=gw.tokens.h("privacy"))
    data: dict[str, Any] = await r.json()
    return data


def delivered_commands(reg: dict[str, Any]) -> list[str]:
    return sorted(e["command"] for e in reg["disclosures"] if e["outcome"] == "delivered")


@contextlib.asynccontextmanager
async def supervised(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, **extra: str
) -> AsyncIterator[WorkerSupervisor]:
    sup = WorkerSupervisor(env=worker_env(tmp_path, pki, sandbox, **extra), stop_after_s=1 + STOP_MARGIN_S,
                           max_pause_s=1.0)
    await sup.start()
    try:
        yield sup
    finally:
        await sup.stop()


async def test_the_api_only_accepts_and_a_supervised_worker_process_delivers(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    async with running_gateway(tmp_path, pki, sandbox, tokens, delivery="external") as gw:
        # no worker yet: the API accepts, sends nothing and wakes nobody (no reader on the pipe)
        r = await gw.post(body(domain="worker-a.se"))
        assert r.status == 202, await r.text()
        first = (await r.json())["id"]
        await asyncio.sleep(0.5)
        assert (await status(gw, first))["status"] == "accepted"
        assert sandbox.sandbox.frames == []
        # a worker that looks for due rows on its own only every 10 s (polls, lease renewals, recovery)
        slow = {"GATEWAY_WORKER_POLL_S": "30", "GATEWAY_WORKER_LEASE_S": "30", "GATEWAY_WORKER_RECOVER_S": "30"}
        async with supervised(tmp_path, pki, sandbox, **slow) as sup:
            worker_pid = sup.pid
            assert worker_pid is not None and worker_pid != os.getpid()
            await wait_for(lambda: _is(gw, first, "delivered"))  # found at start-up
            # queued while the worker idles: woken through the pipe, long before it would look again
            loop = asyncio.get_running_loop()
            later = []
            for label in ("b", "c", "d"):
                r = await gw.post(body(domain=f"worker-{label}.se", order_ref=f"ORD-{label}"))
                reg_id, t0 = (await r.json())["id"], loop.time()
                await wait_for(lambda: _is(gw, reg_id, "delivered"), limit_s=15)
                assert loop.time() - t0 < 2.0
                later.append(reg_id)
            proc = sup.proc
        assert proc is not None and proc.returncode == 0  # SIGTERM: a clean, bounded stop
        for reg_id, domain in zip([first, *later], ["worker-a.se", "worker-b.se", "worker-c.se", "worker-d.se"],
                                  strict=True):
            reg = await status(gw, reg_id)
            assert "domain:create" in delivered_commands(reg)
            assert sum(1 for f in sandbox.sandbox.frames
                       if b"<domain:create" in f and domain.encode() in f) == 1
        assert sup.restarts == 0


async def _is(gw: Gateway, reg_id: str, want: str) -> bool:
    return (await status(gw, reg_id))["status"] == want


async def test_a_worker_killed_mid_delivery_is_restarted_and_logs_each_command_once(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    sb = sandbox.sandbox
    sb.faults.stall_seconds("domain:create", 120)  # the registry acts, then never answers the first worker
    async with running_gateway(tmp_path, pki, sandbox, tokens, delivery="external") as gw, \
            supervised(tmp_path, pki, sandbox) as sup:
        r = await gw.post(body(), key="worker-kill-0001")
        assert r.status == 202, await r.text()
        reg_id = (await r.json())["id"]

        async def registry_acted() -> bool:
            return "exempel.se" in sb.domains

        await wait_for(registry_acted)
        killed = sup.pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        sb.faults.clear()

        async def restarted() -> bool:
            return sup.restarts >= 1 and sup.pid != killed

        await wait_for(restarted, limit_s=60)  # a fresh interpreter: seconds on a busy machine
        await wait_for(lambda: _is(gw, reg_id, "delivered"), limit_s=30)
        reg = await status(gw, reg_id)
        assert delivered_commands(reg) == ["contact:create", "domain:create"]
        assert list(sb.domains) == ["exempel.se"]
        contact_creates = [f for f in sb.frames if b"<contact:create" in f and b"Andersson" in f]
        assert len(contact_creates) == 1  # recorded before domain:create went out: never sent again


async def test_two_worker_processes_on_one_sqlite_file_deliver_each_registration_once(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    n = 20
    async with running_gateway(tmp_path, pki, sandbox, tokens, delivery="external") as gw:
        procs, logs = [], []
        try:
            for i in range(2):
                log = tmp_path / f"worker{i}.log"
                logs.append(log)
                extra = {"GATEWAY_WORKER_HTTP_PORT": "0"} if i == 0 else {}
                with log.open("wb") as err:
                    procs.append(await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "gateway", "worker", stdout=asyncio.subprocess.PIPE, stderr=err,
                        env={**os.environ, **worker_env(tmp_path, pki, sandbox, **extra)},
                    ))
            ready = []
            for proc in procs:
                assert proc.stdout is not None
                ready.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode())
                assert ready[-1].startswith(READY), ready[-1]
            # the first one serves its liveness on a port of its own
            match = re.search(r"http://127\.0\.0\.1:(\d+)", ready[0])
            assert match is not None, ready[0]
            async with httpx.AsyncClient() as http:
                health = await http.get(f"http://127.0.0.1:{match[1]}/healthz", timeout=5)
                assert health.status_code == 200 and health.json()["status"] == "ok"
                assert (await http.get(f"http://127.0.0.1:{match[1]}/metrics", timeout=5)).status_code == 401

            ids = []
            for i in range(n):
                r = await gw.post(body(domain=f"two-workers-{i}.se", order_ref=f"TW-{i}"))
                assert r.status == 202, await r.text()
                ids.append((await r.json())["id"])

            async def all_delivered() -> bool:
                return all([await _is(gw, reg_id, "delivered") for reg_id in ids])

            await wait_for(all_delivered, limit_s=60)
        finally:
            for proc in procs:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(proc.wait(), 15) for proc in procs]
        assert codes == [0, 0]
        for i, reg_id in enumerate(ids):
            reg = await status(gw, reg_id)
            assert collections.Counter(
                e["command"] for e in reg["disclosures"] if e["outcome"] == "delivered"
            )["domain:create"] == 1
            domain = f"two-workers-{i}.se".encode()
            assert sum(1 for f in sandbox.sandbox.frames if b"<domain:create" in f and domain in f) == 1
        # both took part: each logged deliveries of its own
        per_worker = [log.read_text().count('"delivery.delivered"') for log in logs]
        assert sum(per_worker) >= n and all(count > 0 for count in per_worker), per_worker


def test_gateway_run_supervises_its_worker_process_and_stops_everything(tmp_path: Path) -> None:
    """The command itself: ``gateway run`` starts the sandbox, the API and one ``gateway worker``; a worker
    killed with ``kill -9`` is started again and delivers; SIGTERM stops all three, the worker cleanly."""
    var, port = tmp_path / "var", _free_port()
    env = {**os.environ, "GATEWAY_VAR_DIR": str(var), "GATEWAY_PORT": str(port), "GATEWAY_SANDBOX_PORT": "0",
           "GATEWAY_WORKER_POLL_S": "0.05", "GATEWAY_BACKOFF_BASE_S": "0.05", "GATEWAY_WORKER_LEASE_S": "1"}
    env.pop("GATEWAY_DELIVERY", None)
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "run"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(ln) for ln in proc.stdout or ()], daemon=True)
    reader.start()

    def next_worker_pid(limit_s: float = 60.0) -> int:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=0.2)
                if line.startswith(READY):
                    return int(line.split()[3].rstrip(","))
        raise AssertionError("no delivery worker line")

    base = f"http://127.0.0.1:{port}"
    try:
        first = next_worker_pid()
        assert first != proc.pid and _alive(first)
        ordering = (var / "dev-tokens" / "ordering").read_text().strip()
        privacy = {"Authorization": f"Bearer {(var / 'dev-tokens' / 'privacy').read_text().strip()}"}

        def deliver(domain: str) -> None:
            r = httpx.post(f"{base}/v1/registrations", json=body(domain=domain), timeout=30,
                           headers={"Authorization": f"Bearer {ordering}", "Idempotency-Key": domain})
            assert r.status_code == 202, r.text
            reg, state, deadline = r.json()["id"], None, time.monotonic() + 30
            while state != "delivered" and time.monotonic() < deadline:
                time.sleep(0.1)
                state = httpx.get(f"{base}/v1/registrations/{reg}", headers=privacy, timeout=30).json()["status"]
            assert state == "delivered"

        deliver("run-worker-1.se")
        os.kill(first, signal.SIGKILL)
        second = next_worker_pid(30)
        assert second != first
        deliver("run-worker-2.se")
        sandbox_pid = int(json.loads((var / "sandbox" / "sandbox.pid").read_text())["pid"])
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not _alive(second) and not _alive(sandbox_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        proc.stdout.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
