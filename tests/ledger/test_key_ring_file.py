"""``KeyRingFile``: a long-running process follows the ring file that ``gateway keys rotate`` replaces, wraps
only under the file's active key as it is now, and fails closed when the file cannot be read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.errors import ConfigError, KeyRingUnavailable
from gateway.ledger.keys import KeyRing, KeyRingFile, new_data_key, unwrap, wrap

SUBJECT = "0123456789abcdef0123456789abcdef"


def test_for_wrap_uses_the_active_key_of_the_file_as_it_is_now(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    r0 = KeyRing.generate(path)
    live = KeyRingFile(path)
    assert live.for_wrap().active == r0.active
    r1 = r0.with_new_active_key()
    r1.save(path)  # another process rotates: no signal, no watcher
    assert live.for_wrap().active == r1.active
    r2 = r1.without_key(r0.active)
    r2.save(path)
    ring = live.for_wrap()
    assert ring == r2 and r0.active not in ring.keys
    assert wrap(ring, new_data_key(), SUBJECT).kid == r1.active


@pytest.mark.parametrize("breakage", ["missing", "group_readable", "not_json", "not_utf8", "no_active_key"])
def test_for_wrap_fails_closed_rather_than_use_the_ring_in_memory(tmp_path: Path, breakage: str) -> None:
    path = tmp_path / "kek.json"
    ring = KeyRing.generate(path)
    live = KeyRingFile(path)
    assert live.for_wrap() == ring
    if breakage == "missing":
        path.unlink()
    elif breakage == "group_readable":
        os.chmod(path, 0o640)
    elif breakage == "not_json":
        path.write_text("{")
    elif breakage == "not_utf8":
        path.write_bytes(b"\xff\xfe")
    else:
        path.write_text('{"active": "zz", "keys": {}}')
    with pytest.raises(KeyRingUnavailable) as err:
        live.for_wrap()
    assert err.value.status == 503 and err.value.code == "key_ring_unavailable"
    # reading never creates a wrap: it keeps the last good ring
    assert live.for_unwrap("unknown") == ring
    with pytest.raises(ConfigError):
        live.reload()


def test_for_unwrap_rereads_when_a_kid_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    r0 = KeyRing.generate(path)
    live = KeyRingFile(path)
    r1 = r0.with_new_active_key()
    r1.save(path)
    wrapped = wrap(r1, new_data_key(), SUBJECT)  # re-wrapped by the rotation in another process
    assert live.ring == r0  # not read yet
    ring = live.for_unwrap(wrapped.kid)
    assert ring == r1
    assert len(unwrap(ring, wrapped, SUBJECT)) == 32


def test_refresh_reads_only_when_the_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "kek.json"
    r0 = KeyRing.generate(path)
    live = KeyRingFile(path)
    assert live.refresh() is False
    assert live.reload() is False
    r1 = r0.with_new_active_key()
    r1.save(path)
    assert live.refresh() is True and live.ring == r1
    assert live.refresh() is False
    live.adopt(r0)  # a stale ring adopted in memory is replaced at the next forced read
    assert live.reload() is True and live.ring == r1
    assert "KeyRingFile" in repr(live) and path.read_text() not in repr(live)
