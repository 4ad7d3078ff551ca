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
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

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


def wal_frames(db: Path) -> int:
    """Frames (pages) now in ``db``'s WAL, read by a connection of its own."""
    c = sqlite3.connect(db)
    try:
        return int(c.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        c.close()


def wal_reset(db: Path) -> None:
    c = sqlite3.connect(db)
    try:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        c.close()


def raw_connection(db: Path) -> sqlite3.Connection:
    raw = sqlite3.connect(db, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=FULL")
    raw.execute("CREATE TABLE IF NOT EXISTS raw (k INTEGER PRIMARY KEY, id TEXT, row BLOB, values_ct BLOB)")
    return raw


async def ledger_round(db: Path, entries: list[DisclosureEntry], per_tx: int) -> dict[str, float]:
    """``SqliteStore.append`` of ``entries``, ``per_tx`` a transaction; WAL pages counted over the first
    few transactions (fewer than the auto-checkpoint's 1000 pages)."""
    store = SqliteStore(db, synchronous="FULL")
    probe = max(1, min(len(entries) // per_tx, 400 // per_tx if per_tx > 1 else 40))
    chunks = [entries[i:i + per_tx] for i in range(0, len(entries), per_tx)]
    wal_reset(db)
    for chunk in chunks[:probe]:
        await store.append(chunk)
    pages = wal_frames(db) / (probe * per_tx)
    t = time.perf_counter()
    for chunk in chunks[probe:]:
        await store.append(chunk)
    took = time.perf_counter() - t
    await store.close()
    return {"per_s": (len(entries) - probe * per_tx) / took, "wal_pages_per_entry": pages}


def raw_round(db: Path, entries: list[DisclosureEntry], per_tx: int) -> dict[str, float]:
    """The same bytes (the entry's row as JSON and its sealed values) INSERTed into a plain table."""
    raw = raw_connection(db)
    rows = [(e.id, json.dumps(e.row(i), default=str).encode(), e.values_ct) for i, e in enumerate(entries)]
    chunks = [rows[i:i + per_tx] for i in range(0, len(rows), per_tx)]
    probe = max(1, min(len(chunks), 400 // per_tx if per_tx > 1 else 40))
    wal_reset(db)

    def put(chunk: list[tuple[str, bytes, bytes | None]]) -> None:
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany("INSERT INTO raw(id, row, values_ct) VALUES (?,?,?)", chunk)
        raw.execute("COMMIT")

    for chunk in chunks[:probe]:
        put(chunk)
    pages = wal_frames(db) / (probe * per_tx)
    t = time.perf_counter()
    for chunk in chunks[probe:]:
        put(chunk)
    took = time.perf_counter() - t
    raw.close()
    return {"per_s": (len(rows) - probe * per_tx) / took, "wal_pages_per_entry": pages}


async def append_vs_raw(tmp: Path, n: int, per_tx: int, rounds: int) -> dict[str, Any]:
    """Interleaved rounds (raw, ledger, raw, ledger, ...), each on fresh files; medians."""
    dek = new_data_key()
    ledger: list[dict[str, float]] = []
    raw: list[dict[str, float]] = []
    for r in range(rounds):
        entries = [make_entry(i, "s" * 32, dek) for i in range(n)]
        raw.append(raw_round(tmp / f"raw-{per_tx}-{r}.sqlite3", entries, per_tx))
        ledger.append(await ledger_round(tmp / f"ledger-{per_tx}-{r}.sqlite3", entries, per_tx))
    lg = [x["per_s"] for x in ledger]
    rw = [x["per_s"] for x in raw]
    return {"per_tx": per_tx, "entries": n, "ledger_per_s": summary(lg), "raw_per_s": summary(rw),
            "ratio": statistics.median(lg) / statistics.median(rw),
            "ledger_wal_pages_per_entry": statistics.median(x["wal_pages_per_entry"] for x in ledger),
            "raw_wal_pages_per_entry": statistics.median(x["wal_pages_per_entry"] for x in raw)}


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


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


def fmt(s: dict[str, float]) -> str:
    return f"{s['median']:10.0f} ({s['min']:.0f}..{s['max']:.0f})"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--single", type=int, default=2000, help="entries a round, one per transaction")
    ap.add_argument("--batched", type=int, default=20_000, help="entries a round, 100 per transaction")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of each figure, interleaved (median)")
    ap.add_argument("--json", action="store_true", help="also print every figure as JSON")
    args = ap.parse_args()
    n = max(10, min(args.n, 2_000_000))
    repeat = max(1, min(args.repeat, 9))
    out: dict[str, Any] = {"date": dt.date.today().isoformat()}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out["append_1"] = await append_vs_raw(tmp, max(50, min(args.single, 20_000)), 1, repeat)
        out["append_100"] = await append_vs_raw(tmp, max(1000, min(args.batched, 200_000)), 100, repeat)
        for size in (n // 10, n):
            var = tmp / f"var{size}"
            (var / "keys").mkdir(parents=True)
            load_or_create_signing_key(var / "keys" / "checkpoint-signing.pem")
            indexer = BlindIndexer.generate(var / "keys" / "blind-index.key")
            _, build_s = await build(var / "gateway.sqlite3", size, indexer)
            res = {"build_per_s_batched": size / build_s, **verify_vs_floor(var, repeat),
                   **await find_subject(var / "gateway.sqlite3", indexer)}
            out[f"tree_{size}"] = res
    out["bench_process_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ledger: WAL + synchronous=FULL, {repeat} rounds of each figure interleaved with its baseline; "
          "median (min..max)")
    for key, label in (("append_1", "ledger append, 1 per transaction"),
                       ("append_100", "ledger append, 100 per transaction")):
        a = out[key]
        print(f"  {label:<40} {fmt(a['ledger_per_s'])}/s   baseline raw INSERT of the same bytes "
              f"{fmt(a['raw_per_s'])}/s   ratio {a['ratio']:.2f} (goal >= 0.5)   WAL pages an entry "
              f"{a['ledger_wal_pages_per_entry']:.2f} vs raw {a['raw_wal_pages_per_entry']:.2f}")
    for size in (n // 10, n):
        t = out[f"tree_{size}"]
        print(f"  gateway ledger verify, {size} entries{'':<10} {t['verify_per_s']:10.0f}/s, "
              f"{t['peak_rss_mib']:.0f} MiB   baseline SHA-256 of the same leaves {t['floor_per_s']:.0f}/s, "
              f"{t['floor_peak_rss_mib']:.0f} MiB   ratio {t['verify_vs_floor']:.2f} (goal >= 200k/s, flat memory)")
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
