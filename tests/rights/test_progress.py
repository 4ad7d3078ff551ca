"""Progress callbacks of the long staff commands: ``Ledger.rotate`` (``gateway keys rotate``) and
``RightsService.retention`` (``gateway retention purge``) report counts that only go up."""

from __future__ import annotations

import pytest

from gateway.http.context import SERVICES
from gateway.rights import service as rights_service
from tests.conftest import Gateway
from tests.rights.conftest import anna, bertil, register


class Calls(list[tuple[int, int | None]]):
    def __call__(self, done: int, total: int | None) -> None:
        self.append((done, total))


async def test_rotate_reports_each_rewrapped_key(gateway: Gateway) -> None:
    svc = gateway.client.app[SERVICES]
    await register(gateway, anna(domain="exempel.se"))
    await register(gateway, bertil(domain="bertils.se"))
    calls = Calls()
    count = await svc.ledger.rotate(svc.ledger.ring.with_new_active_key(), progress=calls)
    assert count >= 2
    assert calls == [(n, None) for n in range(1, count + 1)]


async def test_retention_reports_increasing_scanned_counts(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = gateway.client.app[SERVICES]
    await register(gateway, anna(domain="exempel.se"))
    await register(gateway, bertil(domain="bertils.se"))
    monkeypatch.setattr(rights_service, "_PROGRESS_EVERY", 1)
    calls = Calls()
    report = await svc.rights.retention(dry_run=True, progress=calls)
    done = [d for d, _ in calls]
    assert len(calls) >= 3 and done == sorted(done) and done[0] >= 1
    assert calls[-1] == (report["scanned"], report["scanned"])  # the ledger's size: every entry was scanned
    assert all(total is not None and total >= d for d, total in calls)

    quiet = await svc.rights.retention(dry_run=True)  # without a callback: the same report
    assert quiet["scanned"] == report["scanned"]
