"""kill -9 of a real gateway process between a registry notice's effect and its acknowledgement.

The notice is an expiry (the sandbox's registry-initiated ``expire_domain``).  The sandbox takes the
gateway's ``<poll op="ack">`` without applying it and stalls its answer, so the gateway is killed with the
effect committed and the message still queued at the registry: the instant where a notice could be
applied twice (re-read after the restart) or lost (acknowledged but never recorded).  After the restart
it must be read again, applied zero more times, and acknowledged.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.epp.sandbox.objects import Outcome
from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from tests.conftest import VALID_BODY, Tokens, running_sandbox
from tests.test_crash_recovery import GatewayProcess, _assert_no_personal_data, _wait

pytestmark = pytest.mark.integration


@pytest.fixture
def sandbox_thread(pki: DevPki) -> Iterator[SandboxThread]:
    with running_sandbox(pki) as sb:
        yield sb


class AckHeld:
    """While armed, the sandbox receives a ``<poll op="ack">`` without applying it and stalls its answer (a
    registry that hangs before acting on the ack); ``seen`` is set when one arrived.  Other poll requests
    are answered as usual.  (The sandbox's ``Faults`` address commands by type, and ``poll`` is both the
    request and the ack: this holds only the ack.)"""

    def __init__(self, sandbox_thread: SandboxThread) -> None:
        self.sandbox = sandbox_thread.sandbox
        self.real = self.sandbox.poll
        self.seen = threading.Event()
        self.acks: list[str | None] = []

    def __enter__(self) -> AckHeld:
        def poll(op: str, msg_id: str | None, client_id: str) -> Outcome:
            if op == "ack":
                self.acks.append(msg_id)
                self.sandbox.faults.stall_seconds("poll", 30)  # taken for this answer, right after we return
                self.seen.set()
                return Outcome(2400)  # never seen: the gateway is killed during the stall
            return self.real(op, msg_id, client_id)

        self.sandbox.poll = poll  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.sandbox.poll = self.real  # type: ignore[method-assign]
        self.sandbox.faults.clear()


def _registration(gw: GatewayProcess, tokens: Tokens, reg_id: str) -> dict[str, Any]:
    r = httpx.get(f"{gw.url}/v1/registrations/{reg_id}", headers=tokens.h("privacy"), timeout=5)
    assert r.status_code == 200
    data: dict[str, Any] = r.json()
    return data


def test_kill9_between_a_notices_effect_and_its_ack_applies_it_once(
    tmp_path: Path, pki: DevPki, sandbox_thread: SandboxThread, tokens: Tokens
) -> None:
    sb = sandbox_thread.sandbox
    gw = GatewayProcess(tmp_path, pki, sandbox_thread.port, tokens)
    # poll often; a long EPP timeout, so the gateway is still waiting for the held ack when it is killed
    gw.env |= {"GATEWAY_POLL_INTERVAL_S": "0.2", "GATEWAY_EPP_TIMEOUT_S": "20"}
    gw.start()
    try:
        r = httpx.post(f"{gw.url}/v1/registrations", json=VALID_BODY, timeout=10,
                       headers=tokens.h("ordering") | {"Idempotency-Key": "poll-crash-0001"})
        assert r.status_code == 202, r.text
        reg_id = r.json()["id"]
        _wait(lambda: _registration(gw, tokens, reg_id)["status"] == "delivered")
        [holder] = [e["objects"]["contact"] for e in _registration(gw, tokens, reg_id)["disclosures"]
                    if e["command"] == "contact:create"]

        with AckHeld(sandbox_thread) as held:
            sb.expire_domain("exempel.se")
            [message] = sb.poll_queues["registrar1"]
            assert held.seen.wait(20), "the gateway never acknowledged the notice"
            # the ack is sent only once the effect is durable: it is there, in the running gateway
            before = _registration(gw, tokens, reg_id)
            gw.kill9()
        assert held.acks == [message["id"]]
        assert [e["kind"] for e in before["events"] if e["source"] == "registry"] == ["expired"]
        assert before["end_reason"] == "expired"
        assert sb.poll_queues["registrar1"] == [message]  # not acknowledged: the registry still has it

        gw.start()
        _wait(lambda: sb.poll_queues["registrar1"] == [])  # read again and acknowledged now
        after = _registration(gw, tokens, reg_id)
        _wait(lambda: all(d["state"] == "done" for d in _registration(gw, tokens, reg_id)["deliveries"]))
        after = _registration(gw, tokens, reg_id)
        # applied once: one event, the end as first recorded, one release row, the contact deleted once
        assert [e["kind"] for e in after["events"] if e["source"] == "registry"] == ["expired"]
        assert (after["ended_at"], after["end_reason"]) == (before["ended_at"], "expired")
        assert len([d for d in after["deliveries"] if d["recipient"] == "iis-se"]) == 2  # registration + release
        deletes = [e for e in after["disclosures"] if e["command"] == "contact:delete"]
        assert [(e["objects"].get("contact"), e["outcome"]) for e in deletes] == [(holder, "deleted")]
        assert sb.find_contact(holder) is None
        log = gw.log.read_text()
        assert "poll.duplicate" in log and "poll.applied" in log
        _assert_no_personal_data(log)
    finally:
        gw.stop()
