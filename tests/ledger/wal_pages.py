"""WAL pages (frames) one ledger append writes in SQLite, against a raw insert of the same row bytes.

What an append costs on disk in WAL mode is the number of pages it writes to the -wal file: every page
the transaction touched, written whole, plus a 24-byte frame header each.  A random-key index touches
a page somewhere in its middle on every insert; a table keyed in append order touches its last page.
So the count says how well the schema's keys follow the order rows arrive in (issue 9), independently
of disk speed, and it is stable enough to compare schema versions on any machine.

Used by ``test_wal_pages.py`` and, for the figures, run on its own::

    python -m tests.ledger.wal_pages [--warmup 4096] [--n 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sqlite3
import tempfile
import uuid
from pathlib import Path

from gateway.ledger.entry import DisclosureEntry
from gateway.store.sqlite import SqliteStore

_WAL_HEADER = 32
_FRAME_HEADER = 24


def wal_frames(db: Path, page_size: int) -> int:
    """Frames in ``db``'s -wal file now (0 when there is none)."""
    try:
        size = os.path.getsize(f"{db}-wal")
    except FileNotFoundError:
        return 0
    return max(0, size - _WAL_HEADER) // (page_size + _FRAME_HEADER)


def entry(i: int) -> DisclosureEntry:
    """A delivered entry shaped like the worker's: random ids, sealed values of a realistic size."""
    eid = uuid.uuid4().hex
    return DisclosureEntry(
        id=eid, registration_id=uuid.uuid4().hex, recipient="iis-se", recipient_name="Internetstiftelsen",
        recipient_country="SE", category="eea", article=None, instrument=None, purpose="domain_registration",
        outcome="delivered", fields=("city", "country", "email", "name", "phone", "street"), withheld=("fax",),
        objects={"domain": f"b{i}.se"}, attempted_at="2026-11-25T12:00:00.000000Z",
        recorded_at="2026-11-25T12:00:00.000000Z", payload_digest="sha256:" + "ab" * 32, result_code="1000",
        sv_trid=f"SV-{i}", cl_trid=f"CL-{i}", subject_id=uuid.uuid4().hex, command="contact:create",
        values_ct=hashlib.sha256(eid.encode()).digest() * 6,
    )


def _reset(conn: sqlite3.Connection) -> None:
    """Checkpoint everything and truncate the -wal file, so the next frames are the measured ones."""
    busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise RuntimeError("the WAL could not be reset (a reader holds it)")


async def ledger_frames(directory: Path, *, warmup: int, n: int, per_tx: int = 1) -> float:
    """WAL frames per entry when ``SqliteStore.append`` takes ``per_tx`` entries per transaction, after
    ``warmup`` entries."""
    return sum((await ledger_frames_by_tree(directory, warmup=warmup, n=n, per_tx=per_tx)).values())


async def ledger_frames_by_tree(directory: Path, *, warmup: int, n: int, per_tx: int = 1) -> dict[str, float]:
    """:func:`ledger_frames` split by the B-tree (table or index) each frame's page belongs to, from the page
    numbers in the frame headers and SQLite's ``dbstat``; page 1 is ``sqlite_schema`` (the file header)."""
    db = directory / f"ledger-{per_tx}.sqlite3"
    store = SqliteStore(db, synchronous="NORMAL")
    try:
        conn = store._conn  # the store's own writer: autocheckpoint off, so the -wal file only grows
        conn.execute("PRAGMA wal_autocheckpoint=0")
        for start in range(0, warmup, 512):
            await store.append([entry(i) for i in range(start, min(warmup, start + 512))])
        _reset(conn)
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        for start in range(warmup, warmup + n, per_tx):
            await store.append([entry(i) for i in range(start, start + per_tx)])
        wal = await asyncio.to_thread(Path(f"{db}-wal").read_bytes)
        pages = [int.from_bytes(wal[at:at + 4], "big")
                 for at in range(_WAL_HEADER, len(wal) - page_size - _FRAME_HEADER + 1, page_size + _FRAME_HEADER)]
        _reset(conn)
        tree = dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
        counts: dict[str, int] = {}
        for page in pages:
            name = tree.get(page, "(free)")
            counts[name] = counts.get(name, 0) + 1
        return {name: count / n for name, count in counts.items()}
    finally:
        await store.close()


def raw_frames(directory: Path, *, warmup: int, n: int, per_tx: int = 1) -> float:
    """The same for a raw INSERT of each entry's row bytes into a plain table keyed in arrival order."""
    db = directory / f"raw-{per_tx}.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("CREATE TABLE raw (k INTEGER PRIMARY KEY, id TEXT, row BLOB, values_ct BLOB)")

        def insert(i: int) -> None:
            e = entry(i)
            conn.execute("INSERT INTO raw(id, row, values_ct) VALUES (?,?,?)",
                         (e.id, json.dumps(e.row(i)).encode(), e.values_ct))

        conn.execute("BEGIN")
        for i in range(warmup):
            insert(i)
        conn.execute("COMMIT")
        _reset(conn)
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        for start in range(warmup, warmup + n, per_tx):
            conn.execute("BEGIN IMMEDIATE")
            for i in range(start, start + per_tx):
                insert(i)
            conn.execute("COMMIT")
        return wal_frames(db, page_size) / n
    finally:
        conn.close()


def measure(*, warmup: int = 4096, n: int = 1000, per_tx: int = 1) -> dict[str, float]:
    """WAL frames per entry for the ledger and for the raw insert (``per_tx`` entries per transaction; ``n``
    a multiple of it), each in a fresh directory."""
    with tempfile.TemporaryDirectory() as tmp:
        ledger = asyncio.run(ledger_frames(Path(tmp), warmup=warmup, n=n, per_tx=per_tx))
        raw = raw_frames(Path(tmp), warmup=warmup, n=n, per_tx=per_tx)
    return {"ledger_wal_pages_per_entry": ledger, "raw_wal_pages_per_entry": raw, "ratio": ledger / raw}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warmup", type=int, default=4096)
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    for per_tx in (1, 100):
        figures = measure(warmup=args.warmup, n=args.n, per_tx=per_tx)
        print(f"{per_tx} per transaction: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    with tempfile.TemporaryDirectory() as tmp:
        trees = asyncio.run(ledger_frames_by_tree(Path(tmp), warmup=args.warmup, n=args.n))
    print("1 per transaction, by B-tree: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(trees.items())))


if __name__ == "__main__":
    main()
