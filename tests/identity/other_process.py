"""A second gateway process for the cross-process erasure test (issue 13, scenario d).

    GW_TEST_KEK=... GW_TEST_INDEX=... python -m tests.identity.other_process sqlite|postgres TARGET

Opens its own store on the same database (SQLite file or PostgreSQL DSN) and its own Ledger and
RegistrationService with the deployment's shared keys, prints ``ready``, then answers one JSON line per
JSON command on stdin, living across commands the way a gateway process does (so a data key it used once
would still be in a process-lifetime cache):

    {"op": "read", "entry": ID}                -> {"values": {...}} | {"erased": true}
    {"op": "register", "registrant": {...}, "domain": D}
                                               -> {"status": 202, "id": ..., "subject": ..., "live": bool}
    {"op": "quit"}
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from gateway.errors import SubjectErased
from gateway.store.base import Store
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore
from tests.identity.conftest import Keys, World


async def answer(world: World, cmd: dict[str, Any]) -> dict[str, Any]:
    if cmd["op"] == "read":
        entry = await world.store.disclosure(cmd["entry"])
        assert entry is not None
        try:
            return {"values": await world.ledger.entry_values(entry)}
        except SubjectErased:
            return {"erased": True}
    if cmd["op"] == "register":
        status, body = await world.register(cmd["registrant"], cmd["domain"])
        reg_id = body.get("id") or body["registration_id"]
        subject = await world.subject_of(reg_id)
        return {"status": status, "id": reg_id, "subject": subject,
                "live": await world.ledger.dek(subject) is not None}
    raise ValueError("unknown op")


async def main(kind: str, target: str) -> None:
    store: Store = SqliteStore(target) if kind == "sqlite" else await PostgresStore.open(target, max_size=2)
    world = World.over(store, Keys.from_env(dict(os.environ)))
    loop = asyncio.get_running_loop()
    try:
        print("ready", flush=True)
        while line := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            cmd = json.loads(line)
            if cmd["op"] == "quit":
                break
            print(json.dumps(await answer(world, cmd)), flush=True)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
