"""The command line, run as a real subprocess: a bad policy file stops start-up with file and line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env=env, check=False)


def test_check_config_accepts_the_shipped_policies() -> None:
    r = _run("check-config")
    assert r.returncode == 0, r.stderr
    assert "20 recipients" in r.stdout


def test_bad_policy_file_stops_start_up_with_file_line_and_reason(tmp_path: Path) -> None:
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    se = cfg / "recipients" / "se.yaml"
    lines = se.read_text().splitlines()
    idx = next(i for i, ln in enumerate(lines) if ln.startswith("country:"))
    lines[idx] = "country: Sweden"
    se.write_text("\n".join(lines) + "\n")
    r = _run("check-config", "--config-dir", str(cfg))
    assert r.returncode == 2
    assert f"{se}:{idx + 1}: country: String should match pattern" in r.stderr

    env = {**os.environ, "GATEWAY_CONFIG_DIR": str(cfg), "GATEWAY_VAR_DIR": str(tmp_path / "var")}
    r = _run("serve", env=env)
    assert r.returncode == 2
    assert f"{se}:{idx + 1}: country:" in r.stderr
