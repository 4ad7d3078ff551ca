"""Sessions and the instrument-expiry computation, without a server."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gateway.auth import Role
from gateway.http.pages.overview import instruments_due
from gateway.http.pages.session import Session, session_key
from gateway.policy.loader import load_policies
from tests.web.conftest import EXPIRING_IN_DAYS, OLD_SCC, web_config


def test_instruments_due_uses_dates(tmp_path: Path) -> None:
    policies = load_policies(web_config(tmp_path))
    today = dt.datetime.now(dt.UTC).date()
    due = instruments_due(policies, today)
    soon = [i for i in due if not i.expired]
    assert [(i.kind, i.recipients, i.days_left) for i in soon] == [("safeguard", ("pir-org",), EXPIRING_IN_DAYS)]
    assert soon[0].covered_after is None  # nothing else will cover .org: transfers would be blocked
    gb = next(i for i in due if "2021/1772" in i.instrument)
    assert gb.expired and gb.covered_after and "Renewal" in gb.covered_after
    old = next(i for i in due if i.instrument == OLD_SCC)
    assert old.expired
    assert old.covered_after == "Art. 46(2)(c): Commission Implementing Decision (EU) 2021/914, module 1"
    # 91 days before the SCCs end they are not yet listed
    later = instruments_due(policies, today - dt.timedelta(days=91 - EXPIRING_IN_DAYS))
    assert not [i for i in later if not i.expired and i.kind == "safeguard"]


def test_csrf_tokens_are_bound_to_the_session_and_the_key() -> None:
    key = session_key(b"s" * 32)
    s = Session("staff", Role.PRIVACY, "a" * 64)
    assert s.csrf_ok(key, s.csrf_token(key))
    assert not s.csrf_ok(key, None) and not s.csrf_ok(key, "")
    assert not s.csrf_ok(key, Session("staff", Role.PRIVACY, "b" * 64).csrf_token(key))  # another session's
    assert not s.csrf_ok(session_key(b"t" * 32), s.csrf_token(key))  # after the secret changed


def test_log_query_parses_through_the_shared_model() -> None:
    from multidict import MultiDict

    from gateway.errors import BadFilter
    from gateway.http.pages.disclosures import LogQuery

    q = LogQuery.parse(MultiDict([("country", " SE "), ("third_country", "true"), ("since", "2024-01-01"),
                                  ("until", "9999-12-31"), ("recipient", ""), ("csrf", "x"), ("after", "7")]))
    assert dict(q.values) == {"country": "SE", "third_country": "true", "since": "2024-01-01", "until": "9999-12-31"}
    assert q.after == 7
    f = q.store_filter(None)
    assert f.since == "2024-01-01T00:00:00.000000Z" and f.until is None  # the last day: no upper bound
    assert f.third_country is True and f.country == "SE"
    for bad in ({"after": "²"}, {"after": "1" * 30}, {"until": "10000-01-01"}, {"since": "٢٠٢٤-01-01"}):
        with pytest.raises(BadFilter):
            LogQuery.parse(bad)
