"""The shared query-string models (gateway/http/query.py), without a server: what the API and the staff
pages accept, and that every refusal is a problem naming the parameter, never quoting the value."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from multidict import MultiDict

from gateway.errors import QueryInvalid
from gateway.http.query import DisclosureListQuery, LogFilterQuery, parse_query


def refused(model: type[DisclosureListQuery] | type[LogFilterQuery], pairs: list[tuple[str, str]]) -> QueryInvalid:
    with pytest.raises(QueryInvalid) as info:
        parse_query(model, MultiDict(pairs))
    err = info.value
    assert err.status == 422 and err.code == "query_invalid"
    return err


@pytest.mark.parametrize("value", [
    "²", "¹⁰", "\u0661\u0660", "\uff11\uff10", "1_0", "+1", " 1", "1.0", "-1", "", "1" * 20, "9" * 5000,
])
@pytest.mark.parametrize("name", ["limit", "after"])
def test_numbers_are_ascii_digits_only(name: str, value: str) -> None:
    """``"²".isdigit()`` is true and ``int("²")`` fails (the old 500); ``int`` also takes Arabic-Indic
    and full-width digits, underscores and 4,300-digit strings (a ValueError of its own)."""
    err = refused(DisclosureListQuery, [(name, value)])
    assert err.extra["errors"][0]["loc"] == ["query", name]
    assert value not in json.dumps(err.problem()) or value == ""


def test_numbers_in_range() -> None:
    assert parse_query(DisclosureListQuery, {"limit": "1000", "after": "0"}).limit == 1000
    assert parse_query(DisclosureListQuery, {}).limit == 100
    assert parse_query(DisclosureListQuery, {"after": str(2**62)}).after == 2**62
    for name, value in (("limit", "0"), ("limit", "1001"), ("after", str(2**62 + 1))):
        assert refused(DisclosureListQuery, [(name, value)]).extra["errors"][0]["loc"] == ["query", name]


@pytest.mark.parametrize("value", [
    "9999-12-31T23:59:59-01:00",  # the year 10000 in UTC
    "0001-01-01T00:00:00+01:00",  # the year 0 in UTC
    "2024-02-30T00:00:00Z", "2024-01-01T25:00:00Z", "٢٠٢٤-01-01T00:00:00Z", "2024-01-01T00:00:00+24:00",
    "yesterday", "2024-01-01T00:00:00Z\n",
])
@pytest.mark.parametrize("name", ["since", "until"])
def test_instants_refused(name: str, value: str) -> None:
    err = refused(DisclosureListQuery, [(name, value)])
    assert err.extra["errors"][0]["loc"] == ["query", name]


def test_instants_normalised_to_utc() -> None:
    q = parse_query(DisclosureListQuery, {
        "since": "9999-12-31T23:59:59+01:00", "until": "9999-12-31T23:59:59.999999Z"})
    assert q.since == dt.datetime(9999, 12, 31, 22, 59, 59, tzinfo=dt.UTC)
    f = q.store_filter()
    assert f.since == "9999-12-31T22:59:59.000000Z" and f.until == "9999-12-31T23:59:59.999999Z"
    assert parse_query(DisclosureListQuery, {"since": "2024-05-01"}).store_filter().since == \
        "2024-05-01T00:00:00.000000Z"
    # the API takes a value as sent ("SE\n" used to pass the old ``^[A-Z]{2}$`` regex); the pages strip
    assert refused(DisclosureListQuery, [("country", "SE\n")]).extra["errors"][0]["loc"] == ["query", "country"]
    assert parse_query(LogFilterQuery, {"country": "SE\n"}).country == "SE"


def test_filters_shared_by_api_and_pages() -> None:
    for model in (DisclosureListQuery, LogFilterQuery):
        q = parse_query(model, {"recipient": "iis-se", "country": "SE", "category": "eea",
                                "outcome": "refused", "third_country": "false"})
        assert q.recipient == "iis-se" and q.third_country is False and q.outcome == "refused"
        for name, value in (("country", "S\u0415"), ("country", "se"), ("recipient", "iis-se\x00"),
                            ("recipient", "IIS"), ("outcome", "lost"), ("third_country", "1"),
                            ("third_country", "yes"), ("category", "nope")):
            assert refused(model, [(name, value)]).extra["errors"][0]["loc"] == ["query", name], (model, name)


def test_a_name_given_twice_is_refused() -> None:
    err = refused(DisclosureListQuery, [("limit", "1"), ("limit", "1000")])
    assert err.extra["errors"] == [
        {"loc": ["query", "limit"], "type": "multiple_values", "msg": "given more than once"}]


def test_unknown_parameters_are_named_only_when_harmless() -> None:
    err = refused(DisclosureListQuery, [("bogus", "1")])
    assert err.extra["errors"][0]["loc"] == ["query", "bogus"]
    assert err.extra["errors"][0]["type"] == "extra_forbidden"
    err = refused(DisclosureListQuery, [("anna@example.se", "1")])
    assert err.extra["errors"][0]["loc"] == ["query"]
    assert "anna" not in json.dumps(err.problem())


def test_pages_ignore_blanks_and_other_form_fields() -> None:
    q = parse_query(LogFilterQuery, MultiDict([
        ("recipient", ""), ("country", " SE "), ("csrf", "x"), ("subject_id", "a" * 32), ("subject_id", "b" * 32),
        ("since", "2024-01-01"), ("until", "9999-12-31")]))
    assert q.recipient is None and q.country == "SE"
    assert q.subject_id == ("a" * 32, "b" * 32)
    assert q.since == dt.date(2024, 1, 1) and q.until == dt.date(9999, 12, 31)
    for name, value in (("since", "2024-1-1"), ("until", "٢٠٢٤-01-01"), ("after", "²"), ("subject_id", "x"),
                        ("instrument", "\u202eevil"), ("instrument", "a\x00b")):
        assert refused(LogFilterQuery, [(name, value)]).extra["errors"][0]["loc"][:2] == ["query", name]
    too_many = [("subject_id", f"{i:032x}") for i in range(21)]
    assert refused(LogFilterQuery, too_many).extra["errors"][0]["loc"] == ["query", "subject_id"]


def test_a_repeated_unknown_name_is_not_quoted() -> None:
    err = refused(DisclosureListQuery, [("anna@example.se", "1"), ("anna@example.se", "2")])
    assert err.extra["errors"][0]["loc"] == ["query"] and "anna" not in json.dumps(err.problem())
