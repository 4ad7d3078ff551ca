"""The operator's command line as a real subprocess: ``--version``, ``init``, one-line errors with a non-zero
exit (never a traceback), the retention purge and requests commands, and progress shown only on a TTY."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gateway.auth import TokenFile, hash_token
from gateway.compose import EndpointsFile
from gateway.store.base import DisclosureFilter
from tests.conftest import ROOT, Gateway, body


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60, env={**os.environ, **(env or {})}, check=False)


def _one_line_failure(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.lstrip().startswith("{")]  # JSON logs
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_version() -> None:
    from gateway.cli.main import version

    r = _run("--version")
    assert r.returncode == 0
    assert r.stdout.strip() == f"gateway {version()}"
    assert version() != "unknown"  # the checkout is installed (editable) in the test venv


def test_init_writes_a_private_skeleton_and_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "prod"
    r = _run("init", str(target), env={"GATEWAY_VAR_DIR": str(tmp_path / "var")})
    assert r.returncode == 0, r.stderr
    files = sorted(p for p in target.rglob("*"))
    assert {p.relative_to(target).as_posix() for p in files} >= {
        "tokens.yaml", "tokens/ordering", "tokens/privacy", "tokens/auditor", "keys/kek.json",
        "keys/blind-index.key", "keys/checkpoint-signing.pem", "secret.key", "endpoints.yaml", "gateway.env"}
    for p in [target, *files]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))
    # the tokens file holds the hashes of the plain tokens handed out, one per role
    tokens = TokenFile.model_validate(yaml.safe_load((target / "tokens.yaml").read_text()))
    plain = {(target / "tokens" / t.role).read_text().strip() for t in tokens.tokens}
    assert {hash_token(p) for p in plain} == {t.sha256 for t in tokens.tokens}
    # the endpoints skeleton is a valid (empty) endpoints file naming the registries in comments
    text = (target / "endpoints.yaml").read_text()
    assert EndpointsFile.model_validate(yaml.safe_load(text)) == EndpointsFile()
    assert "# iis-se:" in text

    # gateway.env points the gateway at the skeleton: the ledger works from it
    env = dict(line.split("=", 1) for line in (target / "gateway.env").read_text().splitlines()
               if line and not line.startswith("#"))
    r = _run("ledger", "checkpoint", env=env)
    assert r.returncode == 0, r.stderr
    assert (target / "gateway.sqlite3").exists()

    before = {p: p.read_bytes() for p in files if p.is_file()}
    r = _run("init", str(target))
    line = _one_line_failure(r)
    assert "never overwrites" in line
    assert {p: p.read_bytes() for p in before} == before
    # one file in the way is enough: nothing is written
    other = tmp_path / "other"
    (other / "keys").mkdir(parents=True)
    (other / "keys" / "kek.json").write_text("{}")
    _one_line_failure(_run("init", str(other)))
    assert sorted(p.name for p in other.rglob("*")) == ["kek.json", "keys"]


def test_bad_settings_and_missing_files_are_one_line(tmp_path: Path) -> None:
    line = _one_line_failure(_run("check-config", env={"GATEWAY_PORT": "eighty"}))
    assert line.startswith("configuration error: GATEWAY_PORT:")
    line = _one_line_failure(_run("check-config", "--config-dir", str(tmp_path / "nowhere")))
    assert "nowhere" in line
    line = _one_line_failure(_run("requests", "show", "no-such-request", env={"GATEWAY_VAR_DIR": str(tmp_path)}))
    assert line == "error: No such data-subject request"


def _env(tmp_path: Path, gw: Gateway) -> dict[str, str]:
    var = tmp_path / "var"
    return {"GATEWAY_VAR_DIR": str(var), "GATEWAY_TOKENS_FILE": str(var / "tokens.yaml")}


@pytest.mark.integration
async def test_ledger_proofs_out_of_range_are_one_line_errors(tmp_path: Path, gateway: Gateway) -> None:
    r = await gateway.post(body(), key="cli-ops-1")
    assert r.status == 202
    await gateway.wait_status((await r.json())["id"], {"delivered"})
    entry = None
    async for e in gateway.store.iter_disclosures(DisclosureFilter()):
        entry = e
    assert entry is not None and entry.leaf_index is not None
    size = (await gateway.store.head()).size
    env = _env(tmp_path, gateway)

    line = _one_line_failure(_run("ledger", "prove", "--entry", entry.id, "--size", str(size + 5), env=env))
    assert f"the tree has {size} leaves" in line
    line = _one_line_failure(_run("ledger", "consistency", "--from", "10", "--to", "5", env=env))
    assert "--from 10 --to 5" in line
    line = _one_line_failure(_run("ledger", "prove", "--entry", "nope", "--size", "1", env=env))
    assert "no such entry" in line

    ok = _run("ledger", "prove", "--entry", entry.id, "--size", str(size), env=env)
    assert ok.returncode == 0, ok.stderr
    assert f'"tree_size": {size}' in ok.stdout

    # progress display only on a TTY: piped, stdout and stderr hold no bar or spinner
    r = _run("ledger", "verify", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok: ")
    assert "verifying" not in r.stderr and "\x1b[" not in r.stderr + r.stdout
    r = _run("keys", "rotate", env=env)
    assert r.returncode == 0, r.stderr
    assert "re-wrapping" not in r.stderr and "\x1b[" not in r.stderr + r.stdout

    # retention purge: nothing has outlived its period yet; the report names each purpose
    r = _run("retention", "purge", "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("would purge the values of 0 of ")
    assert "domain_registration: 0 expired" in r.stdout
    r = _run("retention", "purge", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert '"dry_run": false' in r.stdout

    r = _run("requests", "list", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("0 requests")


def test_progress_is_shown_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert progress.interactive()
    assert not progress.interactive(quiet=True)
    assert not progress.bar("x").disable
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    assert progress.bar("x").disable
