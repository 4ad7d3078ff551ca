"""``verify_store`` / ``gateway ledger verify`` findings (issue 13), on SQLite and PostgreSQL.

1. A row that cannot be decoded (broken JSON, a column of the wrong type) is named by leaf index, entry
   id and column, instead of a generic "unreadable ledger data" that points nowhere.
2. Sealed values that vanished while the entry is younger than its purpose's retention period (or whose
   purpose is never purged) are a finding, not taken for a retention purge; the same deletion after the
   period ran out is a purge and verifies.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.ledger import retention_rule
from gateway.ledger.checkpoint import CheckpointSigner
from gateway.rights.deadlines import add_months
from gateway.services.ledger import verify_store
from gateway.store.base import Store
from tests.conftest import ROOT
from tests.store.conftest import RawDB, StoreSpec, add_checkpoint, build_ledger, iso, make_entry

N = 7
RULE = retention_rule(ROOT / "config")


def _later(t: dt.datetime, months: int) -> dt.datetime:
    return dt.datetime.combine(add_months(t.date(), months), t.timetz())


#: column -> a value that no longer decodes, per store kind (a PostgreSQL bytea column cannot hold text).
BROKEN: dict[str, Any] = {
    "fields_json": '["name", "email"',  # truncated JSON
    "withheld_json": '{"phone": "x"}',  # JSON, but not a list of names
    "objects_json": "not json at all",
}


@pytest.mark.parametrize("column", sorted(BROKEN))
async def test_an_undecodable_row_is_named(store: Store, raw: RawDB, column: str) -> None:
    signer = CheckpointSigner.generate()
    entries = await build_ledger(store, signer, N, checkpoint_every=3, batch=2)
    for row in await raw.fetch("SELECT leaf_index, id, " + column + " FROM disclosures ORDER BY leaf_index"):
        await raw.tamper("disclosures", f"UPDATE disclosures SET {column}=? WHERE leaf_index=?", BROKEN[column],
                         row["leaf_index"])
        try:
            for batch in (1, 3, 1000):
                report = await verify_store(store, signer.public_key, batch=batch)
                assert not report.ok
                assert (report.bad_leaf_index, report.bad_entry_id) == (row["leaf_index"], row["id"]), report
                assert report.problem == f"entry at leaf {row['leaf_index']} cannot be decoded (column {column})"
        finally:
            await raw.tamper("disclosures", f"UPDATE disclosures SET {column}=? WHERE leaf_index=?", row[column],
                             row["leaf_index"])
    assert (await verify_store(store, signer.public_key)).ok
    assert len(entries) == N


async def test_a_blob_column_holding_text_is_named(tmp_path: Path) -> None:
    """SQLite stores whatever it is given: a leaf hash or ciphertext turned into text is named too."""
    spec = StoreSpec("sqlite", str(tmp_path / "gateway.db"))
    store = await spec.open()
    raw = await spec.raw()
    try:
        signer = CheckpointSigner.generate()
        entries = await build_ledger(store, signer, N)
        await raw.tamper("disclosures", "UPDATE disclosures SET leaf_hash=? WHERE leaf_index=4", "a hash")
        report = await verify_store(store, signer.public_key)
        assert (report.bad_leaf_index, report.bad_entry_id) == (4, entries[4].id), report
        assert "column leaf_hash" in (report.problem or "")
    finally:
        await raw.close()
        await store.close()


async def _fresh_ledger(store: Store, signer: CheckpointSigner, recorded: dt.datetime,
                        purpose: str = "domain_registration") -> list[Any]:
    entries = [make_entry(i, recorded_at=iso(recorded), purpose=purpose) for i in range(N)]
    await store.append(entries)
    await add_checkpoint(store, signer)
    return entries


async def test_values_vanished_before_their_retention_date(store: Store, raw: RawDB) -> None:
    signer = CheckpointSigner.generate()
    recorded = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
    entries = await _fresh_ledger(store, signer, recorded)
    victim = next(i for i, e in enumerate(entries) if e.values_ct is not None)
    await raw.execute("DELETE FROM entry_values WHERE leaf_index=?", victim)

    # a day later: the 15-month period of domain_registration has not run out, so no purge did this
    report = await verify_store(store, signer.public_key, retention=RULE, now=recorded + dt.timedelta(days=1))
    assert not report.ok
    assert (report.bad_leaf_index, report.bad_entry_id) == (victim, entries[victim].id), report
    assert "vanished before its retention date (2026-06-01)" in (report.problem or "")
    # a day before the date still is too early; on the date and after, it is what the purge does
    assert not (await verify_store(store, signer.public_key, retention=RULE,
                                   now=_later(recorded, 15) - dt.timedelta(days=1))).ok
    assert (await verify_store(store, signer.public_key, retention=RULE, now=_later(recorded, 15))).ok
    assert (await verify_store(store, signer.public_key, retention=RULE, now=_later(recorded, 16))).ok
    # without the periods nothing tells a purge from a deletion (the old behaviour, still the default)
    assert (await verify_store(store, signer.public_key)).ok


async def test_values_of_a_purpose_that_is_never_purged(store: Store, raw: RawDB) -> None:
    signer = CheckpointSigner.generate()
    recorded = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    entries = await _fresh_ledger(store, signer, recorded, purpose="unlisted_purpose")
    assert (await verify_store(store, signer.public_key, retention=RULE)).ok
    victim = next(i for i, e in enumerate(entries) if e.values_ct is not None)
    await raw.execute("DELETE FROM entry_values WHERE leaf_index=?", victim)
    report = await verify_store(store, signer.public_key, retention=RULE)
    assert not report.ok and report.bad_entry_id == entries[victim].id
    assert "never purged" in (report.problem or "")


async def test_cli_verify_names_the_entry(tmp_path: Path) -> None:
    """``gateway ledger verify`` prints the finding with leaf and entry, for both kinds of finding."""
    db = tmp_path / "gateway.sqlite3"
    spec = StoreSpec("sqlite", str(db))
    store = await spec.open()
    raw = await spec.raw()
    signer = CheckpointSigner.generate()
    pem = tmp_path / "key.pem"
    await asyncio.to_thread(pem.write_bytes, signer.public_pem())
    try:
        entries = await _fresh_ledger(store, signer, dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    finally:
        await store.close()
    env = {"GATEWAY_DB_PATH": str(db), "GATEWAY_VAR_DIR": str(tmp_path / "var"), "PATH": "/usr/bin:/bin"}

    async def verify(*extra: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "ledger", "verify", "--quiet", "--public-key", str(pem), *extra, cwd=ROOT,
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode is not None
        return proc.returncode, (out + err).decode()

    try:
        code, text = await verify()
        assert code == 0, text
        victim = next(i for i, e in enumerate(entries) if e.values_ct is not None)
        await raw.execute("DELETE FROM entry_values WHERE leaf_index=?", victim)
        code, text = await verify()
        assert code == 1
        assert "vanished before its retention date" in text
        assert f"(leaf {victim}, entry {entries[victim].id})" in text
        # without the retention periods at hand, nothing tells a purge from a deletion: said, not hidden
        (tmp_path / "no-config").mkdir()
        code, text = await verify("--config-dir", str(tmp_path / "no-config"))
        assert code == 0 and "warning: no retention.yaml" in text
        await raw.tamper("disclosures", "UPDATE disclosures SET objects_json=? WHERE leaf_index=0", "{")
        code, text = await verify()
        assert code == 1
        assert f"entry at leaf 0 cannot be decoded (column objects_json) (leaf 0, entry {entries[0].id})" in text
        assert "Traceback" not in text
    finally:
        await raw.close()
