"""``gateway accounts …`` as a real subprocess: the first admin on a fresh install, then that admin logs in
to a running gateway on the same store; the other commands, and their one-line refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from tests.conftest import ROOT, Tokens, running_gateway
from tests.web.conftest import login

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "the first admin's password"


def _run(*args: str, var: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_VAR_DIR": str(var), "GATEWAY_DATABASE_URL": ""}
    env.pop("GATEWAY_DB_PATH", None)  # the store ``running_gateway`` uses: var/gateway.sqlite3
    return subprocess.run([sys.executable, "-m", "gateway", "accounts", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env=env, input=stdin, check=False)


def _ok(*args: str, var: Path, stdin: str | None = None) -> str:
    r = _run(*args, var=var, stdin=stdin)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stdout.strip()


def _failure(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.lstrip().startswith("{")]
    assert len(lines) == 1, r.stderr
    return lines[0]


async def test_first_admin_then_log_in_and_manage_accounts(
    tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens
) -> None:
    var = tmp_path / "var"
    r = _run("create-admin", "Anna", "--display-name", "Anna Berg", "--lang", "en", "--password-stdin", var=var,
             stdin=ADMIN_PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "admin account anna (privacy) is ready: log in at /ui/login"
    assert ADMIN_PASSWORD not in r.stdout + r.stderr

    # a second first admin is refused; --force is the way back in
    assert "an admin account exists already" in _failure(
        _run("create-admin", "bo", "--password-stdin", var=var, stdin=ADMIN_PASSWORD + "\n"))
    assert "password must be 12" in _failure(_run("add", "bo", "--role", "auditor", "--password-stdin", var=var,
                                                  stdin="short\n"))
    assert "no terminal" in _failure(_run("passwd", "anna", var=var, stdin=""))  # stdin is no terminal here
    r = _run("add", "bo", "--role", "auditor", "--password-stdin", var=var, stdin="bo's long password\n")
    assert r.returncode == 0 and r.stdout.strip() == "account bo (auditor) added", r.stderr
    assert "taken" in _failure(_run("add", "bo", "--role", "privacy", "--no-password", var=var))
    assert _run("add", "sso", "--role", "privacy", "--no-password", var=var).returncode == 0
    assert _run("link-oidc", "sso", "idp-subject-1", var=var).returncode == 0

    async with running_gateway(tmp_path, pki, sandbox, tokens) as gw:
        r = await login(gw.client, "anna", password=ADMIN_PASSWORD)
        assert r.status == 303
        page = await gw.client.get("/ui/accounts")
        assert page.status == 200 and 'data-name="bo"' in await page.text()
        other = gw.client.session.cookie_jar
        anna = other.filter_cookies(gw.client.make_url("/ui/"))["rg_session"].value
        other.clear()
        assert (await login(gw.client, "bo", password="bo's long password")).status == 303

        r = _run("list", "--json", var=var)
        listed = {a["name"]: a for a in json.loads(r.stdout)}
        assert listed["anna"]["admin"] and listed["anna"]["live_sessions"] == 1 and listed["bo"]["live_sessions"] == 1
        assert listed["sso"]["oidc_linked"] and not listed["sso"]["password"]
        assert all("hash" not in k and "subject" not in k for a in listed.values() for k in a)
        text = _run("list", var=var).stdout
        assert text.splitlines()[-1] == "3 accounts" and "idp-subject-1" not in text

        assert _ok("revoke-sessions", "bo", var=var) == "1 session of bo ended"
        assert (await gw.client.get("/ui/disclosures", allow_redirects=False)).status == 303  # bo's, ended
        assert (await login(gw.client, "bo", password="bo's long password")).status == 303
        assert _ok("disable", "bo", var=var) == "account bo disabled; its sessions ended"
        assert (await gw.client.get("/ui/disclosures", allow_redirects=False)).status == 303
        assert (await login(gw.client, "bo", password="bo's long password")).status == 401
        assert _run("enable", "bo", var=var).returncode == 0
        assert _ok("passwd", "bo", "--password-stdin", var=var,
                   stdin="bo's newer password\n") == "password of bo set; its sessions ended"
        assert (await login(gw.client, "bo", password="bo's newer password")).status == 303
        assert (await gw.client.get("/ui/accounts", cookies={"rg_session": anna})).status == 200  # anna's lives on

        assert "last admin" in _failure(_run("disable", "anna", var=var)).lower()
        assert _failure(_run("disable", "nobody", var=var)) == "error: No such staff account"
        r = _run("create-admin", "anna", "--force", "--password-stdin", var=var, stdin="anna's reset password\n")
        assert r.returncode == 0, r.stderr
        assert (await gw.client.get("/ui/accounts", cookies={"rg_session": anna}, allow_redirects=False)).status == 303
        gw.client.session.cookie_jar.clear()
        assert (await login(gw.client, "anna", password="anna's reset password")).status == 303
