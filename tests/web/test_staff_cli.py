"""``gateway art30`` and ``gateway explain`` as real subprocesses, against a fresh var directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.policy.loader import load_policies
from tests.conftest import ROOT, VALID_BODY

pytestmark = pytest.mark.integration


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_VAR_DIR": str(tmp_path / "var")}
    env.pop("GATEWAY_CONFIG_DIR", None)
    return subprocess.run([sys.executable, "-m", "gateway", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env=env, check=False)


def test_art30_json_lists_every_recipient_and_text_reads(tmp_path: Path) -> None:
    r = run(tmp_path, "art30", "--json")
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)
    listed = {p["recipient"] for rows in record["recipients_by_category"].values() for p in rows}
    assert listed == set(load_policies(ROOT / "config").recipients)
    assert record["supervisory_authority"]["name"] == "Integritetsskyddsmyndigheten"
    assert {t["recipient"]: t["category"] for t in record["third_country_transfers"]}["cnnic-cn"] == "blocked"
    assert (tmp_path / "var" / "gateway.sqlite3").exists()  # the settings' store, as the other staff commands

    r = run(tmp_path, "art30")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Art. 30(1) GDPR record of processing activities")
    for needle in ("Integritetsskyddsmyndigheten", "iis-se", "jprs-jp (JP): adequacy", "cnnic-cn (CN): blocked",
                   "AES-256-GCM"):
        assert needle in r.stdout, needle


def test_explain_prints_the_plan_as_json(tmp_path: Path) -> None:
    order = tmp_path / "order.json"
    order.write_text(json.dumps(VALID_BODY), encoding="utf-8")  # a whole order: its registrant is used
    person = tmp_path / "registrant.json"
    person.write_text(json.dumps(VALID_BODY["registrant"]), encoding="utf-8")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(VALID_BODY["registrant"], email="secret-person-at-nowhere")), encoding="utf-8")

    r = run(tmp_path, "explain", "--tld", "se", "--registrant", str(order))
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    [iis] = [p for p in plan["recipients"] if p["recipient"] == "iis-se"]
    assert plan["registration_possible"] is True and iis["sent"]["national_id"] == "[SE]811218-9876"
    assert "language" in iis["withheld"]

    r = run(tmp_path, "explain", "--tld", "cn", "--registrant", str(person))
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)
    assert plan["registration_possible"] is False and plan["blocked_by"] == ["cnnic-cn"]
    assert plan["recipients"][0]["transfer"]["category"] == "blocked"

    r = run(tmp_path, "explain", "--tld", "se", "--registrant", str(bad))
    assert r.returncode == 2 and "email" in r.stderr and "secret-person" not in r.stderr + r.stdout
    r = run(tmp_path, "explain", "--tld", "zz", "--registrant", str(person))
    assert r.returncode == 1 and "no recipient policy for .zz" in r.stderr
