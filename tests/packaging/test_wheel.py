"""The wheel works outside the checkout: built once, installed with its dependencies (resolved by pip from
the package index) into a fresh venv under tmp, then run with the working directory outside the checkout:
``gateway --version``, ``gateway check-config`` on the policy files shipped in the wheel, ``gateway init``,
and ``gateway run`` taking a registration that the local registry sandbox receives."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, body

pytestmark = pytest.mark.integration

SCHEMAS = Path(os.environ.get("GATEWAY_EPP_SCHEMAS") or ROOT.parent / "shared" / "epp-schemas").resolve()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding the wheel built from this checkout (and nothing of the checkout)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"  # build from a copy: the checkout gets no build/ directory, the wheel no stray files
    src.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", src)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("gateway", "adapters", "config"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=skip)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", ".", "--no-deps", "-w", str(base / "dist")], cwd=src, check=True, timeout=300)
    wheel, = (base / "dist").glob("registrant_gateway-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", "install",
                    str(wheel)], check=True, timeout=600, cwd=base)
    return venv / "bin"


def _env(bin_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GATEWAY_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env | extra


def test_the_installed_wheel_checks_its_shipped_config(installed: Path, tmp_path: Path) -> None:
    env = _env(installed)
    run = lambda *a: subprocess.run([str(installed / "gateway"), *a], capture_output=True, text=True,  # noqa: E731
                                    cwd=tmp_path, env=env, timeout=60, check=False)
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("gateway 0."), r.stderr
    r = run("check-config")
    assert r.returncode == 0, r.stderr
    assert "20 recipients" in r.stdout
    assert "site-packages/gateway/_config" in r.stdout  # the wheel's copy, not the checkout's
    assert str(ROOT) not in r.stdout
    # nothing of the checkout is importable there
    r = subprocess.run([str(installed / "python"), "-c", "import gateway; print(gateway.__file__)"],
                       capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60, check=True)
    assert "site-packages" in r.stdout and str(ROOT) not in r.stdout
    r = run("init", "prod")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "prod" / "tokens.yaml").is_file()


@pytest.mark.skipif(not (SCHEMAS / "epp-1.0.xsd").exists(), reason=f"no EPP schemas at {SCHEMAS}")
def test_the_installed_wheel_runs_and_delivers_a_registration(installed: Path, tmp_path: Path) -> None:
    port, epp_port = _free_port(), _free_port()
    env = _env(installed, GATEWAY_PORT=str(port), GATEWAY_SANDBOX_PORT=str(epp_port),
               GATEWAY_EPP_SCHEMAS=str(SCHEMAS), GATEWAY_WORKER_POLL_S="0.05")
    proc = subprocess.Popen([str(installed / "gateway"), "run"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("gateway: http://"):
                break
        assert any(ln.startswith("gateway: http://") for ln in lines), "".join(lines)
        var = tmp_path / "var"  # an installed gateway keeps its state under the working directory
        tokens = {role: (var / "dev-tokens" / role).read_text().strip() for role in ("ordering", "privacy")}
        base = f"http://127.0.0.1:{port}"
        r = httpx.post(f"{base}/v1/registrations", json=body(), timeout=30, headers={
            "Authorization": f"Bearer {tokens['ordering']}", "Idempotency-Key": "wheel-test-0001"})
        assert r.status_code == 202, r.text
        reg = r.json()["id"]
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = httpx.get(f"{base}/v1/registrations/{reg}", timeout=30,
                            headers={"Authorization": f"Bearer {tokens['privacy']}"})
            status = got.json()["status"]
            if status == "delivered":
                break
            time.sleep(0.2)
        assert status == "delivered"
        r = httpx.get(f"{base}/v1/disclosures", params={"recipient": "iis-se"}, timeout=30,
                      headers={"Authorization": f"Bearer {tokens['privacy']}"})
        assert r.status_code == 200 and "iis-se" in r.text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
