"""Pure parts: Art. 12(3) deadlines, restriction_refusal, the explainer."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, cast

import pytest

from gateway.errors import NoRecipientPolicy, ValidationFailed
from gateway.models import Registrant
from gateway.policy.loader import PolicySet, load_policies
from gateway.policy.restrictions import restriction_refusal
from gateway.rights.deadlines import (
    add_months,
    day_off,
    days_left,
    deadline_for,
    extended_deadline,
    extension_refusal,
    near_deadline,
)
from gateway.rights.service import RightsService, national_id_forms
from tests.conftest import ROOT, VALID_BODY

D = dt.date


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies(ROOT / "config")


# -- deadlines -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("opened", "due"), [
    (D(2025, 1, 31), D(2025, 2, 28)),  # a Friday
    (D(2028, 1, 31), D(2028, 2, 29)),  # leap year, a Tuesday
    (D(2026, 1, 15), D(2026, 2, 16)),  # 15 February 2026 is a Sunday: the Monday
    (D(2026, 3, 31), D(2026, 4, 30)),
    (D(2026, 12, 31), D(2027, 2, 1)),  # 31 January 2027 is a Sunday
    (D(2026, 2, 28), D(2026, 3, 30)),  # 28 March 2026 is a Saturday
])
def test_deadline_is_same_day_next_month_clamped_then_a_working_day(opened: dt.date, due: dt.date) -> None:
    assert deadline_for(opened) == due


@pytest.mark.parametrize(("opened", "due", "why"), [
    (D(2026, 11, 24), D(2026, 12, 28), "Julafton"),  # 24 Dec eve, 25-26 holidays, 27 Sunday
    (D(2026, 5, 19), D(2026, 6, 22), "Midsommarafton"),  # Fri 19 June eve, Sat 20 Midsommardagen, Sun 21
    (D(2026, 3, 6), D(2026, 4, 7), "Annandag påsk"),  # Mon 6 April 2026
    (D(2026, 11, 30), D(2026, 12, 30), None),  # an ordinary Wednesday
    (D(2026, 12, 1), D(2027, 1, 4), "Nyårsdagen"),  # 1 Jan 2027 a Friday, then the weekend
])
def test_deadline_moves_off_swedish_holidays(opened: dt.date, due: dt.date, why: str | None) -> None:
    assert deadline_for(opened) == due
    raw = add_months(opened, 1)
    assert day_off(raw) == why  # the nominal day is that holiday (or, for None, a working day)
    assert day_off(due) is None


def test_near_deadline_reminders() -> None:
    assert near_deadline(D(2026, 12, 7), D(2026, 11, 30))
    assert not near_deadline(D(2026, 12, 8), D(2026, 11, 30))
    assert near_deadline(D(2026, 11, 1), D(2026, 11, 30))  # overdue stays on the list


def test_add_months_across_years_and_negative() -> None:
    assert add_months(D(2026, 11, 30), 3) == D(2027, 2, 28)
    assert add_months(D(2026, 3, 31), -1) == D(2026, 2, 28)
    assert add_months(D(2026, 5, 5), 0) == D(2026, 5, 5)


def test_extension_rule() -> None:
    opened = D(2025, 1, 31)
    assert extended_deadline(opened) == D(2025, 4, 30)  # two further months, at most
    assert extension_refusal(opened, D(2025, 2, 1), already_extended=False) is None
    assert extension_refusal(opened, D(2025, 2, 28), already_extended=False) is None  # last day of month one
    late = extension_refusal(opened, D(2025, 3, 1), already_extended=False)
    assert late is not None and "within one month" in late
    twice = extension_refusal(opened, D(2025, 2, 2), already_extended=True)
    assert twice is not None and "already extended" in twice


def test_days_left() -> None:
    assert days_left(D(2026, 2, 28), D(2026, 2, 1)) == 27
    assert days_left(D(2026, 2, 28), D(2026, 2, 28)) == 0
    assert days_left(D(2026, 2, 28), D(2026, 3, 2)) == -2


def test_national_id_forms_find_the_canonical_personnummer() -> None:
    assert "198112189876" in national_id_forms("811218-9876", None)
    assert national_id_forms("19811218-9876", "se_personnummer") == ["198112189876"]
    assert national_id_forms("802405-0190", None) == ["802405-0190"]  # not a person: as given
    with pytest.raises(ValidationFailed):
        national_id_forms("811218-9875", "se_personnummer")


# -- restriction_refusal -----------------------------------------------------------------------------------

def _r(kind: str, scope: str, lifted: str | None = None) -> dict[str, Any]:
    return {"id": "r1", "subject_id": "s", "kind": kind, "scope": scope, "since": "2026-01-01T00:00:00Z",
            "lifted_at": lifted, "request_id": "q"}


def test_restriction_all_refuses_every_recipient(policies: PolicySet) -> None:
    for rid, pol in policies.recipients.items():
        reason = restriction_refusal([_r("restriction", "all")], pol, pol.purposes[0])
        assert reason is not None and "Art. 18" in reason, rid


def test_restriction_of_one_recipient_refuses_only_it(policies: PolicySet) -> None:
    rows = [_r("restriction", "iis-se")]
    assert restriction_refusal(rows, policies.recipients["iis-se"], "domain_registration") is not None
    assert restriction_refusal(rows, policies.recipients["iis-nu"], "domain_registration") is None
    assert restriction_refusal(rows, policies.recipients["marketing-partner"], "marketing") is None


def test_lifted_restrictions_no_longer_count(policies: PolicySet) -> None:
    rows = [_r("restriction", "all", lifted="2026-02-01T00:00:00Z")]
    assert restriction_refusal(rows, policies.recipients["iis-se"], "domain_registration") is None
    assert restriction_refusal([], policies.recipients["iis-se"], "domain_registration") is None


def test_objection_to_marketing(policies: PolicySet) -> None:
    rows = [_r("objection", "marketing")]
    marketing = policies.recipients["marketing-partner"]
    reason = restriction_refusal(rows, marketing, "marketing")
    assert reason is not None and "Art. 21" in reason
    # any recipient used for the purpose "marketing" is refused too
    assert restriction_refusal(rows, policies.recipients["mail-provider"], "marketing") is not None
    # registries and e-mail for the order are not marketing
    assert restriction_refusal(rows, policies.recipients["iis-se"], "domain_registration") is None
    assert restriction_refusal(rows, policies.recipients["mail-provider"], "order_confirmation") is None


def test_objection_scoped_to_a_recipient(policies: PolicySet) -> None:
    rows = [_r("objection", "mail-provider")]
    assert restriction_refusal(rows, policies.recipients["mail-provider"], "order_confirmation") is not None
    assert restriction_refusal(rows, policies.recipients["iis-se"], "domain_registration") is None


# -- explainer ----------------------------------------------------------------------------------------------

def _service(policies: PolicySet) -> RightsService:
    return RightsService(cast(Any, None), cast(Any, None), policies, config_dir=ROOT / "config")


def _person(**extra: Any) -> Registrant:
    return Registrant.model_validate_json(json.dumps(dict(VALID_BODY["registrant"], **extra)))


AT = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def test_explain_se_person(policies: PolicySet) -> None:
    out = _service(policies).explain(_person(fax="+46 8 123 456 79"), "se", AT)
    assert out["registration_possible"] is True
    [iis] = [r for r in out["recipients"] if r["recipient"] == "iis-se"]
    assert iis["would_send"] is True
    assert iis["transfer"]["category"] == "eea"
    assert iis["sent"]["national_id"] == "[SE]811218-9876"
    assert iis["sent"]["name"] == "Anna Andersson"
    assert "fax" not in iis["sent"]
    assert "minimisation" in iis["withheld"]["fax"]
    assert "language" in iis["withheld"]


def test_explain_com_sends_nothing_to_the_thin_registry(policies: PolicySet) -> None:
    out = _service(policies).explain(_person(), "com", AT)
    assert out["registration_possible"] is True
    [verisign] = [r for r in out["recipients"] if r["recipient"] == "verisign-com"]
    assert verisign["sent"] == {}
    assert verisign["transfer"]["category"] == "no_personal_data"
    assert set(verisign["withheld"]) >= {"name", "email", "national_id", "street", "phone"}
    # a gTLD registration is still escrowed (RAA 3.6): the explainer says so
    assert any(r["kind"] == "escrow" for r in out["recipients"])


def test_explain_cn_is_blocked_and_nothing_goes_anywhere(policies: PolicySet) -> None:
    out = _service(policies).explain(_person(), "cn", AT)
    assert out["registration_possible"] is False
    assert out["blocked_by"] == ["cnnic-cn"]
    [cnnic] = out["recipients"]
    assert cnnic["transfer"]["category"] == "blocked"
    assert cnnic["refused"]["code"] == "transfer_blocked"
    assert cnnic["would_send"] is False and cnnic["sent"] == {}
    assert "national_id" in cnnic["would_have_sent"]


def test_explain_rejects_unknown_or_bad_tlds(policies: PolicySet) -> None:
    with pytest.raises(NoRecipientPolicy):
        _service(policies).explain(_person(), "zz", AT)
    with pytest.raises(ValidationFailed):
        _service(policies).explain(_person(), "s e", AT)
