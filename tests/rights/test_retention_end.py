"""The retention purge counts from the end of the relationship: an entry's values go ``period`` after its
registration ended (deleted, transferred away, expired), never while the registration is ours."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.http.context import SERVICES
from gateway.rights.config import load_retention
from gateway.rights.deadlines import add_months
from gateway.rights.service import RightsService
from gateway.services.ledger import verify_store
from tests.api.test_lifecycle import act, entries, registration, wait_for
from tests.conftest import ROOT, Gateway
from tests.rights.conftest import anna, bertil, register

T0 = dt.datetime(2026, 1, 10, 9, 0, tzinfo=dt.UTC)


def test_the_period_runs_from_the_end_of_the_registration() -> None:
    cfg = load_retention(ROOT / "config")
    assert cfg.measured_from == "registration_end"
    ended = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
    # still ours: no date yet
    assert cfg.purge_date("domain_registration", T0, None) is None
    assert cfg.purge_date("escrow", T0, None) is None
    # ended: 15 months after the end, not after the entry
    assert cfg.purge_date("domain_registration", T0, ended) == dt.datetime(2027, 9, 1, 12, 0, tzinfo=dt.UTC)
    # an entry recorded after the end gets its full period from itself
    late = ended + dt.timedelta(days=3)
    assert cfg.purge_date("domain_registration", late, ended) == dt.datetime(2027, 9, 4, 12, 0, tzinfo=dt.UTC)
    # purposes that do not last as long as the domain keep counting from the entry
    assert cfg.measured("marketing") == "recorded_at"
    assert cfg.purge_date("marketing", T0, None) == dt.datetime(2026, 7, 10, 9, 0, tzinfo=dt.UTC)
    assert cfg.purge_date("order_confirmation", T0, ended) == dt.datetime(2026, 4, 10, 9, 0, tzinfo=dt.UTC)
    assert cfg.purge_date("no_such_purpose", T0, ended) is None


@pytest.mark.integration
async def test_purge_only_values_of_ended_registrations_past_their_period(gateway: Gateway) -> None:
    svc = gateway.client.app[SERVICES]
    ended_reg = await register(gateway, anna())
    active_reg = await register(gateway, bertil(domain="bertils.se", order_ref="ORD-1003"))
    assert (await act(gateway, ended_reg, "delete")).status == 202
    done = await wait_for(gateway, ended_reg, lambda g: bool(entries(g, "contact:delete")))
    ended_at = dt.datetime.fromisoformat(done["ended_at"].replace("Z", "+00:00"))
    [gone] = entries(done, "contact:create")
    [kept] = entries(await registration(gateway, active_reg), "contact:create")

    def at(moment: dt.datetime) -> RightsService:
        return RightsService(svc.store, svc.ledger, svc.registrations.policies, clock=lambda: moment,
                             config_dir=ROOT / "config")

    def months_after(start: dt.datetime, months: int) -> dt.datetime:
        return dt.datetime.combine(add_months(start.date(), months), start.timetz())

    # 14 months after the end: nothing is due, neither the ended registration's nor the active one's
    early = await at(months_after(ended_at, 14)).retention(dry_run=True)
    assert early["expired"] == 0 and early["measured_from"] == "registration_end"
    assert early["purposes"]["domain_registration"]["measured_from"] == "registration_end"

    # 16 months on: the ended registration's values are due; the active one's are kept, however old
    late = at(months_after(ended_at, 16))
    dry = await late.retention(dry_run=True)
    assert dry["purposes"]["domain_registration"]["ids"] == [gone["id"]]
    assert dry["purposes"]["domain_registration"]["kept_registration_active"] == 1
    report = await late.retention(dry_run=False)
    assert report["purged"] == 1
    assert (await svc.store.disclosure(gone["id"])).values_purged  # type: ignore[union-attr]
    assert (await svc.store.disclosure(kept["id"])).values_ct is not None  # type: ignore[union-attr]
    # ten years on, still kept while Bertil's domain is ours
    assert (await at(months_after(ended_at, 120)).retention(dry_run=True))["expired"] == 0
    report_ok = await verify_store(svc.store, svc.ledger.signer.public_key)
    assert report_ok.ok, report_ok
