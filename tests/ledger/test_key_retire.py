"""Retiring a key-encryption key is verified in the store, never assumed: ``Ledger.retire`` re-wraps what is
still under the old key (including keys a process with an older ring made while the rotation ran), counts
again after a grace period, and refuses, leaving the ring file as it was, while any data key needs the key.
Also: a gateway holding an old ring wraps under the file's new active key, and opens re-wrapped keys."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from gateway.errors import DecryptionFailed, KeyRingUnavailable
from gateway.ledger.checkpoint import CheckpointSigner
from gateway.ledger.keys import BlindIndexer, KeyRing
from gateway.services.ledger import Ledger
from gateway.store.base import NewSubject, Store
from gateway.store.sqlite import SqliteStore
from tests.conftest import ROOT

NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC).isoformat()
INDEXER = BlindIndexer(b"\x07" * 32)


def ledger_over(store: Store, ring_path: Path, *, follow: bool = True) -> Ledger:
    """A gateway process's ledger; ``follow=False`` is a process that never re-reads the ring (the old bug)."""
    return Ledger(store, KeyRing.from_file(ring_path), INDEXER, CheckpointSigner.generate(),
                  ring_file=ring_path if follow else None)


async def new_subject(ledger: Ledger) -> str:
    """A new holder record, its data key wrapped the way a registration wraps it."""
    sid, _dek, wrapped = ledger._new_key()
    assert await ledger.store.claim_subject(NewSubject(sid, wrapped.kid, wrapped.blob, ()), NOW) == sid
    return sid


async def corrupt_subject(store: Store, kid: str) -> str:
    """A data key row under ``kid`` that does not open (tampered): no rotation can move it."""
    sid = uuid.uuid4().hex
    await store.claim_subject(NewSubject(sid, kid, b"\x01" + secrets.token_bytes(60), ()), NOW)
    return sid


async def no_wait(_s: float) -> None:
    return None


async def test_retire_refuses_while_a_data_key_is_wrapped_with_the_old_kid(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    old = KeyRing.generate(path)
    ledger = ledger_over(store, path)
    good = [await new_subject(ledger) for _ in range(3)]
    bad = await corrupt_subject(store, old.active)
    new = old.with_new_active_key()
    new.save(path)
    with pytest.raises(DecryptionFailed):
        await ledger.rotate(new)  # a full rotation stops at the row it cannot open ...
    outcome = await ledger.retire(path, old.active, grace_s=0, sleep=no_wait)
    # ... and retiring moves every other key, but refuses while that one is still under the old kid
    assert not outcome.retired and outcome.remaining == 1
    assert KeyRing.from_file(path) == new  # the ring keeps the old key
    counts = await store.wrapped_key_counts()
    assert counts == {old.active: 1, new.active: 3}
    for sid in good:
        assert await ledger.dek(sid) is not None
    # once the row is gone (here: shredded), the same command retires the key
    assert await ledger.shred(bad, NOW)
    outcome = await ledger.retire(path, old.active, grace_s=0, sleep=no_wait)
    assert outcome.retired and outcome.remaining == 0
    assert KeyRing.from_file(path) == new.without_key(old.active)
    assert await store.wrapped_key_counts() == {new.active: 3}
    with pytest.raises(ValueError, match="active"):
        await ledger.retire(path, new.active, grace_s=0, sleep=no_wait)
    with pytest.raises(ValueError, match="no key"):
        await ledger.retire(path, old.active, grace_s=0, sleep=no_wait)


async def test_retire_rewraps_keys_a_stale_process_made_during_the_rotation(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    old = KeyRing.generate(path)
    operator = ledger_over(store, path)
    stale = ledger_over(store, path, follow=False)  # read the ring before the rotation, still wrapping with it
    before = [await new_subject(operator) for _ in range(4)]
    new = old.with_new_active_key()
    new.save(path)
    assert await operator.rotate(new) == 4
    made: list[str] = []

    async def meanwhile(_s: float) -> None:  # the grace period: in-flight registrations still commit
        made.extend([await new_subject(stale) for _ in range(2)])

    assert (await store.wrapped_key_counts()).get(old.active) is None
    outcome = await operator.retire(path, old.active, grace_s=5, sleep=meanwhile)
    assert len(made) == 2 and outcome.retired and outcome.moved == 2
    assert await store.wrapped_key_counts() == {new.active: 6}
    restarted = ledger_over(store, path)  # after a restart only the new key exists: everything still opens
    assert restarted.ring.keys.keys() == {new.active}
    for sid in before + made:
        assert await restarted.dek(sid) is not None


async def test_a_process_with_an_old_ring_wraps_under_the_new_key_and_opens_rewrapped_ones(
    store: Store, tmp_path: Path,
) -> None:
    path = tmp_path / "kek.json"
    old = KeyRing.generate(path)
    first, second, reader = (ledger_over(store, path) for _ in range(3))
    early = await new_subject(second)
    new = old.with_new_active_key()
    new.save(path)
    await first.rotate(new)
    assert (await first.retire(path, old.active, grace_s=0, sleep=no_wait)).retired
    assert second.ring == old and reader.ring == old  # nothing told them: no signal, no watcher
    late = await new_subject(second)
    assert (await store.subject_key(late)) is not None
    assert (await store.wrapped_key_counts()) == {new.active: 2}
    assert await reader.dek(early) is not None and await reader.dek(late) is not None
    assert reader.ring == new.without_key(old.active)


async def test_an_unreadable_ring_file_stores_no_subject(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    KeyRing.generate(path)
    ledger = ledger_over(store, path)
    sid = await new_subject(ledger)
    os.chmod(path, 0o644)
    with pytest.raises(KeyRingUnavailable):
        await new_subject(ledger)
    assert await ledger.dek(sid) is not None  # reads go on with the last good ring
    assert sum((await store.wrapped_key_counts()).values()) == 1


def _cli(var: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEWAY_VAR_DIR": str(var), "GATEWAY_KEY_RETIRE_GRACE_S": "0"}
    return subprocess.run([sys.executable, "-m", "gateway", "keys", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env=env, check=False)


def test_cli_retire_refuses_with_exit_3_and_keeps_the_key(tmp_path: Path) -> None:
    var = tmp_path / "var"
    path = var / "keys" / "kek.json"
    old = KeyRing.generate(path)

    async def seed() -> None:
        store = SqliteStore(var / "gateway.sqlite3")
        try:
            ledger = ledger_over(store, path)
            await new_subject(ledger)
            await corrupt_subject(store, old.active)
        finally:
            await store.close()

    asyncio.run(seed())
    r = _cli(var, "rotate", "--retire-old")
    assert r.returncode == 1 and "does not open" in r.stderr and "Traceback" not in r.stderr
    new = KeyRing.from_file(path)
    assert old.active in new.keys and new.active != old.active
    r = _cli(var, "retire", old.active)
    assert r.returncode == 3, r.stderr
    assert f"refused: 1 data keys are still wrapped with {old.active}" in r.stderr
    assert "Traceback" not in r.stderr
    assert KeyRing.from_file(path) == new
    listing = _cli(var, "list")
    assert listing.returncode == 0, listing.stderr
    assert f"{old.active}  old" in listing.stdout and f"{new.active}  active" in listing.stdout
    r = _cli(var, "retire", new.active)
    assert r.returncode == 2 and "active key" in r.stderr
    r = _cli(var, "retire", "nosuchkid")
    assert r.returncode == 2 and "no key" in r.stderr
