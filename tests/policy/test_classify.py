"""Chapter V classification (gateway/policy/classify.py), with inline facts only."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from gateway.policy.classify import TransferDecision, classify_transfer
from gateway.policy.schema import AdequacyDecision, Jurisdictions, RecipientPolicy, TransferCategory

PURPOSE = "domain_registration"
UTC = dt.UTC


def at(year: int, month: int, day: int, hour: int = 12, minute: int = 0, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=tz)


def adequacy(country: str = "JP", adopted: str = "2019-01-23", valid_until: str | None = None,
             confirmed: bool = True) -> dict[str, Any]:
    return {
        "country": country,
        "territory": f"territory of {country}",
        "decision": f"Decision (EU) for {country}",
        "adopted": adopted,
        "valid_until": valid_until,
        "scope": "private sector",
        "source": "https://eur-lex.europa.eu/",
        "confirmed": confirmed,
    }


def jurisdictions(*decisions: dict[str, Any]) -> Jurisdictions:
    return Jurisdictions.model_validate(
        {
            "eea": ["AT", "BE", "DE", "GR", "IS", "LI", "NO", "SE"],
            "eea_source": "https://eur-lex.europa.eu/",
            "adequacy": list(decisions),
        }
    )


def safeguard(signed: str = "2021-06-01", valid_until: str | None = None, article: str = "46(2)(c)",
              confirmed: bool = True) -> dict[str, Any]:
    return {
        "article": article,
        "instrument": "SCC 2021/914 module 1",
        "signed": signed,
        "valid_until": valid_until,
        "source": "contract archive #42",
        "confirmed": confirmed,
    }


def derogation(purposes: list[str] | None = None, confirmed: bool = False) -> dict[str, Any]:
    return {
        "article": "49(1)(b)",
        "justification": "necessary for the performance of the registration contract",
        "purposes": purposes or [PURPOSE],
        "source": "legal memo 2024-07",
        "confirmed": confirmed,
    }


def recipient(country: str, *, safeguards: list[dict[str, Any]] | None = None,
              derog: dict[str, Any] | None = None, confirmed: bool = True) -> RecipientPolicy:
    return RecipientPolicy.model_validate(
        {
            "recipient": "test-registry",
            "name": "Test Registry",
            "kind": "registry",
            "role": "controller",
            "tlds": ["test"],
            "country": country,
            "protocol": "rri",
            "purposes": [PURPOSE],
            "fields": {"name": {"send": "always"}},
            "safeguards": safeguards or [],
            "derogation": derog,
            "source": "https://registry.example/",
            "confirmed": confirmed,
        }
    )


# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("country", ["CN", "SE", "JP", "US"])
def test_no_personal_data_needs_no_basis(country: str) -> None:
    d = classify_transfer(recipient(country), jurisdictions(), at(2024, 5, 1), PURPOSE,
                          carries_personal_data=False)
    assert d.category is TransferCategory.NO_PERSONAL_DATA
    assert d.allowed
    assert not d.third_country
    assert d.country == country
    assert d.article is None


def test_eea_recipient() -> None:
    d = classify_transfer(recipient("SE"), jurisdictions(adequacy("SE")), at(2024, 5, 1), PURPOSE)
    assert d.category is TransferCategory.EEA
    assert d.allowed
    assert not d.third_country
    assert d.article is None
    assert d.instrument is None


@pytest.mark.parametrize("country", ["NO", "IS", "LI", "GR"])
def test_eea_includes_non_eu_members_and_gr(country: str) -> None:
    d = classify_transfer(recipient(country), jurisdictions(), at(2024, 5, 1), PURPOSE)
    assert d.category is TransferCategory.EEA


def test_adequacy_in_force() -> None:
    d = classify_transfer(recipient("JP"), jurisdictions(adequacy("JP")), at(2024, 5, 1), PURPOSE)
    assert d.category is TransferCategory.ADEQUACY
    assert d.allowed
    assert d.third_country
    assert d.article == "45"
    assert d.instrument == "Decision (EU) for JP"
    assert d.valid_from == dt.date(2019, 1, 23)
    assert d.valid_until is None
    assert "2024-05-01" in d.reason
    assert d.confirmed


@pytest.mark.parametrize(("decision_ok", "recipient_ok"), [(False, True), (True, False), (False, False)])
def test_adequacy_confirmed_needs_both_facts_confirmed(decision_ok: bool, recipient_ok: bool) -> None:
    d = classify_transfer(recipient("JP", confirmed=recipient_ok),
                          jurisdictions(adequacy("JP", confirmed=decision_ok)), at(2024, 5, 1), PURPOSE)
    assert d.category is TransferCategory.ADEQUACY
    assert d.confirmed is False


def test_adequacy_for_another_country_does_not_apply() -> None:
    d = classify_transfer(recipient("CN"), jurisdictions(adequacy("JP"), adequacy("KR")), at(2024, 5, 1),
                          PURPOSE)
    assert d.category is TransferCategory.BLOCKED


def test_expired_adequacy_blocks() -> None:
    j = jurisdictions(adequacy("GB", adopted="2021-06-28", valid_until="2025-06-27"))
    d = classify_transfer(recipient("GB"), j, at(2025, 7, 1), PURPOSE)
    assert d.category is TransferCategory.BLOCKED
    assert not d.allowed
    assert "not in force on 2025-07-01" in d.reason
    assert d.article is None


def test_adequacy_not_yet_adopted_blocks() -> None:
    j = jurisdictions(adequacy("JP", adopted="2019-01-23"))
    d = classify_transfer(recipient("JP"), j, at(2019, 1, 22, 23, 59), PURPOSE)
    assert d.category is TransferCategory.BLOCKED
    assert "not in force on 2019-01-22" in d.reason


def test_adequacy_boundaries_are_inclusive() -> None:
    j = jurisdictions(adequacy("GB", adopted="2021-06-28", valid_until="2025-06-27"))
    r = recipient("GB")
    first = classify_transfer(r, j, at(2021, 6, 28, 0, 0), PURPOSE)
    last = classify_transfer(r, j, at(2025, 6, 27, 23, 59), PURPOSE)
    after = classify_transfer(r, j, at(2025, 6, 28, 0, 0), PURPOSE)
    assert first.category is TransferCategory.ADEQUACY
    assert last.category is TransferCategory.ADEQUACY
    assert last.valid_until == dt.date(2025, 6, 27)
    assert after.category is TransferCategory.BLOCKED


def test_renewed_adequacy_is_found_after_an_expired_one() -> None:
    j = jurisdictions(
        adequacy("GB", adopted="2021-06-28", valid_until="2025-06-27"),
        adequacy("GB", adopted="2025-06-28", valid_until="2031-12-27"),
    )
    d = classify_transfer(recipient("GB"), j, at(2026, 1, 1), PURPOSE)
    assert d.category is TransferCategory.ADEQUACY
    assert d.valid_from == dt.date(2025, 6, 28)


def test_adequacy_takes_precedence_over_safeguard_and_derogation() -> None:
    r = recipient("JP", safeguards=[safeguard()], derog=derogation())
    d = classify_transfer(r, jurisdictions(adequacy("JP")), at(2024, 5, 1), PURPOSE)
    assert d.category is TransferCategory.ADEQUACY


def test_safeguard_in_force() -> None:
    r = recipient("US", safeguards=[safeguard(article="46(2)(c)", valid_until="2026-12-31", confirmed=False)])
    d = classify_transfer(r, jurisdictions(), at(2024, 5, 1), PURPOSE)
    assert d.category is TransferCategory.SAFEGUARD
    assert d.allowed
    assert d.third_country
    assert d.article == "46(2)(c)"
    assert d.instrument == "SCC 2021/914 module 1"
    assert d.valid_from == dt.date(2021, 6, 1)
    assert d.valid_until == dt.date(2026, 12, 31)
    assert "46(2)(c)" in d.reason
    assert d.confirmed is False


def test_safeguard_takes_precedence_over_derogation() -> None:
    r = recipient("US", safeguards=[safeguard()], derog=derogation())
    d = classify_transfer(r, jurisdictions(), at(2024, 5, 1), PURPOSE)
    assert d.category is TransferCategory.SAFEGUARD


def test_expired_safeguard_falls_through_to_blocked() -> None:
    r = recipient("US", safeguards=[safeguard(valid_until="2023-12-31")])
    d = classify_transfer(r, jurisdictions(), at(2024, 1, 1, 0, 0), PURPOSE)
    assert d.category is TransferCategory.BLOCKED


def test_expired_safeguard_falls_through_to_derogation() -> None:
    r = recipient("US", safeguards=[safeguard(valid_until="2023-12-31")], derog=derogation())
    d = classify_transfer(r, jurisdictions(), at(2024, 5, 1), PURPOSE)
    assert d.category is TransferCategory.DEROGATION


def test_safeguard_not_yet_signed_falls_through() -> None:
    r = recipient("US", safeguards=[safeguard(signed="2024-06-01")])
    assert classify_transfer(r, jurisdictions(), at(2024, 5, 31, 23, 59), PURPOSE).category is (
        TransferCategory.BLOCKED
    )
    assert classify_transfer(r, jurisdictions(), at(2024, 6, 1, 0, 0), PURPOSE).category is (
        TransferCategory.SAFEGUARD
    )


def test_safeguard_valid_on_its_last_day() -> None:
    r = recipient("US", safeguards=[safeguard(valid_until="2024-12-31")])
    d = classify_transfer(r, jurisdictions(), at(2024, 12, 31, 23, 59), PURPOSE)
    assert d.category is TransferCategory.SAFEGUARD


def test_second_safeguard_used_when_first_expired() -> None:
    r = recipient("US", safeguards=[safeguard(valid_until="2022-12-31"),
                                    safeguard(signed="2023-01-01", article="46(2)(b)")])
    d = classify_transfer(r, jurisdictions(), at(2024, 5, 1), PURPOSE)
    assert d.category is TransferCategory.SAFEGUARD
    assert d.article == "46(2)(b)"


def test_derogation_for_listed_purpose() -> None:
    r = recipient("US", derog=derogation([PURPOSE], confirmed=False))
    d = classify_transfer(r, jurisdictions(), at(2024, 5, 1), PURPOSE)
    assert d.category is TransferCategory.DEROGATION
    assert d.allowed
    assert d.third_country
    assert d.article == "49(1)(b)"
    assert d.instrument is None
    assert d.reason == "necessary for the performance of the registration contract"
    assert d.confirmed is False


def test_derogation_not_for_other_purposes() -> None:
    r = recipient("US", derog=derogation([PURPOSE]))
    d = classify_transfer(r, jurisdictions(), at(2024, 5, 1), "marketing")
    assert d.category is TransferCategory.BLOCKED
    assert not d.allowed


def test_no_basis_blocked_with_reason() -> None:
    d = classify_transfer(recipient("CN"), jurisdictions(adequacy("JP")), at(2024, 5, 1), PURPOSE)
    assert d.category is TransferCategory.BLOCKED
    assert not d.allowed
    assert d.third_country
    assert d.reason == "third country without adequacy decision, safeguard or derogation"
    assert (d.article, d.instrument, d.valid_from, d.valid_until) == (None, None, None, None)


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        classify_transfer(recipient("SE"), jurisdictions(), dt.datetime(2024, 5, 1, 12, 0), PURPOSE)


def test_naive_datetime_rejected_even_without_personal_data() -> None:
    with pytest.raises(ValueError):
        classify_transfer(recipient("SE"), jurisdictions(), dt.datetime(2024, 5, 1), PURPOSE,
                          carries_personal_data=False)


def test_evaluated_on_the_utc_date_east_of_utc() -> None:
    """01:00 on 1 Jan in UTC+14 is still 31 Dec in UTC: the decision valid until 31 Dec applies."""
    kiribati = dt.timezone(dt.timedelta(hours=14))
    when = at(2026, 1, 1, 1, 0, tz=kiribati)
    assert when.astimezone(UTC).date() == dt.date(2025, 12, 31)
    j = jurisdictions(adequacy("GB", adopted="2021-06-28", valid_until="2025-12-31"))
    d = classify_transfer(recipient("GB"), j, when, PURPOSE)
    assert d.category is TransferCategory.ADEQUACY
    assert "2025-12-31" in d.reason


def test_evaluated_on_the_utc_date_west_of_utc() -> None:
    """20:00 on 31 Dec in UTC-12 is already 1 Jan in UTC: the decision has expired."""
    baker = dt.timezone(dt.timedelta(hours=-12))
    when = at(2025, 12, 31, 20, 0, tz=baker)
    j = jurisdictions(adequacy("GB", adopted="2021-06-28", valid_until="2025-12-31"))
    d = classify_transfer(recipient("GB"), j, when, PURPOSE)
    assert d.category is TransferCategory.BLOCKED
    assert "2026-01-01" in d.reason


def test_safeguard_start_evaluated_in_utc() -> None:
    kiribati = dt.timezone(dt.timedelta(hours=14))
    r = recipient("US", safeguards=[safeguard(signed="2024-06-01")])
    # 1 June 10:00 at UTC+14 is 31 May 20:00 UTC: not yet signed.
    d = classify_transfer(r, jurisdictions(), at(2024, 6, 1, 10, 0, tz=kiribati), PURPOSE)
    assert d.category is TransferCategory.BLOCKED


def test_as_dict_is_json_ready() -> None:
    j = jurisdictions(adequacy("GB", adopted="2021-06-28", valid_until="2025-06-27"))
    d = classify_transfer(recipient("GB"), j, at(2024, 5, 1), PURPOSE)
    assert d.as_dict() == {
        "category": "adequacy",
        "country": "GB",
        "article": "45",
        "instrument": "Decision (EU) for GB",
        "valid_from": "2021-06-28",
        "valid_until": "2025-06-27",
        "reason": "adequacy decision in force on 2024-05-01",
        "confirmed": True,
    }


def test_decision_is_immutable() -> None:
    d = classify_transfer(recipient("SE"), jurisdictions(), at(2024, 5, 1), PURPOSE)
    assert isinstance(d, TransferDecision)
    with pytest.raises(AttributeError):
        d.category = TransferCategory.BLOCKED  # type: ignore[misc]


def test_adequacy_window_validated() -> None:
    with pytest.raises(ValueError, match="valid_until must be after adopted"):
        AdequacyDecision.model_validate(adequacy("GB", adopted="2021-06-28", valid_until="2021-06-01"))
