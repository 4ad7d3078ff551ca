"""The ledger through the running gateway: proofs check against an independent RFC 9162 verifier and
the signed checkpoints; erasure leaves the tree verifiable; KEK rotation keeps everything readable."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.errors import SubjectErased
from gateway.http.context import SERVICES
from gateway.services.ledger import Ledger, verify_store
from gateway.store.base import DisclosureFilter
from tests.conftest import ROOT, VALID_BODY, Gateway, body

pytestmark = pytest.mark.integration


# -- an independent verifier, written from RFC 9162 §2.1.3.2 and §2.1.4.2 ----------------------------

def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def rfc_verify_inclusion(leaf: bytes, index: int, size: int, path: list[bytes], root: bytes) -> bool:
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = _node(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def rfc_verify_consistency(m: int, n: int, r1: bytes, r2: bytes, path: list[bytes]) -> bool:
    if m == n:
        return not path and r1 == r2
    if m == 0 or m > n or not path:
        return False
    if m & (m - 1) == 0:  # m is a power of two: the old root is the first node
        path = [r1, *path]
    fn, sn = m - 1, n - 1
    while fn % 2 == 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == r1 and sr == r2 and sn == 0


def _b(s: str) -> bytes:
    return base64.b64decode(s)


async def _public_key(gw: Gateway) -> Ed25519PublicKey:
    r = await gw.client.get("/v1/ledger/public-key")
    key = serialization.load_pem_public_key((await r.json())["public_key_pem"].encode())
    assert isinstance(key, Ed25519PublicKey)
    return key


def _check_signature(key: Ed25519PublicKey, cp: dict[str, Any]) -> None:
    ts = cp["timestamp"]
    note = f"{cp['origin']}\n{cp['size']}\n{cp['root']}\n{ts}\n".encode()
    key.verify(_b(cp["signature"]), note)  # raises InvalidSignature if anything differs


async def _register_and_wait(gw: Gateway, data: dict[str, Any]) -> str:
    r = await gw.post(data)
    assert r.status == 202, await r.text()
    reg_id: str = (await r.json())["id"]
    reg = await gw.wait_status(reg_id, {"delivered", "failed"})
    assert reg["status"] == "delivered"
    return reg_id


async def _entries(gw: Gateway, **params: str) -> list[dict[str, Any]]:
    r = await gw.client.get("/v1/disclosures", params=params, headers=gw.tokens.h("privacy"))
    return list((await r.json())["items"])


async def test_inclusion_and_consistency_proofs_verify_independently(gateway: Gateway) -> None:
    h = gateway.tokens.h("privacy")
    key = await _public_key(gateway)
    await _register_and_wait(gateway, VALID_BODY)
    await _register_and_wait(gateway, body(domain="andra.se"))
    cp1 = await (await gateway.client.post("/v1/ledger/checkpoints", headers=h)).json()
    _check_signature(key, cp1)
    for i in range(3):
        await _register_and_wait(gateway, body(domain=f"fler-{i}.se"))
    assert (await gateway.post(body(domain="blockerad.cn"))).status == 422
    cp2 = await (await gateway.client.post("/v1/ledger/checkpoints", headers=h)).json()
    _check_signature(key, cp2)
    # one entry per command: Anna's contact:create once, then a domain:create per .se name (the later ones
    # reuse her contact), and the blocked .cn refusal: 3 at the first checkpoint, 3 + 3 + 1 at the second
    assert cp2["size"] == 7 > cp1["size"] == 3

    for entry in await _entries(gateway):
        r = await gateway.client.get("/v1/ledger/proofs/inclusion",
                                     params={"entry": entry["id"], "size": str(cp2["size"])}, headers=h)
        proof = await r.json()
        assert rfc_verify_inclusion(_b(proof["leaf_hash"]), proof["leaf_index"], cp2["size"],
                                    [_b(p) for p in proof["proof"]], _b(cp2["root"]))
        # a different leaf or a tampered path does not verify
        assert not rfc_verify_inclusion(hashlib.sha256(b"x").digest(), proof["leaf_index"], cp2["size"],
                                        [_b(p) for p in proof["proof"]], _b(cp2["root"]))
        if proof["proof"]:
            bad = [_b(p) for p in proof["proof"]]
            bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
            assert not rfc_verify_inclusion(_b(proof["leaf_hash"]), proof["leaf_index"], cp2["size"], bad,
                                            _b(cp2["root"]))

    r = await gateway.client.get("/v1/ledger/proofs/consistency",
                                 params={"from": str(cp1["size"]), "to": str(cp2["size"])}, headers=h)
    cons = await r.json()
    path = [_b(p) for p in cons["proof"]]
    assert rfc_verify_consistency(cp1["size"], cp2["size"], _b(cp1["root"]), _b(cp2["root"]), path)
    assert not rfc_verify_consistency(cp1["size"], cp2["size"], _b(cp1["root"]), hashlib.sha256().digest(), path)

    # the ordering role cannot read proofs; unknown sizes are 404
    r = await gateway.client.get("/v1/ledger/checkpoints", headers=gateway.tokens.h("ordering"))
    assert r.status == 403
    r = await gateway.client.get("/v1/ledger/proofs/consistency", params={"from": "1", "to": "6"}, headers=h)
    assert r.status == 404


async def test_same_person_is_one_subject_found_by_blind_index(gateway: Gateway) -> None:
    a = await _register_and_wait(gateway, VALID_BODY)
    other = body(domain="annan.se")
    other["registrant"] = dict(other["registrant"], email="  ANNA.Andersson@example.se ")
    b = await _register_and_wait(gateway, other)
    regs = [await gateway.wait_status(x, {"delivered"}) for x in (a, b)]
    assert regs[0]["subject_id"] == regs[1]["subject_id"]
    # found by the registry contact id too, through the blind index
    ledger = gateway.client.app[SERVICES].ledger
    contact_id = regs[0]["disclosures"][0]["objects"]["contact:registrant"]
    found = await gateway.store.find_subjects([("contact_id", ledger.indexer.index("contact_id", contact_id.lower()))])
    assert found == [regs[0]["subject_id"]]
    assert await gateway.store.find_subjects([("contact_id", ledger.indexer.index("contact_id", "RGNOSUCH"))]) == []
    # no plaintext identifier in the store's indexes or tables
    path = gateway.client.app[SERVICES].store.path  # type: ignore[attr-defined]
    dump = "\n".join(sqlite3.connect(path).iterdump())
    for pii in ("anna.andersson", "Andersson", "198112189876", "811218", "Storgatan"):
        assert pii not in dump, pii


async def test_privacy_reads_values_and_erasure_shreds_them(gateway: Gateway) -> None:
    svc = gateway.client.app[SERVICES]
    await _register_and_wait(gateway, VALID_BODY)
    # a thick registry: the contact:create carries the released values, the domain:create none
    by_command = {e["command"]: e for e in await _entries(gateway)}
    assert set(by_command) == {"contact:create", "domain:create"}
    entry = by_command["contact:create"]
    assert by_command["domain:create"]["fields"] == []
    h = gateway.tokens.h("privacy")
    detail = await (await gateway.client.get(f"/v1/disclosures/{entry['id']}", headers=h)).json()
    assert detail["values"]["name"] == "Anna Andersson"
    assert detail["values"]["national_id"] == "[SE]811218-9876"
    assert set(detail["values"]) == set(entry["fields"])
    audit = await (await gateway.client.get(f"/v1/disclosures/{entry['id']}",
                                            headers=gateway.tokens.h("auditor"))).json()
    assert "values" not in audit
    assert [a["action"] for a in await svc.store.access_log(entry["subject_id"])] == ["disclosure.values_read"]

    cp_before = await svc.ledger.checkpoint()
    assert await svc.ledger.shred(entry["subject_id"], "2026-11-25T00:00:00Z")
    detail = await (await gateway.client.get(f"/v1/disclosures/{entry['id']}", headers=h)).json()
    assert detail["values"] is None and detail["values_erased"] is True
    assert detail["fields"] == entry["fields"] and detail["recipient"] == "iis-se"  # metadata stays
    stored = await svc.store.disclosure(entry["id"])
    with pytest.raises(SubjectErased):
        await svc.ledger.entry_values(stored)
    # a fresh ledger object (no cached keys) cannot read it either
    fresh = Ledger(svc.store, svc.ledger.ring, svc.ledger.indexer, svc.ledger.signer)
    with pytest.raises(SubjectErased):
        await fresh.entry_values(stored)
    report = await verify_store(svc.store, svc.ledger.signer.public_key)
    assert report.ok, report
    assert (await svc.ledger.checkpoint()).checkpoint.root == cp_before.checkpoint.root


async def test_key_rotation_keeps_everything_readable(gateway: Gateway) -> None:
    svc = gateway.client.app[SERVICES]
    await _register_and_wait(gateway, VALID_BODY)
    await _register_and_wait(gateway, body(domain="exempel.com"))
    await _register_and_wait(gateway, dict(body(domain="tredje.se"), registrant=dict(
        VALID_BODY["registrant"], email="bertil@example.se",
        national_id={"scheme": "se_personnummer", "value": "19880320-0016"})))
    old = svc.ledger.ring
    new = old.with_new_active_key()
    assert await svc.ledger.rotate(new) == 2
    retired = new.without_key(old.active)
    fresh = Ledger(svc.store, retired, svc.ledger.indexer, svc.ledger.signer)
    readable = 0
    for e in await svc.store.disclosures(DisclosureFilter()):
        if e.values_ct is not None:
            assert (await fresh.entry_values(e))["country"] == "SE"
            readable += 1
    assert readable == 2
    # the old ring alone no longer opens the re-wrapped keys
    stale = Ledger(svc.store, old, svc.ledger.indexer, svc.ledger.signer)
    subject = (await svc.store.disclosures(DisclosureFilter()))[0]
    with pytest.raises(Exception, match="key"):
        await stale.entry_values(subject)


async def test_cli_verify_detects_a_flipped_byte(gateway: Gateway, tmp_path: Any) -> None:
    svc = gateway.client.app[SERVICES]
    for i in range(4):
        await _register_and_wait(gateway, body(domain=f"cli-{i}.se"))
    await svc.ledger.checkpoint()
    var = tmp_path / "var"
    env = {"GATEWAY_VAR_DIR": str(var), "PATH": "/usr/bin:/bin"}

    def verify() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "gateway", "ledger", "verify", "--quiet"], env=env,
                              capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)

    ok = verify()
    assert ok.returncode == 0, ok.stderr
    assert "5 entries, 1 checkpoints" in ok.stdout  # one contact:create (reused after) and four domain:create
    db = sqlite3.connect(var / "gateway.sqlite3")
    db.execute("DROP TRIGGER disclosures_no_update")
    db.execute("UPDATE disclosures SET recipient_country='SF' WHERE leaf_index=2")
    db.commit()
    bad = verify()
    assert bad.returncode == 1
    assert "leaf 2" in bad.stderr
