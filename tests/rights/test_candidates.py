"""Candidate records and the staff's confirmation, in the rights service.

The blind index is the real one (``Ledger.digests`` over ``gateway.identity.identity_keys``, what a
registration stores), but its rows are kept here rather than written by registrations: these tests are
about what a request finds from what a person types and what may then be acted on, and must not depend
on how registrations are grouped into subjects.  A real SQLite store holds the requests."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import (
    NotACandidate,
    RequestClosed,
    SubjectNotConfirmed,
    SubjectNotIdentified,
    ValidationFailed,
)
from gateway.identity import identity_keys
from gateway.ledger.checkpoint import CheckpointSigner
from gateway.ledger.keys import BlindIndexer, KeyRing
from gateway.models import Registrant
from gateway.policy.loader import load_policies
from gateway.rights.service import MAX_CANDIDATES, RightsService
from gateway.services.ledger import Ledger
from gateway.store.sqlite import SqliteStore
from tests.conftest import ROOT, VALID_BODY

FAMILY_EMAIL = "familjen@example.se"

#: Two people of one household: one e-mail address and one phone line, different personnummer and names.
PER: dict[str, Any] = dict(copy.deepcopy(VALID_BODY["registrant"]), name="Per Persson", email=FAMILY_EMAIL,
                           national_id={"scheme": "se_personnummer", "value": "19811218-9876"})
QARIN: dict[str, Any] = dict(copy.deepcopy(VALID_BODY["registrant"]), name="Qarin Persson", email=FAMILY_EMAIL,
                             national_id={"scheme": "se_personnummer", "value": "19880320-0016"})


class Index:
    """Blind-index rows kept beside the store: ``find_subjects`` answers from them as the store would."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.rows: dict[tuple[str, str], list[str]] = {}

    def holder(self, registrant: dict[str, Any]) -> str:
        """A subject with every link a registration of ``registrant`` stores; its id."""
        sid = secrets.token_hex(16)
        reg = Registrant.model_validate_json(json.dumps(registrant))
        for kind, digest in self.ledger.digests([(k, v) for k, v in identity_keys(reg)]):
            self.rows.setdefault((kind, digest), []).append(sid)
        return sid

    async def find_subjects(self, digests: list[tuple[str, str]]) -> list[str]:
        found: list[str] = []
        for d in digests:
            found += [s for s in self.rows.get((d[0], d[1]), []) if s not in found]
        return found


@pytest.fixture
async def rights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[RightsService, Index]]:
    store = SqliteStore(tmp_path / "gateway.db")
    ledger = Ledger(store, KeyRing.generate(tmp_path / "kek.json"), BlindIndexer(secrets.token_bytes(32)),
                    CheckpointSigner.generate())
    index = Index(ledger)
    monkeypatch.setattr(store, "find_subjects", index.find_subjects)
    try:
        yield RightsService(store, ledger, load_policies(ROOT / "config"), config_dir=ROOT / "config"), index
    finally:
        await store.close()


async def _open(service: RightsService, **identifiers: str) -> dict[str, Any]:
    return await service.open_request(kind="access", channel="letter", identity_check="ID card checked",
                                      verified_by="staff-1", actor="staff", identifiers=identifiers)


def _matches(candidates: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    return [(c["subject_id"], c["matched_by"]) for c in candidates]


async def test_any_identifier_lists_its_records_with_how_each_matched(rights: tuple[RightsService, Index]) -> None:
    service, index = rights
    per, qarin = index.holder(PER), index.holder(QARIN)

    # the number as people write it (10 digits), with its scheme: strong, and the number alone
    assert _matches(await service.candidates({"national_id": "880320-0016", "national_id_scheme": "se_personnummer"})
                    ) == [(qarin, ["strong_id", "national_id"])]
    assert _matches(await service.candidates({"national_id": "8803200016"})) == [(qarin, ["national_id"])]
    # the family's e-mail address and phone line list both of them, nothing merged
    both = await service.candidates({"email": " Familjen@EXAMPLE.se"})
    assert sorted(_matches(both)) == sorted([(per, ["email"]), (qarin, ["email"])])
    assert sorted(_matches(await service.candidates({"phone": "+46 (0)8-123 456 78"}))) == sorted(
        [(per, ["phone"]), (qarin, ["phone"])])
    # name and postal address as typed (case, spacing, postal code without its space, country in lower case)
    assert _matches(await service.candidates({"name": "qarin  PERSSON", "street": "storgatan 1",
                                              "postal_code": "11122", "country": "se"})) == [(qarin, ["name_address"])]
    assert await service.candidates({"name": "Qarin Persson", "street": "Storgatan 2", "country": "SE"}) == []

    # everything Qarin gave: her record first, with every way it matched; Per's by the shared ones only
    everything = await service.candidates({
        "national_id": "19880320-0016", "national_id_scheme": "se_personnummer", "email": FAMILY_EMAIL,
        "phone": "+46812345678", "name": "Qarin Persson", "street": "Storgatan 1", "postal_code": "111 22",
        "country": "SE", "domain": "exempel.se"})
    assert _matches(everything) == [(qarin, ["strong_id", "national_id", "email", "phone", "name_address"]),
                                    (per, ["email", "phone"])]


async def test_nothing_is_acted_on_before_staff_confirm_and_then_only_the_confirmed(
    rights: tuple[RightsService, Index],
) -> None:
    service, index = rights
    per, qarin = index.holder(PER), index.holder(QARIN)
    req = await _open(service, national_id="880320-0016", national_id_scheme="se_personnummer", email=FAMILY_EMAIL)
    rid = req["id"]
    views = {c["subject_id"]: c for c in req["candidates"]}
    # the lone strong match is suggested (the page pre-ticks it), but nothing is confirmed by itself
    assert views[qarin]["strong"] and views[qarin]["suggested"] and not views[qarin]["confirmed"]
    assert not views[per]["strong"] and not views[per]["suggested"]
    assert req["subject_id"] is None and req["confirmed_subject_ids"] is None
    assert [e["action"] for e in req["events"]] == ["opened", "candidates_found"]

    for act in (service.extract(rid, "staff"), service.erase(rid, "staff"), service.restrict(rid, "staff"),
                service.object(rid, "staff"), service.lift(rid, "0" * 32, "staff"),
                service.rectify(rid, "staff", Registrant.model_validate_json(json.dumps(QARIN)))):
        with pytest.raises(SubjectNotConfirmed) as err:
            await act
        assert err.value.status == 409 and err.value.code == "subject_not_confirmed"

    # only candidates: an id learnt elsewhere (or a typo) is refused, by position, without the value
    stranger = index.holder(dict(QARIN, email="someone@example.org"))
    with pytest.raises(NotACandidate) as refused:
        await service.confirm_subjects(rid, "staff", [qarin, stranger])
    assert refused.value.status == 422 and refused.value.extra["errors"] == [
        {"loc": ["subject_ids", 1], "type": "not_a_candidate"}]
    with pytest.raises(ValidationFailed):
        await service.confirm_subjects(rid, "staff", "not-a-list")  # type: ignore[arg-type]
    assert (await service.get(rid))["confirmed_subject_ids"] is None

    done = await service.confirm_subjects(rid, "staff", [qarin])
    assert done["confirmed_subject_ids"] == [qarin] and done["subject_id"] == qarin
    assert {c["subject_id"]: c["confirmed"] for c in done["candidates"]} == {qarin: True, per: False}
    [event] = [e for e in done["events"] if e["action"] == "subjects_confirmed"]
    assert event["detail"] == {"subject_ids": [qarin], "matched_by": [
        {"subject_id": qarin, "matched_by": ["strong_id", "national_id", "email"]}], "candidates_not_confirmed": 1}

    # restriction, extract and erasure act on Qarin's record and on nothing of Per's
    restricted = await service.restrict(rid, "staff")
    assert [r["subject_id"] for r in restricted["restrictions"]] == [qarin]
    assert await service.store.restrictions(per) == []
    extract = await service.extract(rid, "staff")
    assert extract["subject_ids"] == [qarin] and extract["subject_id"] == qarin
    reads = [a["subject_id"] for a in await service.store.access_log() if a["action"] == "rights.extract"]
    assert reads == [qarin]

    # staff may correct their decision while the request is open; the event names what it replaces
    again = await service.confirm_subjects(rid, "staff", [])
    assert again["confirmed_subject_ids"] == [] and again["subject_id"] is None
    assert again["events"][-1]["detail"]["replaces"] == [qarin]
    with pytest.raises(SubjectNotIdentified):
        await service.erase(rid, "staff")
    assert (await service.extract(rid, "staff"))["disclosures"] == []
    await service.close(rid, "staff", "no data held")
    with pytest.raises(RequestClosed):
        await service.confirm_subjects(rid, "staff", [qarin])


async def test_two_strong_matches_suggest_nothing(rights: tuple[RightsService, Index]) -> None:
    """A number valid under two schemes, both registered: neither is pre-selected."""
    service, index = rights
    company = {"kind": "organisation", "name": "Matti Meikäläinen", "organisation": "Esimerkki Oy",
               "national_id": {"scheme": "fi_ytunnus", "value": "2077474-0"},
               "address": {"street": ["Mannerheimintie 1"], "city": "Helsinki", "postal_code": "00100",
                           "country": "FI"},
               "email": "info@esimerkki.fi", "phone": "+358 9 123 4567", "language": "fi"}
    first, second = index.holder(company), index.holder(company)  # two holders under one strong id
    req = await _open(service, national_id="2077474-0", national_id_scheme="fi_ytunnus")
    assert sorted(c["subject_id"] for c in req["candidates"]) == sorted([first, second])
    assert all(c["strong"] and not c["suggested"] for c in req["candidates"])


async def test_identifier_rules(rights: tuple[RightsService, Index]) -> None:
    service, index = rights
    index.holder(QARIN)
    # name and address go together; the problem names the field, never the value
    for given, missing in (({"name": "Qarin Persson"}, "street"),
                           ({"street": "Storgatan 1", "country": "SE"}, "name"),
                           ({"name": "Qarin Persson", "street": "Storgatan 1"}, "country")):
        with pytest.raises(ValidationFailed) as err:
            await _open(service, **given)
        assert err.value.extra["errors"] == [{"loc": ["identifiers", missing], "type": "missing"}]
        assert "Qarin" not in json.dumps(err.value.problem())
    with pytest.raises(ValidationFailed) as err:
        await _open(service, phone="08-123 456 78")  # not international
    assert err.value.extra["errors"][0]["loc"] == ["identifiers", "phone"]
    with pytest.raises(ValidationFailed) as err:
        await _open(service, name="Qarin Persson", street="Storgatan 1", country="Sverige")
    assert err.value.extra["errors"][0]["loc"] == ["identifiers", "country"]
    # a domain alone is no way to find anyone (there is no index by domain); with an identifier it corroborates
    with pytest.raises(ValidationFailed) as err:
        await _open(service, domain="exempel.se")
    assert err.value.code == "identifiers_missing"
    # a passport number without its issuing country is no strong identifier: matched as a number only
    passport = dict(QARIN, national_id={"scheme": "passport", "value": "AB1234567"}, citizenship="SE",
                    email="p@example.org")
    holder = index.holder(passport)
    found = await service.candidates({"national_id": "ab1234567", "national_id_scheme": "passport"})
    assert _matches(found) == [(holder, ["national_id"])]
    found = await service.candidates({"national_id": "AB1234567", "national_id_scheme": "passport", "country": "se"})
    assert _matches(found) == [(holder, ["strong_id", "national_id"])]
    found = await service.candidates({"national_id": "AB1234567", "national_id_scheme": "passport", "country": "NO"})
    assert _matches(found) == [(holder, ["national_id"])]


async def test_candidates_are_capped_strongest_first(rights: tuple[RightsService, Index]) -> None:
    service, index = rights
    qarin = index.holder(QARIN)
    for i in range(MAX_CANDIDATES + 5):
        index.holder(dict(PER, national_id=None, name=f"Granne {i}"))  # neighbours on the same phone line
    found = await service.candidates({"national_id": "880320-0016", "phone": "+46812345678"})
    assert len(found) == MAX_CANDIDATES and found[0]["subject_id"] == qarin


async def test_a_request_opened_before_candidates_must_be_confirmed(rights: tuple[RightsService, Index]) -> None:
    """A request row from before this change (its lookup's subject ids, no candidates, no confirmation) is
    not acted on by itself: its subjects become the candidates staff confirm."""
    service, index = rights
    sid = index.holder(QARIN)
    rid = secrets.token_hex(16)
    await service.store.open_request({
        "id": rid, "kind": "access", "channel": "letter", "identity_check": "x", "verified_by": "y",
        "opened_by": "staff", "opened_at": "2026-01-05T10:00:00Z", "deadline": "2026-02-05", "state": "open",
        "subject_id": sid, "closed_at": None, "data": {"subject_ids": [sid], "matched_by": ["email"]}})
    legacy = await service.get(rid)
    assert _matches(legacy["candidates"]) == [(sid, ["email"])] and legacy["confirmed_subject_ids"] is None
    with pytest.raises(SubjectNotConfirmed):
        await service.extract(rid, "staff")
    assert (await service.confirm_subjects(rid, "staff", [sid]))["confirmed_subject_ids"] == [sid]
