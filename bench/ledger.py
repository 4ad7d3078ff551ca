"""Ledger benchmark, all figures from one run on one SQLite file set (WAL, synchronous=FULL):

1. append throughput: ``SqliteStore.append`` of one sealed disclosure entry per transaction (leaf
   row + Merkle nodes + head) against a raw INSERT of the same row bytes into a plain table, one per
   transaction, at the same durability: the ratio is the ledger's overhead;
2. a tree of ``--n`` entries (default 1,000,000) built in batches, then ``gateway ledger verify``
   run as a separate process: entries/s and its peak RSS (ru_maxrss), also at n/10 to show that
   memory stays flat;
3. the time to find all of one subject's entries among them through the blind index.

    .venv/bin/python bench/ledger.py [--n 1000000] [--single 2000] [--repeat 3]

``gateway ledger verify`` is set against a floor measured in the same run, interleaved (median of
``--repeat``): one process reading the same rows and hashing each leaf's bytes once, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.ledger.checkpoint import load_or_create_signing_key  # noqa: E402
from gateway.ledger.entry import DisclosureEntry  # noqa: E402
from gateway.ledger.keys import BlindIndexer, new_data_key, seal  # noqa: E402
from gateway.store.base import Accepted, DisclosureFilter, NewSubject  # noqa: E402
from gateway.store.sqlite import SqliteStore  # noqa: E402

NOW = "2026-11-25T12:00:00.000000Z"
VALUES = {"name": "Bench Person", "email": "bench@example.se", "city": "Stockholm", "country": "SE",
          "street": ["Storgatan 1"], "phone": "+46812345678", "national_id": "[SE]811218-9876"}


def make_entry(i: int, subject: str, dek: bytes) -> DisclosureEntry:
    eid = uuid.uuid4().hex
    return DisclosureEntry(
        id=eid, registration_id=uuid.uuid4().hex, recipient="iis-se", recipient_name="Internetstiftelsen",
        recipient_country="SE", category="eea", article=None, instrument=None, purpose="domain_registration",
        outcome="delivered", fields=tuple(sorted(VALUES)), withheld=("fax",), objects={"domain": f"b{i}.se"},
        attempted_at=NOW, recorded_at=NOW, payload_digest="sha256:" + "ab" * 32, result_code="1000",
        sv_trid=f"SV-{i}", cl_trid=f"CL-{i}", subject_id=subject,
        values_ct=seal(dek, json.dumps(VALUES).encode(), f"entry:{eid}".encode()),
    )


async def append_vs_raw(tmp: Path, n: int) -> dict[str, float]:
    store = SqliteStore(tmp / "single.sqlite3", synchronous="FULL")
    dek = new_data_key()
    entries = [make_entry(i, "s" * 32, dek) for i in range(n)]
    t = time.perf_counter()
    for e in entries:
        await store.append([e])
    ledger_s = time.perf_counter() - t
    await store.close()

    raw = sqlite3.connect(tmp / "raw.sqlite3", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute("CREATE TABLE raw (k INTEGER PRIMARY KEY, id TEXT, row BLOB, values_ct BLOB)")
    rows = [(e.id, json.dumps(e.row(i), default=str).encode(), e.values_ct) for i, e in enumerate(entries)]
    t = time.perf_counter()
    for r in rows:
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("INSERT INTO raw(id, row, values_ct) VALUES (?,?,?)", r)
        raw.execute("COMMIT")
    raw_s = time.perf_counter() - t
    raw.close()
    return {"entries": n, "ledger_append_per_s": n / ledger_s, "raw_insert_per_s": n / raw_s,
            "ratio_ledger_vs_raw": (n / ledger_s) / (n / raw_s)}


async def build(path: Path, n: int, indexer: BlindIndexer) -> tuple[str, float]:
    store = SqliteStore(path, synchronous="NORMAL")
    dek = new_data_key()
    target = uuid.uuid4().hex
    digest = indexer.index("email", "target@example.se")
    await store.accept(Accepted(
        registration={"id": uuid.uuid4().hex, "order_ref": "x", "domain": "t.se", "tld": "se", "status": "blocked",
                      "plan": [], "subject_id": target},
        idempotency=("bench", "k" * 16, "h"), status=202, response={},
        subject=NewSubject(target, "kid", b"w" * 60, (("email", digest),)),
    ), NOW)
    t = time.perf_counter()
    batch = 5000
    for start in range(0, n, batch):
        chunk = [make_entry(i, target if i % 100_000 == 7 else "o" * 32, dek)
                 for i in range(start, min(n, start + batch))]
        await store.append(chunk)
    build_s = time.perf_counter() - t
    await store.close()
    return digest, build_s


def verify_subprocess(var: Path) -> dict[str, float]:
    env = {**os.environ, "GATEWAY_VAR_DIR": str(var)}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", (
        "import resource, sys; from gateway.cli.main import main; rc = main(['ledger', 'verify', '--quiet']); "
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    wall = time.perf_counter() - t
    assert r.returncode == 0, r.stderr[-2000:]
    rss_kb = int(r.stdout.split("MAXRSS")[1].split()[0])
    entries = int(r.stdout.split("ok: ")[1].split()[0])
    return {"entries": entries, "verify_s": wall, "verify_per_s": entries / wall, "peak_rss_mib": rss_kb / 1024}


#: The floor: one pass over the same stored rows, each leaf's bytes hashed once (SHA-256), no tree, no
#: checks; the fastest any verifier that reads every leaf could be.  Run as a process like the verifier,
#: so both pay the same start-up.
FLOOR = """
import hashlib, resource, sqlite3, sys, time
from gateway.ledger.entry import STORED_COLUMNS, stored_leaf_bytes
from gateway.store.rows import SELECT_DISCLOSURES
conn = sqlite3.connect(sys.argv[1])
n = len(STORED_COLUMNS)
count = 0
for r in conn.execute(SELECT_DISCLOSURES + " ORDER BY d.leaf_index"):
    hashlib.sha256(b"\\x00" + stored_leaf_bytes(r[:n])).digest()
    count += 1
print("COUNT", count, "MAXRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def floor_subprocess(db: Path) -> dict[str, float]:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", FLOOR, str(db)], cwd=ROOT, capture_output=True, text=True,
                       timeout=3600, check=True)
    wall = time.perf_counter() - t
    count = int(r.stdout.split("COUNT")[1].split()[0])
    rss_kb = int(r.stdout.split("MAXRSS")[1].split()[0])
    return {"floor_per_s": count / wall, "floor_peak_rss_mib": rss_kb / 1024}


def verify_vs_floor(var: Path, repeat: int) -> dict[str, float]:
    """``repeat`` runs each of the verifier and the floor, interleaved; the median of each."""
    verify: list[dict[str, float]] = []
    floor: list[dict[str, float]] = []
    for _ in range(repeat):
        floor.append(floor_subprocess(var / "gateway.sqlite3"))
        verify.append(verify_subprocess(var))
    v = sorted(verify, key=lambda r: r["verify_per_s"])[len(verify) // 2]
    f = sorted(floor, key=lambda r: r["floor_per_s"])[len(floor) // 2]
    return {**v, **f, "verify_vs_floor": v["verify_per_s"] / f["floor_per_s"],
            "verify_runs_per_s": [round(r["verify_per_s"]) for r in verify],  # type: ignore[dict-item]
            "floor_runs_per_s": [round(r["floor_per_s"]) for r in floor]}  # type: ignore[dict-item]


async def find_subject(path: Path, indexer: BlindIndexer) -> dict[str, float]:
    store = SqliteStore(path)
    t = time.perf_counter()
    sids = await store.find_subjects([("email", indexer.index("email", "Target@Example.se"))])
    found = [e async for e in store.iter_disclosures(DisclosureFilter(subject_id=sids[0]), page=1000)]
    took = time.perf_counter() - t
    await store.close()
    return {"subject_entries": len(found), "find_ms": took * 1e3}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--single", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3, help="verify and floor runs, interleaved (median)")
    args = ap.parse_args()
    n = max(10, min(args.n, 2_000_000))
    out: dict[str, object] = {"date": dt.date.today().isoformat()}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out["append"] = await append_vs_raw(tmp, max(10, min(args.single, 20_000)))
        for size in (n // 10, n):
            var = tmp / f"var{size}"
            (var / "keys").mkdir(parents=True)
            load_or_create_signing_key(var / "keys" / "checkpoint-signing.pem")
            indexer = BlindIndexer.generate(var / "keys" / "blind-index.key")
            _, build_s = await build(var / "gateway.sqlite3", size, indexer)
            res = {"build_per_s_batched": size / build_s, **verify_vs_floor(var, args.repeat),
                   **await find_subject(var / "gateway.sqlite3", indexer)}
            out[f"tree_{size}"] = res
    out["bench_process_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
