"""Send-time classification (gateway/policy/classify.py ``classify_at_send``): a basis that was in force
at acceptance but ended before sending blocks the send, with a reason naming what ended and when."""

from __future__ import annotations

import datetime as dt

import pytest

from gateway.policy.classify import classify_at_send, classify_transfer
from gateway.policy.loader import PolicySet, load_policies
from gateway.policy.schema import TransferCategory
from tests.conftest import ROOT
from tests.policy.test_classify import jurisdictions, recipient, safeguard

PURPOSE = "domain_registration"


def utc(y: int, m: int, d: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(y, m, d, hour, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies(ROOT / "config")


def test_uk_accepted_under_adequacy_and_sent_after_it_ended_is_blocked(policies: PolicySet) -> None:
    uk = policies.recipients["nominet-uk"]
    accepted = classify_transfer(uk, policies.jurisdictions, utc(2031, 12, 26), PURPOSE)
    assert accepted.category is TransferCategory.ADEQUACY and accepted.allowed
    sent = classify_at_send(uk, policies.jurisdictions, utc(2032, 1, 1), PURPOSE)
    assert sent.category is TransferCategory.BLOCKED and not sent.allowed
    assert "ended on 2031-12-27" in sent.reason and "not in force on 2032-01-01" in sent.reason
    assert "Renewal of the UK adequacy decision" in sent.reason  # the latest decision, by name
    assert sent.as_dict()["category"] == "blocked" and sent.as_dict()["reason"] == sent.reason
    # the last day of the window still counts
    assert classify_at_send(uk, policies.jurisdictions, utc(2031, 12, 27, 23), PURPOSE).allowed


def test_an_scc_whose_end_date_passed_blocks_the_send() -> None:
    r = recipient("US", safeguards=[safeguard(signed="2022-01-01", valid_until="2030-06-30")])
    accepted = classify_at_send(r, jurisdictions(), utc(2030, 6, 30), PURPOSE)
    assert accepted.category is TransferCategory.SAFEGUARD and accepted.valid_until == dt.date(2030, 6, 30)
    sent = classify_at_send(r, jurisdictions(), utc(2030, 7, 1), PURPOSE)
    assert sent.category is TransferCategory.BLOCKED
    assert "SCC 2021/914 module 1 ended on 2030-06-30" in sent.reason
    assert "2030-07-01" in sent.reason


def test_a_later_safeguard_not_yet_signed_is_named() -> None:
    r = recipient("US", safeguards=[safeguard(signed="2031-01-01")])
    d = classify_at_send(r, jurisdictions(), utc(2030, 7, 1), PURPOSE)
    assert not d.allowed and "starts only on 2031-01-01" in d.reason


def test_an_eea_recipient_is_unaffected_by_the_send_time(policies: PolicySet) -> None:
    se = policies.recipients["iis-se"]
    for when in (utc(2031, 12, 26), utc(2032, 1, 1), utc(2099, 1, 1)):
        d = classify_at_send(se, policies.jurisdictions, when, PURPOSE)
        assert d.category is TransferCategory.EEA and d.allowed


def test_send_time_equals_acceptance_rules_at_the_same_instant(policies: PolicySet) -> None:
    for rid in ("nominet-uk", "pir-org", "cnnic-cn", "io-registry", "verisign-com"):
        pol = policies.recipients[rid]
        for when in (utc(2026, 3, 1), utc(2032, 1, 1)):
            carries = pol.sends_personal_data
            assert classify_at_send(pol, policies.jurisdictions, when, PURPOSE, carries_personal_data=carries) == \
                classify_transfer(pol, policies.jurisdictions, when, PURPOSE, carries_personal_data=carries)
