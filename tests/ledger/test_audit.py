"""The auditor's rollback check (issue 13): ``GET /v1/ledger/audit`` and ``gateway ledger audit``.

An auditor keeps one signed checkpoint.  Against a running gateway on loopback, the check passes while
the ledger only grows, also after every checkpoint row was deleted (the proof comes from the tree), and
it is refuted when the gateway is rolled back (a copy of its database with the ledger truncated and the
checkpoint rows deleted, served by a second gateway with the same keys) and when that rolled-back gateway
then grows a different history past the kept size (a fork).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import json
import shutil
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.epp.sandbox.server import SandboxThread
from adapters.epp.tls import DevPki
from gateway.cli.ledger import AUDIT_OK, AUDIT_REFUTED, AUDIT_UNCHECKED, audit
from gateway.compose import build
from gateway.http.context import SERVICES
from gateway.ledger.audit import AuditFailed, check_extension, load_checkpoint
from gateway.ledger.checkpoint import Checkpoint, CheckpointSigner
from gateway.ledger.merkle import EMPTY_ROOT, Frontier
from tests.conftest import ROOT, Gateway, Tokens, body, gateway_settings

pytestmark = pytest.mark.integration


async def _register(gw: Gateway, domain: str) -> None:
    r = await gw.post(body(domain=domain))
    assert r.status == 202, await r.text()
    reg = await gw.wait_status((await r.json())["id"], {"delivered", "failed"})
    assert reg["status"] == "delivered", reg


async def _keep_checkpoint(gw: Gateway, path: Path) -> dict[str, Any]:
    """What an auditor keeps: the API's answer for a checkpoint, as served (JSON with its note)."""
    r = await gw.client.post("/v1/ledger/checkpoints", headers=gw.tokens.h("auditor"))
    assert r.status == 201
    cp: dict[str, Any] = await r.json()
    await asyncio.to_thread(path.write_text, json.dumps(cp))
    return cp


def _args(checkpoint: Path, url: str, token_file: Path, **kw: Any) -> argparse.Namespace:
    return argparse.Namespace(checkpoint=checkpoint, url=url, token_file=token_file, public_key=kw.get("public_key"),
                              update=kw.get("update", False), timeout=10.0)


async def _audit(args: argparse.Namespace, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The CLI's audit in a thread: it speaks blocking HTTP to the gateway this loop serves."""
    code = await asyncio.to_thread(audit, args)
    out = capsys.readouterr()
    return code, out.out, out.err


def _url(gw: Gateway) -> str:
    return str(gw.client.make_url("")).rstrip("/")


def truncated_copy(src: Path, dst: Path, keep: int) -> None:
    """A rollback: a consistent copy of the database with the ledger cut back to its first ``keep`` leaves,
    the head rewritten to match and every checkpoint row deleted, as someone covering their tracks would."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    db = sqlite3.connect(dst)
    try:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
            db.execute(f'DROP TRIGGER "{name}"')
        db.execute("DELETE FROM entry_values WHERE leaf_index >= ?", (keep,))
        db.execute("DELETE FROM disclosures WHERE leaf_index >= ?", (keep,))
        db.execute("DELETE FROM ledger_nodes WHERE born >= ?", (keep,))
        db.execute("DELETE FROM checkpoints")
        nodes = {(lv, ix): bytes(h) for lv, ix, h in db.execute("SELECT level, idx, hash FROM ledger_nodes")}
        head = Frontier.from_source(lambda lv, ix: nodes[(lv, ix)], keep)
        db.execute("UPDATE ledger_head SET size=?, frontier=? WHERE id=1", (keep, head.to_bytes()))
        db.commit()
    finally:
        db.close()


@pytest.fixture
async def second_gateway(tmp_path: Path, pki: DevPki, sandbox: SandboxThread, tokens: Tokens,
                         gateway: Gateway) -> AsyncIterator[Any]:
    """Start, on demand, a second gateway over a rolled-back copy of the first one's database and keys."""
    started: list[TestClient[Any, Any]] = []

    async def start(keep: int) -> Gateway:
        src_var, var_b = tmp_path / "var", tmp_path / "b" / "var"
        shutil.copytree(src_var, var_b, ignore=shutil.ignore_patterns("gateway.sqlite3*"))
        truncated_copy(src_var / "gateway.sqlite3", var_b / "gateway.sqlite3", keep)
        app, store = await build(gateway_settings(tmp_path / "b", pki, sandbox.port, tokens))
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        started.append(client)
        return Gateway(client, store, tokens, sandbox)

    yield start
    for c in started:
        await c.close()


async def test_audit_passes_while_the_ledger_grows(
    gateway: Gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "auditor.token"
    token.write_text(gateway.tokens.auditor + "\n")
    await _register(gateway, "forst.se")
    kept = tmp_path / "kept.json"
    cp = await _keep_checkpoint(gateway, kept)
    assert cp["size"] >= 1

    # nothing appended yet: the head is the kept checkpoint itself, with an empty proof
    code, out, err = await _audit(_args(kept, _url(gateway), token), capsys)
    assert code == AUDIT_OK, err
    for i in range(3):
        await _register(gateway, f"vaxer-{i}.se")
    code, out, err = await _audit(_args(kept, _url(gateway), token), capsys)
    assert code == AUDIT_OK, err
    assert f"checkpoint at size {cp['size']} is in the gateway's head at size" in out

    # the raw answer: the head signed now, and a proof the pure verifier accepts
    r = await gateway.client.get("/v1/ledger/audit", params={"size": str(cp["size"]), "root": cp["root"]},
                                 headers=gateway.tokens.h("privacy"))
    assert r.status == 200
    answer = await r.json()
    assert answer["to"]["size"] > cp["size"] and answer["proof"]
    signer = gateway.client.app[SERVICES].ledger.signer
    head = check_extension(load_checkpoint(kept.read_text()), answer, signer.public_key)
    assert head.checkpoint.size == answer["to"]["size"]

    # the signed note form of the same checkpoint is a valid file too; --update keeps the new head
    note = tmp_path / "kept.note"
    note.write_text(cp["note"])
    code, out, err = await _audit(_args(note, _url(gateway), token, update=True), capsys)
    assert code == AUDIT_OK, err
    assert json.loads(note.read_text())["size"] == answer["to"]["size"]

    # a kept checkpoint the gateway's key did not sign is refuted before anything else is asked
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(CheckpointSigner.generate().sign(load_checkpoint(json.dumps(cp)).checkpoint)
                                 .to_json()))
    code, out, err = await _audit(_args(forged, _url(gateway), token), capsys)
    assert code == AUDIT_REFUTED and "is not signed by the gateway's key" in err

    # the installed command, as an auditor runs it, with the key taken from a PEM file
    pem = tmp_path / "key.pem"
    pem.write_bytes(signer.public_pem())
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "ledger", "audit", "--checkpoint", str(kept), "--url", _url(gateway),
        "--public-key", str(pem), "--token-file", str(token), cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_VAR_DIR": str(tmp_path / "cli-var")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == AUDIT_OK, stderr.decode()
    assert stdout.decode().startswith("ok: ")


async def test_audit_needs_no_stored_checkpoint(gateway: Gateway, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Deleting checkpoint rows hides nothing from someone who kept one: the proof comes from the tree.
    (``/v1/ledger/proofs/consistency`` needs both checkpoints stored and answers 404 here.)"""
    token = tmp_path / "auditor.token"
    token.write_text(gateway.tokens.auditor)
    for i in range(2):
        await _register(gateway, f"tidig-{i}.se")
    kept = tmp_path / "kept.json"
    cp = await _keep_checkpoint(gateway, kept)
    await _register(gateway, "senare.se")
    db = sqlite3.connect(tmp_path / "var" / "gateway.sqlite3")
    db.execute("DROP TRIGGER checkpoints_no_delete")
    db.execute("DELETE FROM checkpoints")
    db.commit()
    db.close()
    h = gateway.tokens.h("auditor")
    r = await gateway.client.get("/v1/ledger/proofs/consistency",
                                 params={"from": str(cp["size"]), "to": str(cp["size"])}, headers=h)
    assert r.status == 404
    code, _, err = await _audit(_args(kept, _url(gateway), token), capsys)
    assert code == AUDIT_OK, err


async def test_a_rollback_and_a_fork_are_caught_by_whoever_kept_a_checkpoint(
    gateway: Gateway, second_gateway: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "auditor.token"
    token.write_text(gateway.tokens.auditor)
    await _register(gateway, "innan.se")
    rolled_back_to = (await gateway.store.head()).size
    for i in range(3):
        await _register(gateway, f"sedan-{i}.se")
    kept = tmp_path / "kept.json"
    cp = await _keep_checkpoint(gateway, kept)
    assert cp["size"] > rolled_back_to
    code, _, err = await _audit(_args(kept, _url(gateway), token), capsys)
    assert code == AUDIT_OK, err

    # the operator restores the ledger to an earlier state and deletes every checkpoint row
    b: Gateway = await second_gateway(rolled_back_to)
    assert (await b.store.head()).size == rolled_back_to and await b.store.checkpoints() == []
    r = await b.client.get("/v1/ledger/audit", params={"size": str(cp["size"]), "root": cp["root"]},
                           headers=b.tokens.h("auditor"))
    assert r.status == 409
    assert r.content_type == "application/problem+json"
    problem = await r.json()
    assert problem["code"] == "ledger_inconsistent" and problem["reason"] == "beyond_head"
    assert (problem["size"], problem["head_size"]) == (cp["size"], rolled_back_to)
    code, _, err = await _audit(_args(kept, _url(b), token), capsys)
    assert code == AUDIT_REFUTED
    assert "ROLLBACK" in err and f"{rolled_back_to} entries" in err

    # ...and then writes a different history past the kept size: a fork
    i = 0
    while (await b.store.head()).size <= cp["size"]:
        await _register(b, f"annan-{i}.se")
        i += 1
    r = await b.client.get("/v1/ledger/audit", params={"size": str(cp["size"]), "root": cp["root"]},
                           headers=b.tokens.h("privacy"))
    assert r.status == 409
    problem = await r.json()
    assert problem["reason"] == "root_mismatch" and problem["size"] == cp["size"]
    assert problem["server_root"] != cp["root"] and len(base64.b64decode(problem["server_root"])) == 32
    assert set(problem) == {"type", "title", "status", "code", "detail", "instance", "reason", "size",
                            "head_size", "server_root"}  # sizes and hashes only
    code, _, err = await _audit(_args(kept, _url(b), token), capsys)
    assert code == AUDIT_REFUTED
    assert "FORK" in err and problem["server_root"] in err


async def test_a_server_that_cannot_prove_it_says_so(gateway: Gateway, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """Tree nodes changed or missing behind the store's back: ``proof_unavailable``, never a 200 with a proof
    that proves nothing, and the auditor's command counts it as a finding."""
    token = tmp_path / "auditor.token"
    token.write_text(gateway.tokens.auditor)
    for i in range(2):
        await _register(gateway, f"nod-{i}.se")
    kept = tmp_path / "kept.json"
    cp = await _keep_checkpoint(gateway, kept)
    # contact:create + domain:create, then a domain:create reusing the contact: the proof from 3 to 4 reads
    # the node over leaves 0 and 1 (a power-of-two size would not need it)
    assert cp["size"] == 3
    await _register(gateway, "sist.se")
    db = sqlite3.connect(tmp_path / "var" / "gateway.sqlite3")
    db.execute("DROP TRIGGER ledger_nodes_no_update")
    db.execute("DROP TRIGGER ledger_nodes_no_delete")
    db.execute("UPDATE ledger_nodes SET hash=zeroblob(32) WHERE level=1 AND idx=0")  # read by the proof
    db.commit()
    params = {"size": str(cp["size"]), "root": cp["root"]}
    r = await gateway.client.get("/v1/ledger/audit", params=params, headers=gateway.tokens.h("auditor"))
    assert r.status == 500 and (await r.json())["code"] == "proof_unavailable"
    code, _, err = await _audit(_args(kept, _url(gateway), token), capsys)
    assert code == AUDIT_REFUTED and "cannot prove" in err
    db.execute("DELETE FROM ledger_nodes")
    db.commit()
    db.close()
    r = await gateway.client.get("/v1/ledger/audit", params=params, headers=gateway.tokens.h("auditor"))
    assert r.status == 500 and (await r.json())["code"] == "proof_unavailable"


async def test_a_server_that_lies_is_refuted_by_the_verifier(gateway: Gateway, tmp_path: Path) -> None:
    """The CLI checks everything itself: a head signed by another key, a head for a smaller tree, or a
    proof that does not verify are refutations, whatever status the server gives them."""
    await _register(gateway, "forst.se")
    cp = await _keep_checkpoint(gateway, tmp_path / "kept.json")
    await _register(gateway, "andra.se")
    r = await gateway.client.get("/v1/ledger/audit", params={"size": str(cp["size"]), "root": cp["root"]},
                                 headers=gateway.tokens.h("auditor"))
    answer = await r.json()
    kept = load_checkpoint(json.dumps(cp))
    key = gateway.client.app[SERVICES].ledger.signer.public_key
    assert check_extension(kept, answer, key).checkpoint.size == answer["to"]["size"]

    def refuted(bad: dict[str, Any]) -> str:
        with pytest.raises(AuditFailed) as exc:
            check_extension(kept, bad, key)
        return exc.value.kind

    other = CheckpointSigner.generate()
    forged = other.sign(load_checkpoint(json.dumps({k: v for k, v in answer["to"].items()})).checkpoint)
    assert refuted({**answer, "to": forged.to_json()}) == "bad_signature"
    flipped = base64.b64decode(answer["proof"][0])
    flipped = base64.b64encode(bytes([flipped[0] ^ 1]) + flipped[1:]).decode()
    assert refuted({**answer, "proof": [flipped, *answer["proof"][1:]]}) == "fork"
    assert refuted({**answer, "proof": []}) == "fork"
    assert refuted({**answer, "from": {"size": cp["size"] - 1, "root": cp["root"]}}) == "malformed"
    assert refuted({**answer, "proof": ["AAAA"]}) == "malformed"


async def test_audit_query_is_validated(gateway: Gateway) -> None:
    h = gateway.tokens.h("auditor")
    root = base64.b64encode(b"\x00" * 32).decode()
    for params in ({"size": "²", "root": root}, {"size": "-1", "root": root}, {"size": "1", "root": "x"},
                   {"size": str(2**63), "root": root}, {"size": "1"}, {"size": "1", "root": root, "extra": "1"}):
        r = await gateway.client.get("/v1/ledger/audit", params=params, headers=h)
        assert r.status == 422, (params, r.status)
        assert (await r.json())["code"] == "query_invalid"
    # repeated parameters are refused, not silently resolved
    r = await gateway.client.get(f"/v1/ledger/audit?size=0&size=1&root={root.replace('+', '%2B')}", headers=h)
    assert r.status == 422
    for role, status in (("ordering", 403), (None, 401)):
        r = await gateway.client.get("/v1/ledger/audit", params={"size": "0", "root": root},
                                     headers=gateway.tokens.h(role) if role else {})
        assert r.status == status
    # the empty tree is a prefix of every tree
    empty = base64.b64encode(hashlib.sha256(b"").digest()).decode()
    r = await gateway.client.get("/v1/ledger/audit", params={"size": "0", "root": empty}, headers=h)
    assert r.status == 200, await r.text()


async def test_superscript_sizes_on_the_proof_routes_are_422_not_500(gateway: Gateway) -> None:
    h = gateway.tokens.h("auditor")
    r = await gateway.client.get("/v1/ledger/proofs/inclusion", params={"entry": "0" * 32, "size": "²"}, headers=h)
    assert r.status == 422
    r = await gateway.client.get("/v1/ledger/proofs/consistency", params={"from": "1", "to": "²"}, headers=h)
    assert r.status == 422


async def test_audit_cli_reports_what_it_could_not_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No gateway, no token, no file: exit 2 with a message, never a traceback or a false 'ok'."""
    token = tmp_path / "t"
    token.write_text("x")
    signer = CheckpointSigner.generate()
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(signer.sign(Checkpoint("o", 0, EMPTY_ROOT, dt.datetime.now(dt.UTC))).to_json()))
    assert audit(_args(tmp_path / "missing.json", "http://127.0.0.1:9", token)) == AUDIT_UNCHECKED
    assert audit(_args(kept, "http://127.0.0.1:9", tmp_path / "no-token")) == AUDIT_UNCHECKED
    assert audit(_args(kept, "http://127.0.0.1:9", token)) == AUDIT_UNCHECKED  # nothing listens on port 9
    assert audit(_args(kept, "http://[::1", token)) == AUDIT_UNCHECKED
    (tmp_path / "bad.json").write_text('{"size": 1}')
    assert audit(_args(tmp_path / "bad.json", "http://127.0.0.1:9", token)) == AUDIT_UNCHECKED
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("cannot audit") == 5
