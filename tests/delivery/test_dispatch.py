"""The worker dispatches on the payload's type: each kind reaches its adapter with the decoded
command, and a kind without an adapter is refused with nothing sent.  Store and ledger are fakes
(the sealed blob is plain JSON here); the policies are the real ones."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.epp.steps import StepObserver, StepOutcome
from adapters.epp.types import (
    ContactUpdate,
    DomainCreate,
    Endpoint,
    EppResult,
    RegistrationCommands,
    RegistrationOutcome,
    UpdateOutcome,
)
from adapters.http_partner import PartnerEndpoint
from gateway.delivery.worker import DeliveryWorker
from gateway.errors import PermanentDeliveryError
from gateway.ledger.entry import DisclosureEntry
from gateway.outbox.payloads import (
    DomainRecord,
    EppContactUpdate,
    EppRegistration,
    HttpsPost,
    OutboxContent,
    OutboxPayload,
    outbox_aad,
)
from gateway.policy.loader import load_policies
from gateway.store.base import OutboxItem
from tests.conftest import ROOT

TRANSFER = {"country": "SE", "category": "eu_eea", "article": None, "instrument": None}
VALUES = {"email": "anna@example.se"}
ENDPOINT = object()  # what ``endpoints`` resolves a recipient to; the fake senders only compare it


class FakeLedger:
    """Seals as plain JSON, checking the associated data the real ledger would bind."""

    async def open_json(self, subject_id: str | None, blob: bytes, aad: str) -> Any:
        sealed = json.loads(blob)
        assert sealed.pop("aad") == aad
        return sealed

    async def dek(self, subject_id: str) -> bytes | None:
        return None

    @staticmethod
    def seal_json(dek: bytes, data: Any, aad: str) -> bytes:
        raise AssertionError("no data key in these tests")


class FakeStore:
    def __init__(self) -> None:
        self.finished: list[tuple[DisclosureEntry, str]] = []

    async def restrictions(self, subject_id: str) -> list[dict[str, Any]]:
        return []

    async def finish(self, item: OutboxItem, entries: list[DisclosureEntry], *, state: str, **_: Any) -> bool:
        self.finished.extend((entry, state) for entry in entries)
        return True

    async def record_step(self, item: OutboxItem, entries: list[DisclosureEntry], **_: Any) -> bool:
        self.finished.extend((entry, "in_flight") for entry in entries)
        return True


def row(recipient: str, payload: OutboxPayload, change_id: str = "", sent: tuple[str, ...] = ("email",)) -> OutboxItem:
    sealed = OutboxContent(payload, VALUES).to_json() | {"aad": outbox_aad("reg1", recipient, change_id)}
    return OutboxItem(id=1, registration_id="reg1", recipient=recipient, attempts=1, subject_id="s1",
                      payload_ct=json.dumps(sealed).encode(), payload_digest=payload.digest(), transfer=TRANSFER,
                      fields={"sent": list(sent), "withheld": []}, purpose="domain_registration", change_id=change_id)


@pytest.fixture
def sent() -> list[tuple[str, Any, str]]:
    return []


@pytest.fixture
def worker(sent: list[tuple[str, Any, str]]) -> DeliveryWorker:
    ok = EppResult(code=1000, message="ok", cl_trid="cl", sv_trid="sv")

    async def send_epp(endpoint: Endpoint, commands: RegistrationCommands, prefix: str, *,
                       on_step: StepObserver | None = None, held: Any = None) -> RegistrationOutcome:
        assert endpoint is ENDPOINT
        sent.append(("register", commands, prefix))
        if on_step is not None:
            await on_step(StepOutcome("domain:create", commands.domain.name, "delivered", ok))
        return RegistrationOutcome(domain_result=ok, objects={"domain": commands.domain.name})

    async def update_epp(endpoint: Endpoint, cmd: ContactUpdate, prefix: str) -> UpdateOutcome:
        assert endpoint is ENDPOINT
        sent.append(("update", cmd, prefix))
        return UpdateOutcome(object_id=cmd.id, result=ok)

    def no_partner(recipient: str) -> PartnerEndpoint:
        sent.append(("partner", recipient, ""))
        raise PermanentDeliveryError("no partner endpoint configured for this recipient")

    return DeliveryWorker(FakeStore(), FakeLedger(), load_policies(ROOT / "config"),  # type: ignore[arg-type]
                          lambda recipient: ENDPOINT, send_epp=send_epp, update_epp=update_epp,  # type: ignore[arg-type]
                          partner_endpoints=no_partner)


def finished(worker: DeliveryWorker) -> list[tuple[DisclosureEntry, str]]:
    store: FakeStore = worker.store  # type: ignore[assignment]
    return store.finished


async def test_a_registration_goes_to_the_epp_sender(worker: DeliveryWorker, sent: list[Any]) -> None:
    commands = RegistrationCommands(contacts=(), domain=DomainCreate(name="exempel.com", period_years=1, auth_pw="pw"))
    await worker.deliver(row("verisign-com", EppRegistration(commands), sent=()))  # thin: no personal data
    assert sent == [("register", commands, "reg1")]
    [(entry, state)] = finished(worker)  # the last step's entry is written with the row's finish
    assert (entry.outcome, state, entry.result_code, entry.sv_trid) == ("delivered", "done", "1000", "sv")
    assert entry.objects == {"domain": "exempel.com"} and entry.fields == () and entry.command == "domain:create"
    assert entry.payload_digest == EppRegistration(commands).digest()


async def test_a_contact_update_goes_to_the_epp_updater(worker: DeliveryWorker, sent: list[Any]) -> None:
    update = ContactUpdate(id="RGC1", email="new@example.se")
    await worker.deliver(row("iis-se", EppContactUpdate(update), change_id="ch1"))
    assert sent == [("update", update, "reg1-ch1")]
    [(entry, _)] = finished(worker)
    assert entry.outcome == "delivered" and entry.objects == {"contact": "RGC1"}


async def test_a_post_goes_to_the_partner(worker: DeliveryWorker, sent: list[Any]) -> None:
    await worker.deliver(row("mail-provider", HttpsPost("/v1/messages", {"data": VALUES})))
    assert sent == [("partner", "mail-provider", "")]  # the partner's endpoint was asked for; none is set up
    [(entry, state)] = finished(worker)
    assert (entry.outcome, state, entry.fields) == ("failed", "needs_attention", ())  # nothing left; staff
    assert entry.values_ct is None


@pytest.mark.parametrize(("recipient", "protocol"), [("denic-de", "rri"), ("escrow-agent", "escrow")])
async def test_a_record_has_no_adapter_here(worker: DeliveryWorker, sent: list[Any], recipient: str,
                                            protocol: str) -> None:
    await worker.deliver(row(recipient, DomainRecord(domain="a.de", tld="de", data=VALUES, protocol=protocol)))
    assert sent == []
    [(entry, state)] = finished(worker)
    assert (entry.outcome, state, entry.fields) == ("blocked", "needs_attention", ())
    assert entry.reason == f"protocol '{protocol}' has no adapter; nothing was sent"
