"""Several gateway processes on one PostgreSQL database: one tree, no forks, no gaps, no double claims.

Each worker is a separate OS process (tests/store/pg_worker.py) with its own connection pool and several
concurrent tasks, all released at the same instant against a database none of them has migrated yet.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from gateway.ledger.checkpoint import CheckpointSigner
from gateway.services.ledger import verify_store
from gateway.store.postgres import PostgresStore
from gateway.store.postgres import migrations as pg_migrations
from tests.conftest import ROOT
from tests.store.conftest import make_accepted, ts

pytestmark = pytest.mark.integration

WORKERS = 4
PER_WORKER = 50
TIMEOUT_S = 60


async def run_workers(commands: list[list[str]]) -> list[dict[str, Any]]:
    """Start every worker, wait until all are ready, release them together, collect their JSON results."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.store.pg_worker", *cmd, cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        for cmd in commands
    ]
    try:
        for p in procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), TIMEOUT_S)
            if line.strip() != b"ready":
                assert p.stderr is not None
                err = await p.stderr.read()
                pytest.fail(f"worker did not start: {line!r}\n{err.decode(errors='replace')}")
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), TIMEOUT_S)
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    results = []
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err.decode(errors="replace")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    return results


async def test_processes_append_to_one_tree(pg_empty_dsn: str, tmp_path: Path) -> None:
    """Four processes start at once on an unmigrated database, then append 50 entries each."""
    pg_dsn = pg_empty_dsn
    signer = CheckpointSigner.generate()
    key = tmp_path / "checkpoint.pem"
    key.write_bytes(signer.private_pem())
    commands = [["append", pg_dsn, f"w{n}", str(PER_WORKER), *([str(key)] if n == 0 else [])]
                for n in range(WORKERS)]
    results = await run_workers(commands)

    appended = [i for r in results for i in r["appended"]]
    assert len(appended) == len(set(appended)) == WORKERS * PER_WORKER

    store = await PostgresStore.open(pg_dsn)
    try:
        report = await verify_store(store, signer.public_key, batch=37)
        assert report.ok, report
        assert report.entries == WORKERS * PER_WORKER
        cps = await store.checkpoints()
        assert report.checkpoints == len(cps) >= 5
        head = await store.head()
        assert head.size == WORKERS * PER_WORKER
    finally:
        await store.close()

    conn = await asyncpg.connect(pg_dsn)
    try:
        leaves = await conn.fetch("SELECT leaf_index, id FROM disclosures ORDER BY leaf_index")
        assert [r["leaf_index"] for r in leaves] == list(range(WORKERS * PER_WORKER))  # no gaps, no duplicates
        assert sorted(r["id"] for r in leaves) == sorted(appended)
        heads = await conn.fetch("SELECT id, size FROM ledger_head")
        assert [(r["id"], r["size"]) for r in heads] == [(1, WORKERS * PER_WORKER)]  # one head
        n = WORKERS * PER_WORKER
        assert await conn.fetchval("SELECT count(*) FROM ledger_nodes") == 2 * n - n.bit_count()
        versions = await conn.fetch("SELECT version FROM schema_version ORDER BY version")
        assert [r["version"] for r in versions] == [v for v, _ in pg_migrations.MIGRATIONS]
        # the processes really did interleave: not one contiguous block per worker
        owners = [r["id"].split("-")[1] for r in leaves]
        switches = sum(a != b for a, b in itertools.pairwise(owners))
        assert switches > WORKERS - 1, owners
    finally:
        await conn.close()


async def test_processes_never_claim_the_same_outbox_row(pg_dsn: str) -> None:
    store = await PostgresStore.open(pg_dsn)
    try:
        for n in range(30):
            await store.accept(make_accepted(n, recipients=("iis", "verisign", "eurid")), ts(0))
        conn = await asyncpg.connect(pg_dsn)
        try:
            all_ids = sorted(r["id"] for r in await conn.fetch("SELECT id FROM outbox"))
        finally:
            await conn.close()
        assert len(all_ids) == 90

        results = await run_workers([["claim", pg_dsn, f"c{n}", ts(1)] for n in range(2)])
        claimed = [i for r in results for i in r["claimed"]]
        assert sorted(claimed) == all_ids  # every row claimed exactly once, across both processes
        assert all(r["claimed"] for r in results), "one process claimed nothing: no contention was tested"
        assert await store.claim_due(ts(2), 100) == []
        conn = await asyncpg.connect(pg_dsn)
        try:
            rows = await conn.fetch("SELECT state, attempts, count(*) AS n FROM outbox GROUP BY state, attempts")
        finally:
            await conn.close()
        assert [(r["state"], r["attempts"], r["n"]) for r in rows] == [("in_flight", 1, 90)]
        reg = await store.registration("reg-acc-0007")
        assert reg is not None and reg["status"] == "delivering"
    finally:
        await store.close()
