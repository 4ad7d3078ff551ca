"""``gateway run`` starts the registry sandbox as a process of its own: a ``kill -9`` of the gateway leaves
the registry running with what it confirmed, the next ``gateway run`` adopts it, a clean stop ends it."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from adapters.epp.client import find_domain
from adapters.epp.tls import ensure_dev_pki
from adapters.epp.types import Endpoint
from tests.conftest import ROOT, VALID_BODY

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_gateway(var: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    env = {**os.environ, "GATEWAY_VAR_DIR": str(var), "GATEWAY_PORT": str(port), "GATEWAY_SANDBOX_PORT": "0",
           "GATEWAY_WORKER_POLL_S": "0.05", "GATEWAY_BACKOFF_BASE_S": "0.05"}
    proc = subprocess.Popen([sys.executable, "-m", "gateway", "run"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline and not any(ln.startswith("gateway: http://") for ln in lines):
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
    if not any(ln.startswith("gateway: http://") for ln in lines):
        proc.kill()
        proc.wait()
        pytest.fail("gateway run did not start: " + "".join(lines))
    return proc, lines


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # an exited child of a dead parent is reaped by init; a zombie still answers kill(0)
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def wait_gone(pid: int, limit_s: float = 15.0) -> bool:
    deadline = time.monotonic() + limit_s
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)


def test_the_sandbox_outlives_a_kill_9_of_the_gateway(tmp_path: Path) -> None:
    var = tmp_path / "var"
    port = free_port()
    gateway, lines = run_gateway(var, port)
    sandbox_pid = None
    try:
        recorded = json.loads((var / "sandbox" / "sandbox.pid").read_text())
        sandbox_pid, epp_port = int(recorded["pid"]), int(recorded["port"])
        assert sandbox_pid != gateway.pid and any(f"pid {sandbox_pid}, started" in ln for ln in lines), lines
        assert os.getpgid(sandbox_pid) == sandbox_pid  # its own process group: a signal to ours misses it
        token = (var / "dev-tokens" / "ordering").read_text().strip()
        privacy = (var / "dev-tokens" / "privacy").read_text().strip()
        base = f"http://127.0.0.1:{port}"
        r = httpx.post(f"{base}/v1/registrations", json=VALID_BODY, timeout=30,
                       headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "run-sandbox-0001"})
        assert r.status_code == 202, r.text
        reg = r.json()["id"]
        status, deadline = None, time.monotonic() + 30
        while status != "delivered" and time.monotonic() < deadline:
            time.sleep(0.1)
            status = httpx.get(f"{base}/v1/registrations/{reg}", timeout=30,
                               headers={"Authorization": f"Bearer {privacy}"}).json()["status"]
        assert status == "delivered"

        gateway.send_signal(signal.SIGKILL)
        gateway.wait(timeout=10)
        time.sleep(0.3)
        assert alive(sandbox_pid)  # the registry did not die with the gateway
        pki = ensure_dev_pki(var / "pki")
        ep = Endpoint("127.0.0.1", epp_port, "registrar1", "sandbox-pass-1", str(pki.ca_cert), str(pki.client_cert),
                      str(pki.client_key), "localhost", 10)
        assert asyncio.run(find_domain(ep, VALID_BODY["domain"], "after-kill")) is not None

        # the next run adopts it (same pid, same port) and a clean stop ends it
        again, lines = run_gateway(var, port)
        try:
            assert any(f"pid {sandbox_pid}, still running" in ln for ln in lines), lines
        finally:
            again.send_signal(signal.SIGINT)
            assert again.wait(timeout=30) == 0
            if again.stdout is not None:
                again.stdout.close()
        assert wait_gone(sandbox_pid)
        assert not (var / "sandbox" / "sandbox.pid").exists()
        assert (var / "sandbox" / "objects.json").is_file()
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
        if gateway.stdout is not None:
            gateway.stdout.close()
        if sandbox_pid is not None and alive(sandbox_pid):
            os.killpg(sandbox_pid, signal.SIGKILL)
