"""Tampering with any stored byte of the ledger is caught by ``verify_store``, in either store.

Each test edits one column of the database behind the store's back (with the append-only triggers out of
the way: SQLite drops and recreates them, PostgreSQL disables them as superuser), row by row: flip one
byte or character, or make the smallest change the column's type allows.  ``verify_store`` must then
report ``ok=False`` and, for a disclosure row, name that row's leaf index and entry id.  Each edit is
undone before the next, and the intact ledger verifies again at the end.

To stay fast, the tests of a module share one built ledger per store kind (``built``): each test leaves
it as it found it, and should one fail to, the next test gets a freshly built ledger.  Tests whose
changes cannot be undone use their own (``fresh``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from gateway.ledger.checkpoint import CheckpointSigner
from gateway.ledger.entry import LEAF_COLUMNS, DisclosureEntry
from gateway.services.ledger import VerifyReport, verify_store
from gateway.store.base import Store
from tests.store.conftest import PgCluster, RawDB, StoreSpec, build_ledger, run_sync

N = 13  # leaves: an unbalanced tree (8 + 4 + 1)


@dataclass
class Built:
    store: Store
    raw: RawDB
    signer: CheckpointSigner
    entries: list[DisclosureEntry]

    async def verify(self) -> VerifyReport:
        return await verify_store(self.store, self.signer.public_key, batch=4)

    async def detected(self) -> VerifyReport:
        """Verification must fail, with a report."""
        report = await self.verify()
        assert not report.ok, "tampering went unnoticed"
        return report


async def _build(store: Store, raw: RawDB) -> Built:
    signer = CheckpointSigner.generate()
    entries = await build_ledger(store, signer, N, checkpoint_every=4, batch=2)
    b = Built(store, raw, signer, entries)
    assert (await b.verify()).ok
    assert [c.size for c in await store.checkpoints()] == [4, 8, 12, 13]
    return b


@pytest.fixture
async def fresh(store: Store, raw: RawDB) -> Built:
    """A ledger of this test's own."""
    return await _build(store, raw)


@dataclass
class Shared:
    spec: StoreSpec
    signer: CheckpointSigner
    entries: list[DisclosureEntry]
    intact: bool = True


class LedgerBank:
    """One built ledger per store kind for the module, rebuilt only if a test left it damaged."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.shared: dict[str, Shared] = {}
        self.cluster: PgCluster | None = None
        self.databases: list[str] = []

    def get(self, kind: str, cluster: PgCluster | None) -> Shared:
        current = self.shared.get(kind)
        if current is not None and current.intact:
            return current
        if cluster is None:
            spec = StoreSpec("sqlite", str(self.tmp.mktemp("tamper") / "gateway.db"))
        else:
            self.cluster = cluster
            name = cluster.create_database(migrated=True)
            self.databases.append(name)
            spec = StoreSpec("postgres", cluster.dsn(name))

        async def build() -> Shared:
            store = await spec.open()
            try:
                raw = await spec.raw()
                try:
                    b = await _build(store, raw)
                finally:
                    await raw.close()
            finally:
                await store.close()
            return Shared(spec, b.signer, b.entries)

        self.shared[kind] = run_sync(build)
        return self.shared[kind]


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerBank]:
    b = LedgerBank(tmp_path_factory)
    yield b
    if b.cluster is not None:
        for name in b.databases:
            b.cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
async def built(request: pytest.FixtureRequest, bank: LedgerBank) -> AsyncIterator[Built]:
    """The module's shared ledger for this store kind; the test must leave it intact."""
    cluster = request.getfixturevalue("pg_cluster") if request.param == "postgres" else None
    shared = bank.get(request.param, cluster)
    store = await shared.spec.open()
    raw = await shared.spec.raw()
    b = Built(store, raw, shared.signer, shared.entries)
    try:
        yield b
        shared.intact = (await b.verify()).ok
    finally:
        await raw.close()
        await store.close()


# -- minimal changes ------------------------------------------------------------------------------------------

def flip_text(s: str, at: int = -1) -> str:
    """Change one character (the last by default), keeping the string printable and the same length."""
    at %= len(s)
    c = s[at]
    flipped = chr(ord(c) ^ 1)
    new = flipped if flipped.isprintable() else "x" if c != "x" else "y"
    return s[:at] + new + s[at + 1:]


def flip_bytes(b: bytes, at: int = 0) -> bytes:
    at %= len(b)
    return b[:at] + bytes([b[at] ^ 0x01]) + b[at + 1:]


def next_char(s: str, at: int, alphabet: str) -> str:
    """Replace one character by the next in ``alphabet``: a canonical timestamp or key id stays canonical."""
    at %= len(s)
    return s[:at] + alphabet[(alphabet.index(s[at]) + 1) % len(alphabet)] + s[at + 1:]


def tamper_value(column: str, value: Any, row: int) -> Any:
    """The smallest change to a disclosure column that still parses (JSON stays JSON)."""
    if column == "retryable":
        return 1 - int(value)
    if column == "leaf_hash":
        return flip_bytes(value, row)
    if column == "id":
        return flip_text(value, 0)  # the first character: "ent-0001" must not become another entry's id
    if column in ("fields_json", "withheld_json"):
        items = json.loads(value)
        return json.dumps([flip_text(items[0] or "a"), *items[1:]] if items else [""])
    if column == "objects_json":
        objects = json.loads(value)
        if not objects:
            return json.dumps({"x": ""})
        first = sorted(objects)[0]
        return json.dumps({**objects, first: flip_text(objects[first])}, sort_keys=True)
    if value is None:
        return "x"
    assert isinstance(value, str), (column, value)
    return flip_text(value)


# -- disclosures ------------------------------------------------------------------------------------------

TEXT_AND_OTHER_COLUMNS = [c for c in (*LEAF_COLUMNS, "leaf_hash") if c not in ("leaf_index", "values_digest")]


async def each_row(b: Built, table: str, key: str, column: str,
                   change: Callable[[Any, dict[str, Any]], Any],
                   check: Callable[[VerifyReport, dict[str, Any], Any], Awaitable[None] | None],
                   rows: list[dict[str, Any]] | None = None) -> int:
    """For each row: change ``column``, verify (must fail; ``check`` the report), restore. Returns rows done."""
    if rows is None:
        rows = await b.raw.fetch(f"SELECT * FROM {table} ORDER BY {key}")
    done = 0
    for row in rows:
        old = row[column]
        new = change(old, row)
        if new is SKIP:
            continue
        assert new != old
        await b.raw.tamper(table, f"UPDATE {table} SET {column}=? WHERE {key}=?", new, row[key])
        try:
            report = await b.detected()
            result = check(report, row, new)
            if result is not None:
                await result
        finally:
            await b.raw.tamper(table, f"UPDATE {table} SET {column}=? WHERE {key}=?", old,
                               new if column == key else row[key])
        done += 1
    assert (await b.verify()).ok, "restoring the row did not restore the ledger"
    return done


SKIP = object()


def names_the_row(report: VerifyReport, row: dict[str, Any], new: Any) -> None:
    assert report.bad_leaf_index == row["leaf_index"], report
    assert report.bad_entry_id == row["id"], report
    assert f"leaf {row['leaf_index']}" in (report.problem or ""), report


def names_the_row_new_id(report: VerifyReport, row: dict[str, Any], new: Any) -> None:
    assert report.bad_leaf_index == row["leaf_index"], report
    assert report.bad_entry_id == new, report  # the row as it now reads


@pytest.mark.parametrize("column", TEXT_AND_OTHER_COLUMNS)
async def test_any_disclosure_column(built: Built, column: str) -> None:
    check = names_the_row_new_id if column == "id" else names_the_row
    done = await each_row(built, "disclosures", "leaf_index", column,
                          lambda old, row: tamper_value(column, old, row["leaf_index"]), check)
    assert done == N


async def test_values_digest_of_an_entry_without_values(built: Built) -> None:
    rows = [r for r in await built.raw.fetch("SELECT * FROM disclosures ORDER BY leaf_index")
            if r["values_digest"] is None]
    assert rows
    done = await each_row(built, "disclosures", "leaf_index", "values_digest", lambda old, row: "sha256:00",
                          names_the_row, rows)
    assert done == len(rows)


async def test_values_digest_of_an_entry_with_values(built: Built) -> None:
    rows = [r for r in await built.raw.fetch("SELECT * FROM disclosures ORDER BY leaf_index")
            if r["values_digest"] is not None]
    assert rows
    await each_row(built, "disclosures", "leaf_index", "values_digest",
                   lambda old, row: tamper_value("values_digest", old, 0), names_the_row, rows)


async def test_values_digest_after_purge(fresh: Built) -> None:
    built = fresh
    """Once purged, the stored digest is all the leaf has: editing it is caught."""
    with_values = [e.id for e in built.entries if e.values_ct is not None]
    assert await built.store.purge_values(with_values) == len(with_values)
    assert (await built.verify()).ok
    rows = [r for r in await built.raw.fetch("SELECT * FROM disclosures ORDER BY leaf_index")
            if r["values_digest"] is not None]
    done = await each_row(built, "disclosures", "leaf_index", "values_digest",
                          lambda old, row: tamper_value("values_digest", old, 0), names_the_row, rows)
    assert done == len(with_values)


async def test_values_ciphertext(built: Built) -> None:
    rows = await built.raw.fetch("SELECT * FROM entry_values ORDER BY leaf_index")
    assert len(rows) == sum(e.values_ct is not None for e in built.entries)

    def check(report: VerifyReport, row: dict[str, Any], new: Any) -> None:
        i = row["leaf_index"]
        assert (report.bad_leaf_index, report.bad_entry_id) == (i, built.entries[i].id), report

    done = 0
    for at in (0, 17, -1):
        done += await each_row(built, "entry_values", "leaf_index", "values_ct",
                               lambda old, row, at=at: flip_bytes(old, at), check, rows)
    assert done == 3 * len(rows)


async def test_values_added_to_an_entry_that_sent_none(built: Built) -> None:
    for i, e in enumerate(built.entries):
        if e.values_ct is not None:
            continue
        await built.raw.execute("INSERT INTO entry_values(leaf_index, values_ct) VALUES (?, ?)", i, b"forged")
        report = await built.detected()
        assert (report.bad_leaf_index, report.bad_entry_id) == (i, e.id), report
        await built.raw.execute("DELETE FROM entry_values WHERE leaf_index=?", i)
    assert (await built.verify()).ok


async def test_leaf_index(built: Built) -> None:
    """Moving a row out of place leaves a gap where it was; verification stops at the gap."""

    def check(report: VerifyReport, row: dict[str, Any], new: Any) -> None:
        i = row["leaf_index"]
        assert report.bad_leaf_index == i, report
        assert "gap" in (report.problem or "")
        # the entry found in the gap: the next one, or the moved row itself when it was the last
        assert report.bad_entry_id == (built.entries[i + 1].id if i + 1 < N else row["id"]), report

    done = await each_row(built, "disclosures", "id", "leaf_index", lambda old, row: N + 5, check)
    assert done == N


async def test_rows_deleted(built: Built) -> None:
    rows = await built.raw.fetch("SELECT * FROM disclosures ORDER BY leaf_index")
    values = {r["leaf_index"]: r["values_ct"] for r in await built.raw.fetch("SELECT * FROM entry_values")}
    cols = list(rows[0])
    for row in rows:
        await built.raw.execute("DELETE FROM entry_values WHERE leaf_index=?", row["leaf_index"])
        await built.raw.tamper("disclosures", "DELETE FROM disclosures WHERE leaf_index=?", row["leaf_index"])
        report = await built.detected()
        if row["leaf_index"] < N - 1:
            assert report.bad_leaf_index == row["leaf_index"], report
            assert "gap" in (report.problem or ""), report
        else:  # the last leaf: its tree nodes are left over
            assert report.problem == "tree nodes beyond the last entry", report
        await built.raw.execute(
            f"INSERT INTO disclosures({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            *(row[c] for c in cols))
        if row["leaf_index"] in values:
            await built.raw.execute("INSERT INTO entry_values(leaf_index, values_ct) VALUES (?, ?)",
                                    row["leaf_index"], values[row["leaf_index"]])
    assert (await built.verify()).ok


# -- tree nodes -----------------------------------------------------------------------------------------------

NODE_CHANGES: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "hash": lambda old, row: flip_bytes(old, row["idx"]),
    "level": lambda old, row: old + 40,  # no such level in a 13-leaf tree: cannot collide
    "idx": lambda old, row: old + 4096,
    "born": lambda old, row: old + 4096,  # schema 7 keys nodes by (born, level): old + 1 would collide
}


@pytest.mark.parametrize("column", sorted(NODE_CHANGES))
async def test_any_node_column(built: Built, column: str) -> None:
    """A changed node is caught at the leaf whose append made it ("born")."""
    ids = [e.id for e in built.entries]
    rows = await built.raw.fetch("SELECT * FROM ledger_nodes ORDER BY born, level")
    assert len(rows) == 2 * N - N.bit_count()
    update = f"UPDATE ledger_nodes SET {column}=? WHERE level=? AND idx=?"
    for row in rows:
        old = row[column]
        new = NODE_CHANGES[column](old, row)
        await built.raw.tamper("ledger_nodes", update, new, row["level"], row["idx"])
        report = await built.detected()
        assert (report.bad_leaf_index, report.bad_entry_id) == (row["born"], ids[row["born"]]), report
        assert "tree node" in (report.problem or ""), report
        await built.raw.tamper("ledger_nodes", update, old, new if column == "level" else row["level"],
                               new if column == "idx" else row["idx"])
    assert (await built.verify()).ok


async def test_nodes_missing_or_extra(fresh: Built) -> None:
    built = fresh
    rows = await built.raw.fetch("SELECT * FROM ledger_nodes ORDER BY born, level")
    for row in rows:
        await built.raw.tamper("ledger_nodes", "DELETE FROM ledger_nodes WHERE level=? AND idx=?", row["level"],
                               row["idx"])
        report = await built.detected()
        assert report.bad_leaf_index == row["born"], report
        await built.raw.execute("INSERT INTO ledger_nodes(level, idx, born, hash) VALUES (?, ?, ?, ?)",
                                row["level"], row["idx"], row["born"], row["hash"])
    await built.raw.execute("INSERT INTO ledger_nodes(level, idx, born, hash) VALUES (5, 0, 31, ?)", b"\x00" * 32)
    report = await built.detected()
    assert report.problem == "tree nodes beyond the last entry", report


# -- the head -------------------------------------------------------------------------------------------

async def test_head_frontier(built: Built) -> None:
    (row,) = await built.raw.fetch("SELECT * FROM ledger_head")
    frontier = bytes(row["frontier"])
    assert len(frontier) == 9 + 3 * 32

    async def set_frontier(blob: bytes) -> None:
        await built.raw.tamper("ledger_head", "UPDATE ledger_head SET frontier=? WHERE id=1", blob)

    for at in [9 + 32 * h + b for h in range(3) for b in (0, 13, 31)]:  # first, a middle and last byte of each hash
        await set_frontier(flip_bytes(frontier, at))
        report = await built.detected()
        assert report.problem == "ledger head does not match the entries", report
    # a size that still parses (13 -> 14: three hashes either way)
    await set_frontier(frontier[:1] + (14).to_bytes(8, "big") + frontier[9:])
    assert (await built.detected()).problem == "ledger head does not match the entries"
    # a header that does not parse at all is reported, not raised
    for at in range(9):
        await set_frontier(flip_bytes(frontier, at))
        report = await built.verify()
        assert not report.ok and report.problem is not None
    await set_frontier(frontier)
    assert (await built.verify()).ok


# -- checkpoints ----------------------------------------------------------------------------------------------

def _free_size(size: int, taken: set[int]) -> int:
    for candidate in (size ^ 1, size + 1, size - 1, size + 2):
        if candidate not in taken and candidate >= 0:
            return candidate
    raise AssertionError("no free size")


CHECKPOINT_CHANGES: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "root": lambda old, row: flip_bytes(old, row["size"]),
    "signature": lambda old, row: flip_bytes(old, row["size"]),
    "timestamp": lambda old, row: next_char(old, -2, "0123456789"),  # the last microsecond digit
    "origin": lambda old, row: flip_text(old),
    "key_id": lambda old, row: next_char(old, 0, "0123456789abcdef"),
    "size": lambda old, row: _free_size(old, {4, 8, 12, 13}),
}


@pytest.mark.parametrize("column", sorted(CHECKPOINT_CHANGES))
async def test_any_checkpoint_column(built: Built, column: str) -> None:
    def check(report: VerifyReport, row: dict[str, Any], new: Any) -> None:
        assert (report.problem or "").startswith("checkpoint at size"), report
        if column != "size":
            assert f"checkpoint at size {row['size']}" in (report.problem or ""), report

    rows = await built.raw.fetch("SELECT * FROM checkpoints ORDER BY size")
    done = await each_row(built, "checkpoints", "size", column, CHECKPOINT_CHANGES[column], check, rows)
    assert done == 4


async def test_checkpoints_missing_entries_or_forged(built: Built) -> None:
    # a checkpoint for a tree larger than the entries
    (last,) = await built.raw.fetch("SELECT * FROM checkpoints WHERE size=13")
    await built.raw.execute(
        "INSERT INTO checkpoints(size, root, timestamp, origin, key_id, signature) VALUES (?, ?, ?, ?, ?, ?)",
        20, last["root"], last["timestamp"], last["origin"], last["key_id"], last["signature"])
    report = await built.detected()
    assert "checkpoint at size 20" in (report.problem or ""), report
    await built.raw.tamper("checkpoints", "DELETE FROM checkpoints WHERE size=20")
    # a checkpoint signed by another key
    other = CheckpointSigner.generate()
    original = await built.store.checkpoint(13)
    assert original is not None
    await built.raw.tamper("checkpoints", "UPDATE checkpoints SET key_id=? WHERE size=13", other.key_id)
    assert "bad signature" in ((await built.detected()).problem or "")
    await built.raw.tamper("checkpoints", "UPDATE checkpoints SET key_id=? WHERE size=13", original.key_id)
    assert (await built.verify()).ok
