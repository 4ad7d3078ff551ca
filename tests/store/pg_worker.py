"""A separate OS process for test_concurrency: one "gateway" working on a shared PostgreSQL database.

    python -m tests.store.pg_worker append DSN WORKER COUNT [SIGNING_KEY_PEM]
    python -m tests.store.pg_worker claim DSN WORKER NOW

Opens a PostgresStore (migrating the database if nobody has yet), prints ``ready``, waits for a line on
stdin (the start signal, so that every process begins at the same instant), does its work with several
concurrent tasks, and prints one JSON line: the entry ids it appended or the outbox ids it claimed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from gateway.ledger.checkpoint import CheckpointSigner
from gateway.store.postgres import PostgresStore
from tests.store.conftest import add_checkpoint, make_entry

TASKS = 5


async def append(store: PostgresStore, worker: str, count: int, key_pem: bytes | None) -> dict[str, list[str]]:
    signer = CheckpointSigner.from_pem(key_pem) if key_pem is not None else None
    appended: list[str] = []

    async def task(k: int) -> None:
        for j in range(k, count, TASKS):
            entry = make_entry(j, tag=f"{worker}-")
            await store.append([entry])
            appended.append(entry.id)
            if signer is not None and j % 7 == 3:
                await add_checkpoint(store, signer, j)

    await asyncio.gather(*(task(k) for k in range(TASKS)))
    return {"appended": appended}


async def claim(store: PostgresStore, now: str) -> dict[str, list[int]]:
    claimed: list[int] = []

    async def task() -> None:
        while items := await store.claim_due(now, 2):
            claimed.extend(i.id for i in items)

    await asyncio.gather(*(task() for _ in range(TASKS)))
    return {"claimed": claimed}


async def main(argv: list[str]) -> None:
    mode, dsn, worker = argv[:3]
    store = await PostgresStore.open(dsn, min_size=1, max_size=TASKS)
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        if mode == "append":
            pem = await asyncio.to_thread(Path(argv[4]).read_bytes) if len(argv) > 4 else None
            result: dict[str, list[str]] | dict[str, list[int]] = await append(store, worker, int(argv[3]), pem)
        elif mode == "claim":
            result = await claim(store, argv[3])
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    finally:
        await store.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
