"""``gateway outbox parked|retry|cancel|history`` as a real subprocess, on the store of a running gateway
whose registry (the EPP sandbox) refused two registrations for good: the operator lists them, retries one
(the gateway's worker delivers it), cancels the other, and reads back who did what."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, Gateway
from tests.http.test_parked import db_of, refused_registration

pytestmark = pytest.mark.integration


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", "outbox", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env={**os.environ, **env}, check=False)


def _one_line_failure(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.lstrip().startswith("{")]  # JSON logs
    assert len(lines) == 1, r.stderr
    return lines[0]


async def test_operator_lists_retries_and_cancels_parked_rows(tmp_path: Path, gateway: Gateway) -> None:
    db = db_of(gateway)
    first = await refused_registration(gateway, "parkerad-ett.se", db)
    second = await refused_registration(gateway, "parkerad-tva.se", db)
    env = {"GATEWAY_VAR_DIR": str(tmp_path / "var"), "GATEWAY_DATABASE_URL": "", "GATEWAY_DB_PATH": str(db)}

    r = _run("parked", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "iis-se: 2 parked" and lines[-1] == "2 parked rows"
    assert first in lines[1] and second in lines[2] and "2306" in lines[1]
    assert "Anna" not in r.stdout and "Storgatan" not in r.stdout
    r = _run("parked", "--json", "--recipient", "iis-se", env=env)
    rows = json.loads(r.stdout)
    assert [row["registration_id"] for row in rows] == [first, second]
    one, two = rows[0]["id"], rows[1]["id"]
    assert _run("parked", "--recipient", "eurid", env=env).stdout.splitlines() == ["0 parked rows"]

    r = _run("retry", str(one), "--actor", "ops-anna", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"row {one}: queued again, due now (logged as ops-anna)"
    assert (await gateway.wait_status(first, {"delivered"}))["status"] == "delivered"  # the worker's next poll
    assert "not parked" in _one_line_failure(_run("retry", str(one), env=env))
    assert _one_line_failure(_run("cancel", "999999", env=env)) == "error: No such outbox row: no outbox row 999999"
    bad = _run("cancel", "abc", env=env)
    assert bad.returncode == 2 and "whole number" in bad.stderr

    r = _run("cancel", str(two), env=env)
    assert r.returncode == 0, r.stderr
    me = f"cli:{getpass.getuser()}"
    assert r.stdout.strip() == f"row {two}: cancelled (logged as {me})"
    assert (await gateway.wait_status(second, {"failed"}))["deliveries"][0]["state"] == "cancelled"

    history = json.loads(_run("history", "--json", env=env).stdout)
    assert [(h["action"], h["row_id"], h["actor"], h["registration_id"]) for h in history] == [
        ("cancel", two, me, second), ("retry", one, "ops-anna", first)]
    text = _run("history", env=env).stdout.splitlines()
    assert text[-1] == "2 actions" and "by ops-anna" in text[1]
    assert _run("parked", env=env).stdout.splitlines() == ["0 parked rows"]
