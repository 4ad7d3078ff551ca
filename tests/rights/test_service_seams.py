"""RightsService with what it is given: one way to find a subject (requests and the staff pages' log
search alike), and the follow-ups it makes itself (the rectification push, the worker's wake-up).

A real SQLite store and ledger, no EPP registry: nothing here is delivered."""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.errors import NotFound, SubjectNotConfirmed
from gateway.ledger.checkpoint import CheckpointSigner
from gateway.ledger.keys import BlindIndexer, KeyRing
from gateway.models import Registrant
from gateway.policy.loader import load_policies
from gateway.rights.service import RightsService, national_id_forms
from gateway.services.ledger import Ledger
from gateway.store.sqlite import SqliteStore
from tests.conftest import FI_ORG, ROOT, VALID_BODY


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
async def rights(tmp_path: Path) -> AsyncIterator[tuple[RightsService, Wakes]]:
    store = SqliteStore(tmp_path / "gateway.db")
    ledger = Ledger(store, KeyRing.generate(tmp_path / "kek.json"), BlindIndexer(secrets.token_bytes(32)),
                    CheckpointSigner.generate())
    wakes = Wakes()
    try:
        yield RightsService(store, ledger, load_policies(ROOT / "config"), config_dir=ROOT / "config",
                            wake=wakes), wakes
    finally:
        await store.close()


def _registrant(data: dict[str, Any]) -> Registrant:
    return Registrant.model_validate_json(json.dumps(data))


async def _subject(rights: RightsService, registrant: dict[str, Any]) -> str:
    """The subject a registration of ``registrant`` would have created (its blind indexes stored)."""
    ref = await rights.ledger.subject_for(_registrant(registrant))
    return ref.id


async def _request(rights: RightsService, **identifiers: str) -> dict[str, Any]:
    return await rights.open_request(kind="rectification", channel="letter", identity_check="ID card checked",
                                     verified_by="staff-1", actor="staff", identifiers=identifiers)


def test_a_business_id_given_as_its_vat_number_has_its_stored_form() -> None:
    """The case that differed: the staff pages' search tried every scheme, requests only the Swedish
    personal ones, so ``FI20774740`` found the Finnish company on one and not the other."""
    assert "20774740" in national_id_forms("FI20774740", None)
    assert national_id_forms("FI20774740", "fi_ytunnus") == ["20774740"]


async def test_requests_and_the_log_search_find_a_subject_alike(rights: tuple[RightsService, Wakes]) -> None:
    service, _ = rights
    company = await _subject(service, FI_ORG)
    for typed in ("2077474-0", "20774740", "FI20774740"):
        assert await service.candidates({"national_id": typed}) == [
            {"subject_id": company, "matched_by": ["national_id"]}], typed
    req = await _request(service, national_id="FI20774740")
    assert [c["subject_id"] for c in req["candidates"]] == [company]
    # what nothing can be indexed from matches nobody (no error)
    assert await service.candidates({"national_id": "--"}) == []


async def test_rectification_is_pushed_recorded_and_wakes_the_worker(rights: tuple[RightsService, Wakes]) -> None:
    service, wakes = rights
    anna = copy.deepcopy(VALID_BODY["registrant"])
    sid = await _subject(service, anna)
    req = await service.confirm_subjects((await _request(service, email=anna["email"]))["id"], "staff", [sid])
    corrected = _registrant(anna | {"phone": "+46 8 765 432 10"})
    assert await service.rectify(req["id"], "staff", corrected) == []  # nothing was disclosed yet
    events = [e["action"] for e in await service.store.request_events(req["id"])]
    assert events[-1] == "rectification_pushed"
    assert wakes.count == 1


async def test_rectification_needs_a_subject(rights: tuple[RightsService, Wakes]) -> None:
    service, wakes = rights
    req = await _request(service, email="nobody@example.org")
    with pytest.raises(SubjectNotConfirmed):
        await service.rectify(req["id"], "staff", _registrant(VALID_BODY["registrant"]))
    await service.confirm_subjects(req["id"], "staff", [])
    with pytest.raises(NotFound, match="no subject to rectify"):
        await service.rectify(req["id"], "staff", _registrant(VALID_BODY["registrant"]))
    assert wakes.count == 0
