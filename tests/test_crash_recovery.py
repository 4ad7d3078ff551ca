"""kill -9 of a real gateway process mid-delivery, then restart: exactly one domain, one delivered entry.

The sandbox applies the command and then stalls before answering, so the gateway dies after the
registry acted but before it learned the result: the hardest instant for "never twice, never lost".
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from tests.conftest import ROOT, VALID_BODY, Tokens, running_sandbox, write_tokens

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    def __init__(self, tmp: Path, pki: DevPki, sandbox_port: int, tokens: Tokens) -> None:
        self.port = _free_port()
        var = tmp / "var"
        var.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_VAR_DIR": str(var),
            "GATEWAY_CONFIG_DIR": str(ROOT / "config"),
            "GATEWAY_PKI_DIR": str(pki.directory),
            "GATEWAY_SANDBOX_PORT": str(sandbox_port),
            "GATEWAY_TOKENS_FILE": str(write_tokens(var / "tokens.yaml", tokens)),
            "GATEWAY_WORKER_POLL_S": "0.05",
            "GATEWAY_BACKOFF_BASE_S": "0.05",
            "GATEWAY_BACKOFF_MAX_S": "0.2",
            "GATEWAY_EPP_TIMEOUT_S": "2",
            "GATEWAY_EPP_ATTEMPTS": "1",
            "GATEWAY_WORKER_LEASE_S": "1",
        }
        self.log = tmp / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve"], env=self.env, stdout=log, stderr=log, cwd=ROOT
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("gateway did not start: " + self.log.read_text()[-2000:])

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def sandbox_thread(pki: DevPki) -> Iterator[SandboxThread]:
    with running_sandbox(pki) as sb:
        yield sb


def _wait(pred: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize("stalled_command", ["contact:create", "domain:create"])
def test_kill9_mid_delivery_then_restart_delivers_exactly_once(
    tmp_path: Path, pki: DevPki, sandbox_thread: SandboxThread, tokens: Tokens, stalled_command: str
) -> None:
    sb = sandbox_thread.sandbox
    sb.faults.stall_seconds(stalled_command, 120)
    gw = GatewayProcess(tmp_path, pki, sandbox_thread.port, tokens)
    gw.start()
    try:
        r = httpx.post(f"{gw.url}/v1/registrations", json=VALID_BODY, timeout=10,
                       headers=tokens_header(tokens) | {"Idempotency-Key": "crash-test-0001"})
        assert r.status_code == 202, r.text
        reg_id = r.json()["id"]
        if stalled_command == "domain:create":
            _wait(lambda: "exempel.se" in sb.domains)  # the registry has acted...
        else:
            _wait(lambda: len(sb.contacts) >= 1)
        gw.kill9()  # ...and the gateway dies before it hears the answer
        sb.faults.clear()

        gw.start()
        _wait(lambda: _status(gw, tokens, reg_id) == "delivered", timeout=30)
        reg = httpx.get(f"{gw.url}/v1/registrations/{reg_id}", headers=privacy_header(tokens)).json()
        # the log's unit is the command: the subject's contact:create and the domain:create, each once,
        # whichever of them the kill interrupted (a step recorded before the kill is not sent again)
        delivered = sorted(e["command"] for e in reg["disclosures"] if e["outcome"] == "delivered")
        assert delivered == ["contact:create", "domain:create"]
        assert list(sb.domains) == ["exempel.se"]
        contact_creates = [f for f in sb.frames if b"<contact:create" in f and b"Andersson" in f]
        if stalled_command == "domain:create":  # recorded before domain:create went out: never re-sent
            assert len(contact_creates) == 1
        # the replayed request after restart is still answered from the idempotency record
        again = httpx.post(f"{gw.url}/v1/registrations", json=VALID_BODY, timeout=10,
                           headers=tokens_header(tokens) | {"Idempotency-Key": "crash-test-0001"})
        assert again.status_code == 202 and again.json()["id"] == reg_id
        time.sleep(0.3)
        reg = httpx.get(f"{gw.url}/v1/registrations/{reg_id}", headers=privacy_header(tokens)).json()
        assert len([e for e in reg["disclosures"] if e["outcome"] == "delivered"]) == 2
    finally:
        gw.stop()
    _assert_no_personal_data(gw.log.read_text())


PII = ("Anna", "Andersson", "anna.andersson", "Storgatan", "811218", "9876", "123 456", "12345678")


#: Machine-made values that may contain a PII fragment's digits by chance: timestamps, durations, request ids
#: and other hex ids (with at least one letter, so a leaked all-digit number is still seen).
_NOISE = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z?|\b(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b")


def _without_noise(text: str) -> str:
    out = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):  # keep the text a line carries, not its numbers and timings
            line = " ".join(f"{k}={v}" for k, v in record.items()
                            if isinstance(v, str) and k not in ("timestamp", "request_id"))
        out.append(_NOISE.sub(" ", line))
    return "\n".join(out)


def _assert_no_personal_data(text: str) -> None:
    assert "delivery.delivered" in text  # the log is not empty: it has the worker's lines
    text = _without_noise(text)
    for value in PII:
        assert value not in text, value


def test_the_log_check_sees_personal_data_and_not_timestamps() -> None:
    noise = ('{"event": "delivery.delivered", "timestamp": "2026-11-30T00:37:25.449876Z", "duration_ms": 12.345678,'
             ' "request_id": "272af23bf661fdfa9876", "registration": "9876abcdef0123456789"}')
    _assert_no_personal_data(noise)
    for leak in ("19811218-9876", "198112189876", "Anna Andersson", "+46 8 123 456 78"):
        with pytest.raises(AssertionError):
            _assert_no_personal_data(noise + "\n" + json.dumps({"event": "x", "detail": leak}))


def test_kill9_right_after_accept_loses_nothing(
    tmp_path: Path, pki: DevPki, sandbox_thread: SandboxThread, tokens: Tokens
) -> None:
    """The registry stalls the login, so the gateway dies holding an accepted, unsent registration."""
    sb = sandbox_thread.sandbox
    sb.faults.stall_seconds("login", 120)
    gw = GatewayProcess(tmp_path, pki, sandbox_thread.port, tokens)
    gw.start()
    try:
        r = httpx.post(f"{gw.url}/v1/registrations", json=VALID_BODY, timeout=10,
                       headers=tokens_header(tokens) | {"Idempotency-Key": "crash-test-0002"})
        assert r.status_code == 202
        reg_id = r.json()["id"]
        gw.kill9()
        assert sb.domains == {}
        sb.faults.clear()
        gw.start()
        _wait(lambda: _status(gw, tokens, reg_id) == "delivered", timeout=30)
        assert list(sb.domains) == ["exempel.se"]
    finally:
        gw.stop()


def tokens_header(tokens: Tokens) -> dict[str, str]:
    return tokens.h("ordering")


def privacy_header(tokens: Tokens) -> dict[str, str]:
    return tokens.h("privacy")


def _status(gw: GatewayProcess, tokens: Tokens, reg_id: str) -> str:
    r = httpx.get(f"{gw.url}/v1/registrations/{reg_id}", headers=privacy_header(tokens), timeout=5)
    return str(r.json()["status"])
